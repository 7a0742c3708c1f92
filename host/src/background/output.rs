//! A task's output: the whole of it in the log file (up to a cap), a bounded head and tail in
//! memory.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::process::{HeadTail, OutputSink};

/// Bytes of the start of the output kept in memory.
pub const HEAD_BYTES: usize = 16 * 1024;
/// Bytes of the end of the output kept in memory.
pub const TAIL_BYTES: usize = 64 * 1024;

/// What a task has printed.
#[derive(Debug)]
pub struct TaskOutput {
    pub buffer: HeadTail,
    log: Option<File>,
    log_cap: u64,
    /// Bytes written to the log.
    pub logged: u64,
    /// The log cap was reached and the task killed for it.
    pub cap_hit: bool,
    /// Writing the log failed; the error, once.
    pub log_error: Option<String>,
}

impl TaskOutput {
    /// An empty record; the log is attached when the task's thread has created it.
    pub fn new(log_cap: u64) -> Self {
        Self {
            buffer: HeadTail::new(HEAD_BYTES, TAIL_BYTES),
            log: None,
            log_cap,
            logged: 0,
            cap_hit: false,
            log_error: None,
        }
    }

    /// Where the output is written from now on.
    pub fn attach_log(&mut self, log: File) {
        self.log = Some(log);
    }

    /// Takes a piece of output; `false` once the log cap is reached.
    fn push(&mut self, bytes: &[u8]) -> bool {
        self.buffer.push(bytes);
        let room = self.log_cap.saturating_sub(self.logged);
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        if let Some(log) = &mut self.log {
            if let Err(e) = log.write_all(&bytes[..take]) {
                self.log_error = Some(e.to_string());
                self.log = None;
            } else {
                self.logged += take as u64;
            }
        }
        if take < bytes.len() {
            self.cap_hit = true;
            return false;
        }
        true
    }
}

/// The [`OutputSink`] of a task, shared with its record.
pub struct SharedOutput(pub Arc<Mutex<TaskOutput>>);

impl OutputSink for SharedOutput {
    fn write(&mut self, bytes: &[u8]) -> bool {
        self.0
            .lock()
            .map(|mut out| out.push(bytes))
            .unwrap_or(false)
    }
}
