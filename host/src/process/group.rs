//! Spawning a shell command in its own process group, and ending the whole group.
//!
//! The bash tool and the background manager both run commands through [`spawn_shell`]: `sh -c
//! COMMAND` in a new process group (`process_group(0)`), stdin closed, stdout and stderr sharing
//! one pipe so they interleave exactly as the command wrote them. A reader thread hands the
//! output to an [`OutputSink`]. Killing goes to the group (`kill(-pgid, ...)`), so grandchildren
//! die with the shell.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::HashSet;
use std::sync::Mutex;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

/// Every process group started by [`spawn_shell`] and not yet [`finish`](GroupChild::finish)ed:
/// what [`kill_all_groups`] ends when corral exits.
static LIVE_GROUPS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

fn track(pgid: i32, live: bool) {
    if let Ok(mut groups) = LIVE_GROUPS.lock() {
        let set = groups.get_or_insert_with(HashSet::new);
        if live {
            set.insert(pgid);
        } else {
            set.remove(&pgid);
        }
    }
}

/// Sends SIGKILL to every process group corral started and has not reaped: for exits on
/// Ctrl-C, SIGTERM or an error, so no command outlives corral. Returns how many groups there
/// were.
pub fn kill_all_groups() -> usize {
    let groups: Vec<i32> = LIVE_GROUPS
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|s| s.iter().copied().collect()))
        .unwrap_or_default();
    for &pgid in &groups {
        kill_group(pgid, libc::SIGKILL);
    }
    groups.len()
}

/// Which environment variables a command sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CommandEnv {
    /// corral's whole environment.
    #[default]
    Inherit,
    /// Only these variables, with corral's values (plus `PATH` and `HOME` so `sh` works).
    Only(Vec<String>),
}

/// Where a command's output goes while it runs. Called on the reader thread.
pub trait OutputSink: Send + 'static {
    /// Takes a piece of output. Returning `false` asks for the process group to be killed (an
    /// output cap was reached); reading then stops.
    fn write(&mut self, bytes: &[u8]) -> bool;
}

/// How a wait ended.
#[derive(Debug)]
pub enum WaitOutcome {
    /// The shell exited by itself.
    Exited(ExitStatus),
    /// The deadline passed; the group was ended.
    TimedOut,
    /// A cancel request arrived; the group was ended.
    Cancelled,
}

/// A running command and its process group.
#[derive(Debug)]
pub struct GroupChild {
    pgid: i32,
    exit: Receiver<io::Result<ExitStatus>>,
    reader: Option<JoinHandle<()>>,
    reader_done: Receiver<()>,
}

/// Starts `sh -c command` in `cwd`, in a new process group, with stdin closed.
///
/// Fails when the shell cannot be spawned (no `sh`, `cwd` missing). The returned child must be
/// waited with [`GroupChild::wait`] and then [`GroupChild::finish`]ed, which kills what is left of
/// the group.
pub fn spawn_shell(
    command: &str,
    cwd: &Path,
    env: &CommandEnv,
    sink: impl OutputSink,
) -> io::Result<GroupChild> {
    let (reader, writer) = io::pipe()?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    if let CommandEnv::Only(names) = env {
        cmd.env_clear();
        for name in names.iter().map(String::as_str).chain(["PATH", "HOME"]) {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
    }
    let child = cmd.spawn()?;
    // Drop our copies of the write end (held by `cmd`) so EOF comes when the group's copies close.
    drop(cmd);
    let pgid = i32::try_from(child.id()).map_err(io::Error::other)?;
    track(pgid, true);
    let (exit_tx, exit) = bounded(1);
    std::thread::Builder::new()
        .name(format!("wait-{pgid}"))
        .spawn(move || wait_child(child, exit_tx))?;
    let (done_tx, reader_done) = bounded(1);
    let reader = std::thread::Builder::new()
        .name(format!("output-{pgid}"))
        .spawn(move || read_output(reader, sink, pgid, done_tx))?;
    Ok(GroupChild {
        pgid,
        exit,
        reader: Some(reader),
        reader_done,
    })
}

fn wait_child(mut child: Child, exit: Sender<io::Result<ExitStatus>>) {
    let _ = exit.send(child.wait());
}

fn read_output(mut pipe: io::PipeReader, mut sink: impl OutputSink, pgid: i32, done: Sender<()>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !sink.write(&buf[..n]) {
                    kill_group(pgid, libc::SIGKILL);
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    drop(sink);
    let _ = done.send(());
}

impl GroupChild {
    /// The process group id (the shell's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Waits for the shell to exit, for `timeout` to pass, or for a message on `cancel`.
    /// On a timeout or a cancel the group gets SIGTERM, then SIGKILL after `grace`.
    pub fn wait(
        &self,
        timeout: Option<Duration>,
        cancel: &Receiver<()>,
        grace: Duration,
    ) -> io::Result<WaitOutcome> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let never = crossbeam_channel::never();
        let timer = match deadline {
            Some(d) => crossbeam_channel::at(d),
            None => never,
        };
        crossbeam_channel::select! {
            recv(self.exit) -> status => status.map_err(io::Error::other)?.map(WaitOutcome::Exited),
            recv(timer) -> _ => {
                self.terminate(grace);
                Ok(WaitOutcome::TimedOut)
            }
            recv(cancel) -> _ => {
                self.terminate(grace);
                Ok(WaitOutcome::Cancelled)
            }
        }
    }

    /// SIGTERM to the group; SIGKILL if the shell has not exited after `grace`.
    fn terminate(&self, grace: Duration) {
        kill_group(self.pgid, libc::SIGTERM);
        match self.exit.recv_timeout(grace) {
            Ok(_) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                kill_group(self.pgid, libc::SIGKILL);
                let _ = self.exit.recv_timeout(Duration::from_secs(5));
            }
        }
    }

    /// Kills whatever is left of the group and waits (at most `drain` long) for the reader to
    /// see the end of the output. Returns `false` if output was still open after that, which
    /// happens only when a process left the group (`setsid`) and kept the pipe.
    pub fn finish(mut self, drain: Duration) -> bool {
        kill_group(self.pgid, libc::SIGKILL);
        track(self.pgid, false);
        let drained = self.reader_done.recv_timeout(drain).is_ok();
        if drained && let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        drained
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
