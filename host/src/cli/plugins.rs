//! Loading plugins under the workspace policy, and `corral plugins`.

use std::path::{Path, PathBuf};
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
    let runtime = match Runtime::new() {
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
/// stderr for each plugin that does not load.
pub async fn tools(
    workspace: &Workspace,
    policy: &Policy,
    extra: &[PathBuf],
    display: &Display,
) -> Vec<Arc<dyn Tool>> {
    let found = load(workspace, policy, extra, display).await;
    for error in &found.errors {
        eprintln!("corral: {error}");
    }
    let (tools, problems) = found.tools(workspace, policy);
    for problem in problems {
        eprintln!("corral: {problem}");
    }
    tools
}

/// Opens the workspace and reads its policy; a problem is printed and becomes exit code 2.
pub fn open(workspace: &Path) -> Result<(Workspace, Policy), ExitCode> {
    let ws = Workspace::open(workspace).map_err(|e| {
        eprintln!("corral: workspace {}: {e}", workspace.display());
        ExitCode::from(super::EXIT_USAGE)
    })?;
    let policy = Policy::load(&ws, policy::user_file().as_deref()).map_err(|e| {
        eprintln!("corral: {e}");
        ExitCode::from(super::EXIT_USAGE)
    })?;
    Ok((ws, policy))
}

/// `corral plugins`.
pub async fn list(args: PluginsArgs) -> anyhow::Result<ExitCode> {
    let (workspace, policy) = match open(&args.workspace) {
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
                    "manifest": &*p.manifest, "file": p.file, "source": p.source, "rights": WorkspacePlugins::rights(p, &policy)
                })
            })
            .collect();
        let disabled: Vec<&str> = disabled.iter().map(|p| p.manifest.name.as_str()).collect();
        println!(
            "{}",
            serde_json::json!({"plugins": plugins, "disabled": disabled, "errors": set.errors})
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
        let c = &m.capabilities;
        for (kind, list) in [
            ("read", &c.read),
            ("write", &c.write),
            ("network", &c.network),
            ("env", &c.env),
        ] {
            for request in list {
                let granted = !rights
                    .asked_not_granted
                    .contains(&format!("{kind} {request}"));
                let mark = if granted { "granted" } else { "NOT granted" };
                println!("  asks {kind} {request}: {mark}");
            }
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
