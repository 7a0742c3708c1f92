//! corral's side of the zygote ([`super::zygote`]): starts it with the first confined command,
//! hands it every command after, and starts a fresh one when the old one is gone or out of
//! date.
//!
//! **Out of date** means the filesystem changed under what the zygote set up once: a protected
//! entry (`corral.toml`, `.corral/`, `.git/hooks`, `.git/config`) or a hidden path appeared,
//! went or was replaced, or (where the zygote had to confine the Landlock-only way, which
//! grants the workspace's entries one by one) the workspace's top level changed. A few `lstat`s
//! before each command check that ([`Fingerprint`]); the next command then gets a zygote whose
//! mounts and rules match the disk, as a freshly confined command would.
//!
//! Every exchange has a deadline ([`READY_DEADLINE`], [`REPLY_DEADLINE`]); a zygote that misses
//! one, or whose socket breaks, is killed and replaced once, and the command fails with the
//! reason if the new one fails too. Dropping the spawner kills the zygote; commands it started
//! run on (corral's process layer ends them).

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Plan;
use super::zygote::{
    self, IN_MEMFD, INLINE, INLINE_REQUEST_BYTES, MAX_MESSAGE_BYTES, READY, Request, SOCKET_FD,
    ZYGOTE_ARG,
};

/// How long a new zygote may take to confine itself (namespaces, mounts, rules) and say so.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long the zygote may take to answer one command (it only forks).
pub const REPLY_DEADLINE: Duration = Duration::from_secs(10);

/// A command the zygote started: its init's pid (= its process group), a pidfd for it, the
/// pipe its exit status comes from, and whether it runs in a PID namespace of its own.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub status: io::PipeReader,
    pub pid_namespace: bool,
}

/// What the zygote's mounts and rules were made from, as the disk showed it: the identity
/// (device, inode) of each watched path, or none where it did not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(Vec<Option<(u64, u64, i64, i64)>>);

impl Fingerprint {
    /// Both fingerprints from one look at the disk: as a zygote with a mount namespace sees it
    /// (the watched paths), and as a Landlock-only one does (those and the workspace itself).
    fn take_both(plan: &Plan) -> (Self, Self) {
        let mut paths = plan.watched();
        paths.push(plan.workspace.clone());
        let mut mounts = Vec::with_capacity(paths.len());
        let mut landlock_only = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let meta = std::fs::symlink_metadata(p).ok();
            let entry = |with_times: bool| {
                meta.as_ref().map(|meta| {
                    // A folder's modification time changes with its entries: watched only
                    // for the workspace, the Landlock-only way.
                    let (secs, nanos) = if with_times && p == &plan.workspace {
                        (meta.mtime(), meta.mtime_nsec())
                    } else {
                        (0, 0)
                    };
                    (meta.dev(), meta.ino(), secs, nanos)
                })
            };
            if i + 1 < paths.len() {
                mounts.push(entry(false));
            }
            landlock_only.push(entry(true));
        }
        (Self(mounts), Self(landlock_only))
    }
}

/// A running zygote.
struct Zygote {
    socket: OwnedFd,
    process: Child,
    landlock_only: bool,
    fingerprint: Fingerprint,
}

impl Drop for Zygote {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Starts confined commands through a zygote. One per [`super::Confinement`].
#[derive(Debug)]
pub struct Spawner {
    helper: PathBuf,
    plan: Plan,
    /// Up to [`MAX_ZYGOTES`] zygotes, each started when a command finds the ones before busy:
    /// one zygote forks one command at a time, and commands started at once (a build's worth of
    /// background tasks) should not queue behind a single one.
    zygotes: Vec<Mutex<Option<ZygoteSlot>>>,
    /// Where the next command that finds every zygote busy waits.
    next: std::sync::atomic::AtomicUsize,
}

/// The most zygotes one agent keeps: one per core, at most 4.
pub const MAX_ZYGOTES: usize = 4;

/// The zygote behind the lock (a newtype so `Spawner` can derive `Debug`).
struct ZygoteSlot(Zygote);

impl std::fmt::Debug for ZygoteSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Zygote(pid {})", self.0.process.id())
    }
}

impl Spawner {
    pub fn new(helper: PathBuf, plan: Plan) -> Self {
        Self {
            helper,
            plan,
            zygotes: (0..std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, MAX_ZYGOTES))
                .map(|_| Mutex::new(None))
                .collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Starts `argv` confined, in `cwd` (resolved inside the sandbox's mounts), with exactly
    /// `env`, stdin on `/dev/null` and stdout and stderr on `output`. Fails when no zygote can
    /// be had (the reason names what could not be applied) or the command cannot start there
    /// (`cwd` missing).
    pub fn spawn(
        &self,
        argv: &[&OsStr],
        env: &[(OsString, OsString)],
        cwd: &Path,
        output: BorrowedFd<'_>,
    ) -> io::Result<Spawned> {
        let request = Request {
            cwd: cwd.as_os_str().as_bytes().to_vec(),
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            env: env
                .iter()
                .map(|(k, v)| {
                    let mut pair = k.as_bytes().to_vec();
                    pair.push(b'=');
                    pair.extend_from_slice(v.as_bytes());
                    pair
                })
                .collect(),
        }
        .encode()?;
        let (message, memfd) = if request.len() <= INLINE_REQUEST_BYTES {
            ([&[INLINE][..], &request].concat(), None)
        } else {
            let memfd =
                rustix::fs::memfd_create("corral-command", rustix::fs::MemfdFlags::CLOEXEC)?;
            std::fs::File::from(memfd.try_clone()?).write_all(&request)?;
            (vec![IN_MEMFD], Some(memfd))
        };
        let (status, status_tx) = io::pipe()?;
        // Taken before the zygote is chosen, so the few `lstat`s do not hold its slot.
        let now = Fingerprint::take_both(&self.plan);
        let mut slot = self.free_slot();
        let mut last_error = None;
        for _ in 0..2 {
            let fresh = slot.as_ref().is_some_and(|z| {
                let current = if z.0.landlock_only { &now.1 } else { &now.0 };
                *current == z.0.fingerprint
            });
            if !fresh {
                // The old one (if any) is killed on drop.
                *slot = None;
                *slot = Some(ZygoteSlot(self.start(now.clone())?));
            }
            let Some(ZygoteSlot(zygote)) = slot.as_ref() else {
                unreachable!("a zygote was just put in the slot")
            };
            let fds: Vec<BorrowedFd<'_>> = memfd
                .iter()
                .map(AsFd::as_fd)
                .chain([output, status_tx.as_fd()])
                .collect();
            match exchange(zygote, &message, &fds) {
                Ok(Reply::Started {
                    pid,
                    pidfd,
                    pid_namespace,
                }) => {
                    return Ok(Spawned {
                        pid,
                        pidfd,
                        status,
                        pid_namespace,
                    });
                }
                Ok(Reply::Refused(reason)) => {
                    return Err(io::Error::other(format!(
                        "the shell sandbox could not start the command: {reason}"
                    )));
                }
                Err(error) => {
                    tracing::warn!("the sandbox zygote failed ({error}); starting a new one");
                    *slot = None;
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("the sandbox zygote failed")))
    }

    /// A zygote slot for one command: the first that is free (started or not), else the next
    /// in turn, waited for.
    fn free_slot(&self) -> std::sync::MutexGuard<'_, Option<ZygoteSlot>> {
        for slot in &self.zygotes {
            match slot.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        let at = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.zygotes.len();
        self.zygotes[at]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a zygote and waits until it is confined (or says why it cannot be).
    /// `before` is the disk's fingerprint taken before this call: the plan is read from the
    /// disk after it, so a change between the two makes the next command start a new zygote,
    /// never one that misses it.
    fn start(&self, before: (Fingerprint, Fingerprint)) -> io::Result<Zygote> {
        let plan = serde_json::to_string(&self.plan.refreshed()).map_err(io::Error::other)?;
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        let theirs_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(&self.helper);
        cmd.arg(ZYGOTE_ARG)
            .arg(plan)
            .current_dir(&self.plan.workspace)
            // Nothing of corral's environment (the API key) may sit in the zygote's memory,
            // which every command's init shares.
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a Ctrl-C at the terminal is for corral, not for the zygote.
            .process_group(0);
        // SAFETY: between fork and exec only dup2, which is async-signal-safe, runs; it also
        // clears close-on-exec on the new descriptor.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(theirs_fd, SOCKET_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let process = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("starting the sandbox helper {}: {e}", self.helper.display()),
            )
        })?;
        drop(theirs);
        let mut zygote = Zygote {
            socket: ours,
            process,
            landlock_only: false,
            fingerprint: Fingerprint(Vec::new()),
        };
        let mut buf = [0u8; MAX_MESSAGE_BYTES];
        let (len, _) = receive_by(&zygote.socket, &mut buf, Instant::now() + READY_DEADLINE)?;
        let message = &buf[..len];
        let Some(rest) = message.strip_prefix(READY) else {
            let reason = String::from_utf8_lossy(message);
            let reason = reason.strip_prefix("error: ").unwrap_or(&reason);
            return Err(io::Error::other(format!(
                "the shell sandbox could not be applied, so the command did not run: {reason}"
            )));
        };
        zygote.landlock_only = rest == zygote::LANDLOCK_ONLY;
        zygote.fingerprint = if zygote.landlock_only {
            before.1
        } else {
            before.0
        };
        Ok(zygote)
    }
}

/// The zygote's answer to one command.
enum Reply {
    Started {
        pid: i32,
        pidfd: OwnedFd,
        pid_namespace: bool,
    },
    Refused(String),
}

/// One request and its reply. An `Err` means the zygote is broken (gone, silent, garbled).
fn exchange(zygote: &Zygote, message: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<Reply> {
    zygote::send(zygote.socket.as_fd(), message, fds)?;
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    let (len, mut fds) = receive_by(&zygote.socket, &mut buf, Instant::now() + REPLY_DEADLINE)?;
    let message = &buf[..len];
    if let Some(reason) = message.strip_prefix(b"error: ") {
        return Ok(Reply::Refused(String::from_utf8_lossy(reason).into_owned()));
    }
    match (message, fds.pop(), fds.is_empty()) {
        (&[a, b, c, d, flag], Some(pidfd), true) => Ok(Reply::Started {
            pid: i32::from_ne_bytes([a, b, c, d]),
            pidfd,
            pid_namespace: flag == 1,
        }),
        _ => Err(io::Error::other("the zygote's reply does not parse")),
    }
}

/// Receives one message, waiting at most until `deadline`. A closed socket is an error.
fn receive_by(
    socket: &OwnedFd,
    buf: &mut [u8],
    deadline: Instant,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the sandbox zygote did not answer in time",
            ));
        }
        let mut fd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut fd, 1, ms) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if ready == 0 {
            continue;
        }
        if fd.revents & libc::POLLIN == 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the sandbox zygote is gone",
            ));
        }
        let (len, fds) = zygote::receive(socket.as_fd(), buf, 1)?;
        if len == 0 && fds.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the sandbox zygote is gone",
            ));
        }
        return Ok((len, fds));
    }
}
