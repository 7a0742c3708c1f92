//! `.corral/results/`: the whole text of tool results the model was given only a part or a
//! pointer of (a plugin's result past its byte cap, a bulky result a compaction moved out of
//! the conversation). The model reads them back with `read_file`.
//!
//! Opened beneath the `.corral` handle, never by path, and each file is created new
//! (`O_EXCL`, so never through a symlink a cloned repository put there): a `results` entry
//! that leads outside `.corral` is refused, not followed. The folder is capped at
//! [`MAX_RESULTS_BYTES`]: after each write the oldest files go until it is under the cap
//! again (the file just written stays). A result whose file was removed this way is still in
//! the session transcript.

use std::io::Write;
use std::time::SystemTime;

use cap_std::fs::{Dir, OpenOptions};

use super::Workspace;

/// The folder under `.corral/` that holds the kept results.
pub const RESULTS_DIR: &str = "results";

/// The most bytes `.corral/results/` holds; past it the oldest files are removed.
pub const MAX_RESULTS_BYTES: u64 = 256 * 1024 * 1024;

/// The workspace's `.corral/results/`, open.
#[derive(Debug)]
pub struct Results {
    dir: Dir,
    cap: u64,
}

impl Results {
    /// Opens (creating it and `.corral` when missing) the results folder of `workspace`.
    pub fn open(workspace: &Workspace) -> std::io::Result<Self> {
        let state = workspace.state()?;
        match state.create_dir(RESULTS_DIR) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let dir = super::open_folder_nofollow(&state, RESULTS_DIR)?;
        Ok(Self {
            dir,
            cap: MAX_RESULTS_BYTES,
        })
    }

    /// The same folder with another cap (tests).
    pub fn with_cap(self, cap: u64) -> Self {
        Self { cap, ..self }
    }

    /// The workspace-relative path of the file `name` (`.corral/results/NAME`).
    pub fn path_of(name: &str) -> String {
        format!("{}/{RESULTS_DIR}/{name}", super::STATE_DIR)
    }

    /// Whether `name` is kept already.
    pub fn contains(&self, name: &str) -> bool {
        self.dir.symlink_metadata(name).is_ok()
    }

    /// Writes `bytes` to a new file `name` (one path component) and returns its
    /// workspace-relative path; then removes the oldest files past the cap. Fails when `name`
    /// exists already or is not a plain name.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<String> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{name}` is not a file name"),
            ));
        }
        let mut file = self
            .dir
            .open_with(name, OpenOptions::new().write(true).create_new(true))?;
        file.write_all(bytes)?;
        drop(file);
        self.prune(name)?;
        Ok(Self::path_of(name))
    }

    /// Removes the oldest files (never `keep`) until the folder is within the cap.
    fn prune(&self, keep: &str) -> std::io::Result<()> {
        let mut files: Vec<(SystemTime, u64, String)> = Vec::new();
        let mut total = 0;
        for entry in self.dir.entries()? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            total += meta.len();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != keep {
                let modified = meta
                    .modified()
                    .map_or(SystemTime::UNIX_EPOCH, |m| m.into_std());
                files.push((modified, meta.len(), name));
            }
        }
        if total <= self.cap {
            return Ok(());
        }
        files.sort();
        for (_, len, name) in files {
            if total <= self.cap {
                break;
            }
            match self.dir.remove_file(&name) {
                Ok(()) => total -= len,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace::open(dir.path()).unwrap();
        (dir, workspace)
    }

    /// Past the cap the oldest files go, the newest stays even when it alone is past it.
    #[test]
    fn the_oldest_results_go_past_the_cap() {
        let (dir, workspace) = workspace();
        let results = Results::open(&workspace).unwrap().with_cap(250);
        for name in ["a", "b", "c"] {
            results.write(name, &[b'x'; 100]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let root = dir.path().join(".corral/results");
        assert!(!root.join("a").exists());
        assert!(root.join("b").exists() && root.join("c").exists());
        results.write("big", &[b'x'; 400]).unwrap();
        assert!(root.join("big").exists());
        assert!(!root.join("b").exists() && !root.join("c").exists());
        assert!(results.contains("big"));
        assert!(results.write("big", b"again").is_err(), "never overwritten");
        assert!(results.write("../up", b"x").is_err());
    }

    /// A `results` symlink a cloned repository planted is refused, not followed; a symlink
    /// planted in the folder is never written through.
    #[test]
    fn planted_symlinks_are_not_followed() {
        let (dir, workspace) = workspace();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".corral")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join(".corral/results")).unwrap();
        assert!(Results::open(&workspace).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

        std::fs::remove_file(dir.path().join(".corral/results")).unwrap();
        std::fs::create_dir(dir.path().join(".corral/results")).unwrap();
        let target = outside.path().join("victim");
        std::os::unix::fs::symlink(&target, dir.path().join(".corral/results/t1.txt")).unwrap();
        let results = Results::open(&workspace).unwrap();
        assert!(results.write("t1.txt", b"payload").is_err());
        assert!(!target.exists());
    }
}
