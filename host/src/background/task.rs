//! One background task: its record, and what is known of it while it runs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::output::TaskOutput;

/// A task id: 8 hex characters from a uuid.
pub type TaskId = String;

/// Where a task is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskStatus {
    Running,
    /// The command exited by itself with this code (zero or not).
    Completed {
        exit_code: i32,
    },
    /// The command was ended by a signal corral did not send.
    Signalled {
        signal: i32,
    },
    /// The command could not be started.
    FailedToStart {
        error: String,
    },
    /// The task passed its timeout; its process group was killed.
    TimedOut {
        after_secs: u64,
    },
    /// corral killed the task: `kill_background`, the output cap, or corral's exit.
    Killed {
        reason: String,
    },
}

impl TaskStatus {
    pub fn is_running(&self) -> bool {
        matches!(self, TaskStatus::Running)
    }

    /// The exit code, when the command exited by itself.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            TaskStatus::Completed { exit_code } => Some(*exit_code),
            _ => None,
        }
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskStatus::Running => write!(f, "running"),
            TaskStatus::Completed { exit_code } => write!(f, "completed (exit code {exit_code})"),
            TaskStatus::Signalled { signal } => write!(f, "ended by signal {signal}"),
            TaskStatus::FailedToStart { error } => write!(f, "failed to start: {error}"),
            TaskStatus::TimedOut { after_secs } => write!(f, "timed out after {after_secs} s"),
            TaskStatus::Killed { reason } => write!(f, "killed ({reason})"),
        }
    }
}

/// The shared record of one task: written by its thread, read by the tools.
#[derive(Debug)]
pub struct Task {
    pub id: TaskId,
    pub command: String,
    pub log_path: PathBuf,
    /// The log path as the model sees it (workspace-relative).
    pub log_display: String,
    pub started_at: SystemTime,
    pub started: Instant,
    pub timeout: Option<Duration>,
    pub output: Arc<Mutex<TaskOutput>>,
    pub state: Mutex<TaskState>,
}

/// The mutable part of a task.
#[derive(Debug)]
pub struct TaskState {
    pub status: TaskStatus,
    pub ended: Option<Instant>,
    /// Log bytes already shown by a `check_background` with this id.
    pub checked_up_to: u64,
    /// Why corral asked the task to end, when it did.
    pub kill_reason: Option<String>,
    /// Ends the run (SIGTERM, then SIGKILL after a grace period), once the command is spawned.
    pub canceller: Option<crate::process::Canceller>,
    /// The task's process group, once the command is spawned.
    pub pgid: Option<i32>,
}

impl Task {
    pub fn status(&self) -> TaskStatus {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .status
            .clone()
    }

    /// How long it ran, or has been running.
    pub fn runtime(&self) -> Duration {
        let ended = self.state.lock().ok().and_then(|s| s.ended);
        ended.unwrap_or_else(Instant::now) - self.started
    }
}

/// A duration as the model reads it: `850 ms`, `2.0 s`, `3 min 4 s`.
pub fn format_runtime(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", d.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
