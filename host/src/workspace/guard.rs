//! The entries of a workspace that nothing corral runs may touch: the policy file
//! (`corral.toml`) and corral's state folder (`.corral/`: plugins, sessions, task logs, views,
//! results). Plugins and the built-in file tools are limited by the policy and write what other
//! tools read, so neither may reach them, whatever a grant says. And what git runs outside
//! every sandbox: a repository's `.git/config` (`core.fsmonitor`, `core.sshCommand`, aliases)
//! and `.git/hooks/`, which the shell sandbox keeps read-only for the same reason.
//!
//! The checks work on directory *handles*, never on paths: a directory is inside `.corral` if
//! walking up from its handle (`..`, one `openat` a step) meets the state folder before the
//! workspace root. A path that was renamed, or a symlink planted a moment ago, cannot make a
//! checked handle mean something else. Callers resolve a path beneath their own handle first
//! (cap-std), check `(parent handle, name)` here, and then act on that same parent handle.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// The workspace's policy file, at its root.
pub const POLICY_FILE: &str = "corral.toml";
/// corral's own folder, at the workspace root.
pub const STATE_DIR: &str = ".corral";
/// The entries of the workspace root out of every plugin's and file tool's reach.
pub const PROTECTED: &[&str] = &[POLICY_FILE, STATE_DIR];
/// A repository's folder at the workspace root.
pub const GIT_DIR: &str = ".git";
/// The entries of [`GIT_DIR`] that make git run a program: out of reach as [`Protected::Git`]
/// (`hooks` with everything in it).
pub const GIT_PROTECTED: &[&str] = &["config", "hooks"];
/// The deepest folder a walk up to the workspace root climbs from; deeper is refused.
const MAX_DEPTH: usize = 4096;

/// Which protected entry an operation would have reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protected {
    /// `corral.toml` (or a hard link to it).
    Policy,
    /// `.corral/` or anything in it.
    State,
    /// A repository's `.git/config`, or `.git/hooks/` or anything in it.
    Git,
}

impl Protected {
    /// The entry's name, as the user sees it.
    pub fn entry(self) -> &'static str {
        match self {
            Protected::Policy => POLICY_FILE,
            Protected::State => ".corral/",
            Protected::Git => ".git/config and .git/hooks/",
        }
    }
}

impl std::fmt::Display for Protected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protected::Policy => f.write_str(
                "`corral.toml` is the workspace policy: plugins and the file tools never touch it",
            ),
            Protected::State => f.write_str(
                "`.corral/` is corral's own state (plugins, sessions, task logs): plugins and the \
                 file tools never touch it",
            ),
            Protected::Git => f.write_str(
                "`.git/config` and `.git/hooks/` make git run programs outside every sandbox at \
                 your next git command: plugins and the file tools never touch them",
            ),
        }
    }
}

/// A file's identity: device and inode, as `fstat` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of an open file or directory.
    pub fn of(fd: impl AsFd) -> io::Result<Self> {
        let st = rustix::fs::fstat(fd)?;
        Ok(Self {
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    /// The identity of `name` in `dir`, not following a final symlink; `None` if absent.
    pub fn at(dir: impl AsFd, name: &str) -> io::Result<Option<Self>> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Self {
                dev: st.st_dev,
                ino: st.st_ino,
            })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The protection checks of one workspace, holding a handle to its root. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Guard {
    root: Arc<OwnedFd>,
    root_id: FileId,
}

impl Guard {
    /// A guard for the workspace whose root is the directory `root` (a handle; it is
    /// duplicated, not reopened).
    pub fn new(root: impl AsFd) -> io::Result<Self> {
        let root = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
        let root_id = FileId::of(&root)?;
        Ok(Self {
            root: Arc::new(root),
            root_id,
        })
    }

    /// The identity of the workspace root.
    pub fn root_id(&self) -> FileId {
        self.root_id
    }

    /// Whether the directory `dir` is `.corral` or inside it. The walk up stops at the
    /// workspace root, or at any directory in `stops` (a plugin's grant roots: a view folder
    /// lives inside `.corral` but is its own root). A walk that reaches the file system's root
    /// without meeting either is refused too: such a directory is not beneath the workspace.
    pub fn dir_in_state(&self, dir: BorrowedFd<'_>, stops: &[FileId]) -> io::Result<bool> {
        Ok(self.place_of(dir, stops)? == Some(Protected::State))
    }

    /// The protected folder `dir` is, or lies in: `.corral` ([`Protected::State`]) or the
    /// repository's `.git/hooks` ([`Protected::Git`]), found by one walk up (see
    /// [`Guard::dir_in_state`]); a walk that never meets the root counts as `.corral`.
    fn place_of(&self, dir: BorrowedFd<'_>, stops: &[FileId]) -> io::Result<Option<Protected>> {
        let state = FileId::at(&*self.root, STATE_DIR)?;
        let hooks = self.git_hooks()?;
        if state.is_none() && hooks.is_none() {
            return Ok(None);
        }
        let mut current = open_path_dir(dir, ".")?;
        for _ in 0..MAX_DEPTH {
            let id = FileId::of(&current)?;
            if Some(id) == state {
                return Ok(Some(Protected::State));
            }
            if Some(id) == hooks {
                return Ok(Some(Protected::Git));
            }
            if id == self.root_id || stops.contains(&id) {
                return Ok(None);
            }
            let parent = open_path_dir(current.as_fd(), "..")?;
            if FileId::of(&parent)? == id {
                return Ok(Some(Protected::State));
            }
            current = parent;
        }
        Ok(Some(Protected::State))
    }

    /// The identity of the root's `.git` folder (never through a symlink), if there is one.
    fn git_dir(&self) -> io::Result<Option<OwnedFd>> {
        match open_path_dir(self.root.as_fd(), GIT_DIR) {
            Ok(fd) => Ok(Some(fd)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The identity of `.git/hooks`, if there is one.
    fn git_hooks(&self) -> io::Result<Option<FileId>> {
        match self.git_dir()? {
            Some(git) => FileId::at(&git, "hooks"),
            None => Ok(None),
        }
    }

    /// Whether the entry `name` of the directory `dir` is protected: `dir` is in `.corral`
    /// or `.git/hooks`, or `dir` is the workspace root and `name` is `corral.toml` or
    /// `.corral`, or `dir` is the root's `.git` and `name` is `config` or `hooks`, or `name` is
    /// a hard link to `corral.toml`. `name` is one path component (no `/`).
    pub fn entry(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        stops: &[FileId],
    ) -> io::Result<Option<Protected>> {
        if let Some(protected) = self.entry_by_place(dir, name, stops)? {
            return Ok(Some(protected));
        }
        self.alias_of_policy(dir, name)
    }

    /// Like [`Guard::entry`], without the hard-link check: for calls that only read an
    /// entry's metadata, which of an alias of `corral.toml` tells nothing worth hiding (and
    /// which listing a folder needs for every entry).
    pub fn entry_by_place(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        stops: &[FileId],
    ) -> io::Result<Option<Protected>> {
        if let Some(place) = self.place_of(dir, stops)? {
            return Ok(Some(place));
        }
        let id = FileId::of(dir)?;
        if id == self.root_id {
            if name == POLICY_FILE {
                return Ok(Some(Protected::Policy));
            }
            if name == STATE_DIR {
                return Ok(Some(Protected::State));
            }
        }
        if GIT_PROTECTED.iter().any(|p| name == *p)
            && let Some(git) = self.git_dir()?
            && FileId::of(&git)? == id
        {
            return Ok(Some(Protected::Git));
        }
        Ok(None)
    }

    /// Whether `name` in `dir` is another name (a hard link) of `corral.toml`.
    fn alias_of_policy(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Protected>> {
        // Another name for the policy file: only a regular file with more than one link can be.
        if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_nlink > 1
        {
            let id = FileId {
                dev: st.st_dev,
                ino: st.st_ino,
            };
            if FileId::at(&*self.root, POLICY_FILE)? == Some(id) {
                return Ok(Some(Protected::Policy));
            }
        }
        Ok(None)
    }
}

/// Opens `path` beneath `dir` as an `O_PATH` directory handle, not following a final symlink.
fn open_path_dir(dir: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> cap_std::fs::Dir {
        cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority()).expect("open")
    }

    #[test]
    fn protected_entries_by_handle() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join(".corral/sessions")).expect("mkdir");
        std::fs::create_dir_all(root.join("src/deep")).expect("mkdir");
        std::fs::write(root.join("corral.toml"), "").expect("write");
        std::fs::hard_link(root.join("corral.toml"), root.join("src/alias")).expect("link");
        std::fs::write(root.join("src/plain"), "").expect("write");
        let guard = Guard::new(open(root)).expect("guard");
        let ws = open(root);
        let src = open(&root.join("src/deep"));
        let sessions = open(&root.join(".corral/sessions"));
        let check = |dir: &cap_std::fs::Dir, name: &str| {
            guard
                .entry(dir.as_fd(), OsStr::new(name), &[])
                .expect("check")
        };
        assert_eq!(check(&ws, "corral.toml"), Some(Protected::Policy));
        assert_eq!(check(&ws, ".corral"), Some(Protected::State));
        assert_eq!(check(&ws, "README.md"), None);
        assert_eq!(check(&sessions, "x.jsonl"), Some(Protected::State));
        assert_eq!(check(&src, "anything"), None);
        std::fs::create_dir_all(root.join(".git/hooks")).expect("mkdir");
        std::fs::create_dir_all(root.join(".git/info")).expect("mkdir");
        let git = open(&root.join(".git"));
        assert_eq!(check(&git, "config"), Some(Protected::Git));
        assert_eq!(check(&git, "hooks"), Some(Protected::Git));
        assert_eq!(check(&git, "HEAD"), None);
        assert_eq!(
            check(&open(&root.join(".git/hooks")), "pre-commit"),
            Some(Protected::Git)
        );
        assert_eq!(check(&open(&root.join(".git/info")), "exclude"), None);
        assert_eq!(check(&open(&root.join("src")), "config"), None);
        let src_top = open(&root.join("src"));
        assert_eq!(check(&src_top, "alias"), Some(Protected::Policy));
        assert_eq!(check(&src_top, "plain"), None);
        // A stop inside .corral (a view root) ends the walk before .corral.
        let stop = FileId::of(&sessions).expect("id");
        assert_eq!(
            guard
                .entry(sessions.as_fd(), OsStr::new("x"), &[stop])
                .expect("check"),
            None
        );
    }

    #[test]
    fn a_renamed_state_folder_is_still_found() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join(".corral/plugins")).expect("mkdir");
        let guard = Guard::new(open(root)).expect("guard");
        let plugins = open(&root.join(".corral/plugins"));
        // The handle keeps meaning the same folder: a symlink put where it was changes nothing.
        std::fs::rename(root.join(".corral"), root.join("moved")).expect("rename");
        std::fs::create_dir(root.join(".corral")).expect("mkdir");
        assert!(!guard.dir_in_state(plugins.as_fd(), &[]).expect("check"));
        std::fs::remove_dir(root.join(".corral")).expect("rmdir");
        std::fs::rename(root.join("moved"), root.join(".corral")).expect("rename");
        assert!(guard.dir_in_state(plugins.as_fd(), &[]).expect("check"));
    }
}
