//! The workspace: the folder corral works in, opened once as a directory handle, the rule that
//! tools stay inside it ([`beneath`]: every path resolved beneath that handle), and the entries
//! nothing corral runs may touch ([`guard`]).

mod beneath;
mod discover;
pub mod guard;
mod results;

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use beneath::MAX_SYMLINK_HOPS;
use beneath::{Missing, Walk, Walked};
pub use discover::{Found, discover};
pub use guard::{Guard, POLICY_FILE, PROTECTED, Protected, STATE_DIR};
pub use results::{MAX_RESULTS_BYTES, RESULTS_DIR, Results};

/// The folder under `.corral/` that holds the session transcripts.
pub const SESSIONS_DIR: &str = "sessions";
/// The folder under `.corral/` that holds the task journal and the background tasks' logs.
pub const TASKS_DIR: &str = "tasks";

/// Opens the folder `name` (one component) in `parent` with `O_NOFOLLOW`: nothing to resolve,
/// and a symlink in its place is refused, not followed.
fn open_folder_nofollow(
    parent: &cap_std::fs::Dir,
    name: &str,
) -> std::io::Result<cap_std::fs::Dir> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(cap_std::fs::Dir::from_std_file(std::fs::File::from(fd)))
}

/// Opens the folder at `path` (made first when `create`), its last component with
/// `O_NOFOLLOW`: for corral's own folders in `.corral/` (`sessions`, `tasks`) that code keeps
/// as paths. A symlink in its place is refused, never followed, with an error naming it;
/// `None` when it does not exist and `create` is false. Open files beneath the handle
/// (cap-std: nothing outside the folder, even through a symlink).
pub fn open_state_folder(path: &Path, create: bool) -> std::io::Result<Option<cap_std::fs::Dir>> {
    use rustix::fs::{CWD, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if create {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match rustix::fs::openat(CWD, path, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(cap_std::fs::Dir::from_std_file(std::fs::File::from(
            fd,
        )))),
        Err(rustix::io::Errno::NOENT) if !create => Ok(None),
        Err(e @ (rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP)) => Err(std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!(
                "{} is not a real folder (a symlink?): corral keeps its state only in \
                     real folders, never through a symlink; remove it",
                path.display()
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A path a tool was refused, or could not reach, and why. Shown to the model as the tool's
/// error ([`crate::tools::ToolError`]): the refusals (`Outside`, `SymlinkOut`, `Protected`) as
/// denials, the rest as failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// Absolute outside the root, or `..` above it.
    #[error("`{0}` is outside the workspace")]
    Outside(String),
    /// A symlink on the way (or the last component) leads outside the root.
    #[error("`{path}` leads outside the workspace through the symlink `{link}`")]
    SymlinkOut { path: String, link: String },
    #[error("the path is empty")]
    Empty,
    /// A folder on the way does not exist (the path itself may be missing too).
    #[error("`{0}` does not exist")]
    NotFound(String),
    /// A component on the way is a file, not a folder.
    #[error("`{path}`: `{component}` is not a folder")]
    NotADirectory { path: String, component: String },
    /// More than [`MAX_SYMLINK_HOPS`] symlinks on the way.
    #[error("`{0}`: more than 40 symlinks on the way (a symlink loop?)")]
    Loop(String),
    /// The path reaches `corral.toml` or `.corral/` (by name, through a symlink or a hard
    /// link) and the operation would change it.
    #[error("`{path}` is out of reach: {rule}")]
    Protected { path: String, rule: Protected },
    /// The file system failed on the way.
    #[error("`{path}`: {message}")]
    Io { path: String, message: String },
}

/// A path of the workspace resolved beneath the root's handle ([`Workspace::locate`]): an open
/// handle of the folder that holds it and its name in that folder. Act on it with `*at` calls
/// on `parent` and `O_NOFOLLOW`; never reopen it by path.
#[derive(Debug)]
pub struct Located {
    /// The folder holding the entry, an `O_PATH` handle (for `openat`, `renameat`, `fstat`).
    pub parent: OwnedFd,
    /// The entry's name in `parent`, one component; `.` when the path names a folder.
    pub name: OsString,
    /// The path as resolved from the root, symlinks replaced by their targets (`.` for the
    /// root), for messages.
    pub rel: PathBuf,
}

impl Located {
    /// Whether the path names a folder itself (the root, or a path ending in `..`).
    pub fn is_folder_itself(&self) -> bool {
        self.name == "."
    }
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
        open_folder_nofollow(&self.dir, STATE_DIR)
    }

    /// corral's own folder in the workspace: `<root>/.corral`, as a path (for messages and
    /// for code that has not moved to [`Workspace::state`] yet).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// Resolves a path given by the model beneath the root's handle, for a file tool to act
    /// on: every folder on the way must exist. Symlinks (on the way and in the last component)
    /// are followed beneath the root, at most [`MAX_SYMLINK_HOPS`]; one that leads outside is
    /// refused naming it. Relative paths are taken from the root; absolute ones must lie
    /// inside it; `..` may be used only while it stays inside (lexically, before any
    /// symlink). The last component need not exist.
    pub fn locate(&self, path: &str) -> Result<Located, PathError> {
        self.locate_with(path, Missing::Fail)
    }

    /// Like [`Workspace::locate`], creating the folders on the way that do not exist (for
    /// `write_file`). A folder is never created where the guard protects the place (inside
    /// `.corral/`): that fails with [`PathError::Protected`] and nothing is created.
    pub fn locate_creating(&self, path: &str) -> Result<Located, PathError> {
        self.locate_with(path, Missing::Create(&self.guard))
    }

    fn locate_with(&self, path: &str, missing: Missing<'_>) -> Result<Located, PathError> {
        let parts = beneath::relative(&self.root, path)?;
        let how = Walk {
            follow_last: true,
            missing,
        };
        match beneath::walk(self.dir.as_fd(), &self.root, path, parts, how)? {
            Walked::Found { parent, name, rel } => Ok(Located { parent, name, rel }),
            // Only `Missing::Stop` stops early.
            Walked::Partial { .. } => Err(PathError::NotFound(path.to_string())),
        }
    }

    /// Resolves a path to a host path inside the workspace, by the same rules as
    /// [`Workspace::locate`], for checking a configured path (a grant of `corral.toml`) and for
    /// messages. The path need not exist: the part after the first missing folder is kept as
    /// written. The host path is only a name: the file tools never reopen it.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, PathError> {
        let parts = beneath::relative(&self.root, path)?;
        let how = Walk {
            follow_last: true,
            missing: Missing::Stop,
        };
        let rel = match beneath::walk(self.dir.as_fd(), &self.root, path, parts, how)? {
            Walked::Found { rel, .. } | Walked::Partial { rel } => rel,
        };
        Ok(if rel == Path::new(".") {
            self.root.clone()
        } else {
            self.root.join(rel)
        })
    }

    /// What a file tool's call on `path` touches, as a key for ordering calls
    /// ([`crate::tools::Tool::resource_key`]): the identity of the file when it exists (so two
    /// names of one file, through a symlink or a hard link, give one key), else of its folder
    /// and name, else the path as resolved so far. Computed without creating or opening
    /// anything but folders; never blocks on a FIFO.
    pub fn file_key(&self, path: &str) -> String {
        let Ok(parts) = beneath::relative(&self.root, path) else {
            return format!("file:{path}");
        };
        let how = Walk {
            follow_last: true,
            missing: Missing::Stop,
        };
        match beneath::walk(self.dir.as_fd(), &self.root, path, parts, how) {
            Ok(Walked::Found { parent, name, rel }) => {
                use rustix::fs::AtFlags;
                if let Ok(st) = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
                    return format!("file:{}:{}", st.st_dev, st.st_ino);
                }
                match rustix::fs::fstat(&parent) {
                    Ok(st) => format!(
                        "file:{}:{}/{}",
                        st.st_dev,
                        st.st_ino,
                        name.to_string_lossy()
                    ),
                    Err(_) => format!("file:{}", rel.display()),
                }
            }
            Ok(Walked::Partial { rel }) => format!("file:{}", rel.display()),
            Err(_) => format!("file:{path}"),
        }
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

    #[test]
    fn relative_links_are_followed_beneath_the_root_and_named_when_they_climb_out() {
        let (_dir, ws) = workspace();
        let root = ws.root();
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        // Inside: a chain of relative links, one through `..`.
        std::os::unix::fs::symlink("b", root.join("a/to_b")).expect("symlink");
        std::os::unix::fs::symlink("../to_b", root.join("a/b/again")).expect("symlink");
        assert_eq!(ws.resolve("a/b/again/f"), Ok(root.join("a/b/f")));
        // Out: `..` past the root from inside a folder, named by the link's resolved place.
        std::os::unix::fs::symlink("../../..", root.join("a/b/up")).expect("symlink");
        assert_eq!(
            ws.resolve("a/to_b/up/etc/passwd"),
            Err(PathError::SymlinkOut {
                path: "a/to_b/up/etc/passwd".into(),
                link: "a/b/up".into()
            })
        );
        // A loop ends, and a file on the way is not a folder.
        std::os::unix::fs::symlink("loop2", root.join("loop1")).expect("symlink");
        std::os::unix::fs::symlink("loop1", root.join("loop2")).expect("symlink");
        assert_eq!(
            ws.resolve("loop1/x"),
            Err(PathError::Loop("loop1/x".into()))
        );
        std::fs::write(root.join("file"), "").expect("write");
        assert!(matches!(
            ws.locate("file/x"),
            Err(PathError::NotADirectory { component, .. }) if component == "file"
        ));
        assert_eq!(
            ws.locate("nope/x").map(|_| ()),
            Err(PathError::NotFound("nope/x".into()))
        );
    }

    #[test]
    fn a_held_parent_handle_outlives_a_swap_for_a_symlink() {
        use rustix::fs::{Mode, OFlags};
        let (_dir, ws) = workspace();
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(ws.root().join("d")).expect("mkdir");
        let located = ws.locate("d/x").expect("locate");
        assert_eq!(located.rel, Path::new("d/x"));
        // The folder is moved away and a symlink out put in its place after the check.
        std::fs::rename(ws.root().join("d"), ws.root().join("real")).expect("rename");
        std::os::unix::fs::symlink(outside.path(), ws.root().join("d")).expect("symlink");
        rustix::fs::openat(
            &located.parent,
            &located.name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .expect("create");
        assert!(ws.root().join("real/x").exists());
        assert_eq!(std::fs::read_dir(outside.path()).expect("read").count(), 0);
        // Resolved anew, the symlink is refused.
        assert!(matches!(
            ws.locate("d/x"),
            Err(PathError::SymlinkOut { .. })
        ));
    }

    #[test]
    fn folders_are_never_created_in_the_state_folder() {
        let (_dir, ws) = workspace();
        ws.state().expect("state");
        std::os::unix::fs::symlink(".corral", ws.root().join("state")).expect("symlink");
        for path in [".corral/a/b/x", "state/a/x"] {
            assert!(
                matches!(
                    ws.locate_creating(path),
                    Err(PathError::Protected {
                        rule: Protected::State,
                        ..
                    })
                ),
                "{path}"
            );
        }
        assert!(!ws.root().join(".corral/a").exists());
        let made = ws.locate_creating("new/deep/x").expect("create");
        assert_eq!(made.rel, Path::new("new/deep/x"));
        assert!(ws.root().join("new/deep").is_dir());
    }

    #[test]
    fn file_keys_name_one_file_whatever_the_route() {
        let (_dir, ws) = workspace();
        let root = ws.root();
        std::fs::create_dir(root.join("src")).expect("mkdir");
        std::fs::write(root.join("src/a.rs"), "").expect("write");
        std::os::unix::fs::symlink("src", root.join("link")).expect("symlink");
        std::fs::hard_link(root.join("src/a.rs"), root.join("alias.rs")).expect("link");
        let key = ws.file_key("src/a.rs");
        for same in ["link/a.rs", "./src/../src/a.rs", "alias.rs"] {
            assert_eq!(ws.file_key(same), key, "{same}");
        }
        assert_ne!(ws.file_key("src/b.rs"), key);
        assert_eq!(ws.file_key("src/b.rs"), ws.file_key("link/b.rs"));
        assert_eq!(ws.file_key("new/b.rs"), ws.file_key("new/./b.rs"));
    }
}
