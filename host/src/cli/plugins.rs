//! Loading plugins for a command, and `corral plugins`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use corral::Event;
use corral::plugins::{self, Grants, Limits, PluginSet, PluginTool, Runtime};
use corral::tools::Tool;

use super::args::PluginsArgs;
use super::render::{self, Mode};

/// The tool names corral itself offers; a plugin cannot take them.
const BUILT_IN: &[&str] = &[
    "bash",
    "read_file",
    "write_file",
    "edit_file",
    "background_run",
    "check_background",
    "kill_background",
];

/// The plugin folders: the workspace's, the user's, then `--plugins` ones.
fn dirs(workspace: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = vec![workspace.join(".corral").join("plugins")];
    if let Some(config) = dirs::config_dir() {
        dirs.push(config.join("corral").join("plugins"));
    }
    dirs.extend(extra.iter().cloned());
    dirs
}

fn load(workspace: &Path, extra: &[PathBuf], mode: Mode) -> PluginSet {
    let runtime = match Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("corral: the plugin runtime could not start: {error}");
            return PluginSet::default();
        }
    };
    let taken: Vec<String> = BUILT_IN.iter().map(|s| s.to_string()).collect();
    let log: plugins::LogSink = Arc::new(move |plugin, level, message| {
        render::render(
            mode,
            &Event::PluginLog {
                plugin: plugin.to_string(),
                level,
                message: message.to_string(),
            },
        )
    });
    plugins::load_dirs(
        &runtime,
        &dirs(workspace, extra),
        plugins::default_cache_dir().as_deref(),
        &taken,
        log,
    )
}

/// The tools of every plugin that loads; a line on stderr for each that does not. Until the
/// workspace policy grants anything, plugins get nothing beyond their own memory.
pub fn tools(workspace: &Path, extra: &[PathBuf], mode: Mode) -> Vec<Arc<dyn Tool>> {
    let set = load(workspace, extra, mode);
    for error in &set.errors {
        eprintln!("corral: {error}");
    }
    set.plugins
        .iter()
        .flat_map(|p| PluginTool::for_plugin(p, Grants::default(), Limits::default()))
        .collect()
}

/// `corral plugins`.
pub fn list(args: PluginsArgs) -> anyhow::Result<ExitCode> {
    let set = load(&args.workspace, &args.plugin_dirs, Mode::Lines);
    if args.json {
        let plugins: Vec<_> = set
            .plugins
            .iter()
            .map(|p| serde_json::json!({"manifest": &*p.manifest, "file": p.file, "source": p.source}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"plugins": plugins, "errors": set.errors})
        );
        return Ok(ExitCode::SUCCESS);
    }
    if set.plugins.is_empty() && set.errors.is_empty() {
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
        let c = &m.capabilities;
        for (kind, list) in [
            ("read", &c.read),
            ("write", &c.write),
            ("network", &c.network),
            ("env", &c.env),
        ] {
            if !list.is_empty() {
                println!("  asks {kind}: {} (not granted)", list.join(", "));
            }
        }
    }
    for error in &set.errors {
        println!("error: {error}");
    }
    Ok(ExitCode::SUCCESS)
}
