//! Compiled plugins, cached: each component is compiled once and stored as a precompiled
//! artifact keyed by the component's hash, the wasmtime version and the engine's settings.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a component came from the cache or was compiled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Cached,
    Compiled,
}

/// Where compiled plugins live: `$XDG_CACHE_HOME/corral/plugins` (or `~/.cache/...`).
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("corral").join("plugins"))
}

/// The cache key of `bytes` for `engine`.
fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let mut hash = Sha256::new();
    hash.update(bytes);
    hash.update(env!("CARGO_PKG_VERSION").as_bytes());
    hash.update(settings.finish().to_le_bytes());
    let digest = hash.finalize();
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// Loads the component in `bytes`: from the cache when an artifact for exactly these bytes,
/// this wasmtime and these engine settings exists, else compiled now and stored. A cache that
/// cannot be read or written only costs a compile.
pub fn load(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> wasmtime::Result<(Component, Source)> {
    let Some(dir) = cache_dir else {
        return Ok((Component::new(engine, bytes)?, Source::Compiled));
    };
    let path = dir.join(format!(
        "{}-wasmtime{}.cwasm",
        key(engine, bytes),
        wasmtime_version()
    ));
    if path.exists() {
        // SAFETY: the artifact was written by `Component::serialize` of this same wasmtime
        // version and engine settings (both are in its name), into corral's own cache folder.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, Source::Cached)),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cached plugin unusable; recompiling")
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Err(error) = store(&component, dir, &path) {
        tracing::warn!(%error, path = %path.display(), "could not cache the compiled plugin");
    }
    Ok((component, Source::Compiled))
}

fn store(component: &Component, dir: &Path, path: &Path) -> wasmtime::Result<()> {
    std::fs::create_dir_all(dir)?;
    let artifact = component.serialize()?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, artifact)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn wasmtime_version() -> &'static str {
    "48"
}
