//! The workspace: the folder corral works in, opened once as a directory handle, the rule that
//! tools stay inside it, and the entries nothing corral runs may touch ([`guard`]).

pub mod guard;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub use guard::{Guard, POLICY_FILE, PROTECTED, Protected, STATE_DIR};

/// A path a tool was refused, and why. Shown to the model as the tool's error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("`{0}` is outside the workspace")]
    Outside(String),
    #[error("`{path}` leads outside the workspace through the symlink `{link}`")]
    SymlinkOut { path: String, link: String },
    #[error("the path is empty")]
    Empty,
}

/// The workspace root: its canonical path, a directory handle opened once, and the guard of
/// its protected entries. Cheap to clone (the handle is shared).
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    dir: Arc<cap_std::fs::Dir>,
    guard: Guard,
}

impl Workspace {
    /// Opens `root`, which must be an existing directory. The root is canonicalised once, so a
    /// workspace reached through a symlink works, and opened once as a handle. A `.corral`
    /// entry that is not a real folder (a symlink, say, from a cloned repository) is refused:
    /// corral would write its sessions and task logs wherever it pointed.
    pub fn open(root: impl AsRef<Path>) -> std::io::Result<Self> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        let dir = cap_std::fs::Dir::open_ambient_dir(&root, cap_std::ambient_authority())?;
        if let Ok(meta) = dir.symlink_metadata(STATE_DIR)
            && !meta.is_dir()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a folder (a symlink?): corral keeps its state only in a real \
                     `.corral` folder; remove it",
                    root.join(STATE_DIR).display()
                ),
            ));
        }
        let guard = Guard::new(&dir)?;
        Ok(Self {
            root,
            dir: Arc::new(dir),
            guard,
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The root's handle: open files beneath it (cap-std resolves every path beneath it, even
    /// through symlinks, so nothing opened through it is outside the workspace).
    pub fn dir(&self) -> &cap_std::fs::Dir {
        &self.dir
    }

    /// The checks of the protected entries (`corral.toml`, `.corral/`).
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// corral's own folder as a handle, created (with a `.gitignore` of `*`, so transcripts
    /// and task logs never land in git) when missing. Never follows a symlink: a `.corral`
    /// that is not a real folder is an error.
    pub fn state(&self) -> std::io::Result<cap_std::fs::Dir> {
        match self.dir.create_dir(STATE_DIR) {
            Ok(()) => {
                let state = self.open_state()?;
                state.write(".gitignore", "*\n")?;
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.open_state(),
            Err(e) => Err(e),
        }
    }

    fn open_state(&self) -> std::io::Result<cap_std::fs::Dir> {
        use rustix::fs::{Mode, OFlags};
        // One component opened at the root handle with O_NOFOLLOW: nothing to resolve.
        let fd = rustix::fs::openat(
            &*self.dir,
            STATE_DIR,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(cap_std::fs::Dir::from_std_file(std::fs::File::from(fd)))
    }

    /// corral's own folder in the workspace: `<root>/.corral`, as a path (for messages and
    /// for code that has not moved to [`Workspace::state`] yet).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// Resolves a path given by the model to a host path inside the workspace.
    ///
    /// Relative paths are taken from the root; absolute paths must lie inside it. `..` may be
    /// used only while it stays inside. The existing part of the path is then resolved through
    /// symlinks, and refused if that leads outside. The path itself need not exist (for
    /// `write_file`).
    pub fn resolve(&self, path: &str) -> Result<PathBuf, PathError> {
        if path.trim().is_empty() {
            return Err(PathError::Empty);
        }
        let given = Path::new(path);
        let joined = if given.is_absolute() {
            given.to_path_buf()
        } else {
            self.root.join(given)
        };
        let mut normal = PathBuf::new();
        for component in joined.components() {
            match component {
                Component::ParentDir => {
                    if !normal.pop() {
                        return Err(PathError::Outside(path.to_string()));
                    }
                }
                Component::CurDir => {}
                other => normal.push(other.as_os_str()),
            }
        }
        if !normal.starts_with(&self.root) {
            return Err(PathError::Outside(path.to_string()));
        }
        // Resolve symlinks in the longest prefix that exists.
        let mut existing = normal.as_path();
        let mut rest = Vec::new();
        loop {
            if existing.symlink_metadata().is_ok() {
                break;
            }
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => break,
            }
        }
        let real = existing
            .canonicalize()
            .ok()
            .filter(|r| r.starts_with(&self.root));
        let Some(real) = real else {
            return Err(PathError::SymlinkOut {
                path: path.to_string(),
                link: self.display(self.first_link_out(existing)),
            });
        };
        let mut resolved = real;
        for name in rest.into_iter().rev() {
            resolved.push(name);
        }
        Ok(resolved)
    }

    /// The first symlink on the way from the root to `path` that leads outside (or `path`).
    fn first_link_out<'p>(&self, path: &'p Path) -> &'p Path {
        path.ancestors()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .filter(|p| p.starts_with(&self.root))
            .find(|p| {
                p.symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink())
                    && !p.canonicalize().is_ok_and(|r| r.starts_with(&self.root))
            })
            .unwrap_or(path)
    }

    /// A host path shown relative to the root when it is inside it.
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Workspace::open(dir.path()).expect("open");
        (dir, ws)
    }

    #[test]
    fn relative_and_absolute_inside_resolve() {
        let (_dir, ws) = workspace();
        assert_eq!(ws.resolve("a/b.txt"), Ok(ws.root().join("a/b.txt")));
        assert_eq!(ws.resolve("a/../c"), Ok(ws.root().join("c")));
        let abs = ws.root().join("x").display().to_string();
        assert_eq!(ws.resolve(&abs), Ok(ws.root().join("x")));
    }

    #[test]
    fn escapes_are_refused() {
        let (_dir, ws) = workspace();
        assert!(matches!(ws.resolve("../x"), Err(PathError::Outside(_))));
        assert!(matches!(
            ws.resolve("a/../../x"),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(
            ws.resolve("/etc/passwd"),
            Err(PathError::Outside(_))
        ));
        assert_eq!(ws.resolve(" "), Err(PathError::Empty));
    }

    #[test]
    fn symlinks_that_lead_out_are_refused() {
        let (_dir, ws) = workspace();
        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), ws.root().join("out")).expect("symlink");
        std::os::unix::fs::symlink(ws.root().join("."), ws.root().join("here")).expect("symlink");
        assert_eq!(
            ws.resolve("out/secret"),
            Err(PathError::SymlinkOut {
                path: "out/secret".into(),
                link: "out".into()
            })
        );
        assert!(matches!(
            ws.resolve("out"),
            Err(PathError::SymlinkOut { .. })
        ));
        assert_eq!(ws.resolve("here/f"), Ok(ws.root().join("f")));
    }
}
