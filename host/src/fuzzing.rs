//! Entry points for the fuzz targets in `fuzz/` (built only with the `fuzzing` feature, hidden
//! from the docs, not a stable API).
//!
//! Each function is a thin way into a parser that is private to its module, doing exactly what
//! corral does with the input it is given; nothing here is used by corral itself. The public
//! parsers (SSE framing, grant patterns, settings files, the schema check, the session file)
//! are fuzzed through their own public API and need no entry point here.

use serde_json::Value;

use crate::llm::sse::SseEvent;
use crate::llm::{DeltaSink, LlmError, Response};

/// The Anthropic stream assembler: the response `events` make when read as a streamed
/// Messages answer, to `message_stop`, or why they do not make one.
pub fn anthropic_stream(
    events: &[SseEvent],
    on_delta: DeltaSink<'_>,
) -> Result<Response, LlmError> {
    crate::llm::anthropic_events(events, on_delta)
}

/// The Anthropic answer parser: a whole (non-streamed) Messages answer.
pub fn anthropic_message(value: &Value) -> Result<Response, LlmError> {
    crate::llm::anthropic_whole(value)
}

/// The OpenAI stream assembler: the response `events` make when read as a streamed Chat
/// Completions answer, to `data: [DONE]` or the end of the list, or why they do not make one.
pub fn openai_stream(events: &[SseEvent], on_delta: DeltaSink<'_>) -> Result<Response, LlmError> {
    crate::llm::openai_events(events, on_delta)
}

/// The OpenAI answer parser: a whole (non-streamed) Chat Completions answer.
pub fn openai_completion(value: &Value) -> Result<Response, LlmError> {
    crate::llm::openai_whole(value)
}
