//! Talking to models: the provider-neutral conversation types, one file per wire protocol
//! ([`Anthropic`] Messages, [`OpenAi`] Chat Completions), the HTTP plumbing they share, SSE
//! framing, retries, and the tools and system prompt serialised once per agent (`fixed.rs`).
//!
//! A [`Provider`] makes one attempt at one model call; [`call`] wraps it with the retry policy.
//! The agent only ever sees [`Response`]s that are complete: a stream cut short is an error,
//! never half a message.

mod anthropic;
pub mod cache;
mod error;
mod fixed;
mod http;
pub mod models;
mod openai;
mod retry;
pub mod sse;
mod types;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use anthropic::{Anthropic, AnthropicConfig};
pub use error::LlmError;
pub use openai::{OpenAi, OpenAiConfig};
pub use retry::{RetryPolicy, parse_retry_after};
pub use types::{
    ContentBlock, Delta, Effort, Message, Request, Response, Role, StopReason, Thinking, ToolSpec,
    ToolUse, Usage,
};

// The providers' stream assemblers and answer parsers, for the fuzz targets (`crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) use anthropic::{fold_events as anthropic_events, parse_whole as anthropic_whole};
#[cfg(feature = "fuzzing")]
pub(crate) use openai::{fold_events as openai_events, parse_whole as openai_whole};

/// A boxed, sendable future, as the object-safe traits of this crate return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Receives the text and the thinking of an answer while it streams in.
pub type DeltaSink<'a> = &'a (dyn Fn(Delta<'_>) + Send + Sync);

/// A model provider's wire protocol.
///
/// Implementations turn a [`Request`] into one HTTP call and its answer into a complete
/// [`Response`], calling `on_delta` with each piece of assistant text and thinking as it arrives
/// (once each, whole, when not streaming). They do not retry: [`call`] does.
pub trait Provider: Send + Sync {
    /// A short lower-case name used in messages, e.g. `anthropic`.
    fn name(&self) -> &'static str;

    /// Makes one attempt at the call.
    fn send<'a>(
        &'a self,
        request: &'a Request<'a>,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<Response, LlmError>>;

    /// The provider's own count of `request`'s input tokens, where it has a counter
    /// (Anthropic's `count_tokens`); `Ok(None)` (the default) where it has none. One attempt,
    /// no retries: compaction asks it when its estimate says a request nears the window, and
    /// goes by the estimate when it fails.
    fn count_tokens<'a>(
        &'a self,
        request: &'a Request<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>, LlmError>> {
        let _ = request;
        Box::pin(async { Ok(None) })
    }
}

/// Calls the model, retrying retryable failures as `policy` says.
///
/// `on_retry(attempt, wait, error)` is called before each wait, so a caller can tell the user.
/// Returns the first success, the first final error, or [`LlmError::RetriesExhausted`].
pub async fn call(
    provider: &dyn Provider,
    policy: &RetryPolicy,
    request: &Request<'_>,
    on_delta: DeltaSink<'_>,
    on_retry: &(dyn Fn(u32, Duration, &LlmError) + Send + Sync),
) -> Result<Response, LlmError> {
    let mut attempt = 0;
    loop {
        match provider.send(request, on_delta).await {
            Ok(response) => return Ok(response),
            Err(error) if error.is_retryable() => {
                if attempt >= policy.max_retries {
                    return Err(LlmError::RetriesExhausted {
                        attempts: attempt + 1,
                        last: Box::new(error),
                    });
                }
                let wait = policy.delay(attempt, &error);
                tracing::warn!(%error, ?wait, attempt = attempt + 1, "model call failed; retrying");
                on_retry(attempt + 1, wait, &error);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}
