//! Running shell commands: one way of spawning a process group, shared by the bash tool and the
//! background manager, and the bounded output buffer both use.

mod group;
mod output;

pub use group::{
    Canceller, CommandEnv, GroupChild, OutputSink, RunEnd, WaitOutcome, describe_status,
    group_alive, kill_all_groups, kill_group, spawn_shell,
};
pub use output::{HeadTail, tail_lines};
