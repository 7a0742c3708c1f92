//! A busy loop pinned to one core, for the "one core busy" figures of the benchmarks.
//!
//! Started and stopped by the benchmark itself (the "loaded" case): a thread spins on
//! [`BUSY_CORE`] (pinned there with `sched_setaffinity`, so it cannot wander onto the core the
//! measured work runs on and back), until the [`Busy`] is dropped. Shared by the host's and the
//! end-to-end benchmarks (`#[path]`-included, not a bench target of its own).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The core the busy loop is pinned to: the last one, so core 0 stays for the work.
pub fn busy_core() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
}

/// The spinning thread; it stops and is joined when this is dropped.
pub struct Busy {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Busy {
    /// Starts a thread that spins on [`busy_core`] until dropped. When the pinning fails (a
    /// one-core machine, a restricted cpuset), the loop spins unpinned and says so on stderr.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let core = busy_core();
        let thread = std::thread::spawn(move || {
            // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it; pid 0 is
            // the calling thread.
            let pinned = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(core, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
            };
            if !pinned {
                eprintln!("busy loop: could not pin to core {core}; spinning unpinned");
            }
            let mut x = 0u64;
            while !flag.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The load average line, for the figures' record.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}
