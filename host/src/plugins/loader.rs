//! Finding plugins at startup: every `*.wasm` in the plugin folders, compiled (or taken from the
//! cache), checked, and described. A plugin that fails to load is reported and skipped; the
//! others load.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::bindings::PluginPre;
use super::cache::{self, Source};
use super::engine::Runtime;
use super::plugin::LoadedPlugin;
use super::state::LogSink;

/// A plugin file that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadError {
    pub file: PathBuf,
    pub cause: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {} skipped: {}", self.file.display(), self.cause)
    }
}

/// The plugins found in some folders.
#[derive(Debug, Default)]
pub struct PluginSet {
    pub plugins: Vec<LoadedPlugin>,
    pub errors: Vec<LoadError>,
}

impl PluginSet {
    /// How many plugins came from the compile cache.
    pub fn cached(&self) -> usize {
        self.plugins
            .iter()
            .filter(|p| p.source == Source::Cached)
            .count()
    }
}

/// The `*.wasm` files of `dirs`, in order (a folder that does not exist is skipped).
fn wasm_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

/// Loads every plugin of `dirs`. Names of `taken` tools (the built-ins) and of earlier plugins
/// cannot be taken again: such a plugin is skipped with an error.
pub fn load_dirs(
    runtime: &Runtime,
    dirs: &[PathBuf],
    cache_dir: Option<&Path>,
    taken: &[String],
    log: LogSink,
) -> PluginSet {
    let mut set = PluginSet::default();
    let mut names: HashSet<String> = taken.iter().cloned().collect();
    let mut plugin_names = HashSet::new();
    for file in wasm_files(dirs) {
        match load_one(runtime, &file, cache_dir, log.clone()) {
            Ok(plugin) => {
                let fail = |cause: String| LoadError {
                    file: file.clone(),
                    cause,
                };
                if !plugin_names.insert(plugin.manifest.name.clone()) {
                    set.errors.push(fail(format!(
                        "a plugin named `{}` is already loaded",
                        plugin.manifest.name
                    )));
                    continue;
                }
                let clash = plugin
                    .manifest
                    .tools
                    .iter()
                    .find(|t| names.contains(&t.name));
                if let Some(tool) = clash {
                    set.errors.push(fail(format!(
                        "its tool `{}` has a name already taken",
                        tool.name
                    )));
                    continue;
                }
                names.extend(plugin.manifest.tools.iter().map(|t| t.name.clone()));
                set.plugins.push(plugin);
            }
            Err(cause) => set.errors.push(LoadError { file, cause }),
        }
    }
    set
}

fn load_one(
    runtime: &Runtime,
    file: &Path,
    cache_dir: Option<&Path>,
    log: LogSink,
) -> Result<LoadedPlugin, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read it: {e}"))?;
    let (component, source) = cache::load(&runtime.engine, &bytes, cache_dir)
        .map_err(|e| format!("not a valid WebAssembly component: {}", first_line(&e)))?;
    let instance_pre = runtime
        .linker
        .instantiate_pre(&component)
        .map_err(|e| format!("its imports cannot be satisfied: {}", first_line(&e)))?;
    let pre = PluginPre::new(instance_pre).map_err(|e| {
        format!(
            "it does not export corral:plugin/tools@0.1.0: {}",
            first_line(&e)
        )
    })?;
    let plugin = LoadedPlugin::new(pre, runtime.clone(), file.to_path_buf(), source, log)
        .map_err(|e| format!("its manifest could not be read: {}", first_line(&e)))?;
    check_manifest(&plugin)?;
    Ok(plugin)
}

fn check_manifest(plugin: &LoadedPlugin) -> Result<(), String> {
    let m = &plugin.manifest;
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !valid(&m.name) {
        return Err(format!(
            "its name {:?} is not [a-zA-Z0-9_-]{{1,64}}",
            m.name
        ));
    }
    let mut seen = HashSet::new();
    for tool in &m.tools {
        if !valid(&tool.name) {
            return Err(format!(
                "its tool name {:?} is not [a-zA-Z0-9_-]{{1,64}}",
                tool.name
            ));
        }
        if !seen.insert(&tool.name) {
            return Err(format!("it declares the tool `{}` twice", tool.name));
        }
        let schema: serde_json::Value = serde_json::from_str(&tool.input_schema)
            .map_err(|e| format!("the schema of `{}` is not JSON: {e}", tool.name))?;
        if schema.get("type").and_then(|t| t.as_str()) != Some("object") {
            return Err(format!(
                "the schema of `{}` is not an object schema",
                tool.name
            ));
        }
    }
    Ok(())
}

fn first_line(error: &wasmtime::Error) -> String {
    let text = format!("{error:#}");
    text.lines().next().unwrap_or("").to_string()
}
