//! Finding plugins at startup: every `*.wasm` in the plugin folders, compiled (or taken from the
//! cache), checked, and described, all files at once. A plugin that fails to load is reported
//! and skipped; the others load. Plugins that share a name are all skipped: grants follow a
//! plugin's name, so a second component calling itself `grep` must never get (or take)
//! `grep`'s grants.
//!
//! A plugin's manifest is read once, with no grants and a deadline
//! ([`super::plugin::MANIFEST_DEADLINE`]), and cached beside the compiled component under the
//! same key: a warm start instantiates nothing.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use serde::Serialize;

use super::bindings::PluginPre;
use super::cache::{self, Source};
use super::engine::Runtime;
use super::plugin::{LoadedPlugin, Manifest};
use super::state::LogSink;

/// Bytes of one description (the plugin's, or a tool's) or one input schema a manifest may
/// carry; a manifest with a longer one is refused (each is sent to the model on every turn).
pub const MAX_MANIFEST_TEXT: usize = 64 * 1024;
/// Tools one plugin may offer.
pub const MAX_TOOLS: usize = 64;

/// A plugin file that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadError {
    pub file: PathBuf,
    pub cause: String,
    /// Other files skipped for the same cause (plugins of one name), named in the same line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<PathBuf>,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.also.is_empty() {
            return write!(
                f,
                "plugin {} skipped: {}",
                self.file.display(),
                super::output::sanitize(&self.cause)
            );
        }
        let mut files: Vec<String> = std::iter::once(&self.file)
            .chain(&self.also)
            .map(|f| f.display().to_string())
            .collect();
        let last = files.pop().unwrap_or_default();
        write!(
            f,
            "plugins {} and {last} skipped: {}",
            files.join(", "),
            super::output::sanitize(&self.cause)
        )
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

/// The `*.wasm` files of `dirs`, in order (a folder that does not exist is skipped), each file
/// once even when two folders lead to it.
fn wasm_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
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
        for file in found {
            let same = file.canonicalize().unwrap_or_else(|_| file.clone());
            if seen.insert(same) {
                files.push(file);
            }
        }
    }
    files
}

/// Whether any folder of `dirs` holds a `*.wasm` file: without one there is nothing to load,
/// and a caller need not build the engine ([`Runtime`]) at all.
pub fn any_plugin(dirs: &[PathBuf]) -> bool {
    !wasm_files(dirs).is_empty()
}

/// Loads every plugin of `dirs`, all at once. Plugins whose manifests give one name are all
/// skipped, with one error naming every file. Names of `taken` tools (the built-ins) and of
/// earlier plugins cannot be taken again: such a plugin is skipped with an error.
pub async fn load_dirs(
    runtime: &Runtime,
    dirs: &[PathBuf],
    cache_dir: Option<&Path>,
    taken: &[String],
    log: LogSink,
) -> PluginSet {
    let mut set = PluginSet::default();
    let files = wasm_files(dirs);
    let loads = files
        .iter()
        .map(|file| load_one(runtime, file, cache_dir, log.clone()));
    let results = join_all(loads).await;
    let mut loaded = Vec::new();
    for (file, result) in files.into_iter().zip(results) {
        match result {
            Ok(plugin) => loaded.push(plugin),
            Err(cause) => set.errors.push(LoadError {
                file,
                cause,
                also: Vec::new(),
            }),
        }
    }
    let mut by_name: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for plugin in &loaded {
        by_name
            .entry(plugin.manifest.name.clone())
            .or_default()
            .push(plugin.file.clone());
    }
    for (name, files) in &by_name {
        if let [first, rest @ ..] = files.as_slice()
            && !rest.is_empty()
        {
            let who = if rest.len() == 1 { "both" } else { "all" };
            set.errors.push(LoadError {
                file: first.clone(),
                cause: format!(
                    "{who} are named `{name}`; a plugin's grants follow its name, so none of them loads until one is removed or renamed"
                ),
                also: rest.to_vec(),
            });
        }
    }
    let mut names: HashSet<String> = taken.iter().cloned().collect();
    for plugin in loaded {
        if by_name
            .get(&plugin.manifest.name)
            .is_some_and(|files| files.len() > 1)
        {
            continue;
        }
        let clash = plugin
            .manifest
            .tools
            .iter()
            .find(|t| names.contains(&t.name));
        if let Some(tool) = clash {
            set.errors.push(LoadError {
                file: plugin.file.clone(),
                cause: format!("its tool `{}` has a name already taken", tool.name),
                also: Vec::new(),
            });
            continue;
        }
        names.extend(plugin.manifest.tools.iter().map(|t| t.name.clone()));
        set.plugins.push(plugin);
    }
    set
}

/// The largest component file read; a bigger one is skipped with an error.
pub const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

fn read_capped(file: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let opened = std::fs::File::open(file).map_err(|e| format!("cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(format!(
            "it is larger than {} MiB",
            MAX_COMPONENT_BYTES / (1024 * 1024)
        ));
    }
    Ok(bytes)
}

async fn load_one(
    runtime: &Runtime,
    file: &Path,
    cache_dir: Option<&Path>,
    log: LogSink,
) -> Result<LoadedPlugin, String> {
    let (path, engine, cache) = (
        file.to_path_buf(),
        runtime.engine.clone(),
        cache_dir.map(Path::to_path_buf),
    );
    // Reading, hashing and (when not cached) compiling are CPU and disk work: off the executor.
    // The bytes are read once: hashed for approval and compiled, so the approved component is
    // the one that runs. A file whose stamp (path, device, inode, size, mtime, ctime) is the
    // one recorded beside its compiled artifact is not read at all: the artifact and the hash
    // recorded with the stamp are its ([`cache::Stamp`]).
    let (compiled, sha256) = tokio::task::spawn_blocking(move || {
        let stamp = cache
            .as_deref()
            .and_then(|dir| cache::Stamp::of(&path, dir).ok());
        if let Some(hit) = stamp.as_ref().and_then(|s| s.load(&engine)) {
            return Ok::<_, String>(hit);
        }
        let bytes = read_capped(&path)?;
        let sha256 = crate::policy::sha256_hex(&bytes);
        let compiled = cache::load(&engine, &bytes, cache.as_deref())
            .map_err(|e| format!("not a valid WebAssembly component: {}", first_line(&e)))?;
        if let Some(stamp) = stamp {
            stamp.keep(&compiled, &sha256);
        }
        Ok((compiled, sha256))
    })
    .await
    .map_err(|e| format!("its loading thread failed: {e}"))??;
    let instance_pre = runtime
        .linker
        .instantiate_pre(&compiled.component)
        .map_err(|e| format!("its imports cannot be satisfied: {}", first_line(&e)))?;
    let pre = PluginPre::new(instance_pre).map_err(|e| {
        format!(
            "it does not export corral:plugin/tools@0.1.0: {}",
            first_line(&e)
        )
    })?;
    let manifest = match compiled.manifest() {
        Some(cached) => cached?,
        None => match LoadedPlugin::read_manifest(&pre, runtime, &log).await {
            Ok(manifest) => {
                compiled.keep_manifest(Ok(&manifest));
                manifest
            }
            Err(error) => {
                if error.lasting {
                    compiled.keep_manifest(Err(&error.cause));
                }
                return Err(error.cause);
            }
        },
    };
    check_manifest(&manifest)?;
    Ok(LoadedPlugin::new(
        pre,
        runtime.clone(),
        file.to_path_buf(),
        compiled.source,
        sha256,
        log,
        manifest,
    ))
}

fn check_manifest(m: &Manifest) -> Result<(), String> {
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !valid(&m.name) {
        return Err(format!(
            "its name {:?} is not [a-zA-Z0-9_-]{{1,64}}",
            m.name.chars().take(80).collect::<String>()
        ));
    }
    let too_long = |what: &str, text: &str| {
        (text.len() > MAX_MANIFEST_TEXT).then(|| {
            format!(
                "{what} is {} bytes, over the {MAX_MANIFEST_TEXT}-byte limit",
                text.len()
            )
        })
    };
    if let Some(e) = too_long("its description", &m.description) {
        return Err(e);
    }
    if m.tools.len() > MAX_TOOLS {
        return Err(format!(
            "it offers {} tools, over the limit of {MAX_TOOLS}",
            m.tools.len()
        ));
    }
    let mut seen = HashSet::new();
    for tool in &m.tools {
        if !valid(&tool.name) {
            return Err(format!(
                "its tool name {:?} is not [a-zA-Z0-9_-]{{1,64}}",
                tool.name.chars().take(80).collect::<String>()
            ));
        }
        if !seen.insert(&tool.name) {
            return Err(format!("it declares the tool `{}` twice", tool.name));
        }
        if let Some(e) = too_long(
            &format!("the description of `{}`", tool.name),
            &tool.description,
        )
        .or_else(|| {
            too_long(
                &format!("the schema of `{}`", tool.name),
                &tool.input_schema,
            )
        }) {
            return Err(e);
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
