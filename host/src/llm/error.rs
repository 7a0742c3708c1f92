//! What can go wrong talking to a model, and whether trying again may help.

use std::time::Duration;

/// An error from a model provider.
///
/// Returned by [`super::Provider::send`] for one attempt and by [`super::call`] once retries are
/// spent. None of these are shown to the model: they end the run (exit code 1) with the history
/// kept, so `corral run --continue` can pick it up.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The API answered with an error status. `message` is the API's own error text.
    #[error("{provider} API error {status} ({kind}): {message}")]
    Api {
        provider: &'static str,
        status: u16,
        kind: String,
        message: String,
        /// The server's `retry-after`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The request never got an HTTP answer (connection refused, reset, timed out).
    #[error("could not reach {provider} at {url}: {message}")]
    Transport {
        provider: &'static str,
        url: String,
        message: String,
    },
    /// A streamed answer ended before the message was complete. Nothing of it is kept.
    #[error("the {provider} stream ended before the message was complete: {message}")]
    StreamIncomplete {
        provider: &'static str,
        message: String,
    },
    /// The answer could not be understood (malformed JSON, an event out of order).
    #[error("malformed {provider} response: {message}")]
    Protocol {
        provider: &'static str,
        message: String,
    },
    /// corral is not set up to call this provider (no API key, a bad base URL).
    #[error("{0}")]
    Config(String),
    /// Every attempt failed with a retryable error; `last` is the final one.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: Box<LlmError> },
}

/// The most of an API's error message a retry line shows.
pub const BRIEF_MESSAGE_CHARS: usize = 60;

impl LlmError {
    /// The failure in a few words, for a line per retry: `Connection refused (os error 111)`,
    /// `529 overloaded_error: Overloaded` (the API's message cut at [`BRIEF_MESSAGE_CHARS`]).
    pub fn brief(&self) -> String {
        match self {
            Self::Api {
                status,
                kind,
                message,
                ..
            } => {
                let cut: String = message.chars().take(BRIEF_MESSAGE_CHARS).collect();
                let more = if cut.len() < message.len() { "…" } else { "" };
                format!("{status} {kind}: {cut}{more}")
            }
            Self::Transport { message, .. } => message.clone(),
            Self::StreamIncomplete { .. } => "the answer was cut off".into(),
            Self::RetriesExhausted { last, .. } => last.brief(),
            other => other.to_string(),
        }
    }

    /// Whether the same request may succeed if sent again: rate limits (429), overload (529),
    /// server errors (5xx), request timeouts (408), conflicts (409), lost connections and cut
    /// streams. A 4xx that says the request itself is wrong is final.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Api { status, kind, .. } => {
                matches!(status, 408 | 409 | 429)
                    || *status >= 500
                    || kind == "overloaded_error"
                    || kind == "rate_limit_error"
            }
            LlmError::Transport { .. } | LlmError::StreamIncomplete { .. } => true,
            LlmError::Protocol { .. } | LlmError::Config(_) | LlmError::RetriesExhausted { .. } => {
                false
            }
        }
    }

    /// Whether the server refused the request for being longer than the model's context: the
    /// Anthropic API's 400 `invalid_request_error` "prompt is too long: N tokens > M maximum"
    /// (or "input length and `max_tokens` exceed context limit"), an OpenAI-compatible
    /// server's `context_length_exceeded` or "maximum context length", llama-server's
    /// `exceed_context_size_error` ("the request exceeds the available context size"). The
    /// agent compacts the conversation once and tries again ([`crate::agent::compaction`]).
    pub fn is_prompt_too_long(&self) -> bool {
        match self {
            LlmError::Api {
                status: 400 | 413,
                kind,
                message,
                ..
            } => {
                let message = message.to_ascii_lowercase();
                kind == "context_length_exceeded"
                    || kind == "exceed_context_size_error"
                    || message.contains("prompt is too long")
                    || message.contains("maximum context length")
                    || message.contains("context_length_exceeded")
                    || message.contains("exceed context limit")
                    || message.contains("exceeds the available context size")
            }
            LlmError::RetriesExhausted { last, .. } => last.is_prompt_too_long(),
            _ => false,
        }
    }

    /// How long the server asked us to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
