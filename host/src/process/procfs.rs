//! What `/proc` says about processes: parent, group, session, state and start time, read from
//! `/proc/<pid>/stat`. Used to find every descendant of a task (wherever it moved its process
//! group or session), the orphans re-parented to corral, and whether a recorded pid is still the
//! process it was.
//!
//! Linux only; elsewhere nothing is found ([`all`] is empty, [`stat`] is `None`).

/// One process, as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// `R`, `S`, `D`, `Z` (a zombie, dead but not yet reaped), ...
    pub state: char,
    /// When it started, in clock ticks since boot: with the pid, it names one process for as
    /// long as the machine runs (a pid is reused; a pid and a start time are not).
    pub start_ticks: u64,
}

impl ProcStat {
    /// Dead, waiting to be reaped.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// The process `pid`, if it exists.
pub fn stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse(&text)
}

/// Parses one `stat` line. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted from the last `)`.
fn parse(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After the name: state (field 3), ppid, pgrp, session, ..., starttime (field 22).
    Some(ProcStat {
        pid,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
        session: rest.get(3)?.parse().ok()?,
        start_ticks: rest.get(19)?.parse().ok()?,
    })
}

/// Every process of the machine that can be read now. A process that ends while the list is
/// made is left out.
pub fn all() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// Every descendant of `root` in `procs` (children, their children, ...), `root` not included.
pub fn descendants(root: i32, procs: &[ProcStat]) -> Vec<i32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent && p.pid != root) {
            if !found.contains(&p.pid) {
                found.push(p.pid);
                frontier.push(p.pid);
            }
        }
    }
    found
}

/// The children of thread `tid` of process `pid` (`/proc/PID/task/TID/children`: those it
/// forked, and the orphans re-parented to it), or `None` where the kernel does not list them.
pub fn children(pid: i32, tid: i32) -> Option<Vec<i32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")).ok()?;
    text.split_whitespace().map(|p| p.parse().ok()).collect()
}

/// Whether thread `tid` of process `pid` is running (exists, and is neither a zombie nor dead).
pub fn thread_alive(pid: i32, tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
        .ok()
        .and_then(|text| parse(&text))
        .is_some_and(|stat| !matches!(stat.state, 'Z' | 'X' | 'x'))
}

/// The value of the environment variable `name` that process `pid` started with, if its
/// environment can be read (this user's processes) and holds it.
pub fn environ_var(pid: i32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

/// This machine's boot id: start times count from boot, so a journal entry from another boot
/// names no living process.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name with spaces and parentheses does not shift the fields.
    #[test]
    fn parses_a_tricky_name() {
        let line = "4242 (a) b (c) S 17 4242 17 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 \
                    200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse(line),
            Some(ProcStat {
                pid: 4242,
                ppid: 17,
                pgrp: 4242,
                session: 17,
                state: 'S',
                start_ticks: 987654,
            })
        );
    }

    /// This process is found, with its real parent, and its start time does not change.
    #[cfg(target_os = "linux")]
    #[test]
    fn finds_this_process() {
        let me = std::process::id() as i32;
        let mine = stat(me).expect("own stat");
        // SAFETY: getppid has no preconditions.
        assert_eq!(mine.ppid, unsafe { libc::getppid() });
        assert_eq!(stat(me).map(|s| s.start_ticks), Some(mine.start_ticks));
        assert!(all().iter().any(|p| p.pid == me));
        assert!(boot_id().is_some_and(|id| !id.is_empty()));
    }

    /// A child shows among the children of the thread that spawned it, and not once reaped;
    /// that thread is alive.
    #[cfg(target_os = "linux")]
    #[test]
    fn lists_the_children_of_a_thread() {
        let me = std::process::id() as i32;
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        let listed = children(me, tid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(listed.expect("children listed").contains(&pid));
        assert!(!children(me, tid).unwrap_or_default().contains(&pid));
        assert!(thread_alive(me, tid));
    }
}
