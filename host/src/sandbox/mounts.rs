//! Step 1 of the helper: a private mount namespace where the protected entries are read-only
//! and the hidden paths are empty.
//!
//! corral not being root, the namespace is made inside a new user namespace that maps the
//! user's own uid and gid to themselves (so files keep their owners; others' files show as
//! `nobody`); as root, a mount namespace alone. The process is single-threaded here (the
//! helper runs before any thread starts), as `unshare(CLONE_NEWUSER)` requires.
//!
//! Every path is opened with `O_PATH | O_NOFOLLOW` and mounted through `/proc/self/fd/N`, so a
//! symlink put in a protected entry's place is refused rather than followed. The folders
//! between the workspace and a protected entry (`.git`) are mounts too, so that they cannot be
//! moved away with the read-only entry inside them ([`pin_folders`]).
//!
//! Mount changes need privileges the command then no longer has: Landlock forbids any change
//! of the mount topology to a confined process ([`super::landlock`]), so the command cannot
//! unmount what is done here, even as root.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::Plan;

/// How the helper ended up isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A mount namespace: protected entries and hidden paths are covered by mounts.
    Mounts,
    /// No namespace could be made: Landlock must do it alone.
    LandlockOnly,
}

/// Makes the namespace and the mounts of `plan`. `Ok(LandlockOnly)` when the kernel refuses a
/// new namespace (unprivileged user namespaces disabled); an error once inside one is an error.
pub fn isolate(plan: &Plan) -> io::Result<Isolation> {
    if !plan.namespaces {
        return Ok(Isolation::LandlockOnly);
    }
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let flags = if uid == 0 {
        libc::CLONE_NEWNS
    } else {
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS
    };
    // SAFETY: unshare takes flags only; the process is single-threaded (see the module doc).
    if unsafe { libc::unshare(flags) } != 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::EPERM | libc::EINVAL | libc::ENOSPC | libc::EUSERS | libc::EACCES) => {
                Ok(Isolation::LandlockOnly)
            }
            _ => Err(error),
        };
    }
    if uid != 0 {
        std::fs::write("/proc/self/setgroups", "deny")?;
        std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    }
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| context(e, "making the mounts private"))?;
    read_only_but(&writable_roots(plan))?;
    let mut pinned = Vec::new();
    for path in &plan.protected {
        pin_folders(&plan.workspace, path, &mut pinned)?;
        if let Some(entry) = open_entry(path)? {
            bind_read_only(&entry, path).map_err(|e| context(e, &path.display().to_string()))?;
        }
    }
    for path in &plan.hidden {
        if let Some(entry) = open_entry(path)? {
            hide(&entry).map_err(|e| context(e, &path.display().to_string()))?;
        }
    }
    if uid == 0 {
        hide_raw_access()?;
    }
    // The working folder was entered before the mounts: enter it again, so that it is the
    // writable bind (or the read-only cover), not what is beneath.
    let cwd = std::env::current_dir()?;
    std::env::set_current_dir(&cwd).map_err(|e| context(e, &cwd.display().to_string()))?;
    Ok(Isolation::Mounts)
}

fn context(error: io::Error, what: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// The paths commands may write: the workspace (in `"workspace"` mode) and the plan's
/// writable paths that exist.
fn writable_roots(plan: &Plan) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = plan.writable.clone();
    if plan.workspace_writable {
        roots.push(plan.workspace.clone());
    }
    roots.retain(|p| p.exists());
    roots
}

/// Makes every mount read-only but `writable`, each first bound over itself (so it is a mount
/// of its own that stays writable). Landlock refuses writing the content of files elsewhere;
/// this refuses changing their metadata too (`chmod`, `chown`, times, extended attributes),
/// which Landlock does not cover. A mount that cannot be made read-only (a kernel file system
/// beneath `/proc` or `/sys`, say) is left as it is: Landlock still refuses writes to it.
fn read_only_but(writable: &[PathBuf]) -> io::Result<()> {
    for root in writable {
        // Device I/O is not a write to the file system: a device on a read-only mount works.
        // Binding one (or the pty folder) over itself would cut it from its devpts instance.
        let device = std::fs::metadata(root)
            .is_ok_and(|m| m.file_type().is_char_device() || m.file_type().is_block_device());
        if device || root.as_path() == Path::new("/dev/pts") {
            continue;
        }
        if let Some(entry) = open_entry(root)? {
            let at = fd_path(&entry);
            mount(Some(&at), &at, None, libc::MS_BIND | libc::MS_REC, None)
                .map_err(|e| context(e, &root.display().to_string()))?;
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    for line in mountinfo.lines() {
        let Some(point) = line.split(' ').nth(4).map(unescape) else {
            continue;
        };
        let point = PathBuf::from(point);
        if writable.iter().any(|w| point.starts_with(w)) {
            continue;
        }
        let Some(target) = point.to_str() else {
            continue;
        };
        let Ok(kept) = locked_flags(target) else {
            continue;
        };
        let _ = mount(
            None,
            target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept,
            None,
        );
    }
    Ok(())
}

/// A mount point as `/proc/self/mountinfo` writes it: space, tab, newline and backslash as
/// octal escapes.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(byte) => out.push(byte as char),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An entry opened without following a symlink at its place; `None` when it does not exist.
/// A symlink is refused.
fn open_entry(path: &Path) -> io::Result<Option<File>> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(context(e, &path.display().to_string())),
    };
    if file.metadata()?.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is a symlink: it is not followed", path.display()),
        ));
    }
    Ok(Some(file))
}

fn fd_path(file: &File) -> String {
    format!("/proc/self/fd/{}", file.as_raw_fd())
}

/// Makes each folder between `workspace` and the protected entry `path` (`.git` for
/// `.git/config`) a mount of its own, bound over itself and as writable as before: a mount
/// point cannot be renamed or removed, so a command cannot move `.git` aside, make a new one
/// and put a `.git/config` of its own where git looks (a read-only bind is carried along with
/// its folder, which a rename moves). A symlink in the way is refused, as at the entry itself.
/// `pinned` holds the folders already done.
fn pin_folders(workspace: &Path, path: &Path, pinned: &mut Vec<PathBuf>) -> io::Result<()> {
    let Ok(rel) = path.strip_prefix(workspace) else {
        return Ok(());
    };
    let mut folder = workspace.to_path_buf();
    let mut parts: Vec<_> = rel.components().collect();
    parts.pop();
    for part in parts {
        folder.push(part);
        if pinned.contains(&folder) {
            continue;
        }
        let Some(entry) = open_entry(&folder)? else {
            return Ok(());
        };
        let at = fd_path(&entry);
        mount(Some(&at), &at, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(|e| context(e, &folder.display().to_string()))?;
        pinned.push(folder.clone());
    }
    Ok(())
}

/// Bind-mounts `entry` (opened at `path`) over itself, read-only, keeping the flags a user
/// namespace locks (nosuid, nodev, noexec, the atime ones).
fn bind_read_only(entry: &File, path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let at = fd_path(entry);
    mount(Some(&at), &at, None, libc::MS_BIND | libc::MS_REC, None)?;
    // `entry` still names the entry beneath the new mount: the remount goes through a fresh
    // open, which lands on the new mount's root, checked to be the same file.
    let bound = open_entry(path)?.ok_or_else(|| io::Error::other("gone after the bind"))?;
    let (was, is) = (entry.metadata()?, bound.metadata()?);
    if (was.dev(), was.ino()) != (is.dev(), is.ino()) {
        return Err(io::Error::other("replaced while it was bound"));
    }
    let at = fd_path(&bound);
    let kept = locked_flags(&at)?;
    mount(
        None,
        &at,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept,
        None,
    )
}

/// What lets root read every file while bypassing the hidden paths: block devices (raw disks),
/// physical and kernel memory. Only root can open them, and only root needs them covered.
const RAW_ACCESS: &[&str] = &["/dev/mem", "/dev/kmem", "/dev/port", "/proc/kcore"];

fn hide_raw_access() -> io::Result<()> {
    let mut paths: Vec<std::path::PathBuf> = RAW_ACCESS.iter().map(Into::into).collect();
    for entry in std::fs::read_dir("/dev")?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_block_device()) {
            paths.push(entry.path());
        }
    }
    for path in paths {
        if let Some(entry) = open_entry(&path)? {
            hide(&entry).map_err(|e| context(e, &path.display().to_string()))?;
        }
    }
    Ok(())
}

/// Covers `entry`: a folder with an empty read-only tmpfs, anything else with `/dev/null`.
fn hide(entry: &File) -> io::Result<()> {
    let at = fd_path(entry);
    let kind = entry.metadata()?.file_type();
    if kind.is_dir() {
        mount(
            Some("tmpfs"),
            &at,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("size=4k,mode=000"),
        )
    } else if kind.is_file()
        || kind.is_char_device()
        || kind.is_block_device()
        || kind.is_fifo()
        || kind.is_socket()
    {
        mount(Some("/dev/null"), &at, None, libc::MS_BIND, None)
    } else {
        Ok(())
    }
}

/// The mount flags of the mount holding `path` that a remount inside a user namespace must
/// keep.
fn locked_flags(path: &str) -> io::Result<libc::c_ulong> {
    let c = CString::new(path).map_err(io::Error::other)?;
    // SAFETY: statvfs writes into the zeroed struct we pass.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string, st a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(io::Error::other);
    let source = source.map(c).transpose()?;
    let target = c(target)?;
    let fstype = fstype.map(c).transpose()?;
    let data = data.map(c).transpose()?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a valid C string that outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
