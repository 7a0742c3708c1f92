//! Host CPU per turn over a scripted 100-turn session: the real `corral` binary against the
//! seed's Python loop (`bench/seed_loop.py`), against the same scripted Anthropic server, in
//! one run; with the machine otherwise idle and with one core busy (a spin loop pinned there,
//! started and stopped by this bench).
//!
//! The model reads a 5000-byte file 99 times, then answers (the prompt-cache bench's session):
//! each turn adds about 5.6 kB, so the last request is about 560 kB. Each program runs as a
//! child process; when a request reaches the server (after its body is read, while the
//! program waits for the answer), the server reads the child's CPU time so far (the sum of
//! `/proc/PID/task/*/schedstat`, on-CPU nanoseconds of every thread). A turn's host CPU is the
//! difference between two requests: reading the answer, running the tool, writing the session,
//! building and sending the next request. Start-up is the CPU before the first request; the
//! whole run's user + system time comes from `wait4`'s `rusage` (getrusage of the child).
//!
//! The release build: `cargo build --release -p corral && cargo bench -p corral-tests --bench
//! turn_cpu`. `CORRAL_BENCH_ROUNDS` (default 3) sessions of each program per load, alternating
//! which goes first; each turn's figure is its median over the rounds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../../host/benches/support/busy.rs"]
mod busy;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_tests::{Corral, Reply, ScriptedServer, Turn, tool_use};
use serde_json::json;

/// Requests in one session: 99 `read_file` calls and the final answer.
const TURNS: usize = 100;
/// The turns whose figures are compared for flatness: a window around turn 10 and the last 10.
const EARLY: std::ops::RangeInclusive<usize> = 6..=15;
const LATE: std::ops::RangeInclusive<usize> = 91..=100;

/// On-CPU nanoseconds of every live thread of `pid`.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The child's CPU at each request's arrival.
#[derive(Default)]
struct Sampler {
    pid: AtomicU32,
    at_request: Mutex<Vec<u64>>,
}

impl Sampler {
    fn sample(&self) {
        let mut pid = self.pid.load(Ordering::SeqCst);
        while pid == 0 {
            std::thread::sleep(Duration::from_micros(50));
            pid = self.pid.load(Ordering::SeqCst);
        }
        let ns = cpu_ns(pid);
        self.at_request.lock().unwrap().push(ns);
    }
}

/// The script: 99 reads of `a.txt`, then an answer; every reply samples the child first.
fn script(sampler: &Arc<Sampler>) -> Vec<Reply> {
    (0..TURNS)
        .map(|i| {
            let sampler = sampler.clone();
            Reply::dynamic(move |_| {
                sampler.sample();
                if i + 1 < TURNS {
                    Turn::tools(vec![tool_use(
                        &format!("r{i}"),
                        "read_file",
                        json!({"path": "a.txt"}),
                    )])
                    .into()
                } else {
                    Turn::text("read it 99 times").into()
                }
            })
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Program {
    Corral,
    Seed,
}

/// One session's figures, in nanoseconds.
struct Session {
    /// CPU before the first request.
    startup: u64,
    /// `turn[k]`: the CPU between request k and request k + 1 (k from 1), i.e. turn k + 1.
    turns: Vec<u64>,
    /// user + system of the whole process (`wait4`).
    rusage_total: u64,
}

fn seed_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/seed_loop.py")
}

fn session(program: Program) -> Session {
    let corral = Corral::new();
    let line = format!("{}\n", "x".repeat(99));
    corral.write("a.txt", &line.repeat(50));
    let sampler = Arc::new(Sampler::default());
    let server = ScriptedServer::start(script(&sampler));
    let prompt = "read a.txt again and again";
    let mut cmd: Command = match program {
        Program::Corral => match std::env::var_os("CORRAL_BENCH_PERF") {
            // A profile of corral's sessions instead (the figures are then perf's, not corral's).
            Some(out) => {
                let mut cmd = corral.command_for(Path::new("/usr/bin/perf"), Some(&server));
                cmd.args([
                    "record",
                    "-q",
                    "-F",
                    "4000",
                    "--call-graph",
                    "dwarf,16384",
                    "-o",
                ])
                .arg(out)
                .arg("--")
                .arg(Corral::bin())
                .args(["run", "--max-turns", "200", prompt]);
                cmd
            }
            None => {
                let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
                cmd.args(["run", "--max-turns", "200", prompt]);
                cmd
            }
        },
        Program::Seed => {
            let mut cmd = corral.command_for(Path::new("python3"), Some(&server));
            cmd.arg(seed_script()).arg(prompt);
            cmd
        }
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // Reaped by the wait4 below, which gives its rusage as `Child::wait` cannot.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn");
    let pid = child.id();
    sampler.pid.store(pid, Ordering::SeqCst);
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it and reaps our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid as i32, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the session failed (status {status}); violations: {:?}",
        server.violations()
    );
    server.assert_clean();
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    let samples = sampler.at_request.lock().unwrap().clone();
    assert_eq!(samples.len(), TURNS);
    Session {
        startup: samples[0],
        turns: samples
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .collect(),
        rusage_total: tv(usage.ru_utime) + tv(usage.ru_stime),
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Turn `n`'s figure (n from 2) over the sessions: its median.
fn turn(sessions: &[Session], n: usize) -> u64 {
    median(sessions.iter().map(|s| s.turns[n - 2]).collect())
}

fn window(sessions: &[Session], range: std::ops::RangeInclusive<usize>) -> u64 {
    median(range.map(|n| turn(sessions, n)).collect())
}

fn us(ns: u64) -> String {
    format!("{:.0} µs", ns as f64 / 1e3)
}

fn report(when: &str, corral: &[Session], seed: &[Session]) {
    println!("\n## {when} ({} sessions of each)", corral.len());
    println!("| turn | corral CPU | seed (Python) CPU | seed / corral |");
    println!("| --- | --- | --- | --- |");
    for n in [2, 10, 25, 50, 75, 100] {
        let (c, s) = (turn(corral, n), turn(seed, n));
        println!(
            "| {n} | {} | {} | {:.1}x |",
            us(c),
            us(s),
            s as f64 / c as f64
        );
    }
    let all = 2..=TURNS;
    let (c, s) = (window(corral, all.clone()), window(seed, all));
    println!(
        "| median of turns 2-100 | **{}** | **{}** | **{:.1}x** |",
        us(c),
        us(s),
        s as f64 / c as f64
    );
    let flat = |x: &[Session]| window(x, LATE) as f64 / window(x, EARLY) as f64;
    println!(
        "flatness (median of turns 91-100 / median of turns 6-15): corral {:.2}, seed {:.2}",
        flat(corral),
        flat(seed)
    );
    let per_turn = |x: &[Session]| {
        median(
            x.iter()
                .map(|s| (s.rusage_total - s.startup) / (TURNS as u64 - 1))
                .collect(),
        )
    };
    println!(
        "start-up (CPU to the first request): corral {}, seed {}; whole run by rusage, start-up \
         subtracted, per turn: corral {}, seed {} ({:.1}x)",
        us(median(corral.iter().map(|s| s.startup).collect())),
        us(median(seed.iter().map(|s| s.startup).collect())),
        us(per_turn(corral)),
        us(per_turn(seed)),
        per_turn(seed) as f64 / per_turn(corral) as f64
    );
}

fn main() {
    let rounds: usize = std::env::var("CORRAL_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!("load average at start: {}", busy::loadavg());
    for loaded in [false, true] {
        let _busy = loaded.then(busy::Busy::start);
        let (mut corral, mut seed) = (Vec::new(), Vec::new());
        for round in 0..=rounds {
            let order = if round % 2 == 0 {
                [Program::Corral, Program::Seed]
            } else {
                [Program::Seed, Program::Corral]
            };
            for program in order {
                let s = session(program);
                // Round 0 warms the page cache and the server; it is not counted.
                if round == 0 {
                    continue;
                }
                match program {
                    Program::Corral => corral.push(s),
                    Program::Seed => seed.push(s),
                }
            }
        }
        let when = if loaded {
            format!(
                "one core busy (a spin loop pinned to core {})",
                busy::busy_core()
            )
        } else {
            "machine otherwise idle".to_string()
        };
        report(&when, &corral, &seed);
        println!("load average now: {}", busy::loadavg());
    }
}
