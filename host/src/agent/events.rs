//! What an agent reports while it works. The CLI renders these; an embedding program can
//! observe them too. `--json` prints them as JSON lines.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::background::TaskEvent;
use crate::llm::{StopReason, Usage};

/// One thing that happened. Serialised with a `type` tag, e.g. `{"type":"text_delta",...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The session file in use; `resumed` when an earlier session was loaded.
    SessionStarted {
        session_id: String,
        path: String,
        resumed: bool,
    },
    /// A model call is about to be made (turn counts from 1 within one prompt).
    ModelRequest { turn: u32 },
    /// A piece of the assistant's text, as it streams in.
    TextDelta { text: String },
    /// A piece of the model's thinking, as it streams in; the first of a thinking block may be
    /// empty (the API may send a signature and no text). Kept in the history, never shown as
    /// the answer.
    ThinkingDelta { text: String },
    /// A model call failed and will be retried after `wait_ms`.
    Retrying {
        attempt: u32,
        /// The most retries this call gets.
        max_retries: u32,
        wait_ms: u64,
        /// The failure in a few words (`connection refused`, `529 overloaded_error`).
        error: String,
    },
    /// The model's answer is complete.
    TurnFinished {
        turn: u32,
        stop_reason: StopReason,
        usage: Usage,
    },
    /// A tool call starts.
    ToolCallStarted {
        id: String,
        name: String,
        input: Value,
    },
    /// A tool call ended; `output` is what the model receives.
    ToolCallFinished {
        id: String,
        name: String,
        is_error: bool,
        output: String,
        duration_ms: u64,
    },
    /// A background task started.
    BackgroundStarted { task_id: String, command: String },
    /// A background task ended; its result is queued for the model's next call.
    BackgroundFinished {
        task_id: String,
        command: String,
        status: String,
        exit_code: Option<i32>,
        runtime_ms: u64,
    },
    /// Background results were handed to the model (`count` notifications in one block).
    BackgroundDelivered { count: usize },
    /// The model ended its turn while background tasks run; corral waits for the next to end.
    WaitingForBackground { running: usize },
    /// A plugin wrote a log line through corral's `host.log` import.
    PluginLog {
        plugin: String,
        level: crate::plugins::LogLevel,
        message: String,
    },
    /// The older part of the conversation was replaced by a summary the model wrote
    /// ([`crate::agent::compaction`]); `reason` is `threshold`, `prompt_too_long` or
    /// `requested`.
    Compacted(crate::agent::Compacted),
    /// Something the user should know that does not stop the run: a cut-off last line of the
    /// resumed session file was dropped, commands left running by a corral that died were
    /// ended. The CLI prints it on stderr in every mode.
    Warning { message: String },
    /// The prompt is done: the model ended its turn.
    Finished { text: String, usage: Usage },
}

/// Where events go. Called from the agent's task, possibly from concurrent tool calls; keep it
/// quick.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// A sink that drops every event.
pub fn ignore_events() -> EventSink {
    Arc::new(|_| {})
}

impl From<TaskEvent> for Event {
    fn from(event: TaskEvent) -> Self {
        match event {
            TaskEvent::Started { task_id, command } => {
                Event::BackgroundStarted { task_id, command }
            }
            TaskEvent::Finished(n) => Event::BackgroundFinished {
                exit_code: n.status.exit_code(),
                status: n.status.to_string(),
                runtime_ms: u64::try_from(n.runtime.as_millis()).unwrap_or(u64::MAX),
                task_id: n.task_id,
                command: n.command,
            },
        }
    }
}
