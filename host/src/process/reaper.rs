//! Containment: no process a command starts outlives its task, or corral.
//!
//! Killing a task's process group (`kill(-pgid)`) misses whatever left the group: `setsid -f`,
//! a double fork into a new group, a daemon. No cgroup is used for that, since one can rarely
//! be made (it needs a delegated, writable cgroup v2 subtree, which an ordinary user in a
//! terminal, a container or CI seldom has). Instead, parenthood:
//!
//! - **Each task's shell is a child subreaper** ([`contain`], set between fork and exec): a
//!   process orphaned anywhere below it is re-parented to the shell, not to init, so while the
//!   task runs its whole tree hangs below its shell, whatever groups or sessions it made. Ending
//!   a task signals its group *and* that tree ([`kill_tree`], from `/proc`).
//! - **corral itself is a child subreaper** once [`adopt_orphans`] is called (the `corral`
//!   binary does, at the start of `run` and `chat`): when a task's shell exits, what it leaves
//!   is re-parented to corral. Such a process, a child of corral that is not in corral's own
//!   process group and is not the shell of a task still running, can only be a task's leftover:
//!   [`sweep`] kills it with everything below it and reaps it. It runs when every command ends
//!   and at exit ([`kill_all_groups`]).
//!
//! A program embedding corral that does not call [`adopt_orphans`] keeps the first part: a task
//! that is killed or times out takes its whole tree with it; what a shell leaves when it exits
//! by itself escapes to init, as before.

use std::collections::{HashMap, HashSet};
use std::io;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::group::kill_group;
use super::journal::Journal;
use super::procfs;

/// The longest one [`sweep`] keeps killing and reaping leftovers (2 s): they die at the first
/// SIGKILL, so this only bounds a tree that keeps forking while it is killed.
pub const SWEEP_DEADLINE: Duration = Duration::from_secs(2);
/// Pause between two rounds of a sweep, while killed processes finish dying.
const SWEEP_ROUND: Duration = Duration::from_millis(5);

/// Whether this process adopts orphans ([`adopt_orphans`] succeeded).
static ADOPTING: AtomicBool = AtomicBool::new(false);

/// A shell whose start is in a task journal: where its end goes, and its token.
#[derive(Debug, Clone)]
pub(super) struct Journaled {
    pub journal: Arc<Journal>,
    pub token: String,
}

impl Journaled {
    /// Writes the `end` line; a failure is only logged (the next start then finds nothing
    /// running, and says so).
    pub fn ended(&self) {
        if let Err(error) = self.journal.ended(&self.token) {
            tracing::warn!("{}: {error}", self.journal.path().display());
        }
    }
}

/// The shells corral started and has not reaped, by pid (= pgid), one registration each (a pid
/// reused between one shell's reaping and its unregistering has two, and stays live), with its
/// journal entry if it has one. Locked across a spawn, so a sweep never takes a shell just
/// forked for one of its leftovers.
type Shells = HashMap<i32, Vec<Option<Journaled>>>;
static SHELLS: Mutex<Option<Shells>> = Mutex::new(None);

fn shells() -> MutexGuard<'static, Option<Shells>> {
    SHELLS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): orphans of the commands it
/// runs are re-parented to it, and [`sweep`] ends them. Call once, early, from the program's
/// main thread. Also what lets [`sweep`] reap their zombies.
///
/// Every orphan re-parented to this process that is outside its own process group is then
/// treated as a task's leftover and killed: a program that also starts its own children in
/// process groups of their own should not call this. Fails on systems without the call.
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

/// Makes the shell `cmd` starts a child subreaper, so its task's orphans stay below it.
pub(super) fn contain(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook runs in the child between fork and exec and makes one system call,
        // which is async-signal-safe; it touches no memory of the parent. A failure leaves the
        // shell an ordinary process (the group kill still applies).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Spawns `cmd` and registers its pid as a live shell, under the lock [`sweep`] takes.
pub(super) fn spawn_registered(
    cmd: &mut Command,
    journaled: Option<Journaled>,
) -> io::Result<Child> {
    let mut shells = shells();
    let child = cmd.spawn()?;
    let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
    shells
        .get_or_insert_with(HashMap::new)
        .entry(pid)
        .or_default()
        .push(journaled);
    Ok(child)
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

/// Rounds of [`kill_tree`]: each signals what the last look at `/proc` found below the shell
/// and had not been signalled yet (a process that dies hands its children to the shell, which
/// the next round finds). A tree that keeps forking faster than this is left to the group
/// kill, and to [`sweep`] once the shell is gone.
const TREE_ROUNDS: usize = 8;

/// Sends `signal` to every descendant of the process `pgid` (the group's shell), wherever they
/// moved, and then to the process group `pgid`. The tree goes first: only while the shell lives
/// does it hold its task's orphans; once it dies they are re-parented away from it. Call only
/// while that shell is not yet reaped, so the pid is still it.
pub fn kill_tree(pgid: i32, signal: i32) {
    if pgid > 0 {
        let mut signalled = HashSet::new();
        for _ in 0..TREE_ROUNDS {
            let fresh: Vec<i32> = procfs::descendants(pgid, &procfs::all())
                .into_iter()
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
    }
    kill_group(pgid, signal);
}

/// Ends every task's leftover that was re-parented to corral: each child of this process that
/// is outside its process group and is not a live shell is killed with everything below it,
/// and reaped, round after round until none is left (at most [`SWEEP_DEADLINE`]). Does nothing
/// unless [`adopt_orphans`] is in force. Returns how many live processes it killed.
pub fn sweep() -> usize {
    if !adopting() {
        return 0;
    }
    let me = std::process::id() as i32;
    // SAFETY: getpgrp has no preconditions.
    let my_group = unsafe { libc::getpgrp() };
    let deadline = Instant::now() + SWEEP_DEADLINE;
    let mut killed = 0;
    loop {
        let leftovers: Vec<i32> = {
            let shells = shells();
            let procs = procfs::all();
            let leftovers: Vec<&procfs::ProcStat> = procs
                .iter()
                .filter(|p| p.ppid == me && p.pgrp != my_group)
                .filter(|p| !shells.as_ref().is_some_and(|s| s.contains_key(&p.pid)))
                .collect();
            for leftover in &leftovers {
                let below = procfs::descendants(leftover.pid, &procs);
                let alive = below
                    .iter()
                    .filter(|&&pid| procs.iter().any(|p| p.pid == pid && !p.is_zombie()))
                    .count();
                killed += alive + usize::from(!leftover.is_zombie());
                for pid in below.into_iter().chain([leftover.pid]) {
                    // SAFETY: kill(2) touches no memory.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
            leftovers.iter().map(|p| p.pid).collect()
        };
        if leftovers.is_empty() {
            break;
        }
        for pid in leftovers {
            let mut status = 0;
            // SAFETY: waitpid on one pid that is our child (no live shell: std's `Child` of a
            // shell is never reaped here), with a valid status pointer.
            unsafe {
                libc::waitpid(pid, &mut status, libc::WNOHANG);
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(SWEEP_ROUND);
    }
    killed
}

/// Sends SIGKILL to every process group corral started and has not reaped, and to each one's
/// whole tree, then [`sweep`]s, then records their ends in their journals: for exits on
/// Ctrl-C, SIGTERM, SIGHUP or an error, so no command outlives corral. Returns how many groups
/// there were.
pub fn kill_all_groups() -> usize {
    let groups: Vec<(i32, Vec<Journaled>)> = shells()
        .as_ref()
        .map(|s| {
            s.iter()
                .map(|(&pgid, regs)| (pgid, regs.iter().flatten().cloned().collect()))
                .collect()
        })
        .unwrap_or_default();
    for (pgid, _) in &groups {
        kill_tree(*pgid, libc::SIGKILL);
    }
    sweep();
    for journaled in groups.iter().flat_map(|(_, j)| j) {
        journaled.ended();
    }
    groups.len()
}
