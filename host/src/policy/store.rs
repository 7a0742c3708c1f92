//! The user's records in their config folder (`~/.config/corral/`): which workspaces' files
//! they trust ([`super::trust`]) and which plugin components they approved
//! ([`super::approval`]). Both are TOML files of one table per workspace, keyed by the
//! workspace's canonical path. They live with the user, never in a workspace: a record in the
//! workspace would be writable by what it limits.
//!
//! Reading takes at most [`MAX_STORE_BYTES`]. Every change is a read-modify-write under an
//! exclusive lock (`<file>.lock`, waited for at most [`LOCK_TIMEOUT`]) that writes a temporary
//! file beside the record and renames it over the old one, so a reader sees the old record or
//! the new one, never half of one, and two corral processes changing it at once lose neither
//! change. The temporary file is removed when the write fails.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest record file read; a bigger one is an error, not a partial read.
pub const MAX_STORE_BYTES: u64 = 4 * 1024 * 1024;
/// The longest a change waits for another corral process that holds the record's lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a waiting change tries the lock again.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// A record that cannot be read or written. Fatal for the command: exit code 2, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: larger than {MAX_STORE_BYTES} bytes; it is not read", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("{}: another corral process held its lock for {} s", path.display(), LOCK_TIMEOUT.as_secs())]
    Busy { path: PathBuf },
    #[error("the workspace path {} is not UTF-8, so it cannot be recorded", path.display())]
    NotUtf8 { path: PathBuf },
}

/// One record file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    path: PathBuf,
    /// The comment written at the top of the file.
    header: &'static str,
}

impl Store {
    pub fn new(path: PathBuf, header: &'static str) -> Self {
        Self { path, header }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record; the default (empty) record when the file does not exist.
    pub fn read<T: DeserializeOwned + Default>(&self) -> Result<T, StoreError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
            Err(source) => return Err(self.io(source)),
        };
        let mut text = String::new();
        file.take(MAX_STORE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| self.io(e))?;
        if text.len() as u64 > MAX_STORE_BYTES {
            return Err(StoreError::TooLarge {
                path: self.path.clone(),
            });
        }
        toml::from_str(&text).map_err(|e| StoreError::Malformed {
            path: self.path.clone(),
            message: e.message().trim().to_string(),
        })
    }

    /// Changes the record with `change` under the lock and writes it back; returns what
    /// `change` returned. Creates the config folder when needed.
    pub fn update<T, R>(&self, change: impl FnOnce(&mut T) -> R) -> Result<R, StoreError>
    where
        T: DeserializeOwned + Serialize + Default,
    {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let _lock = self.lock()?;
        let mut record: T = self.read()?;
        let result = change(&mut record);
        let body = toml::to_string(&record).map_err(|e| StoreError::Malformed {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let text = format!("{}\n{body}", self.header);
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io(e));
        }
        Ok(result)
    }

    /// Takes the exclusive lock of the record, waiting at most [`LOCK_TIMEOUT`]. Released when
    /// the returned file is dropped (closing it releases the `flock`).
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.path.with_extension("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            // SAFETY: flock on a descriptor this function owns; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(file);
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(StoreError::Io {
                    path,
                    source: error,
                });
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Busy { path });
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// The key of a workspace in a record: its canonical root, which must be UTF-8.
pub fn workspace_key(root: &Path) -> Result<String, StoreError> {
    root.to_str()
        .map(str::to_string)
        .ok_or_else(|| StoreError::NotUtf8 {
            path: root.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    type Record = BTreeMap<String, BTreeMap<String, String>>;

    #[test]
    fn updates_are_atomic_and_survive_a_reread() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("sub/r.toml"), "# a record");
        assert!(store.read::<Record>().unwrap().is_empty(), "no file: empty");
        store
            .update(|r: &mut Record| {
                r.entry("/ws".into())
                    .or_default()
                    .insert("k".into(), "v".into())
            })
            .unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.starts_with("# a record\n"), "{text}");
        assert_eq!(store.read::<Record>().unwrap()["/ws"]["k"], "v");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("r.toml"), "#");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store
                        .update(|r: &mut Record| {
                            r.entry("/ws".into())
                                .or_default()
                                .insert(format!("k{i}"), "v".into())
                        })
                        .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.read::<Record>().unwrap()["/ws"].len(), 8);
    }

    #[test]
    fn a_malformed_or_huge_record_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        let store = Store::new(path.clone(), "#");
        std::fs::write(&path, "not = [toml").unwrap();
        assert!(matches!(
            store.read::<Record>(),
            Err(StoreError::Malformed { .. })
        ));
        std::fs::write(&path, "x".repeat(MAX_STORE_BYTES as usize + 1)).unwrap();
        assert!(matches!(
            store.read::<Record>(),
            Err(StoreError::TooLarge { .. })
        ));
    }
}
