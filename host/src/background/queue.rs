//! The notification queue: filled by task threads when tasks end, drained by the agent loop
//! before every model call.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::task::{TaskId, TaskStatus};

/// What the model is told when a task ends. Exactly one per task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub task_id: TaskId,
    pub command: String,
    pub status: TaskStatus,
    pub runtime: Duration,
    /// The end of the output, about 2,000 characters, whole lines.
    pub tail: String,
    /// Bytes of output in all.
    pub output_bytes: u64,
    /// The log file, workspace-relative, for `read_file`.
    pub log: String,
}

impl Notification {
    /// The notification as one entry of a `<background-results>` block.
    pub fn render(&self) -> String {
        let mut text = format!(
            "[bg:{}] {} after {}: {}\nlog: {} ({} bytes of output)",
            self.task_id,
            self.status,
            super::task::format_runtime(self.runtime),
            self.command,
            self.log,
            self.output_bytes,
        );
        if self.tail.is_empty() {
            text.push_str("\n(no output)");
        } else {
            text.push('\n');
            text.push_str(&self.tail);
        }
        text
    }
}

/// Renders drained notifications as the one text block the model receives.
pub fn render_block(notifications: &[Notification]) -> String {
    let entries: Vec<String> = notifications.iter().map(Notification::render).collect();
    format!(
        "<background-results>\n{}\n</background-results>",
        entries.join("\n\n")
    )
}

/// Whether `text` is a block [`render_block`] wrote.
pub fn is_block(text: &str) -> bool {
    text.starts_with("<background-results>\n") && text.ends_with("</background-results>")
}

/// A lock-guarded queue with a wake-up for waiters.
#[derive(Debug, Default)]
pub struct NotificationQueue {
    pending: Mutex<VecDeque<Notification>>,
    wake: tokio::sync::Notify,
}

impl NotificationQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a notification; wakes a waiter. Called from task threads.
    pub fn push(&self, notification: Notification) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.push_back(notification);
        }
        self.wake.notify_one();
    }

    /// Takes every pending notification, oldest first.
    pub fn drain(&self) -> Vec<Notification> {
        self.pending
            .lock()
            .map(|mut p| p.drain(..).collect())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.lock().map(|p| p.is_empty()).unwrap_or(true)
    }

    /// Waits until a notification is pending or `timeout` passes; `true` if one is pending. A
    /// `timeout` too far off to be an instant (`--wait-timeout` near `u64::MAX`) waits without
    /// a deadline.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        loop {
            let notified = self.wake.notified();
            if !self.is_empty() {
                return true;
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return !self.is_empty();
                    }
                }
                None => notified.await,
            }
        }
    }
}
