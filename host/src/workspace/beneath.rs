//! Resolving a path *beneath* the workspace handle, one component at a time, so that what was
//! checked is what is used.
//!
//! Who: the built-in file tools (through [`Workspace::locate`](super::Workspace::locate)), and
//! [`Workspace::resolve`](super::Workspace::resolve) for checking configured paths.
//!
//! How: the model's path is first made relative lexically (an absolute path must lie inside the
//! root; `..` may not climb above it). The walk then starts at the root's handle and opens each
//! folder on the way with `openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW)`: a handle
//! per folder, never a path. A symlink met on the way is read (`readlinkat`) and its target
//! walked again from the folder that holds it (or, when absolute and inside the root, from the
//! root), at most [`MAX_SYMLINK_HOPS`] times; a target that climbs above the root, or an
//! absolute one elsewhere, is refused naming the link. The result is an open handle of the
//! last folder and the last component, on which the caller then opens, creates or renames with
//! `O_NOFOLLOW`: a folder swapped for a symlink after the walk changes nothing, since the
//! handle already held is the real folder, inside the workspace.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::PathError;
use super::guard::Guard;

/// Symlinks one path may pass through before it is refused as a loop (Linux's own limit).
pub const MAX_SYMLINK_HOPS: usize = 40;
/// Folders a walk may hold open at once (the deepest path it follows); deeper is refused.
const MAX_DEPTH: usize = 4096;

/// What a walk does with a folder on the way that does not exist.
#[derive(Clone, Copy)]
pub(super) enum Missing<'g> {
    /// Fail with [`PathError::NotFound`].
    Fail,
    /// Create it (mode 0777 less the umask), after asking `guard` whether the place is
    /// protected: nothing is ever created inside `.corral/`.
    Create(&'g Guard),
    /// Stop there: the rest of the path is taken as written ([`Walked::Partial`]).
    Stop,
}

/// How to walk.
#[derive(Clone, Copy)]
pub(super) struct Walk<'g> {
    /// Follow a symlink in the last component (beneath the root again, like any other).
    pub follow_last: bool,
    pub missing: Missing<'g>,
}

/// Where a walk ended.
pub(super) enum Walked {
    /// Every folder on the way exists: the last one's handle and the last component (`.`
    /// when the path names a folder, e.g. the root). `rel` is the path as resolved, from the
    /// root (symlinks replaced by their targets), for messages and identities.
    Found {
        parent: OwnedFd,
        name: OsString,
        rel: PathBuf,
    },
    /// A folder on the way does not exist ([`Missing::Stop`]): the path as far as it was
    /// resolved, followed by the rest as written.
    Partial { rel: PathBuf },
}

/// One component still to walk, and the symlink whose target it came from (for messages).
struct Part {
    name: OsString,
    via: Option<Rc<String>>,
}

/// Makes the model's `given` path relative to `root`, lexically: `.` dropped, `..` taken off
/// the component before it. Fails when the path is empty, absolute outside `root`, or climbs
/// above it. The empty list names the root.
pub(super) fn relative(root: &Path, given: &str) -> Result<Vec<OsString>, PathError> {
    if given.trim().is_empty() {
        return Err(PathError::Empty);
    }
    let outside = || PathError::Outside(given.to_string());
    let normal = normalise(Path::new(given)).ok_or_else(outside)?;
    let rel = if normal.is_absolute() {
        normal.strip_prefix(root).map_err(|_| outside())?
    } else {
        normal.as_path()
    };
    Ok(rel.iter().map(OsStr::to_os_string).collect())
}

/// `path` without `.` and with each `..` applied to the component before it; `None` when a
/// `..` has nothing left to take off.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    Some(out)
}

/// Walks `parts` (from [`relative`]) beneath `root` (the handle of the canonical `root_path`).
/// `given` is the path as the model wrote it, for messages.
pub(super) fn walk(
    root: BorrowedFd<'_>,
    root_path: &Path,
    given: &str,
    parts: Vec<OsString>,
    how: Walk<'_>,
) -> Result<Walked, PathError> {
    let mut queue: VecDeque<Part> = parts
        .into_iter()
        .map(|name| Part { name, via: None })
        .collect();
    // The folders below the root on the way, with their names, each opened from the one
    // before it (or from the root).
    let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
    let mut hops = 0;
    let mut created = 0;
    let io = |e: Errno| PathError::Io {
        path: given.to_string(),
        message: std::io::Error::from(e).to_string(),
    };
    loop {
        let top = stack.last().map_or(root, |(fd, _)| fd.as_fd());
        let Some(part) = queue.pop_front() else {
            // The path names a folder: the root, or one reached through `..` or a symlink.
            return Ok(Walked::Found {
                parent: dup(top).map_err(io)?,
                name: OsString::from("."),
                rel: rel_of(&stack, None),
            });
        };
        let last = queue.is_empty();
        match part.name.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                // Only a symlink's target brings `..` here (the model's path is normalised).
                if stack.pop().is_none() {
                    return Err(PathError::SymlinkOut {
                        path: given.to_string(),
                        link: part
                            .via
                            .map_or_else(|| given.to_string(), |v| v.to_string()),
                    });
                }
                continue;
            }
            _ => {}
        }
        let name = part.name;
        if last {
            if how.follow_last
                && let Entry::Link(target) = entry(top, &name).map_err(io)?
            {
                hops += 1;
                let link = Rc::new(rel_of(&stack, Some(&name)).display().to_string());
                expand(
                    root_path, given, &target, link, hops, &mut stack, &mut queue,
                )?;
                continue;
            }
            return Ok(Walked::Found {
                parent: dup(top).map_err(io)?,
                rel: rel_of(&stack, Some(&name)),
                name,
            });
        }
        if stack.len() >= MAX_DEPTH {
            return Err(io(Errno::NAMETOOLONG));
        }
        match open_dir(top, &name) {
            Ok(fd) => stack.push((fd, name)),
            Err(Errno::NOENT) => match how.missing {
                Missing::Fail => return Err(PathError::NotFound(given.to_string())),
                Missing::Stop => {
                    let mut rel = rel_of(&stack, Some(&name));
                    rel.extend(queue.iter().map(|p| p.name.as_os_str()));
                    return Ok(Walked::Partial { rel });
                }
                Missing::Create(guard) => {
                    created += 1;
                    if created > MAX_DEPTH {
                        return Err(io(Errno::NAMETOOLONG));
                    }
                    match guard.entry(top, &name, &[]) {
                        Ok(None) => {}
                        Ok(Some(rule)) => {
                            return Err(PathError::Protected {
                                path: given.to_string(),
                                rule,
                            });
                        }
                        Err(e) => {
                            return Err(PathError::Io {
                                path: given.to_string(),
                                message: e.to_string(),
                            });
                        }
                    }
                    match rustix::fs::mkdirat(top, &name, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io(e)),
                    }
                    // Open it as any other folder: it may have been replaced already.
                    queue.push_front(Part {
                        name,
                        via: part.via,
                    });
                }
            },
            Err(Errno::NOTDIR | Errno::LOOP) => match entry(top, &name).map_err(io)? {
                Entry::Link(target) => {
                    hops += 1;
                    let link = Rc::new(rel_of(&stack, Some(&name)).display().to_string());
                    expand(
                        root_path, given, &target, link, hops, &mut stack, &mut queue,
                    )?;
                }
                Entry::Other => {
                    return Err(PathError::NotADirectory {
                        path: given.to_string(),
                        component: rel_of(&stack, Some(&name)).display().to_string(),
                    });
                }
                // Changed since the open (a folder swapped in and out): look again, within
                // the same budget as symlinks.
                Entry::Folder | Entry::Missing => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(PathError::Loop(given.to_string()));
                    }
                    queue.push_front(Part {
                        name,
                        via: part.via,
                    });
                }
            },
            Err(e) => return Err(io(e)),
        }
    }
}

/// Puts a symlink's `target` in front of what is left to walk. A relative target is walked
/// from the folder holding the link (the top of `stack`); an absolute one must lie inside
/// `root_path` and is walked from the root.
fn expand(
    root_path: &Path,
    given: &str,
    target: &OsStr,
    link: Rc<String>,
    hops: usize,
    stack: &mut Vec<(OwnedFd, OsString)>,
    queue: &mut VecDeque<Part>,
) -> Result<(), PathError> {
    if hops > MAX_SYMLINK_HOPS {
        return Err(PathError::Loop(given.to_string()));
    }
    let target = Path::new(target);
    let parts: Vec<OsString> = if target.is_absolute() {
        let inside =
            normalise(target).and_then(|t| t.strip_prefix(root_path).ok().map(Path::to_path_buf));
        let Some(inside) = inside else {
            return Err(PathError::SymlinkOut {
                path: given.to_string(),
                link: link.to_string(),
            });
        };
        stack.clear();
        inside.iter().map(OsStr::to_os_string).collect()
    } else {
        target
            .components()
            .map(|c| c.as_os_str().to_os_string())
            .collect()
    };
    for name in parts.into_iter().rev() {
        queue.push_front(Part {
            name,
            via: Some(link.clone()),
        });
    }
    Ok(())
}

/// The path from the root through `stack` (and `name`), `.` for the root itself.
fn rel_of(stack: &[(OwnedFd, OsString)], name: Option<&OsStr>) -> PathBuf {
    let mut rel: PathBuf = stack.iter().map(|(_, n)| n.as_os_str()).collect();
    if let Some(name) = name {
        rel.push(name);
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

/// Opens the folder `name` of `dir` as an `O_PATH` handle, never following a symlink.
fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// What `name` in `dir` is, as far as a walk cares.
enum Entry {
    /// A symlink, and its target.
    Link(OsString),
    Folder,
    /// A file, a FIFO, a socket, a device.
    Other,
    Missing,
}

/// What `name` in `dir` is now, not following a symlink.
fn entry(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Entry, Errno> {
    let file_type = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => FileType::from_raw_mode(st.st_mode),
        Err(Errno::NOENT) => return Ok(Entry::Missing),
        Err(e) => return Err(e),
    };
    match file_type {
        FileType::Symlink => {}
        FileType::Directory => return Ok(Entry::Folder),
        _ => return Ok(Entry::Other),
    }
    match rustix::fs::readlinkat(dir, name, Vec::new()) {
        Ok(target) => Ok(Entry::Link(
            OsStr::from_bytes(target.as_bytes()).to_os_string(),
        )),
        // Replaced by something else in between: the caller looks again.
        Err(Errno::INVAL) => Ok(Entry::Folder),
        Err(Errno::NOENT) => Ok(Entry::Missing),
        Err(e) => Err(e),
    }
}

fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0)
}
