//! Compiled plugins, cached: each component is compiled once and stored as a precompiled
//! artifact keyed by the component's hash, the wasmtime version and the engine's settings.
//!
//! Hashing a component means reading all of it (a millisecond for `jq`), at every start. So
//! each file also gets a [`Stamp`]: what identifies its contents without reading them (its
//! path, device, inode, size, modification and change times). The stamp's record, beside the
//! artifacts, names the artifact and the SHA-256 found when the file was last read; while the
//! file's stamp is the same, the file is not read again. Any write to the file changes its
//! change time (`ctime`, which no user can set back), so a changed file is read, hashed and
//! looked up by its contents again.

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

/// A plugin file's stamp in one cache folder (see the module doc).
pub struct Stamp {
    /// `stamps/<hash of the stamp>.json` in the cache folder.
    record: PathBuf,
    /// The stamp itself, kept in the record and compared on reading (a hash collision of two
    /// stamps must not give one file the other's artifact).
    stamp: String,
}

/// What a stamp's record holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct StampRecord {
    stamp: String,
    /// The artifact's file stem (`<key>-wasmtime<N>`) in the cache folder.
    artifact: String,
    sha256: String,
}

impl Stamp {
    /// The stamp of `file` for the cache in `dir`; fails when the file cannot be examined.
    pub fn of(file: &Path, dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(file)?;
        let path = std::fs::canonicalize(file)?;
        let stamp = format!(
            "{}\n{}:{}:{}:{}.{}:{}.{}",
            path.display(),
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        );
        let digest = Sha256::digest(stamp.as_bytes());
        let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            record: dir.join("stamps").join(format!("{name}.json")),
            stamp,
        })
    }

    /// The compiled component and the SHA-256 recorded for this stamp, when the record is this
    /// stamp's and its artifact loads; `None` otherwise (the file is then read as usual).
    pub fn load(&self, engine: &Engine) -> Option<(Compiled, String)> {
        let text = std::fs::read(&self.record).ok()?;
        let record: StampRecord = serde_json::from_slice(&text).ok()?;
        if record.stamp != self.stamp || record.artifact.contains(['/', '\\']) {
            return None;
        }
        let dir = self.record.parent()?.parent()?;
        let path = dir.join(format!("{}.cwasm", record.artifact));
        // SAFETY: as in `load`: the artifact is corral's own, named by the key of its bytes,
        // this wasmtime version and these engine settings.
        let component = unsafe { Component::deserialize_file(engine, &path) }.ok()?;
        Some((
            Compiled {
                component,
                source: Source::Cached,
                manifest_path: Some(dir.join(format!("{}.manifest.json", record.artifact))),
                artifact: Some(record.artifact),
            },
            record.sha256,
        ))
    }

    /// Records that this stamp's file is `compiled`, with `sha256`; a failure to write only
    /// costs a read and a hash next time.
    pub fn keep(&self, compiled: &Compiled, sha256: &str) {
        let Some(artifact) = &compiled.artifact else {
            return;
        };
        let record = StampRecord {
            stamp: self.stamp.clone(),
            artifact: artifact.clone(),
            sha256: sha256.to_string(),
        };
        let written = self
            .record
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| serde_json::to_vec(&record).map_err(std::io::Error::other))
            .and_then(|json| write_atomic(&self.record, &json));
        if let Err(error) = written {
            tracing::warn!(%error, path = %self.record.display(), "could not record the plugin's stamp");
        }
    }
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
    /// The artifact's file stem in the cache folder; `None` without a cache, or when it could
    /// not be stored.
    artifact: Option<String>,
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
            artifact: None,
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
                    artifact: Some(stem),
                });
            }
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cached plugin unusable; recompiling")
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    let artifact = match store(&component, dir, &path) {
        Ok(()) => Some(stem),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "could not cache the compiled plugin");
            None
        }
    };
    Ok(Compiled {
        component,
        source: Source::Compiled,
        manifest_path,
        artifact,
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
