//! Benchmarks of background tasks, each against its floor (the same work done by the bare std
//! library) in the same run. Run with `cargo bench -p corral --bench background`; the numbers and
//! what they mean are in BENCHMARKS.md.
//!
//! 1. **200 tasks of `true`.** Time from the first `BackgroundManager::start("true", None)` to
//!    the moment the 200th notification is in the queue, against 200 `sh -c true` spawned with
//!    `std::process::Command` from 200 std threads started at once and joined. Rounds alternate
//!    corral and floor (and which goes first); one warm-up round of each is discarded; the
//!    median, min and max of the rest are printed, and the ratio of the medians.
//!
//!    **1b. Breakdown** (where part 1's time goes): the same 200 `sh -c true` with corral's
//!    layers added one at a time (one spawning thread, corral's spawn settings, corral's process
//!    layer on a thread per task, the manager), and the per-task extras on their own (threads,
//!    log files). Wall time and CPU time (this process, and its children) for each.
//! 2. **Peak RSS while 16 tasks each print 1 GiB.** In a child process (this binary re-executed
//!    with `--rss-child`, so part 1 does not pollute its high-water mark): 16 tasks
//!    `head -c 1073741824 /dev/zero` with the log cap raised to 2 GiB (the default 64 MiB cap
//!    would kill them at 64 MiB), all 16 notifications awaited, then `VmHWM` from
//!    `/proc/self/status`, next to the `VmHWM` before the first task started.
//!
//! Arguments other than `--bench` select benchmarks by name: `spawn_200`, `breakdown`,
//! `peak_rss` (`cargo bench -p corral --bench background -- peak_rss`). Environment knobs: `CORRAL_BENCH_ROUNDS` (measured rounds of part 1, default 7),
//! `CORRAL_BENCH_ROWS` (only these rows of the breakdown, by letter: `a,d,d2`, for a profiler),
//! `CORRAL_BENCH_TASK_BYTES` (bytes each task of part 2 prints, default 1 GiB; 256 MiB is used
//! when the temp dir has less than 20 GiB free, and the output says so).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use corral::Workspace;
use corral::background::{BackgroundConfig, BackgroundManager, TaskStatus};

const TASKS: usize = 200;
const WARMUP_ROUNDS: usize = 1;
const DEFAULT_ROUNDS: usize = 7;
const BREAKDOWN_ROUNDS: usize = 5;

const RSS_TASKS: usize = 16;
const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;
const RSS_CHILD_FLAG: &str = "--rss-child";

/// Every temp dir part 1 creates, removed only when the benchmarks end. On ext4, creating a file
/// scans past the inodes freed in the last minutes (`recently_deleted`), so removing a round's
/// 200 logs would slow the next round's `File::create`s: the benchmark would be measuring its
/// own clean-up.
static SCRATCH: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

/// A fresh empty directory, kept until [`remove_scratch`].
fn scratch_dir() -> Result<std::path::PathBuf> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    SCRATCH
        .lock()
        .map_err(|_| anyhow::anyhow!("scratch lock poisoned"))?
        .push(dir);
    Ok(path)
}

fn remove_scratch() -> Result<()> {
    let dirs = std::mem::take(
        &mut *SCRATCH
            .lock()
            .map_err(|_| anyhow::anyhow!("scratch lock poisoned"))?,
    );
    for dir in dirs {
        dir.close()?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == RSS_CHILD_FLAG) {
        let bytes = args
            .get(i + 1)
            .context("--rss-child needs a byte count")?
            .parse()?;
        return rss_child(bytes);
    }
    // `cargo bench` passes `--bench`; any other argument is a filter on the benchmarks' names.
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    // As `corral run` and `chat` do: orphans of commands come to this process, and a command's
    // end is checked against them (not against all of `/proc`).
    corral::process::adopt_orphans()?;
    let rounds = env_number("CORRAL_BENCH_ROUNDS")?.map_or(DEFAULT_ROUNDS, |n| n as usize);
    ensure!(rounds > 0, "CORRAL_BENCH_ROUNDS must be at least 1");

    println!("corral background benchmarks");
    println!(
        "machine: {} cores, {}; load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_average()
    );
    let part1 = (|| {
        if wanted("spawn_200") {
            println!();
            spawn_200(rounds)?;
        }
        if wanted("breakdown") {
            println!();
            breakdown(BREAKDOWN_ROUNDS)?;
        }
        Ok::<_, anyhow::Error>(())
    })();
    // Statics are never dropped: remove the temp dirs whether part 1 succeeded or not.
    remove_scratch()?;
    part1?;
    if wanted("peak_rss") {
        println!();
        peak_rss()?;
    }
    println!();
    println!("load average at the end: {}", load_average());
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// 1. 200 tasks of `true`

fn spawn_200(rounds: usize) -> Result<()> {
    println!(
        "[1] {TASKS} tasks of `true`: first start() to the {TASKS}th notification queued \
         ({WARMUP_ROUNDS} warm-up + {rounds} measured rounds each, alternating)"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let mut corral_times = Vec::new();
    let mut start_times = Vec::new();
    let mut floor_times = Vec::new();
    for round in 0..WARMUP_ROUNDS + rounds {
        let warmup = round < WARMUP_ROUNDS;
        // Alternate which side goes first, so neither always runs on a machine the other has
        // just warmed (or left busy reaping).
        let order: [bool; 2] = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut line = format!(
            "  round {}{}:",
            round + 1,
            if warmup { " (warm-up)" } else { "" }
        );
        for corral_side in order {
            if corral_side {
                let (elapsed, starts) = corral_round(&runtime)?;
                line.push_str(&format!(
                    "  corral {} (starts returned at {})",
                    ms(elapsed),
                    ms(starts)
                ));
                if !warmup {
                    corral_times.push(elapsed);
                    start_times.push(starts);
                }
            } else {
                let elapsed = floor_round()?;
                line.push_str(&format!("  floor {}", ms(elapsed)));
                if !warmup {
                    floor_times.push(elapsed);
                }
            }
        }
        println!("{line}");
    }
    let corral = Stats::of(&corral_times);
    let floor = Stats::of(&floor_times);
    println!("  corral (BackgroundManager):     {corral}");
    println!(
        "    of which the 200 start() calls: {}",
        Stats::of(&start_times)
    );
    println!("  floor  (std threads + Command): {floor}");
    println!(
        "  ratio of medians corral/floor: {:.2}x (goal: at most 1.30x)",
        corral.median.as_secs_f64() / floor.median.as_secs_f64()
    );
    Ok(())
}

/// Where the time of part 1 goes: the same 200 `sh -c true`, with corral's layers added one at
/// a time, and the costs corral adds per task on their own. Rounds rotate the order.
fn breakdown(rounds: usize) -> Result<()> {
    println!(
        "[1b] breakdown of [1]: {TASKS} `sh -c true`, one layer at a time ({rounds} rounds each, \
         order rotated; median, min-max)"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let dir = scratch_dir()?;
    let unconfined = corral::process::Launch::unconfined();
    let sandboxed = sandboxed_launch(&dir)?;
    type Variant<'a> = (&'a str, Box<dyn Fn() -> Result<Duration> + 'a>);
    let mut variants: Vec<Variant> = vec![
        (
            "a. floor: a std thread per task, each Command::status()",
            Box::new(floor_round),
        ),
        (
            "b. std, one thread spawns all, then waits each",
            Box::new(|| sequential_std_round(&dir, false)),
        ),
        (
            "c. b + corral's spawn settings (own group, stdin null, output to a pipe, cwd)",
            Box::new(|| sequential_std_round(&dir, true)),
        ),
        (
            "d. corral::process: spawn_shell + GroupChild::run on a thread per task",
            Box::new(|| process_layer_round(&dir, &unconfined)),
        ),
        (
            "e. corral BackgroundManager (d + task record, log file, id, notification)",
            Box::new(|| corral_round(&runtime).map(|(elapsed, _)| elapsed)),
        ),
        (
            "   200 empty std threads, spawned then joined (1 per task)",
            Box::new(|| threads_round(TASKS)),
        ),
        (
            "   200 task ids + log files created (uuid v4 + File::create)",
            Box::new(log_files_round),
        ),
    ];
    match &sandboxed {
        Some(launch) => {
            variants.push((
                "d2. d in the shell sandbox (a fork of the zygote: PID namespace, caps, Landlock, seccomp, exec sh)",
                Box::new(|| process_layer_round(&dir, launch)),
            ));
            variants.push((
                "e2. e in the shell sandbox",
                Box::new(|| corral_round_with(&runtime, launch).map(|(elapsed, _)| elapsed)),
            ));
        }
        None => println!("  (no Landlock here: the sandboxed rows are skipped)"),
    }
    if let Ok(rows) = std::env::var("CORRAL_BENCH_ROWS") {
        // For a profiler: only the rows named by their letters (`a,d,d2`).
        let keep: Vec<&str> = rows.split(',').map(str::trim).collect();
        variants.retain(|(name, _)| {
            name.split_once('.')
                .is_some_and(|(row, _)| keep.contains(&row.trim()))
        });
        ensure!(
            !variants.is_empty(),
            "CORRAL_BENCH_ROWS={rows} names no row"
        );
    }
    // Per variant: wall time, CPU time of this process (all its threads), CPU time of its
    // children (the shells). CPU time is less disturbed by a busy machine than wall time.
    let mut times: Vec<[Vec<Duration>; 3]> = vec![Default::default(); variants.len()];
    for round in 0..WARMUP_ROUNDS + rounds {
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            let before = cpu_times();
            let elapsed = (variants[i].1)()?;
            let after = cpu_times();
            if round >= WARMUP_ROUNDS {
                times[i][0].push(elapsed);
                times[i][1].push(after.0.saturating_sub(before.0));
                times[i][2].push(after.1.saturating_sub(before.1));
            }
        }
    }
    println!(
        "  {:<82} {:>9} {:>19}  {:>9} {:>9}",
        "", "wall", "(min-max)", "CPU self", "children"
    );
    for ((name, _), [wall, own, children]) in variants.iter().zip(&times) {
        let wall = Stats::of(wall);
        println!(
            "  {name:<82} {:>9} {:>19}  {:>9} {:>9}",
            ms(wall.median),
            format!("({}-{})", ms(wall.min), ms(wall.max)),
            ms(Stats::of(own).median),
            ms(Stats::of(children).median),
        );
    }
    Ok(())
}

/// 200 `sh -c true` spawned one after the other from this thread, then waited in order: the
/// floor without a thread per task. With `corral_settings`, the `Command` is set up as
/// `corral::process::spawn_shell` sets it up.
fn sequential_std_round(cwd: &Path, corral_settings: bool) -> Result<Duration> {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut children = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("true");
        let mut pipe = None;
        if corral_settings {
            let (reader, writer) = std::io::pipe()?;
            cmd.current_dir(cwd)
                .stdin(Stdio::null())
                .stdout(writer.try_clone()?)
                .stderr(writer)
                .process_group(0);
            pipe = Some(reader);
        }
        children.push((cmd.spawn()?, pipe));
    }
    for (mut child, pipe) in children {
        let status = child.wait()?;
        ensure!(status.success(), "sh -c true: {status}");
        if let Some(mut pipe) = pipe {
            std::io::Read::read_to_end(&mut pipe, &mut Vec::new())?;
        }
    }
    Ok(started.elapsed())
}

/// corral's process layer without the manager: a std thread per task, each running
/// `corral::process::spawn_shell("true")` and supervising it with `GroupChild::run` (one `poll`
/// for the output, the exit, the deadline and a cancel).
fn process_layer_round(cwd: &Path, launch: &corral::process::Launch) -> Result<Duration> {
    struct Discard;
    impl corral::process::OutputSink for Discard {
        fn write(&mut self, _: &[u8]) -> bool {
            true
        }
    }
    let started = Instant::now();
    let threads: Vec<_> = (0..TASKS)
        .map(|_| {
            let cwd = cwd.to_path_buf();
            let launch = launch.clone();
            std::thread::spawn(move || -> Result<()> {
                let child = corral::process::spawn_shell("true", &cwd, &launch, None)?;
                let end = child.run(
                    None,
                    Duration::from_secs(2),
                    Duration::from_secs(2),
                    Discard,
                );
                match end.outcome? {
                    corral::process::WaitOutcome::Exited(status) if status.success() => Ok(()),
                    other => bail!("sh -c true: {other:?}"),
                }
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a thread panicked"))??;
    }
    Ok(started.elapsed())
}

fn threads_round(n: usize) -> Result<Duration> {
    let started = Instant::now();
    let threads: Vec<_> = (0..n).map(|_| std::thread::spawn(|| {})).collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a thread panicked"))?;
    }
    Ok(started.elapsed())
}

fn log_files_round() -> Result<Duration> {
    let logs = scratch_dir()?;
    let started = Instant::now();
    for _ in 0..TASKS {
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        std::fs::create_dir_all(&logs)?;
        std::fs::File::create(logs.join(format!("{id}.log")))?;
    }
    Ok(started.elapsed())
}

/// 200 `start("true", None)` on a fresh manager; returns when the 200th notification is in the
/// queue. The waiting is `NotificationQueue::wait` on a current-thread runtime, so the
/// measuring thread sleeps instead of spinning on two cores.
fn corral_round(runtime: &tokio::runtime::Runtime) -> Result<(Duration, Duration)> {
    corral_round_with(runtime, &corral::process::Launch::unconfined())
}

/// The shell sandbox as `corral run` applies it by default (`sandbox = "workspace"`, network
/// off), with the small helper of this build (`corral-sandbox`); `None` without Landlock.
fn sandboxed_launch(workspace: &Path) -> Result<Option<corral::process::Launch>> {
    let settings = corral::sandbox::SandboxSettings {
        helper: Some(PathBuf::from(env!("CARGO_BIN_EXE_corral-sandbox"))),
        ..Default::default()
    };
    Ok(
        corral::sandbox::Confinement::new(&settings, workspace)?.map(|confinement| {
            corral::process::Launch {
                sandbox: corral::process::Sandboxing::On(Arc::new(confinement)),
                ..Default::default()
            }
        }),
    )
}

fn corral_round_with(
    runtime: &tokio::runtime::Runtime,
    launch: &corral::process::Launch,
) -> Result<(Duration, Duration)> {
    let dir = scratch_dir()?;
    let manager = BackgroundManager::new(
        Arc::new(Workspace::open(&dir)?),
        BackgroundConfig {
            max_tasks: 256,
            launch: launch.clone(),
            ..Default::default()
        },
        |_| {},
    );
    let started = Instant::now();
    for _ in 0..TASKS {
        manager.start("true", None)?;
    }
    let starts_returned = started.elapsed();
    let queue = manager.queue();
    let mut notifications = Vec::with_capacity(TASKS);
    let elapsed = runtime.block_on(async {
        while notifications.len() < TASKS {
            if !queue.wait(Duration::from_secs(60)).await {
                bail!(
                    "only {} of {TASKS} notifications after 60 s",
                    notifications.len()
                );
            }
            notifications.extend(queue.drain());
        }
        Ok(started.elapsed())
    })?;
    // Not a speed check: a round whose tasks failed would measure nothing.
    ensure!(
        notifications.len() == TASKS,
        "more notifications than tasks"
    );
    for n in &notifications {
        ensure!(
            n.status == TaskStatus::Completed { exit_code: 0 },
            "task {} ended {}",
            n.task_id,
            n.status
        );
    }
    drop(manager);
    Ok((elapsed, starts_returned))
}

/// The floor: the same 200 spawn-and-wait of `sh -c true`, one std thread each, all started at
/// once, joined.
fn floor_round() -> Result<Duration> {
    let started = Instant::now();
    let threads: Vec<_> = (0..TASKS)
        .map(|_| {
            std::thread::spawn(|| {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg("true")
                    .status()
            })
        })
        .collect();
    for thread in threads {
        let status = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a floor thread panicked"))??;
        ensure!(status.success(), "sh -c true: {status}");
    }
    Ok(started.elapsed())
}

// ------------------------------------------------------------------------------------------------
// 2. Peak RSS while 16 tasks each print 1 GiB

fn peak_rss() -> Result<()> {
    let mut bytes = env_number("CORRAL_BENCH_TASK_BYTES")?.unwrap_or(GIB);
    let tmp = std::env::temp_dir();
    let free = free_bytes(&tmp)?;
    let mut note = String::new();
    if bytes * RSS_TASKS as u64 > free.saturating_sub(4 * GIB) {
        note = format!(
            " (only {} MiB free in {}: tasks print 256 MiB instead)",
            free / MIB,
            tmp.display()
        );
        bytes = bytes.min(256 * MIB);
    }
    println!(
        "[2] peak RSS while {RSS_TASKS} tasks each print {} MiB (`head -c {bytes} /dev/zero`, \
         log cap raised to 2 GiB; the default 64 MiB cap would kill them){note}",
        bytes / MIB
    );
    let out = Command::new(std::env::current_exe()?)
        .arg(RSS_CHILD_FLAG)
        .arg(bytes.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the RSS child failed ({}): {stdout}",
        out.status
    );
    let field = |name: &str| -> Result<f64> {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name} in the child's output: {stdout}"))?
            .parse::<f64>()
            .with_context(|| format!("bad {name} in: {stdout}"))
    };
    let baseline = field("baseline_kib")?;
    let peak = field("peak_kib")?;
    let secs = field("secs")?;
    let total = bytes as f64 * RSS_TASKS as f64;
    println!(
        "  VmHWM before the first task: {:.1} MiB",
        baseline / 1024.0
    );
    println!(
        "  VmHWM after all {RSS_TASKS} ended:   {:.1} MiB (goal: below 64 MiB); growth {:.1} MiB",
        peak / 1024.0,
        (peak - baseline) / 1024.0
    );
    println!(
        "  {:.1} GiB of output in {secs:.1} s ({:.0} MiB/s through corral into the logs)",
        total / GIB as f64,
        total / MIB as f64 / secs
    );
    Ok(())
}

/// The child of part 2: a fresh process, so its high-water mark is this benchmark's alone.
/// Prints one line the parent parses.
fn rss_child(bytes: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let manager = BackgroundManager::new(
        Arc::new(Workspace::open(dir.path())?),
        BackgroundConfig {
            max_tasks: RSS_TASKS,
            log_cap: 2 * GIB,
            ..Default::default()
        },
        |_| {},
    );
    let baseline = vm_kib("VmHWM")?;
    let started = Instant::now();
    let command = format!("head -c {bytes} /dev/zero");
    for _ in 0..RSS_TASKS {
        manager.start(&command, None)?;
    }
    let queue = manager.queue();
    let mut notifications = Vec::with_capacity(RSS_TASKS);
    runtime.block_on(async {
        while notifications.len() < RSS_TASKS {
            if !queue.wait(Duration::from_secs(600)).await {
                bail!("only {} notifications after 600 s", notifications.len());
            }
            notifications.extend(queue.drain());
        }
        Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    let peak = vm_kib("VmHWM")?;
    for n in &notifications {
        ensure!(
            n.status == TaskStatus::Completed { exit_code: 0 } && n.output_bytes == bytes,
            "task {} ended {} after {} bytes of output",
            n.task_id,
            n.status,
            n.output_bytes
        );
    }
    for task in manager.tasks() {
        let logged = std::fs::metadata(&task.log_path)?.len();
        ensure!(
            logged == bytes,
            "{} holds {logged} bytes",
            task.log_path.display()
        );
    }
    drop(manager);
    dir.close()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "baseline_kib={baseline} peak_kib={peak} secs={secs:.3}"
    )?;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Helpers

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

impl Stats {
    fn of(times: &[Duration]) -> Self {
        let mut sorted = times.to_vec();
        sorted.sort();
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        };
        Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {}  min {}  max {}",
            ms(self.median),
            ms(self.min),
            ms(self.max)
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// CPU time (user + system) of this process, and of its waited-for children, so far.
fn cpu_times() -> (Duration, Duration) {
    let get = |who| {
        // SAFETY: getrusage only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut usage) } != 0 {
            return Duration::ZERO;
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(usage.ru_utime) + tv(usage.ru_stime)
    };
    (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN))
}

fn env_number(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v.parse().with_context(|| format!("{name}={v}"))?)),
        Err(_) => Ok(None),
    }
}

/// A `Vm*` line of /proc/self/status, in KiB.
fn vm_kib(key: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .with_context(|| format!("no {key} in /proc/self/status"))?
        .parse()
        .with_context(|| format!("bad {key} in /proc/self/status"))
}

/// The 1, 5 and 15 minute load averages: how busy the machine was around the run.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn free_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statvfs only writes the struct it is given; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}
