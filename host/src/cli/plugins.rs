//! Loading plugins under the workspace policy, and `corral plugins`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use corral::Event;
use corral::plugins::{self, Runtime, WorkspacePlugins};
use corral::policy::{self, Policy};
use corral::tools::Tool;
use corral::workspace::Workspace;

use super::args::PluginsArgs;
use super::render::Display;

/// The plugins of the workspace under its policy; plugin log lines go to `display`.
pub async fn load(
    workspace: &Workspace,
    policy: &Policy,
    extra: &[PathBuf],
    display: &Display,
) -> WorkspacePlugins {
    // No plugin file, no engine: building the pooling engine and tearing it down is most of a
    // start without plugins.
    if !plugins::any_plugin(&plugins::plugin_dirs(workspace, policy, extra)) {
        return WorkspacePlugins::default();
    }
    let slots = policy
        .max_concurrent
        .unwrap_or(corral::plugins::DEFAULT_MAX_CONCURRENT);
    let runtime = match Runtime::with_max_concurrent(slots) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("corral: the plugin runtime could not start: {error}");
            return WorkspacePlugins::default();
        }
    };
    let display = display.clone();
    let log: plugins::LogSink = Arc::new(move |plugin, level, message| {
        display.show(&Event::PluginLog {
            plugin: plugin.to_string(),
            level,
            message: message.to_string(),
        })
    });
    WorkspacePlugins::load(&runtime, workspace, policy, extra, log).await
}

/// The tools of every plugin that loads, each with what the workspace grants it; a line on
/// stderr for each plugin that does not load. A plugin whose grants are withheld (its
/// component is not the approved one) is named on stderr too, or, with `ask_user`, the user is
/// asked whether to approve it.
pub async fn tools(
    workspace: &Workspace,
    policy: &mut Policy,
    extra: &[PathBuf],
    display: &Display,
    ask_user: bool,
) -> Vec<Arc<dyn Tool>> {
    let found = load(workspace, policy, extra, display).await;
    for error in &found.errors {
        eprintln!("corral: {error}");
    }
    super::trust::approve_withheld(workspace, &found, policy, ask_user);
    let (tools, problems) = found.tools(workspace, policy);
    for problem in problems {
        eprintln!("corral: {problem}");
    }
    tools
}

/// `corral plugins`.
pub async fn list(args: PluginsArgs) -> anyhow::Result<ExitCode> {
    let (workspace, policy) = match super::trust::open(
        &super::args::workspace_root(args.workspace.as_deref(), args.json),
        false,
    ) {
        Ok(opened) => opened,
        Err(code) => return Ok(code),
    };
    let set = load(&workspace, &policy, &args.plugin_dirs, &Display::plain()).await;
    let disabled = &set.disabled;
    if args.json {
        let plugins: Vec<_> = set
            .plugins
            .iter()
            .map(|p| {
                serde_json::json!({
                    "manifest": &*p.manifest,
                    "file": p.file,
                    "sha256": p.sha256,
                    "source": p.source,
                    "rights": WorkspacePlugins::rights(p, &policy),
                })
            })
            .collect();
        let disabled: Vec<&str> = disabled.iter().map(|p| p.manifest.name.as_str()).collect();
        println!(
            "{}",
            serde_json::json!({
                "plugins": plugins,
                "disabled": disabled,
                "errors": set.errors,
                "trust": policy.trust,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if set.plugins.is_empty() && set.errors.is_empty() && disabled.is_empty() {
        println!("no plugins found");
    }
    for p in &set.plugins {
        let m = &p.manifest;
        println!(
            "{} {} ({}) - {}",
            m.name,
            m.version,
            p.file.display(),
            m.description
        );
        let tools: Vec<&str> = m.tools.iter().map(|t| t.name.as_str()).collect();
        println!("  tools: {}", tools.join(", "));
        let rights = WorkspacePlugins::rights(p, &policy);
        let withheld = rights.approval.withholds();
        for request in &rights.requests {
            let mark = match (&request.invalid, request.granted.is_empty()) {
                (Some(why), _) => format!("NOT granted ({why})"),
                (None, true) => "NOT granted".to_string(),
                (None, false) if withheld => {
                    format!("granted {} (withheld)", request.granted.join(", "))
                }
                (None, false) => format!("granted {}", request.granted.join(", ")),
            };
            println!("  asks {} {}: {mark}", request.kind, request.asked);
        }
        if withheld {
            println!(
                "  {}; `corral policy approve {}` gives them",
                rights.approval, m.name
            );
        }
    }
    for p in disabled {
        println!(
            "{} {} ({}) - disabled in {}",
            p.manifest.name,
            p.manifest.version,
            p.file.display(),
            policy::WORKSPACE_FILE
        );
    }
    for error in &set.errors {
        println!("error: {error}");
    }
    Ok(ExitCode::SUCCESS)
}
