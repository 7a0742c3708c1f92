//! The agent loop: keep the history, call the model, run the tools it asks for, repeat until it
//! ends its turn.
//!
//! The loop is single-threaded: one task owns the history. The independent tool calls of one
//! answer run concurrently within that task, calls on the same resource (one file) one after
//! another in the model's order ([`dispatch`]), and their results go back in the order the
//! model asked for them.

mod builder;
pub mod compaction;
mod dispatch;
mod error;
mod events;
pub mod history;
pub mod instructions;
mod prompt;
mod restart;
mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use builder::AgentBuilder;
pub use compaction::Compacted;
pub use error::AgentError;
pub use events::{Event, EventSink, ignore_events};
pub use history::History;
pub use session::{SessionChoice, SessionError, SessionLog, SessionSummary, list as list_sessions};

use crate::background::{self, BackgroundManager};
use crate::config::AgentConfig;
use crate::llm::{self, ContentBlock, Message, Provider, Request, StopReason, ToolSpec, Usage};
use crate::tools::ToolRegistry;
use crate::workspace::Workspace;

/// What one prompt came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The text of the model's last answer.
    pub text: String,
    /// Why the model stopped the last time.
    pub stop_reason: StopReason,
    /// Tokens spent on this prompt.
    pub usage: Usage,
    /// Model calls made for this prompt.
    pub turns: u32,
}

/// An agent: a model, tools, a workspace, and a conversation that persists in a session file.
///
/// Built with [`Agent::builder`]; fed prompts with [`Agent::prompt`]; observed through the
/// [`EventSink`] given to the builder.
pub struct Agent {
    config: AgentConfig,
    workspace: Arc<Workspace>,
    provider: Arc<dyn Provider>,
    tools: ToolRegistry,
    specs: Vec<ToolSpec>,
    system: String,
    history: History,
    session: SessionLog,
    events: EventSink,
    background: Option<Arc<BackgroundManager>>,
    /// The `input_tokens` the last answer reported and the bytes of the request it answered,
    /// for the size estimate ([`compaction`]); `None` after a compaction and at the start.
    last_sent: Option<(u64, u64)>,
    /// `<background-results>` blocks of a turn taken back out of the history (failed,
    /// stopped, undone): the model is given them again with the next call, since the queue
    /// they came from has let them go.
    undelivered: Vec<ContentBlock>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("workspace", &self.workspace.root())
            .field("provider", &self.provider.name())
            .field("model", &self.config.model)
            .field("tools", &self.tools)
            .field("session", &self.session.id())
            .finish()
    }
}

impl Agent {
    /// Starts building an agent for the workspace at `workspace`.
    pub fn builder(workspace: impl Into<std::path::PathBuf>) -> AgentBuilder {
        AgentBuilder::new(workspace.into())
    }

    /// The conversation so far.
    pub fn history(&self) -> &[Message] {
        self.history.messages()
    }

    /// The session id (the session file's name without `.jsonl`).
    pub fn session_id(&self) -> &str {
        self.session.id()
    }

    /// The session file.
    pub fn session_path(&self) -> &std::path::Path {
        self.session.path()
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Ends a turn the user stopped (its [`prompt`](Self::prompt) future was dropped): every
    /// tool call the model asked for and did not get an answer to gets `(cancelled by the
    /// user)`, and the turn is closed as a failed one is, so the history stays valid and the
    /// next prompt starts a turn of its own (a prompt stopped before any model call answered
    /// is taken back out). Commands still running for those calls were ended when their
    /// futures were dropped; background tasks run on.
    pub fn cancel_turn(&mut self) -> Result<(), AgentError> {
        let owed: Vec<ContentBlock> = self
            .history
            .unanswered_tool_uses(|_| Some(crate::tools::CANCELLED.to_string()));
        if !owed.is_empty() {
            self.add_user(owed)?;
        }
        self.close_turn("stopped by the user")
    }

    /// Switches the model for the next calls (`/model` in chat). The conversation goes on.
    pub fn set_model(&mut self, model: impl Into<String>) {
        self.config.model = model.into();
    }

    /// Starts a new session (`/clear` in chat): an empty history in a new session file; the
    /// old file stays on disk. Background tasks keep running; their results go to the new
    /// conversation.
    pub fn new_session(&mut self) -> Result<(), AgentError> {
        let dir = self
            .workspace
            .state_dir()
            .join(crate::workspace::SESSIONS_DIR);
        self.session = SessionLog::create(&dir, &self.config.model)?;
        self.history = History::new();
        self.last_sent = None;
        (self.events)(&Event::SessionStarted {
            session_id: self.session.id().to_string(),
            path: self.session.path().display().to_string(),
            resumed: false,
        });
        Ok(())
    }

    /// The background manager, when the shell tools are enabled.
    pub fn background(&self) -> Option<&Arc<BackgroundManager>> {
        self.background.as_ref()
    }

    /// Ends every background task still running (SIGTERM, then SIGKILL). Dropping the agent
    /// does the same; call this to do it at a known time, e.g. before exiting.
    pub fn shutdown(&self) {
        if let Some(manager) = &self.background {
            manager.kill_all("corral exited");
        }
    }

    /// Gives the model `text` and runs until it ends its turn.
    ///
    /// Fails when the model cannot be called (after retries), when `max_turns` model calls pass
    /// without an end, or when the session file cannot be written. The history up to the
    /// failure is kept, in memory and on disk, and the failure is marked in the session file;
    /// the next prompt starts a user turn of its own: a prompt whose first model call failed is
    /// taken back out of the history (the session file keeps it, marked), and a turn that
    /// failed later is closed by a note from corral in the assistant's place.
    ///
    /// Before each model call the conversation is compacted when it nears the context window,
    /// and once more, with the call made again, when the server says the prompt is too long
    /// ([`compaction`]).
    pub async fn prompt(&mut self, text: &str) -> Result<Outcome, AgentError> {
        let change = self.history.begin_turn();
        self.session.record(&change)?;
        self.add_user(vec![ContentBlock::text(text)])?;
        match self.run_turn().await {
            Ok(outcome) => Ok(outcome),
            Err(error) => {
                if !matches!(error, AgentError::Session(_))
                    && let Err(also) = self.close_turn(&error.to_string())
                {
                    tracing::warn!(%also, "could not mark the failed turn in the session file");
                }
                Err(error)
            }
        }
    }

    /// Takes the last user turn back (`/undo` in chat): the prompt and everything after it
    /// leave the history, and the session file records it (the transcript keeps them).
    /// Returns the number of messages the history shrank by (0 when the prompt was part of a
    /// message kept), or `None` when there is no turn to undo: none yet, or the last one began
    /// before a compaction.
    pub fn undo(&mut self) -> Result<Option<usize>, AgentError> {
        let Some(mark) = self.history.last_turn() else {
            return Ok(None);
        };
        let before = self.history.messages().len();
        self.take_back(mark, "undo")?;
        Ok(Some(before - self.history.messages().len()))
    }

    async fn run_turn(&mut self) -> Result<Outcome, AgentError> {
        let mut usage = Usage::default();
        let mut turn = 0;
        let mut waited = Duration::ZERO;
        loop {
            if turn >= self.config.max_turns {
                return Err(AgentError::MaxTurns {
                    max_turns: self.config.max_turns,
                });
            }
            turn += 1;
            let response = self.answer(turn, &mut usage).await?;
            usage += response.usage;
            self.session.record_usage(response.usage)?;
            (self.events)(&Event::TurnFinished {
                turn,
                stop_reason: response.stop_reason.clone(),
                usage: response.usage,
            });
            let text = Message {
                role: llm::Role::Assistant,
                content: response.content.clone(),
            }
            .text();
            if let Some(change) = self.history.add_assistant(response.content) {
                self.session.record(&change)?;
            }
            let results = self.run_tools().await;
            if results.is_empty() {
                match self.wait_for_background(&mut waited).await {
                    Waited::Results => continue,
                    Waited::Nothing => {}
                    Waited::TimedOut { running } => {
                        return Err(AgentError::WaitTimedOut { running, waited });
                    }
                }
                (self.events)(&Event::Finished {
                    text: text.clone(),
                    usage,
                });
                return Ok(Outcome {
                    text,
                    stop_reason: response.stop_reason,
                    usage,
                    turns: turn,
                });
            }
            self.add_user(results)?;
        }
    }

    /// The model's answer to the history as it is: background results delivered, the
    /// conversation compacted first when due, and compacted once more and asked again when the
    /// server says the prompt is too long. Summarising calls add their tokens to `usage`.
    async fn answer(&mut self, turn: u32, usage: &mut Usage) -> Result<llm::Response, AgentError> {
        self.deliver_background()?;
        self.compact_if_due(usage).await?;
        match self.call_model(turn).await {
            Err(AgentError::Llm(error)) if error.is_prompt_too_long() => {
                match self
                    .compact_for(compaction::Reason::PromptTooLong, usage)
                    .await
                {
                    Ok(Some(_)) => self.call_model(turn).await,
                    Ok(None) | Err(AgentError::Llm(_)) => Err(AgentError::Llm(error)),
                    Err(other) => Err(other),
                }
            }
            other => other,
        }
    }

    /// Ends a turn that failed or was stopped (`why`) so the next prompt starts one of its own
    /// (see [`Self::prompt`]).
    fn close_turn(&mut self, why: &str) -> Result<(), AgentError> {
        self.session.record_failure(why)?;
        if self
            .history
            .last()
            .is_none_or(|m| m.role != llm::Role::User)
        {
            return Ok(());
        }
        let unanswered = self
            .history
            .last_turn()
            .filter(|mark| mark.message + 1 == self.history.messages().len());
        if let Some(mark) = unanswered {
            self.take_back(mark, "failed")?;
            (self.events)(&Event::Warning {
                message: "the prompt was taken back out of the conversation (no model call of \
                          it succeeded); send it again to retry"
                    .into(),
            });
            return Ok(());
        }
        let note = ContentBlock::text(format!(
            "(corral: this turn stopped here, before the model ended it: {why})"
        ));
        if let Some(change) = self.history.add_assistant(vec![note]) {
            self.session.record(&change)?;
        }
        Ok(())
    }

    /// Truncates the history to `mark` for `reason` (recorded in the session file), keeping
    /// the background results among what leaves for the next call.
    fn take_back(&mut self, mark: history::Mark, reason: &str) -> Result<(), AgentError> {
        let carried: Vec<ContentBlock> = self
            .history
            .blocks_from(mark)
            .filter(
                |block| matches!(block, ContentBlock::Text { text } if background::is_block(text)),
            )
            .cloned()
            .collect();
        self.history.truncate(mark);
        self.session.record_truncate(mark, reason)?;
        self.last_sent = None;
        self.undelivered.extend(carried);
        Ok(())
    }

    fn add_user(&mut self, blocks: Vec<ContentBlock>) -> Result<(), AgentError> {
        let change = self.history.add_user(blocks);
        self.session.record(&change)?;
        Ok(())
    }

    /// Called when the model ended its turn. Returns `true` when there are background results
    /// to give it: pending already, or arriving while corral waits for running tasks (those with
    /// a timeout; servers started without one do not hold corral). `waited` is the time spent
    /// waiting so far in this prompt, bounded by `wait_timeout`.
    async fn wait_for_background(&self, waited: &mut Duration) -> Waited {
        let Some(manager) = &self.background else {
            return Waited::Nothing;
        };
        if !manager.queue().is_empty() {
            return Waited::Results;
        }
        if !self.config.wait_for_background {
            return Waited::Nothing;
        }
        let running = manager
            .running()
            .iter()
            .filter(|t| t.timeout.is_some())
            .count();
        if running == 0 {
            return Waited::Nothing;
        }
        if *waited >= self.config.wait_timeout {
            return Waited::TimedOut { running };
        }
        (self.events)(&Event::WaitingForBackground { running });
        let started = Instant::now();
        let arrived = manager
            .queue()
            .wait(self.config.wait_timeout - *waited)
            .await;
        *waited += started.elapsed();
        if arrived {
            Waited::Results
        } else {
            Waited::TimedOut { running }
        }
    }

    /// Hands every pending background result to the model: one `<background-results>` text
    /// block, after the tool results of the user message being sent, or as a new user message.
    fn deliver_background(&mut self) -> Result<(), AgentError> {
        let Some(manager) = &self.background else {
            return Ok(());
        };
        let notifications = manager.queue().drain();
        let mut blocks = std::mem::take(&mut self.undelivered);
        if !notifications.is_empty() {
            blocks.push(ContentBlock::text(background::render_block(&notifications)));
            (self.events)(&Event::BackgroundDelivered {
                count: notifications.len(),
            });
        }
        if blocks.is_empty() {
            return Ok(());
        }
        self.add_user(blocks)
    }

    async fn call_model(&mut self, turn: u32) -> Result<llm::Response, AgentError> {
        history::check_request(self.history.messages()).map_err(AgentError::Invariant)?;
        (self.events)(&Event::ModelRequest { turn });
        let request = Request {
            model: &self.config.model,
            max_tokens: self.next_max_tokens(),
            thinking: self.config.thinking,
            effort: self.config.effort,
            cache: self.config.cache,
            system: &self.system,
            tools: &self.specs,
            messages: self.history.messages(),
        };
        let events = self.events.clone();
        let on_delta = move |delta: llm::Delta<'_>| {
            events(&match delta {
                llm::Delta::Text(text) => Event::TextDelta {
                    text: text.to_string(),
                },
                llm::Delta::Thinking(text) => Event::ThinkingDelta {
                    text: text.to_string(),
                },
            })
        };
        let events = self.events.clone();
        let max_retries = self.config.retry.max_retries;
        let on_retry = move |attempt: u32, wait: Duration, error: &llm::LlmError| {
            events(&Event::Retrying {
                attempt,
                max_retries,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error: error.brief(),
            })
        };
        let bytes = self.request_bytes();
        let response = llm::call(
            self.provider.as_ref(),
            &self.config.retry,
            &request,
            &on_delta,
            &on_retry,
        )
        .await?;
        self.last_sent = Some((response.usage.input_tokens, bytes));
        Ok(response)
    }

    /// Runs the tool calls of the last answer, at once except calls with the same resource key,
    /// which run one after another in order ([`dispatch::run_ordered`]); returns their
    /// results in the order of the calls.
    async fn run_tools(&self) -> Vec<ContentBlock> {
        let Some(last) = self
            .history
            .last()
            .filter(|m| m.role == llm::Role::Assistant)
        else {
            return Vec::new();
        };
        let calls = last.tool_uses().map(|call| {
            let key = self.tools.resource_key(call.name, call.input);
            let (id, name, input) = (
                call.id.to_string(),
                call.name.to_string(),
                call.input.clone(),
            );
            let events = self.events.clone();
            let run = async move {
                events(&Event::ToolCallStarted {
                    id: id.clone(),
                    name: name.clone(),
                    input: input.clone(),
                });
                let started = Instant::now();
                let result = self.tools.call(&name, input).await;
                let (content, is_error) = match result {
                    Ok(text) => (text, false),
                    Err(error) => (error.to_string(), true),
                };
                events(&Event::ToolCallFinished {
                    id: id.clone(),
                    name,
                    is_error,
                    output: content.clone(),
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
                ContentBlock::ToolResult {
                    tool_use_id: id,
                    content,
                    is_error,
                }
            };
            (key, run)
        });
        dispatch::run_ordered(calls.collect()).await
    }
}

/// What waiting for background tasks came to.
enum Waited {
    /// Results are there for the model.
    Results,
    /// Nothing to wait for.
    Nothing,
    /// `wait_timeout` passed with `running` tasks still running.
    TimedOut { running: usize },
}
