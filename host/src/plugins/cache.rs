//! Compiled plugins, cached: each component is compiled once and stored as a precompiled
//! artifact keyed by the component's hash, the wasmtime version and the engine's settings.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::plugin::Manifest;

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

/// What the manifest file beside an artifact holds.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum CachedManifest {
    Manifest(Manifest),
    Refused(String),
}

/// A component ready to instantiate, and where its manifest is cached.
pub struct Compiled {
    pub component: Component,
    pub source: Source,
    /// `<key>.manifest.json` beside the artifact; `None` without a cache.
    manifest_path: Option<PathBuf>,
}

impl Compiled {
    /// The manifest cached for exactly this component, if any (and readable): the manifest,
    /// or the lasting reason it could not be read.
    pub fn manifest(&self) -> Option<Result<Manifest, String>> {
        let text = std::fs::read(self.manifest_path.as_ref()?).ok()?;
        serde_json::from_slice::<CachedManifest>(&text)
            .ok()
            .map(|cached| match cached {
                CachedManifest::Manifest(m) => Ok(m),
                CachedManifest::Refused(cause) => Err(cause),
            })
    }

    /// Caches `manifest` (or the lasting reason it could not be read) for this component; a
    /// failure to write only costs a manifest call next time.
    pub fn keep_manifest(&self, manifest: Result<&Manifest, &str>) {
        let Some(path) = &self.manifest_path else {
            return;
        };
        let cached = match manifest {
            Ok(m) => CachedManifest::Manifest(m.clone()),
            Err(cause) => CachedManifest::Refused(cause.to_string()),
        };
        let written = serde_json::to_vec(&cached)
            .map_err(std::io::Error::other)
            .and_then(|json| write_atomic(path, &json));
        if let Err(error) = written {
            tracing::warn!(%error, path = %path.display(), "could not cache the plugin's manifest");
        }
    }
}

/// Loads the component in `bytes`: from the cache when an artifact for exactly these bytes,
/// this wasmtime and these engine settings exists, else compiled now and stored. A cache that
/// cannot be read or written only costs a compile.
pub fn load(engine: &Engine, bytes: &[u8], cache_dir: Option<&Path>) -> wasmtime::Result<Compiled> {
    let Some(dir) = cache_dir else {
        return Ok(Compiled {
            component: Component::new(engine, bytes)?,
            source: Source::Compiled,
            manifest_path: None,
        });
    };
    let stem = format!("{}-wasmtime{}", key(engine, bytes), wasmtime_version());
    let path = dir.join(format!("{stem}.cwasm"));
    let manifest_path = Some(dir.join(format!("{stem}.manifest.json")));
    if path.exists() {
        // SAFETY: the artifact was written by `Component::serialize` of this same wasmtime
        // version and engine settings (both are in its name), into corral's own cache folder.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => {
                return Ok(Compiled {
                    component,
                    source: Source::Cached,
                    manifest_path,
                });
            }
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cached plugin unusable; recompiling")
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Err(error) = store(&component, dir, &path) {
        tracing::warn!(%error, path = %path.display(), "could not cache the compiled plugin");
    }
    Ok(Compiled {
        component,
        source: Source::Compiled,
        manifest_path,
    })
}

fn store(component: &Component, dir: &Path, path: &Path) -> wasmtime::Result<()> {
    std::fs::create_dir_all(dir)?;
    let artifact = component.serialize()?;
    write_atomic(path, &artifact)?;
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn wasmtime_version() -> &'static str {
    "48"
}
