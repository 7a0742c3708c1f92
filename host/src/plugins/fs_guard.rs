//! `wasi:filesystem/types` for plugins, behind corral's guard: the one place where a plugin's
//! file operations meet the workspace's protected entries and the symlink rule.
//!
//! wasmtime-wasi already confines every path to the directory handle it is resolved beneath
//! (cap-std), so a plugin cannot leave its grants. What it cannot know is corral's own rules:
//! - `corral.toml` and `.corral/` are out of reach whatever a grant says (a plugin granted
//!   `write .` must not rewrite its own policy, drop a `.wasm` into `.corral/plugins`, or read
//!   the sessions). They are also left out of directory listings of the workspace root.
//! - A symlink a plugin creates must stay inside the grant it is created in, and point at no
//!   protected entry: other programs (the shell, the user's editor, corral's next start)
//!   follow links that cap-std would have refused the plugin.
//!
//! Every path-taking call is resolved here first, beneath the caller's descriptor: the parent
//! folder is opened as a handle (following symlinks beneath the descriptor, as cap-std does),
//! a symlink in the last component is followed by hand when the call follows links, and the
//! guard checks `(parent handle, name)`. The call then runs on that same parent handle with
//! the bare name and no link following, so nothing can change what was checked in between.
//! Every other call is passed through unchanged.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::Path;

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::filesystem::{Descriptor, Dir, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, ErrorCode, HostDescriptor, HostDirectoryEntryStream, PathFlags,
};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};
use wasmtime_wasi::p2::{FsError, FsResult};

use crate::workspace::guard::{FileId, Guard, PROTECTED};

/// Symlinks followed while resolving one path before the call fails with `loop` (Linux's
/// own limit).
const MAX_SYMLINK_HOPS: usize = 40;
/// Folders a walk from a new symlink up to its grant root climbs at most.
const MAX_GRANT_DEPTH: usize = 4096;
/// The operation name of metadata reads, which see through a hard link of `corral.toml`.
const STAT: &str = "stat";
/// Refusals kept per call to report to the model (the rest are counted).
const MAX_REFUSALS_KEPT: usize = 8;

/// The guard's part of one call's state: the workspace guard, the identities of the call's
/// grant roots, and what was refused (told to the model with the call's result).
#[derive(Debug)]
pub struct FsGuardState {
    guard: Option<Guard>,
    roots: Vec<FileId>,
    refusals: Vec<String>,
    refused: usize,
    /// Directory streams of the workspace root, whose protected entries are hidden.
    root_streams: HashSet<u32>,
}

impl FsGuardState {
    /// The state of a call whose grant roots are `roots`, in the workspace guarded by `guard`
    /// (`None`: the call has no files at all).
    pub fn new(guard: Option<Guard>, roots: Vec<FileId>) -> Self {
        Self {
            guard,
            roots,
            refusals: Vec::new(),
            refused: 0,
            root_streams: HashSet::new(),
        }
    }

    /// One line naming what was refused during the call, or `None`.
    pub fn report(&self) -> Option<String> {
        if self.refused == 0 {
            return None;
        }
        let more = self.refused.saturating_sub(self.refusals.len());
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        Some(format!(
            "corral refused {} file operation(s) of this call: {}{tail}",
            self.refused,
            self.refusals.join("; ")
        ))
    }

    fn refuse(&mut self, what: String) -> FsError {
        tracing::warn!(target: "corral::plugin", "refused: {what}");
        self.refused += 1;
        if self.refusals.len() < MAX_REFUSALS_KEPT {
            self.refusals.push(what);
        }
        ErrorCode::Access.into()
    }
}

/// The [`HasData`] of the guarded filesystem, for `add_to_linker`.
pub struct GuardedFilesystem;

impl HasData for GuardedFilesystem {
    type Data<'a> = GuardedFs<'a>;
}

/// wasmtime-wasi's filesystem view with the guard in front of it.
pub struct GuardedFs<'a> {
    pub inner: WasiFilesystemCtxView<'a>,
    pub state: &'a mut FsGuardState,
}

/// A path resolved beneath a descriptor: a temporary descriptor of its parent folder (same
/// permissions as the caller's) and its last component.
struct Target {
    parent: Resource<Descriptor>,
    name: String,
}

impl GuardedFs<'_> {
    fn dir(&self, fd: &Resource<Descriptor>) -> FsResult<Dir> {
        match self.inner.table.get(fd)? {
            Descriptor::Dir(d) => Ok(d.clone()),
            Descriptor::File(_) => Err(ErrorCode::NotDirectory.into()),
        }
    }

    /// Resolves `path` beneath `fd`, checks it, and returns its parent as a temporary
    /// descriptor (delete it with [`Self::release`]). `op` names the operation in refusals.
    fn target(
        &mut self,
        fd: &Resource<Descriptor>,
        path: &str,
        follow: bool,
        op: &str,
    ) -> FsResult<Target> {
        let dir = self.dir(fd)?;
        let (parent, name) = resolve(&dir, path, follow)?;
        if let Some(guard) = &self.state.guard {
            let name_os = OsStr::new(&name);
            let checked = if op == STAT {
                guard.entry_by_place(parent.as_fd(), name_os, &self.state.roots)
            } else {
                guard.entry(parent.as_fd(), name_os, &self.state.roots)
            };
            match checked {
                Ok(None) => {}
                Ok(Some(protected)) => {
                    return Err(self.state.refuse(format!("{op} `{path}`: {protected}")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let parent = Descriptor::Dir(Dir::new(parent, dir.perms, dir.open_mode, false));
        let parent = self.inner.table.push(parent)?;
        Ok(Target { parent, name })
    }

    /// The two targets of a call that names two paths (link, rename): the first followed as
    /// the call says, the second never; neither is kept if the other is refused.
    fn targets(
        &mut self,
        (fd, path, follow, what): (&Resource<Descriptor>, &str, bool, &str),
        (new_fd, new_path, new_what): (&Resource<Descriptor>, &str, &str),
    ) -> FsResult<(Target, Target)> {
        let old = self.target(fd, path, follow, what)?;
        match self.target(new_fd, new_path, false, new_what) {
            Ok(new) => Ok((old, new)),
            Err(e) => {
                self.release(old).map_err(FsError::trap)?;
                Err(e)
            }
        }
    }

    fn release_both(&mut self, a: Target, b: Target) -> FsResult<()> {
        self.release(a).map_err(FsError::trap)?;
        self.release(b).map_err(FsError::trap)
    }

    fn release(&mut self, target: Target) -> wasmtime::Result<()> {
        self.inner.table.delete(target.parent)?;
        Ok(())
    }

    /// Runs `op` on a resolved target and releases it whatever the outcome.
    async fn on_target<R>(
        &mut self,
        fd: &Resource<Descriptor>,
        path: &str,
        follow: bool,
        what: &str,
        op: impl AsyncFnOnce(
            &mut WasiFilesystemCtxView<'_>,
            Resource<Descriptor>,
            String,
        ) -> FsResult<R>,
    ) -> FsResult<R> {
        let target = self.target(fd, path, follow, what)?;
        let parent = Resource::new_borrow(target.parent.rep());
        let result = op(&mut self.inner, parent, target.name.clone()).await;
        self.release(target).map_err(FsError::trap)?;
        result
    }

    /// Refuses a symlink whose target is absolute, leaves the grant the link is made in, or
    /// names a protected entry of the workspace root.
    fn check_link_target(&mut self, parent: &Resource<Descriptor>, target: &str) -> FsResult<()> {
        let refuse = |state: &mut FsGuardState, why: &str| {
            state.refuse(format!("symlink to `{target}`: {why}"))
        };
        if target.is_empty() || Path::new(target).is_absolute() {
            return Err(refuse(self.state, "a plugin's symlink must be relative"));
        }
        let dir = self.dir(parent)?;
        let (depth, at_workspace_root) = self.depth_below_grant(&dir)?;
        let mut level = depth;
        let mut named = false;
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." if named => {
                    return Err(refuse(
                        self.state,
                        "`..` after a name is not allowed in a plugin's symlink",
                    ));
                }
                ".." => {
                    if level == 0 {
                        return Err(refuse(self.state, "it leads outside the plugin's grant"));
                    }
                    level -= 1;
                }
                name => {
                    if level == 0 && at_workspace_root && PROTECTED.contains(&name) {
                        return Err(refuse(
                            self.state,
                            "it points at corral's protected `corral.toml` or `.corral/`",
                        ));
                    }
                    named = true;
                    level += 1;
                }
            }
        }
        Ok(())
    }

    /// How many folders `dir` lies below the nearest grant root, and whether that root is the
    /// workspace root.
    fn depth_below_grant(&self, dir: &Dir) -> FsResult<(usize, bool)> {
        let root_id = self.state.guard.as_ref().map(Guard::root_id);
        let mut current = rustix::io::fcntl_dupfd_cloexec(&*dir.dir, 0).map_err(io)?;
        for depth in 0..MAX_GRANT_DEPTH {
            let id = FileId::of(&current).map_err(FsError::from)?;
            if self.state.roots.contains(&id) || Some(id) == root_id {
                return Ok((depth, Some(id) == root_id));
            }
            let parent = rustix::fs::openat(
                &current,
                "..",
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(io)?;
            if FileId::of(&parent).map_err(FsError::from)? == id {
                break;
            }
            current = parent;
        }
        Err(ErrorCode::Access.into())
    }
}

fn io(e: rustix::io::Errno) -> FsError {
    std::io::Error::from(e).into()
}

/// Resolves `path` beneath `dir` to an open handle of its parent folder and its last
/// component, following symlinks in the parent part beneath `dir` (cap-std) and, when
/// `follow`, a symlink in the last component by hand (its target taken relative to the
/// parent, beneath `dir` again). A path ending in `/`, `.` or `..` names a folder: its handle
/// is returned with the name `.`.
fn resolve(dir: &Dir, path: &str, follow: bool) -> FsResult<(std::fs::File, String)> {
    let base = cap_std::fs::Dir::from_std_file(dir.dir.try_clone()?);
    let mut path = path.to_string();
    let must_be_dir = path.ends_with('/');
    let follow = follow || must_be_dir;
    for _ in 0..MAX_SYMLINK_HOPS {
        if path.starts_with('/') {
            return Err(ErrorCode::NotPermitted.into());
        }
        let trimmed = path.trim_end_matches('/');
        let (parent_part, name) = match trimmed.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", trimmed),
        };
        if name.is_empty() || name == "." || name == ".." {
            let whole = if trimmed.is_empty() { "." } else { trimmed };
            let folder = base.open_dir(whole)?;
            return Ok((folder.into_std_file(), ".".to_string()));
        }
        let parent = if parent_part.is_empty() {
            base.try_clone()?
        } else {
            base.open_dir(parent_part)?
        };
        if follow
            && let Ok(meta) = parent.symlink_metadata(name)
            && meta.file_type().is_symlink()
        {
            let link = parent.read_link_contents(name)?;
            let link = link.to_str().ok_or(ErrorCode::IllegalByteSequence)?;
            if link.starts_with('/') {
                return Err(ErrorCode::NotPermitted.into());
            }
            path = if parent_part.is_empty() {
                link.to_string()
            } else {
                format!("{parent_part}/{link}")
            };
            if must_be_dir {
                path.push('/');
            }
            continue;
        }
        if must_be_dir
            && let Ok(meta) = parent.symlink_metadata(name)
            && !meta.is_dir()
        {
            return Err(ErrorCode::NotDirectory.into());
        }
        return Ok((parent.into_std_file(), name.to_string()));
    }
    Err(ErrorCode::Loop.into())
}

fn follows(flags: PathFlags) -> bool {
    flags.contains(PathFlags::SYMLINK_FOLLOW)
}

impl types::Host for GuardedFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.inner, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.inner, err)
    }
}

impl HostDescriptor for GuardedFs<'_> {
    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        HostDescriptor::advise(&mut self.inner, fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        HostDescriptor::sync_data(&mut self.inner, fd).await
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorFlags> {
        HostDescriptor::get_flags(&mut self.inner, fd).await
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorType> {
        HostDescriptor::get_type(&mut self.inner, fd).await
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: types::Filesize) -> FsResult<()> {
        HostDescriptor::set_size(&mut self.inner, fd, size).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times(&mut self.inner, fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        HostDescriptor::read(&mut self.inner, fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        HostDescriptor::write(&mut self.inner, fd, buf, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        let at_root = match (&self.state.guard, self.inner.table.get(&fd)?) {
            (Some(guard), Descriptor::Dir(d)) => {
                FileId::of(&*d.dir).map_err(FsError::from)? == guard.root_id()
            }
            _ => false,
        };
        let stream = HostDescriptor::read_directory(&mut self.inner, fd).await?;
        if at_root {
            self.state.root_streams.insert(stream.rep());
        }
        Ok(stream)
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        HostDescriptor::sync(&mut self.inner, fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.on_target(
            &fd,
            &path,
            false,
            "create folder",
            async |inner, parent, name| {
                HostDescriptor::create_directory_at(inner, parent, name).await
            },
        )
        .await
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorStat> {
        HostDescriptor::stat(&mut self.inner, fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        self.on_target(
            &fd,
            &path,
            follows(path_flags),
            STAT,
            async |inner, parent, name| {
                HostDescriptor::stat_at(inner, parent, PathFlags::empty(), name).await
            },
        )
        .await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        self.on_target(
            &fd,
            &path,
            follows(path_flags),
            "set times of",
            async |inner, parent, name| {
                HostDescriptor::set_times_at(inner, parent, PathFlags::empty(), name, atim, mtim)
                    .await
            },
        )
        .await
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (old, new) = self.targets(
            (&fd, &old_path, follows(old_path_flags), "hard-link"),
            (&new_descriptor, &new_path, "hard-link to"),
        )?;
        let result = HostDescriptor::link_at(
            &mut self.inner,
            Resource::new_borrow(old.parent.rep()),
            PathFlags::empty(),
            old.name.clone(),
            Resource::new_borrow(new.parent.rep()),
            new.name.clone(),
        )
        .await;
        self.release_both(old, new)?;
        result
    }

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        self.on_target(
            &fd,
            &path,
            follows(path_flags),
            "open",
            async |inner, parent, name| {
                HostDescriptor::open_at(inner, parent, PathFlags::empty(), name, oflags, flags)
                    .await
            },
        )
        .await
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        HostDescriptor::drop(&mut self.inner, fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        self.on_target(
            &fd,
            &path,
            false,
            "read link",
            async |inner, parent, name| HostDescriptor::readlink_at(inner, parent, name).await,
        )
        .await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.on_target(
            &fd,
            &path,
            false,
            "remove folder",
            async |inner, parent, name| {
                HostDescriptor::remove_directory_at(inner, parent, name).await
            },
        )
        .await
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (old, new) = self.targets(
            (&fd, &old_path, false, "rename"),
            (&new_fd, &new_path, "rename to"),
        )?;
        let result = HostDescriptor::rename_at(
            &mut self.inner,
            Resource::new_borrow(old.parent.rep()),
            old.name.clone(),
            Resource::new_borrow(new.parent.rep()),
            new.name.clone(),
        )
        .await;
        self.release_both(old, new)?;
        result
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let target = self.target(&fd, &dest_path, false, "create symlink")?;
        let parent = Resource::new_borrow(target.parent.rep());
        let checked = self.check_link_target(&parent, &src_path);
        let result = match checked {
            Ok(()) => {
                HostDescriptor::symlink_at(&mut self.inner, parent, src_path, target.name.clone())
                    .await
            }
            Err(e) => Err(e),
        };
        self.release(target).map_err(FsError::trap)?;
        result
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        self.on_target(&fd, &path, false, "remove", async |inner, parent, name| {
            HostDescriptor::unlink_file_at(inner, parent, name).await
        })
        .await
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        HostDescriptor::read_via_stream(&mut self.inner, fd, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        HostDescriptor::write_via_stream(&mut self.inner, fd, offset)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        HostDescriptor::append_via_stream(&mut self.inner, fd)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        HostDescriptor::is_same_object(&mut self.inner, a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash(&mut self.inner, fd).await
    }

    /// Not guarded: an opaque hash tells nothing of a protected entry, and wasi-libc asks for
    /// one per entry while listing a folder (a folder holding a hard link of `corral.toml`
    /// must still list). The path is still resolved beneath the descriptor by wasmtime-wasi.
    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash_at(&mut self.inner, fd, path_flags, path).await
    }
}

impl HostDirectoryEntryStream for GuardedFs<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        let hide = self.state.root_streams.contains(&stream.rep());
        loop {
            let borrowed = Resource::new_borrow(stream.rep());
            let entry =
                HostDirectoryEntryStream::read_directory_entry(&mut self.inner, borrowed).await?;
            match entry {
                Some(e) if hide && PROTECTED.contains(&e.name.as_str()) => continue,
                other => return Ok(other),
            }
        }
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        self.state.root_streams.remove(&stream.rep());
        HostDirectoryEntryStream::drop(&mut self.inner, stream)
    }
}
