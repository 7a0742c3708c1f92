//! Background tasks: slow commands that run while the agent keeps thinking.
//!
//! The model starts a task with `background_run`; the [`BackgroundManager`] runs it as a native
//! subprocess (its own process group) supervised by its own thread. When the task ends, one
//! [`Notification`] goes onto the lock-guarded [`NotificationQueue`]. The agent loop drains the
//! queue before every model call and hands the results to the model in one
//! `<background-results>` block. The manager knows nothing of the agent: it only fills the queue.
//!
//! Output goes whole to `<workspace>/.corral/tasks/<id>.log` (up to a cap) and is kept in memory
//! only as a bounded head and tail.

mod manager;
mod output;
mod queue;
mod task;

pub use manager::{BackgroundConfig, BackgroundError, BackgroundManager, MAX_TIMEOUT, TaskEvent};
pub use output::{HEAD_BYTES, TAIL_BYTES, TaskOutput};
pub use queue::{Notification, NotificationQueue, is_block, render_block};
pub use task::{Task, TaskId, TaskStatus, format_runtime};
