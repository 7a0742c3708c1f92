//! The task journal, `<workspace>/.corral/tasks/journal.jsonl`: one line when a command starts
//! and one when it ends, so that a corral that died without ending its commands (`kill -9`, the
//! OOM killer, a crash: nothing can clean up at that moment) is cleaned up after by the next
//! start in that workspace.
//!
//! **What is written.** When [`super::spawn_shell`] starts a command with a [`TaskRecord`], a
//! `start` line: which corral started it (pid and start time), the boot it ran in, the kind
//! (`bash` or `background`) and task id, the command (its first [`COMMAND_BYTES`]), the shell's
//! pid (which is also the process group) and start time, and a fresh token that the command
//! also carries in its environment as [`TASK_ENV`] (and so does everything it starts, unless it
//! clears its environment). When the command is reaped, or corral kills it at exit
//! ([`super::kill_all_groups`]), an `end` line with the token.
//!
//! **What a start does** ([`Journal::recover`], called by the agent builder): every `start`
//! without an `end` whose corral is no longer running (no process with that pid *and* start
//! time, or another boot) names a command a dead corral left. Its processes are found by
//! identity, never by pid alone: the shell if a process with its pid and start time still runs,
//! everything below it, and every process whose environment holds the token. They get SIGTERM,
//! then SIGKILL after [`RECOVERY_GRACE`], and the start reports each such command
//! ([`Leftover`]) with how many processes were still running. Entries of a corral that is still
//! running (another terminal in the same workspace) are left alone.
//!
//! **Where.** Every file is opened beneath a handle of the `tasks` folder, and `.corral` and
//! `tasks` themselves are opened with `O_NOFOLLOW`: a symlink a cloned repository put in the
//! place of either, or of the journal, its lock or its temporary file, is refused, never
//! followed (the journal would otherwise append to, or replace, whatever it pointed at).
//!
//! **Bounds.** Each start compacts the journal to the entries of running corrals; an append that
//! finds it past [`COMPACT_AT`] compacts it first (keeping every open entry); a start reads at
//! most [`MAX_JOURNAL_BYTES`]. Writers take an exclusive `flock` on `journal.lock` beside it, for
//! at most [`LOCK_WAIT`]. A line that does not parse (a write torn by `kill -9`) is skipped.
//!
//! Linux only (it reads `/proc`); elsewhere nothing is written and nothing is recovered.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cap_std::fs::{Dir, OpenOptions};
use serde::{Deserialize, Serialize};

use super::procfs::{self, ProcStat};
use super::reaper::{Shell, TASK_ENV};

/// The journal's name in `<workspace>/.corral/tasks/`.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// The lock file beside it.
const LOCK_FILE: &str = "journal.lock";
/// The temporary file a rewrite renames over the journal.
const TMP_FILE: &str = "journal.jsonl.tmp";
/// Bytes of a command kept in its `start` line (2 KiB, cut at a character boundary).
pub const COMMAND_BYTES: usize = 2048;
/// The most of the journal a start reads (4 MiB, the end of the file when it is longer).
pub const MAX_JOURNAL_BYTES: u64 = 4 * 1024 * 1024;
/// A journal past this size (1 MiB) is compacted before the next line is added.
pub const COMPACT_AT: u64 = 1024 * 1024;
/// How long a writer waits for the lock (2 s); past it, a line is appended without it and a
/// start recovers nothing this time.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Time a dead corral's leftovers get between SIGTERM and SIGKILL at the next start (2 s).
pub const RECOVERY_GRACE: Duration = Duration::from_secs(2);
/// How long the next start waits for SIGKILLed leftovers to be gone (2 s).
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Pause between two looks at `/proc` while leftovers die.
const POLL: Duration = Duration::from_millis(10);

/// What started a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A `bash` call.
    Bash,
    /// A background task (`background_run`).
    Background,
}

/// What the journal records of a command, given to [`super::spawn_shell`] by its caller.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub journal: Arc<Journal>,
    pub kind: TaskKind,
    /// The background task's id; `None` for a `bash` call.
    pub id: Option<String>,
    /// The task's log, as the model reads its path.
    pub log: Option<String>,
}

/// One process for good: a pid, and when it started (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct ProcId {
    pid: i32,
    start: u64,
}

impl ProcId {
    /// Whether this very process runs now (a zombie does not).
    fn alive(&self, procs: &[ProcStat]) -> bool {
        procs
            .iter()
            .any(|p| p.pid == self.pid && p.start_ticks == self.start && !p.is_zombie())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line {
    Start(Started),
    End { token: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Started {
    token: String,
    boot: String,
    corral: ProcId,
    kind: TaskKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    command: String,
    shell: ProcId,
    /// Seconds since the Unix epoch.
    at: u64,
}

/// A command a dead corral left, as the next start found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub kind: TaskKind,
    /// The background task's id; `None` for a `bash` call.
    pub id: Option<String>,
    /// The command, its first [`COMMAND_BYTES`].
    pub command: String,
    pub log: Option<String>,
    /// When it started.
    pub started_at: SystemTime,
    /// How many of its processes were still running and were ended by this start; 0 when it
    /// had ended by itself (or with the machine).
    pub ended: usize,
}

/// This process, and the boot it runs in; `None` without `/proc`.
fn me() -> Option<&'static (ProcId, String)> {
    static ME: OnceLock<Option<(ProcId, String)>> = OnceLock::new();
    ME.get_or_init(|| {
        let stat = procfs::stat(std::process::id() as i32)?;
        let me = ProcId {
            pid: stat.pid,
            start: stat.start_ticks,
        };
        Some((me, procfs::boot_id()?))
    })
    .as_ref()
}

/// The journal of one workspace. Cheap: it holds its paths; every write opens, locks, appends
/// and closes, so any number of corrals (and of `Journal`s) share one file.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// The journal of the workspace whose state folder (`.corral`) is `state_dir`. Nothing is
    /// created until a line is written.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join(crate::workspace::TASKS_DIR),
        }
    }

    /// The journal file, for messages: it is only ever opened beneath [`Journal::folder`].
    pub fn path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// The `tasks` folder as a handle, never through a symlink (made when `create`); `None`
    /// when it does not exist and `create` is false.
    fn folder(&self, create: bool) -> io::Result<Option<Dir>> {
        crate::workspace::open_state_folder(&self.dir, create)
    }

    /// Records that `record`'s command started as `shell`. Does nothing without `/proc`.
    pub(super) fn started(
        &self,
        record: &TaskRecord,
        command: &str,
        shell: &Shell,
    ) -> io::Result<()> {
        let Some((corral, boot)) = me() else {
            return Ok(());
        };
        let line = Line::Start(Started {
            token: shell.token.clone(),
            boot: boot.clone(),
            corral: *corral,
            kind: record.kind,
            id: record.id.clone(),
            log: record.log.clone(),
            command: cut(command, COMMAND_BYTES).to_string(),
            shell: ProcId {
                pid: shell.pid,
                start: shell.start,
            },
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        self.append(&line)
    }

    /// Records that the command with `token` has ended: nothing of it runs any more.
    pub(super) fn ended(&self, token: &str) -> io::Result<()> {
        if me().is_none() {
            return Ok(());
        }
        self.append(&Line::End {
            token: token.to_string(),
        })
    }

    fn append(&self, line: &Line) -> io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(io::Error::other)?;
        text.push('\n');
        let Some(dir) = self.folder(true)? else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let lock = self.lock(&dir)?;
        if lock.is_some()
            && dir
                .metadata(JOURNAL_FILE)
                .is_ok_and(|m| m.len() > COMPACT_AT)
        {
            let kept = open_entries(&read_lines(&dir)?);
            rewrite(&dir, &kept)?;
        }
        let mut file = dir
            .open_with(
                JOURNAL_FILE,
                OpenOptions::new().create(true).append(true).read(true),
            )?
            .into_std();
        // A line torn by a corral killed mid-write must not swallow this one.
        if !ends_with_newline(&mut file)? {
            text.insert(0, '\n');
        }
        file.write_all(text.as_bytes())
    }

    /// Takes the lock, waiting at most [`LOCK_WAIT`]; `None` when it could not be had then.
    fn lock(&self, dir: &Dir) -> io::Result<Option<File>> {
        let file = dir
            .open_with(
                LOCK_FILE,
                OpenOptions::new().create(true).truncate(false).write(true),
            )?
            .into_std();
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            // SAFETY: flock on a descriptor we own; it touches no memory.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Some(file));
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    "{}: locked for more than {LOCK_WAIT:?}",
                    self.path().display()
                );
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Ends what corrals that are no longer running left: see the module doc. Returns each
    /// command found, oldest first, with how many of its processes it ended. The journal keeps
    /// only the entries of corrals still running. A missing journal is no leftover; one that
    /// cannot be read or rewritten is an error (nothing is killed then).
    pub fn recover(&self) -> io::Result<Vec<Leftover>> {
        let Some((_, boot)) = me() else {
            return Ok(Vec::new());
        };
        let Some(dir) = self.folder(false)? else {
            return Ok(Vec::new());
        };
        match dir.symlink_metadata(JOURNAL_FILE) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            _ => {}
        }
        let dead = {
            let Some(_lock) = self.lock(&dir)? else {
                return Ok(Vec::new());
            };
            let open = open_entries(&read_lines(&dir)?);
            let procs = procfs::all();
            let (alive, dead): (Vec<Started>, Vec<Started>) = open
                .into_iter()
                .partition(|e| e.boot == *boot && e.corral.alive(&procs));
            rewrite(&dir, &alive)?;
            dead
        };
        if dead.is_empty() {
            return Ok(Vec::new());
        }
        let targets: Vec<HashSet<i32>> = {
            let procs = procfs::all();
            let tokens = tokens_by_pid(&procs);
            dead.iter()
                .map(|e| {
                    if e.boot == *boot {
                        find(e, &procs, &tokens)
                    } else {
                        HashSet::new()
                    }
                })
                .collect()
        };
        end(&dead, &targets, boot);
        Ok(dead
            .into_iter()
            .zip(targets)
            .map(|(e, found)| Leftover {
                kind: e.kind,
                id: e.id,
                command: e.command,
                log: e.log,
                started_at: UNIX_EPOCH + Duration::from_secs(e.at),
                ended: found.len(),
            })
            .collect())
    }
}

/// SIGTERM to every process found, SIGKILL after [`RECOVERY_GRACE`] to what is left (and to
/// what the commands started meanwhile), then a short wait for them to be gone.
fn end(dead: &[Started], targets: &[HashSet<i32>], boot: &str) {
    let all: Vec<(i32, u64)> = {
        let procs = procfs::all();
        targets
            .iter()
            .flatten()
            .filter_map(|&pid| procs.iter().find(|p| p.pid == pid))
            .map(|p| (p.pid, p.start_ticks))
            .collect()
    };
    if all.is_empty() {
        return;
    }
    signal(&all, libc::SIGTERM);
    let living = |all: &[(i32, u64)]| -> Vec<(i32, u64)> {
        all.iter()
            .copied()
            .filter(|&(pid, start)| {
                procfs::stat(pid).is_some_and(|p| p.start_ticks == start && !p.is_zombie())
            })
            .collect()
    };
    let deadline = Instant::now() + RECOVERY_GRACE;
    while !living(&all).is_empty() && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    // What is left, and whatever the commands started during the grace.
    let procs = procfs::all();
    let tokens = tokens_by_pid(&procs);
    let mut rest = living(&all);
    for e in dead.iter().filter(|e| e.boot == boot) {
        for pid in find(e, &procs, &tokens) {
            if let Some(p) = procs.iter().find(|p| p.pid == pid)
                && !rest.iter().any(|&(r, _)| r == pid)
            {
                rest.push((p.pid, p.start_ticks));
            }
        }
    }
    signal(&rest, libc::SIGKILL);
    let deadline = Instant::now() + KILL_WAIT;
    while !living(&rest).is_empty() && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
}

/// Signals each process that is still the one recorded (same pid and start time).
fn signal(procs: &[(i32, u64)], signal: i32) {
    for &(pid, start) in procs {
        if procfs::stat(pid).is_some_and(|p| p.start_ticks == start) {
            // SAFETY: kill(2) touches no memory.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

/// The live processes of the dead command `e`: its shell if it still runs (same pid and start
/// time) and everything below it, and every process whose environment holds its token.
fn find(e: &Started, procs: &[ProcStat], tokens: &HashMap<i32, String>) -> HashSet<i32> {
    let mut found = HashSet::new();
    if e.shell.alive(procs) {
        found.insert(e.shell.pid);
        found.extend(procfs::descendants(e.shell.pid, procs));
    }
    for p in procs {
        if tokens.get(&p.pid) == Some(&e.token) && p.start_ticks >= e.shell.start {
            found.insert(p.pid);
            found.extend(procfs::descendants(p.pid, procs));
        }
    }
    // Never this process, what it runs in or what it runs (a corral started by a command of
    // the dead one carries its token too).
    let me = std::process::id() as i32;
    for pid in procfs::descendants(me, procs) {
        found.remove(&pid);
    }
    let mut up = me;
    while let Some(p) = procs.iter().find(|p| p.pid == up) {
        found.remove(&p.pid);
        if p.ppid <= 1 || p.ppid == up {
            break;
        }
        up = p.ppid;
    }
    found.retain(|pid| procs.iter().any(|p| p.pid == *pid && !p.is_zombie()));
    found
}

/// The [`TASK_ENV`] token of every process that has one and whose environment can be read
/// (this user's processes).
fn tokens_by_pid(procs: &[ProcStat]) -> HashMap<i32, String> {
    procs
        .iter()
        .filter_map(|p| Some((p.pid, procfs::environ_var(p.pid, TASK_ENV)?)))
        .collect()
}

/// The lines of the journal in `dir` (its last [`MAX_JOURNAL_BYTES`]); lines that do not
/// parse are skipped.
fn read_lines(dir: &Dir) -> io::Result<Vec<Line>> {
    let mut file = match dir.open(JOURNAL_FILE) {
        Ok(file) => file.into_std(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let skip = len.saturating_sub(MAX_JOURNAL_BYTES);
    file.seek(SeekFrom::Start(skip))?;
    let mut bytes = Vec::new();
    file.take(MAX_JOURNAL_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if skip > 0 && !lines.is_empty() {
        // The first line was cut by the window.
        lines.remove(0);
    }
    Ok(lines
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(line) => Some(line),
            Err(e) => {
                tracing::debug!("{JOURNAL_FILE}: a line skipped: {e}");
                None
            }
        })
        .collect())
}

/// The `start` entries without an `end`, in order.
fn open_entries(lines: &[Line]) -> Vec<Started> {
    let ended: HashSet<&str> = lines
        .iter()
        .filter_map(|l| match l {
            Line::End { token } => Some(token.as_str()),
            Line::Start(_) => None,
        })
        .collect();
    lines
        .iter()
        .filter_map(|l| match l {
            Line::Start(s) if !ended.contains(s.token.as_str()) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// Replaces the journal in `dir` with `entries` (a temp file renamed over it), or removes it
/// when there are none.
fn rewrite(dir: &Dir, entries: &[Started]) -> io::Result<()> {
    if entries.is_empty() {
        return match dir.remove_file(JOURNAL_FILE) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(&Line::Start(e.clone())).map_err(io::Error::other)?);
        text.push('\n');
    }
    // A leftover temporary file (or a symlink in its place) goes first: it is made new.
    match dir.remove_file(TMP_FILE) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    dir.open_with(TMP_FILE, OpenOptions::new().write(true).create_new(true))?
        .write_all(text.as_bytes())?;
    dir.rename(TMP_FILE, dir, JOURNAL_FILE)
}

fn ends_with_newline(file: &mut File) -> io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `start` line for `shell`, left by the corral `corral`.
    fn start(token: &str, corral: ProcId, shell: ProcId, command: &str) -> Line {
        Line::Start(Started {
            token: token.into(),
            boot: procfs::boot_id().expect("boot id"),
            corral,
            kind: TaskKind::Background,
            id: Some("abcd1234".into()),
            log: None,
            command: command.into(),
            shell,
            at: 0,
        })
    }

    fn folder(journal: &Journal) -> Dir {
        journal
            .folder(false)
            .expect("open")
            .expect("a tasks folder")
    }

    fn id_of(pid: u32) -> ProcId {
        let stat = procfs::stat(pid as i32).expect("stat");
        ProcId {
            pid: stat.pid,
            start: stat.start_ticks,
        }
    }

    /// A corral that is gone: a child that exited and was reaped.
    fn dead_corral() -> ProcId {
        let mut child = std::process::Command::new("sleep")
            .arg("0")
            .spawn()
            .expect("spawn");
        let id = id_of(child.id());
        child.wait().expect("wait");
        id
    }

    /// A line torn by a corral killed mid-write is skipped, and the next line still starts a
    /// line of its own; an `end` closes its `start`.
    #[test]
    fn a_torn_line_is_skipped_and_does_not_swallow_the_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::new(dir.path());
        let me = id_of(std::process::id());
        journal.append(&start("t1", me, me, "one")).expect("append");
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal.path())
            .and_then(|mut f| f.write_all(br#"{"event":"start","tok"#))
            .expect("tear");
        journal.append(&start("t2", me, me, "two")).expect("append");
        journal.ended("t1").expect("end");
        let open = open_entries(&read_lines(&folder(&journal)).expect("read"));
        let commands: Vec<&str> = open.iter().map(|e| e.command.as_str()).collect();
        assert_eq!(commands, ["two"]);
    }

    /// Starts `sleep 300` outside this process's tree (its shell exits at once), with `env`;
    /// returns its pid.
    fn orphan_sleep(env: &[(&str, &str)]) -> i32 {
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 300 >/dev/null 2>&1 & echo $!"])
            .envs(env.iter().copied())
            .output()
            .expect("sh");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pid")
    }

    fn running(pid: i32) -> bool {
        procfs::stat(pid).is_some_and(|p| !p.is_zombie())
    }

    /// A dead corral's command is ended by identity: its live shell (same pid and start time)
    /// and what carries its token are killed; an entry naming a live pid with another start
    /// time (a reused pid: here this very test) is not, and neither is the entry of a corral
    /// that still runs. The journal keeps only the live corral's entry.
    #[test]
    fn recover_ends_by_identity_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::new(dir.path());
        let dead = dead_corral();
        let me = id_of(std::process::id());
        let shell = orphan_sleep(&[]);
        let marked = orphan_sleep(&[(TASK_ENV, "t-marked")]);
        let reused = ProcId {
            start: me.start + 1,
            ..me
        };
        let nowhere = ProcId {
            pid: 4_000_000,
            start: 0,
        };
        let lines = [
            start("t-shell", dead, id_of(shell as u32), "the shell"),
            start("t-marked", dead, nowhere, "marked"),
            start("t-reused", dead, reused, "reused pid"),
            start("t-live", me, id_of(shell as u32), "a live corral's"),
        ];
        for line in &lines {
            journal.append(line).expect("append");
        }
        let leftovers = journal.recover().expect("recover");
        let ended: Vec<(&str, usize)> = leftovers
            .iter()
            .map(|l| (l.command.as_str(), l.ended))
            .collect();
        let (shell_left, marked_left) = (running(shell), running(marked));
        for pid in [shell, marked] {
            // SAFETY: ending what this test started, should it have survived.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert_eq!(ended, [("the shell", 1), ("marked", 1), ("reused pid", 0)]);
        assert!(!shell_left && !marked_left, "{shell_left} {marked_left}");
        let left = open_entries(&read_lines(&folder(&journal)).expect("read"));
        let commands: Vec<&str> = left.iter().map(|e| e.command.as_str()).collect();
        assert_eq!(commands, ["a live corral's"]);
    }

    #[test]
    fn commands_are_cut_at_a_character_boundary() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }
}
