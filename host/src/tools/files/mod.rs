//! The file tools, `read_file`, `write_file` and `edit_file` (one file each), and how they
//! reach a file.
//!
//! Every path is resolved beneath the workspace's handle ([`Workspace::locate`]): the tool
//! gets an open handle of the folder holding the file and the file's name there, and opens,
//! creates or renames on that handle with `O_NOFOLLOW`. Nothing is reopened by path, so a
//! folder swapped for a symlink while a call runs cannot send it outside the workspace.
//!
//! - `write_file` and `edit_file` ask the workspace's [`guard`](crate::workspace::Guard) about
//!   `(folder, name)` first and refuse `corral.toml`, `.corral/` and anything in it, also
//!   through a symlink or a hard link ([`PathError::Protected`]). They write atomically: a
//!   temporary file in the same folder, then `renameat` onto the name, so a reader never sees
//!   half a file and a failed write leaves the old one.
//! - `read_file` may read `.corral/` (results and task logs are paged with it), opens only
//!   regular files and never blocks (`O_NONBLOCK`, then `fstat`), and streams the lines it
//!   returns.
//!
//! A call runs on a blocking thread (file I/O blocks), whole. Calls on one path from one
//! answer run in order: each tool's [`resource_key`](crate::tools::Tool::resource_key) is the
//! file's identity ([`Workspace::file_key`]).

mod edit;
mod read;
mod write;

use std::fs::File;
use std::io::Write;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use serde_json::Value;

pub use edit::{EditFileTool, MAX_EDIT_BYTES};
pub use read::{DEFAULT_LINES, MAX_LINE_CHARS, MAX_READ_BYTES, MAX_SCAN_BYTES, ReadFileTool};
pub use write::WriteFileTool;

use super::ToolError;
use crate::workspace::{Located, PathError, Workspace};

/// The name prefix of the temporary file an atomic write creates beside its target. A crash
/// of corral between creating it and renaming it leaves one behind; nothing else does.
pub const TEMP_PREFIX: &str = ".corral-tmp-";
/// Random temporary names tried before an atomic write gives up.
const TEMP_ATTEMPTS: usize = 16;

/// Runs the whole of one call on a blocking thread.
async fn blocking<T: Send + 'static>(
    tool: &'static str,
    work: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ToolError::Failed(format!("{tool} stopped: {e}")))?
}

/// The resource key of a file tool's call: the identity of the file its `path` names.
fn path_key(workspace: &Workspace, input: &Value) -> Option<String> {
    let path = input.get("path")?.as_str()?;
    Some(workspace.file_key(path))
}

/// An I/O error on `shown` (the path as the model wrote it), as the model should read it.
fn io_error(shown: &str, e: &std::io::Error) -> ToolError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::Failed(format!("`{shown}` does not exist")),
        std::io::ErrorKind::IsADirectory => ToolError::Failed(format!("`{shown}` is a directory")),
        _ => ToolError::Failed(format!("`{shown}`: {e}")),
    }
}

fn errno(shown: &str, e: Errno) -> ToolError {
    io_error(shown, &std::io::Error::from(e))
}

/// What a file that is not a regular file is, for messages.
fn kind(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Symlink => "a symlink",
        FileType::RegularFile | FileType::Unknown => "not a regular file",
    }
}

/// The refusal of a file that is not a regular one.
fn not_regular(shown: &str, file_type: FileType, tool: &str) -> ToolError {
    if file_type == FileType::Directory {
        return ToolError::Failed(format!("`{shown}` is a directory"));
    }
    ToolError::Failed(format!(
        "`{shown}` is {}, not a regular file: {tool} works only on regular files",
        kind(file_type)
    ))
}

/// Refuses `corral.toml`, `.corral/` and what is in it, by the guard's verdict on the located
/// `(folder, name)`: for the tools that change files.
fn check_writable(workspace: &Workspace, at: &Located, shown: &str) -> Result<(), ToolError> {
    use std::os::fd::AsFd;
    match workspace.guard().entry(at.parent.as_fd(), &at.name, &[]) {
        Ok(None) => Ok(()),
        Ok(Some(rule)) => Err(PathError::Protected {
            path: shown.to_string(),
            rule,
        }
        .into()),
        Err(e) => Err(io_error(shown, &e)),
    }
}

/// Opens the regular file at `at` for reading, never blocking and never following a symlink:
/// anything else (a FIFO, a socket, a device, a folder) is refused before it is opened, and
/// again after (`fstat`), in case it was swapped in between. `tool` names the caller in the
/// refusal.
fn open_regular(at: &Located, shown: &str, tool: &str) -> Result<(File, Stat), ToolError> {
    let st = rustix::fs::statat(&at.parent, &at.name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| errno(shown, e))?;
    let file_type = FileType::from_raw_mode(st.st_mode);
    if file_type != FileType::RegularFile {
        return Err(not_regular(shown, file_type, tool));
    }
    let fd = rustix::fs::openat(
        &at.parent,
        &at.name,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::LOOP => ToolError::Failed(format!(
            "`{shown}` was replaced by a symlink while it was being opened; try again"
        )),
        e => errno(shown, e),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| errno(shown, e))?;
    let file_type = FileType::from_raw_mode(st.st_mode);
    if file_type != FileType::RegularFile {
        return Err(not_regular(shown, file_type, tool));
    }
    Ok((File::from(fd), st))
}

/// Replaces the entry at `at` with a regular file holding `bytes`, atomically: a new file
/// (`O_EXCL | O_NOFOLLOW`, named [`TEMP_PREFIX`] and random hex) in the same folder handle,
/// written whole, then renamed onto the name with `renameat`. `mode` (the permission bits of
/// the file replaced) is kept; a new file gets 0666 less the umask. On any error the
/// temporary file is removed and the old entry is left as it was. Not synced to disk: a
/// crash of corral never leaves half a file, a power loss may lose the last write.
///
/// The rename replaces the *name*: a hard link elsewhere keeps the old content, and a
/// symlink put at the name after it was resolved is replaced, not followed.
fn replace(at: &Located, bytes: &[u8], mode: Option<u32>, shown: &str) -> Result<(), ToolError> {
    let create_mode = Mode::from_raw_mode(mode.unwrap_or(0o666));
    let mut temp = None;
    for _ in 0..TEMP_ATTEMPTS {
        let name = format!("{TEMP_PREFIX}{:016x}", fastrand::u64(..));
        match rustix::fs::openat(
            &at.parent,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            create_mode,
        ) {
            Ok(fd) => {
                temp = Some((File::from(fd), name));
                break;
            }
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(errno(shown, e)),
        }
    }
    let Some((mut file, name)) = temp else {
        return Err(ToolError::Failed(format!(
            "`{shown}`: no free temporary name in its folder after {TEMP_ATTEMPTS} tries"
        )));
    };
    let written = file.write_all(bytes).and_then(|()| match mode {
        // The umask narrowed the creation mode: give back the replaced file's exact bits.
        Some(mode) => {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(std::io::Error::from)
        }
        None => Ok(()),
    });
    drop(file);
    let renamed = written.and_then(|()| {
        rustix::fs::renameat(&at.parent, name.as_str(), &at.parent, &at.name)
            .map_err(std::io::Error::from)
    });
    if let Err(e) = renamed {
        let _ = rustix::fs::unlinkat(&at.parent, name.as_str(), AtFlags::empty());
        return Err(io_error(shown, &e));
    }
    Ok(())
}
