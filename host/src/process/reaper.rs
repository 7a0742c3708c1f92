//! Containment: no process a command starts outlives its task, or corral.
//!
//! Killing a task's process group (`kill(-pgid)`) misses whatever left the group: `setsid -f`,
//! a double fork into a new group, a daemon. No cgroup is used for that, since one can rarely
//! be made (it needs a delegated, writable cgroup v2 subtree, which an ordinary user in a
//! terminal, a container or CI seldom has). Instead, two marks that leaving a group does not
//! shed:
//!
//! - **A token in the environment.** Every command gets one of its own in [`TASK_ENV`], and
//!   everything it starts inherits it, whatever group or session it moves to. Ending a task
//!   ([`Shell::kill`]) signals everything below its shell while the shell lives, every process
//!   started since the task began that carries its token, everything below those, and then its
//!   process group. That happens on a timeout or a cancel, and also whenever the shell exits by
//!   itself: what a finished `bash` call or background task leaves behind dies with it, and
//!   what another task still running started is left alone.
//! - **Parenthood.** Once [`adopt_orphans`] is called (the `corral` binary does, at the start
//!   of `run` and `chat`), corral is a child subreaper: a process orphaned anywhere below it is
//!   re-parented to corral, not to init. [`sweep`] reaps those once killed, and ends those whose
//!   task has ended; at exit, [`kill_all_groups`] ends every such child outside corral's own
//!   process group with everything below it, token or not.
//!
//! Spawning stays `posix_spawn` (no code runs between `fork` and `exec`, which would make each
//! spawn a full `fork` of corral).
//!
//! Limits: a process that clears its environment *and* leaves its task's group is ended at
//! corral's exit rather than with its task (or, in a program that did not call
//! [`adopt_orphans`], not at all). Linux only beyond the group kill: elsewhere `/proc` is not
//! read.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::group::kill_group;
use super::journal::Journal;
use super::launch::Started;
use super::procfs::{self, ProcStat};

/// The environment variable every command (and what it starts) sees: its task's token.
pub const TASK_ENV: &str = "CORRAL_TASK";
/// The longest one [`sweep`] keeps killing and reaping leftovers (2 s): they die at the first
/// SIGKILL, so this only bounds a tree that keeps forking while it is killed.
pub const SWEEP_DEADLINE: Duration = Duration::from_secs(2);
/// Pause between two rounds of a sweep, while killed processes finish dying.
const SWEEP_ROUND: Duration = Duration::from_millis(5);
/// Rounds of [`Shell::kill`]: each signals what the last look at `/proc` found and had not
/// been signalled yet (what a dying process forked meanwhile). A tree that keeps forking
/// faster than this is left to the group kill, and to [`kill_all_groups`] at exit.
const KILL_ROUNDS: usize = 8;

/// Whether this process adopts orphans ([`adopt_orphans`] succeeded).
static ADOPTING: AtomicBool = AtomicBool::new(false);

/// A fresh token for one command.
pub(super) fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// One command's shell, named for good: its pid (= its process group), when it started, and
/// the token its processes carry.
#[derive(Debug, Clone)]
pub(super) struct Shell {
    pub pid: i32,
    /// Clock ticks since boot; 0 where `/proc` is not read.
    pub start: u64,
    pub token: String,
    /// A pidfd for the shell's init when it runs in a PID namespace of its own (the sandbox's
    /// zygote made one): its end ends everything the command started, so no `/proc` needs
    /// reading.
    pub namespace: Option<Arc<std::os::fd::OwnedFd>>,
}

impl Shell {
    /// Sends `signal` to everything of this task: below its shell while the shell is not yet
    /// reaped, every process started since the shell that carries its token and what is below
    /// those (looked at again until nothing new is found, at most [`KILL_ROUNDS`] times), and
    /// last its process group. Never this process or what it runs in. Returns its last look at
    /// `/proc` (taken after every signal but the group's), for [`sweep_after`].
    pub fn kill(&self, signal: i32) -> Vec<ProcStat> {
        if let Some(pidfd) = &self.namespace {
            // The init ignores every signal but SIGKILL, which ends the whole namespace; the
            // group gets the signal while the init lives (its pid may be reused after).
            if !exited(pidfd) {
                kill_group(self.pid, signal);
            }
            // SAFETY: pidfd_send_signal on a valid pidfd, no siginfo, no flags.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    std::os::fd::AsRawFd::as_raw_fd(&**pidfd),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0u32,
                );
            }
            return Vec::new();
        }
        let procs = kill_carriers(
            &[self.token.as_str()].into_iter().collect(),
            self.start,
            Some(self),
            signal,
        );
        kill_group(self.pid, signal);
        procs
    }
}

/// Whether the process behind `pidfd` has exited (its pidfd polls readable).
fn exited(pidfd: &std::os::fd::OwnedFd) -> bool {
    let mut fd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(pidfd),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    unsafe { libc::poll(&mut fd, 1, 0) > 0 }
}

impl Shell {
    /// Whether the shell runs in a PID namespace of its own.
    pub fn in_namespace(&self) -> bool {
        self.namespace.is_some()
    }
}

/// Shells that exited by themselves, waiting for the one look at `/proc` that ends what they
/// left ([`end_exited`]).
#[derive(Default)]
struct Exits {
    pending: Vec<Shell>,
    /// The batch the next shell pushed goes into.
    next: u64,
    /// Batches `< done` are finished.
    done: u64,
    running: bool,
}

static EXITS: Mutex<Exits> = Mutex::new(Exits {
    pending: Vec::new(),
    next: 0,
    done: 0,
    running: false,
});
static EXITS_DONE: std::sync::Condvar = std::sync::Condvar::new();

/// Ends what `shell` (already reaped and unregistered) left behind, as [`Shell::kill`] with
/// SIGKILL would, and returns once that is done. Shells that exit at the same time share one
/// look at `/proc` (the first to come does it for all who queued meanwhile): 200 commands
/// ending together cost a few scans, not 200 scans that each read every other command's
/// environment.
///
/// When corral adopts orphans, a look at one file comes first: everything a command started
/// that outlives its shell is re-parented to corral's main thread (the kernel gives an orphan
/// to the first live thread of the nearest subreaper), so if that thread has no child but
/// live shells and processes older than this shell ([`nothing_adopted`]), nothing of this
/// command is left and `/proc` is not scanned at all.
pub(super) fn end_exited(shell: Shell) {
    // No group kill either: a process left in the group would be such an orphan, and the
    // shell's pid, reaped, may already name another command's group.
    if adopting() && nothing_adopted(shell.start) {
        return;
    }
    let lock = || EXITS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut exits = lock();
    let mine = exits.next;
    exits.pending.push(shell);
    loop {
        if exits.done > mine {
            return;
        }
        if !exits.running {
            exits.running = true;
            let batch = std::mem::take(&mut exits.pending);
            let number = exits.next;
            exits.next += 1;
            drop(exits);
            let procs = kill_batch(&batch);
            sweep_after(procs);
            exits = lock();
            exits.running = false;
            exits.done = number + 1;
            EXITS_DONE.notify_all();
            continue;
        }
        exits = EXITS_DONE
            .wait(exits)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Whether nothing that started since `since` (clock ticks since boot) was re-parented to
/// corral, and no orphan waits to be reaped: every child of corral's main thread (where orphans
/// go once corral is a subreaper) is a live shell, or a live process older than `since` (it
/// cannot descend from a shell started then; a zygote of the shell sandbox, re-parented to the
/// main thread when the task thread that started it ended, is one). `false` whenever that
/// cannot be told (no `/proc/PID/task/TID/children` in this kernel, the main thread is gone
/// and orphans go to another one, a child's start cannot be read).
fn nothing_adopted(since: u64) -> bool {
    let me = std::process::id() as i32;
    let Some(children) = procfs::children(me, me) else {
        return false;
    };
    // A main thread that has exited (the others run on) is no longer where orphans go.
    if !procfs::thread_alive(me, me) {
        return false;
    }
    let others: Vec<i32> = {
        let shells = shells();
        children
            .into_iter()
            .filter(|pid| !shells.as_ref().is_some_and(|s| s.contains_key(pid)))
            .collect()
    };
    others
        .into_iter()
        .all(|pid| procfs::stat(pid).is_some_and(|p| !p.is_zombie() && p.start_ticks < since))
}

/// SIGKILL to everything the `batch` shells left ([`kill_carriers`]), then to their groups.
fn kill_batch(batch: &[Shell]) -> Vec<ProcStat> {
    let Some(earliest) = batch.iter().map(|s| s.start).min() else {
        return Vec::new();
    };
    let tokens: HashSet<&str> = batch.iter().map(|s| s.token.as_str()).collect();
    let procs = kill_carriers(&tokens, earliest, None, libc::SIGKILL);
    for shell in batch {
        kill_group(shell.pid, libc::SIGKILL);
    }
    procs
}

/// Sends `signal` to every process started since `earliest` that carries one of `tokens`, and
/// what is below it, round after round until a look at `/proc` finds nothing new (at most
/// [`KILL_ROUNDS`]); with a `shell` not yet reaped, also to everything below it. Never to this
/// process or what it runs in, nor to the shell itself (its group gets the signal after). What
/// runs below another live shell is that shell's: its environment is not read. Returns the
/// last look at `/proc`.
fn kill_carriers(
    tokens: &HashSet<&str>,
    earliest: u64,
    shell: Option<&Shell>,
    signal: i32,
) -> Vec<ProcStat> {
    let others: HashSet<i32> = shells()
        .as_ref()
        .map(|s| s.keys().copied().collect())
        .unwrap_or_default();
    let me = std::process::id() as i32;
    let mut signalled: HashSet<i32> = HashSet::new();
    // Tokens read so far, by pid and start time (a process's environment does not change).
    let mut read: HashMap<(i32, u64), bool> = HashMap::new();
    let mut procs = Vec::new();
    for _ in 0..KILL_ROUNDS {
        procs = procfs::all();
        let mine = ancestry(me, &procs);
        let parents: HashMap<i32, i32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
        let under_other = |mut pid: i32| {
            for _ in 0..64 {
                if shell.is_some_and(|s| s.pid == pid) {
                    return false;
                }
                if others.contains(&pid) {
                    return true;
                }
                match parents.get(&pid) {
                    Some(&ppid) if ppid > 1 => pid = ppid,
                    _ => return false,
                }
            }
            false
        };
        let mut targets = Vec::new();
        if let Some(shell) = shell
            && procs
                .iter()
                .any(|p| p.pid == shell.pid && p.start_ticks == shell.start)
        {
            targets.extend(procfs::descendants(shell.pid, &procs));
        }
        for p in procs.iter().filter(|p| p.start_ticks >= earliest) {
            if mine.contains(&p.pid) || under_other(p.pid) {
                continue;
            }
            let carries = *read.entry((p.pid, p.start_ticks)).or_insert_with(|| {
                procfs::environ_var(p.pid, TASK_ENV).is_some_and(|t| tokens.contains(t.as_str()))
            });
            if carries {
                targets.push(p.pid);
                targets.extend(procfs::descendants(p.pid, &procs));
            }
        }
        let fresh: Vec<i32> = targets
            .into_iter()
            .filter(|pid| shell.is_none_or(|s| s.pid != *pid) && !mine.contains(pid))
            .filter(|&pid| signalled.insert(pid))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            // SAFETY: kill(2) touches no memory.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
    procs
}

/// `pid` and its ancestors.
fn ancestry(pid: i32, procs: &[ProcStat]) -> HashSet<i32> {
    let mut up = HashSet::new();
    let mut at = pid;
    while at > 1 && up.insert(at) {
        match procs.iter().find(|p| p.pid == at) {
            Some(p) => at = p.ppid,
            None => break,
        }
    }
    up
}

/// One spawn of a shell, as the registry holds it: the shell, and the journal its start went
/// into, if any.
#[derive(Debug, Clone)]
pub(super) struct Registration {
    pub shell: Shell,
    pub journal: Option<Arc<Journal>>,
}

impl Registration {
    /// Writes the journal's `end` line, if the shell has a journal; a failure is only logged
    /// (the next start then finds nothing running, and says so).
    pub fn ended(&self) {
        if let Some(journal) = &self.journal
            && let Err(error) = journal.ended(&self.shell.token)
        {
            tracing::warn!("{}: {error}", journal.path().display());
        }
    }
}

/// The shells corral started and has not reaped, by pid (= pgid), one registration each (a pid
/// reused between one shell's reaping and its unregistering has two, and stays live).
type Shells = HashMap<i32, Vec<Registration>>;
static SHELLS: Mutex<Option<Shells>> = Mutex::new(None);

fn shells() -> MutexGuard<'static, Option<Shells>> {
    SHELLS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Held shared from a shell's spawn until it is registered, and exclusively by a sweep: a sweep
/// never takes a shell just forked (a child of corral's that no registration names yet) for one
/// of its leftovers, and spawns still run side by side. (A single lock across the spawn, as
/// before, made commands started at once `posix_spawn` one after another: `posix_spawn`
/// returns only once the child has `exec`ed.)
static SPAWNING: RwLock<()> = RwLock::new(());

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): orphans of the commands it
/// runs are re-parented to it, [`sweep`] reaps them and [`kill_all_groups`] ends them all at
/// exit. Call once, early, from the program's main thread.
///
/// Every orphan re-parented to this process that is outside its own process group is then
/// treated as a command's leftover and killed at exit: a program that also starts its own
/// children in process groups of their own should not call this. Fails on systems without the
/// call.
pub fn adopt_orphans() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument.
        let done = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if done != 0 {
            return Err(io::Error::last_os_error());
        }
        ADOPTING.store(true, Ordering::SeqCst);
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "child subreapers are a Linux feature",
        ))
    }
}

/// Whether [`adopt_orphans`] is in force.
pub fn adopting() -> bool {
    ADOPTING.load(Ordering::SeqCst)
}

/// Spawns a shell with `spawn` (which must give it `token` in [`TASK_ENV`]) and registers its pid as a live
/// shell, under the lock [`sweep`] takes. Returns the child and its [`Shell`].
pub(super) fn spawn_registered(
    spawn: impl FnOnce() -> io::Result<Started>,
    token: String,
    journal: Option<Arc<Journal>>,
) -> io::Result<(Started, Shell)> {
    let _spawning = SPAWNING.read().unwrap_or_else(PoisonError::into_inner);
    let child = spawn()?;
    let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
    let namespace = match child.namespace_pidfd() {
        Some(fd) => Some(Arc::new(fd.try_clone()?)),
        None => None,
    };
    let shell = Shell {
        pid,
        start: procfs::stat(pid).map_or(0, |s| s.start_ticks),
        token,
        namespace,
    };
    shells()
        .get_or_insert_with(HashMap::new)
        .entry(pid)
        .or_default()
        .push(Registration {
            shell: shell.clone(),
            journal,
        });
    Ok((child, shell))
}

/// The shell `pid` was reaped: it is no longer live.
pub(super) fn unregister(pid: i32) {
    if let Some(map) = shells().as_mut()
        && let Some(registrations) = map.get_mut(&pid)
    {
        if !registrations.is_empty() {
            registrations.remove(0);
        }
        if registrations.is_empty() {
            map.remove(&pid);
        }
    }
}

/// What [`sweep`] ends: only the leftovers of tasks that have ended, or everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sweep {
    /// Children whose token is no live shell's (a task that has ended); those without a token
    /// are left for the exit.
    Ended,
    /// Every child outside corral's process group that is not a live shell.
    All,
}

/// Reaps the orphans re-parented to corral, and ends those whose task has ended (their token
/// is no live shell's) with everything below them, round after round until none is left (at
/// most [`SWEEP_DEADLINE`]). Does nothing unless [`adopt_orphans`] is in force. Called when
/// every command ends. Returns how many live processes it killed.
pub fn sweep() -> usize {
    sweep_children(Sweep::Ended, None)
}

/// [`sweep`], starting from `procs`, a look at `/proc` just taken (by [`Shell::kill`]), so a
/// command's end reads `/proc` once when nothing was left.
pub(super) fn sweep_after(procs: Vec<ProcStat>) -> usize {
    sweep_children(Sweep::Ended, Some(procs))
}

fn sweep_children(which: Sweep, mut first: Option<Vec<ProcStat>>) -> usize {
    if !adopting() {
        return 0;
    }
    let me = std::process::id() as i32;
    // SAFETY: getpgrp has no preconditions.
    let my_group = unsafe { libc::getpgrp() };
    let deadline = Instant::now() + SWEEP_DEADLINE;
    let mut killed = 0;
    loop {
        let (doomed, zombies) = {
            let _no_spawns = SPAWNING.write().unwrap_or_else(PoisonError::into_inner);
            let shells = shells();
            let live: HashSet<&str> = shells
                .iter()
                .flat_map(|s| s.values().flatten())
                .map(|r| r.shell.token.as_str())
                .collect();
            let is_shell = |pid: i32| shells.as_ref().is_some_and(|s| s.contains_key(&pid));
            let procs = first.take().unwrap_or_else(procfs::all);
            let children: Vec<&ProcStat> = procs
                .iter()
                .filter(|p| p.ppid == me && p.pgrp != my_group && !is_shell(p.pid))
                .collect();
            let zombies: Vec<i32> = children
                .iter()
                .filter(|p| p.is_zombie())
                .map(|p| p.pid)
                .collect();
            let doomed: Vec<i32> = children
                .iter()
                .filter(|p| !p.is_zombie())
                .filter(|p| match which {
                    Sweep::All => true,
                    Sweep::Ended => procfs::environ_var(p.pid, TASK_ENV)
                        .is_some_and(|token| !live.contains(token.as_str())),
                })
                .map(|p| p.pid)
                .collect();
            for &pid in &doomed {
                let below = procfs::descendants(pid, &procs);
                killed += 1 + below.len();
                for pid in below.into_iter().chain([pid]) {
                    // SAFETY: kill(2) touches no memory.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
            (doomed, zombies)
        };
        for pid in zombies {
            let mut status = 0;
            // SAFETY: waitpid on one pid that is our child and not a live shell (std's `Child`
            // of a shell is never reaped here), with a valid status pointer.
            unsafe {
                libc::waitpid(pid, &mut status, libc::WNOHANG);
            }
        }
        if doomed.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(SWEEP_ROUND);
    }
    killed
}

/// Sends SIGKILL to everything of every command corral started and has not reaped
/// ([`Shell::kill`]), then ends every orphan re-parented to corral with everything below it,
/// then records their ends in their journals: for exits on Ctrl-C, SIGTERM, SIGHUP or an error,
/// so no command outlives corral. Returns how many commands there were.
pub fn kill_all_groups() -> usize {
    let registrations: Vec<Registration> = shells()
        .as_ref()
        .map(|s| s.values().flatten().cloned().collect())
        .unwrap_or_default();
    for registration in &registrations {
        registration.shell.kill(libc::SIGKILL);
    }
    sweep_children(Sweep::All, None);
    for registration in &registrations {
        registration.ended();
    }
    registrations.len()
}
