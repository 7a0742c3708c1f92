//! Spawning a shell command in its own process group, and ending the whole group.
//!
//! The bash tool and the background manager both run commands through [`spawn_shell`]: `sh -c
//! COMMAND` in a new process group (`process_group(0)`), stdin closed, stdout and stderr sharing
//! one pipe so they interleave exactly as the command wrote them. [`GroupChild::run`] then
//! supervises it on the calling thread alone: one `poll` waits for output, for the shell's exit
//! (a pidfd on Linux; a short poll interval elsewhere), for a cancel request and for the
//! deadline. Killing goes to the group (`kill(-pgid, ...)`) and to the shell's whole tree, so
//! grandchildren die with the shell even when they left its group; see [`super::reaper`] for
//! what is left when the shell exits by itself.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::journal::TaskRecord;
use super::launch::{Launch, Started};
use super::reaper::{self, Registration, Shell, TASK_ENV};

/// Where a command's output goes while it runs. Called on the supervising thread.
pub trait OutputSink: Send + 'static {
    /// Takes a piece of output. Returning `false` asks for the process group to be killed (an
    /// output cap was reached); reading then stops.
    fn write(&mut self, bytes: &[u8]) -> bool;
}

/// How a run ended.
#[derive(Debug)]
pub enum WaitOutcome {
    /// The shell exited by itself.
    Exited(ExitStatus),
    /// The deadline passed; the group was ended.
    TimedOut,
    /// A cancel request arrived; the group was ended.
    Cancelled,
}

/// What [`GroupChild::run`] reports.
#[derive(Debug)]
pub struct RunEnd {
    pub outcome: io::Result<WaitOutcome>,
    /// `false` when output was still open after the drain time: a process left the group
    /// (`setsid`) and kept the pipe.
    pub drained: bool,
}

/// Asks a running command to stop, from any thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Canceller(std::sync::Arc<io::PipeWriter>);

impl Canceller {
    /// Requests the end of the run: SIGTERM to the group, SIGKILL after the grace period.
    pub fn cancel(&self) {
        use std::io::Write;
        let _ = (&*self.0).write(&[1]);
    }
}

/// A started command and its process group, not yet supervised.
#[derive(Debug)]
pub struct GroupChild {
    child: Started,
    pgid: i32,
    output: io::PipeReader,
    cancel_rx: io::PipeReader,
    cancel_tx: std::sync::Arc<io::PipeWriter>,
    /// The shell as the registry knows it, with its journal.
    registration: Registration,
}

/// Starts `sh -c command` in `cwd` as `launch` says (its environment, its sandbox), in a new
/// process group, with stdin closed, and a token of
/// its own in [`TASK_ENV`] (see [`super::reaper`]: what it starts is found by it). With a
/// `record`, the start goes into its task journal ([`super::journal`]) and the end is recorded
/// when [`GroupChild::run`] reaps it. A journal that cannot be written is logged, and the
/// command runs all the same.
///
/// Fails when the shell cannot be spawned (no `sh`, `cwd` missing). The returned child must be
/// [`run`](GroupChild::run), which reaps it and kills what is left of its group.
pub fn spawn_shell(
    command: &str,
    cwd: &Path,
    launch: &Launch,
    record: Option<&TaskRecord>,
) -> io::Result<GroupChild> {
    let (output, writer) = io::pipe()?;
    let token = reaper::new_token();
    let journal = record.map(|r| r.journal.clone());
    let (child, shell) = reaper::spawn_registered(
        || launch.start(command, cwd, writer, &[(TASK_ENV, &token)]),
        token.clone(),
        journal.clone(),
    )?;
    let pgid = shell.pid;
    if let Some(record) = record
        && let Err(error) = record.journal.started(record, command, &shell)
    {
        tracing::warn!("{}: {error}", record.journal.path().display());
    }
    let (cancel_rx, cancel_tx) = io::pipe()?;
    Ok(GroupChild {
        child,
        pgid,
        output,
        cancel_rx,
        cancel_tx: std::sync::Arc::new(cancel_tx),
        registration: Registration { shell, journal },
    })
}

/// A pidfd for `pid` (Linux 5.3+): readable when the process exits.
#[cfg(target_os = "linux")]
pub(super) fn pidfd(pid: u32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the descriptor was just returned to us and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
pub(super) fn pidfd(_pid: u32) -> Option<OwnedFd> {
    None
}

/// How often the shell's exit is checked where no pidfd is available.
const EXIT_POLL: Duration = Duration::from_millis(20);

impl GroupChild {
    /// The process group id (the shell's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    fn shell(&self) -> &Shell {
        &self.registration.shell
    }

    /// A handle that ends the run from another thread.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.cancel_tx.clone())
    }

    /// Supervises the command on this thread until the shell exits, `timeout` passes, or a
    /// [`Canceller`] fires; output goes to `sink` as it arrives. On a timeout or a cancel the
    /// group gets SIGTERM, then SIGKILL after `grace`. Whatever is left of the group is then
    /// killed, and the rest of the output read (for at most `drain`).
    ///
    /// No duration panics: a `timeout` too far off to be an [`Instant`] (`Duration::MAX`) is
    /// no deadline at all, and a `grace` or `drain` is capped at [`FAR_OFF`].
    pub fn run(
        mut self,
        timeout: Option<Duration>,
        grace: Duration,
        drain: Duration,
        mut sink: impl OutputSink,
    ) -> RunEnd {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let exit_fd = self.child.exit_fd();
        let mut output_open = true;
        let mut ending: Option<(WaitOutcome, Instant)> = None;
        let mut killed = false;
        let mut buf = ReadBuffer::new();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            let now = Instant::now();
            if ending.is_none() && deadline.is_some_and(|d| now >= d) {
                let _ = self.shell().kill(libc::SIGTERM);
                ending = Some((WaitOutcome::TimedOut, later(now, grace)));
            }
            if let Some((_, kill_at)) = &ending
                && now >= *kill_at
                && !killed
            {
                let _ = self.shell().kill(libc::SIGKILL);
                killed = true;
            }
            // Sleep in poll until something happens or the next deadline.
            let mut wake = ending
                .as_ref()
                .filter(|_| !killed)
                .map(|(_, at)| *at)
                .or(deadline.filter(|_| ending.is_none()));
            if exit_fd.is_none() {
                let soon = now + EXIT_POLL;
                wake = Some(wake.map_or(soon, |w| w.min(soon)));
            }
            let timeout_ms = wake.map_or(-1, |w| {
                i32::try_from(w.saturating_duration_since(now).as_millis().max(1))
                    .unwrap_or(i32::MAX)
            });
            let mut fds = Vec::with_capacity(3);
            let output_fd = self.output.as_fd().as_raw_fd();
            if output_open {
                fds.push(libc::pollfd {
                    fd: output_fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            fds.push(libc::pollfd {
                fd: self.cancel_rx.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            if let Some(fd) = &exit_fd {
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: `fds` is a valid array of pollfd of the given length for the call.
            let ready =
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break Err(e);
            }
            for fd in &fds {
                if fd.revents == 0 {
                    continue;
                }
                if fd.fd == output_fd && output_open {
                    match buf.read(&mut self.output) {
                        Ok([]) | Err(_) => output_open = false,
                        Ok(bytes) => {
                            if !sink.write(bytes) {
                                let _ = self.shell().kill(libc::SIGKILL);
                                output_open = false;
                            }
                        }
                    }
                } else if fd.fd == self.cancel_rx.as_fd().as_raw_fd() {
                    // Take every pending request, so the pipe does not stay readable.
                    let mut requests = [0u8; 64];
                    let _ = self.cancel_rx.read(&mut requests);
                    if ending.is_none() {
                        let _ = self.shell().kill(libc::SIGTERM);
                        ending = Some((WaitOutcome::Cancelled, later(Instant::now(), grace)));
                    }
                }
            }
        };
        // Whatever is left of the task dies now, in its group or out of it; orphans
        // re-parented to corral are reaped; then the output drains to its end.
        if self.shell().in_namespace() {
            // The namespace ends with its init: nothing to look for.
            self.shell().kill(libc::SIGKILL);
            reaper::unregister(self.pgid);
        } else if ending.is_none() && status.is_ok() {
            // Exited by itself: what it left is found with the other shells ending now.
            reaper::unregister(self.pgid);
            reaper::end_exited(self.shell().clone());
        } else {
            let procs = self.shell().kill(libc::SIGKILL);
            reaper::unregister(self.pgid);
            reaper::sweep_after(procs);
        }
        self.registration.ended();
        let drained = !output_open || drain_output(&mut self.output, &mut sink, drain, &mut buf);
        let outcome = status.map(|status| match ending {
            Some((outcome, _)) => outcome,
            None => WaitOutcome::Exited(status),
        });
        RunEnd { outcome, drained }
    }
}

/// The longest wait [`later`] computes (100 years): past any real deadline, and far inside
/// what an [`Instant`] can hold.
pub const FAR_OFF: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `now + by`, with `by` capped at [`FAR_OFF`] so the sum never overflows.
fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by.min(FAR_OFF)).unwrap_or(now)
}

/// What a read of a command's output takes at first (on the stack), and once one read fills
/// that, for good (on the heap): most commands print little, and a zeroed 64 KiB buffer per
/// command was a `malloc` that grew the thread's arena and faulted in 16 pages.
const SMALL_READ_BYTES: usize = 4 * 1024;
const READ_BYTES: usize = 64 * 1024;

/// The buffer a command's output is read into: [`SMALL_READ_BYTES`], then [`READ_BYTES`].
struct ReadBuffer {
    small: [u8; SMALL_READ_BYTES],
    big: Vec<u8>,
}

impl ReadBuffer {
    fn new() -> Self {
        Self {
            small: [0; SMALL_READ_BYTES],
            big: Vec::new(),
        }
    }

    /// One read of `pipe`: what it gave (empty at its end).
    fn read(&mut self, pipe: &mut io::PipeReader) -> io::Result<&[u8]> {
        if self.big.is_empty() {
            let n = pipe.read(&mut self.small)?;
            if n == self.small.len() {
                self.big = vec![0; READ_BYTES];
            }
            return Ok(&self.small[..n]);
        }
        let n = pipe.read(&mut self.big)?;
        Ok(&self.big[..n])
    }
}

/// Reads `pipe` to its end, for at most `limit`. `false` if it was still open then.
fn drain_output(
    pipe: &mut io::PipeReader,
    sink: &mut impl OutputSink,
    limit: Duration,
    buf: &mut ReadBuffer,
) -> bool {
    let until = later(Instant::now(), limit);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fd = libc::pollfd {
            fd: pipe.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut fd, 1, ms) };
        if ready <= 0 {
            continue;
        }
        match buf.read(pipe) {
            Ok([]) | Err(_) => return true,
            Ok(bytes) => {
                if !sink.write(bytes) {
                    return true;
                }
            }
        }
    }
}

/// Sends `signal` to every process of group `pgid`. A group that no longer exists is fine.
pub fn kill_group(pgid: i32, signal: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Whether any process of group `pgid` is still alive (`kill(-pgid, 0)` succeeds).
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pgid > 0 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// A short text for an exit status: `exit code 3`, `killed by signal 9`.
pub fn describe_status(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Discard;

    impl OutputSink for Discard {
        fn write(&mut self, _: &[u8]) -> bool {
            true
        }
    }

    /// `Duration::MAX` as the timeout, the grace and the drain: no overflow, no panic, and the
    /// command's own exit is reported.
    #[test]
    fn huge_durations_do_not_overflow() {
        let child = spawn_shell(
            "echo hi; exit 3",
            Path::new("."),
            &Launch::unconfined(),
            None,
        )
        .expect("spawn");
        let end = child.run(Some(Duration::MAX), Duration::MAX, Duration::MAX, Discard);
        match end.outcome {
            Ok(WaitOutcome::Exited(status)) => assert_eq!(status.code(), Some(3)),
            other => panic!("expected an exit, got {other:?}"),
        }
        assert!(end.drained);
    }
}
