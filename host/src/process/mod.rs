//! Running shell commands: one way of spawning a process group, shared by the bash tool and the
//! background manager; the bounded output buffer both use; containment, so nothing a command
//! starts outlives it; the task journal, so nothing a dead corral left outlives the next start;
//! and what `/proc` says about processes.

mod group;
pub mod journal;
mod launch;
mod output;
pub mod procfs;
mod reaper;

pub use group::{
    Canceller, FAR_OFF, GroupChild, OutputSink, RunEnd, WaitOutcome, describe_status, group_alive,
    kill_group, spawn_shell,
};
pub use launch::{
    CommandEnv, Launch, PROVIDER_VARS, SECRET_WORDS, Sandboxing, is_secret, shell_path,
};
pub use output::{HeadTail, tail_lines};
pub use reaper::{SWEEP_DEADLINE, TASK_ENV, adopt_orphans, adopting, kill_all_groups, sweep};
