//! Errors that end a run. The model never sees these; tool failures are not among them (they
//! go back to the model as `is_error` results).

use super::session::SessionError;
use crate::llm::LlmError;

/// Why a prompt could not be carried to the end. The history so far is kept in memory and in the
/// session file; `corral run --continue` resumes it.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The model could not be called (after retries), or its answer was unusable.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The prompt used its `max_turns` model calls without the model ending its turn.
    #[error(
        "stopped after {max_turns} model calls without the model ending its turn (raise it with --max-turns)"
    )]
    MaxTurns { max_turns: u32 },
    /// The session file could not be written or read.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The agent is not set up correctly (a workspace that does not exist, two tools with one
    /// name).
    #[error("{0}")]
    Config(String),
    /// `wait_timeout` passed while background tasks the model waits for still ran (they are
    /// stopped with the run).
    #[error(
        "gave up waiting for {running} background task(s) after {} s (raise it with --wait-timeout)",
        waited.as_secs()
    )]
    WaitTimedOut {
        running: usize,
        waited: std::time::Duration,
    },
    /// A request that would break the API's rules was about to be sent: a bug in corral.
    #[error("internal error: {0}")]
    Invariant(String),
}

impl AgentError {
    /// Whether the user, rather than the run, is at fault: exit code 2 instead of 1.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AgentError::Config(_)
                | AgentError::Llm(LlmError::Config(_))
                | AgentError::Session(
                    SessionError::NotFound(_)
                        | SessionError::NoneYet
                        | SessionError::Ambiguous { .. }
                )
        )
    }
}
