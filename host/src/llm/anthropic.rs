//! The Anthropic Messages API: `POST {base}/v1/messages`, plain JSON or server-sent events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::fixed::FixedPart;
use super::http::{Endpoint, emit_whole};
use super::models::{self, ThinkingSupport};
use super::{
    BoxFuture, ContentBlock, Delta, DeltaSink, LlmError, Provider, Request, Response, StopReason,
    Thinking, ToolSpec, Usage,
};

const PROVIDER: &str = "anthropic";
/// The API version corral speaks.
pub const API_VERSION: &str = "2023-06-01";
/// The endpoint used when `ANTHROPIC_BASE_URL` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// How to reach the Anthropic API.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// Base URL without `/v1/messages`, e.g. `https://api.anthropic.com`.
    pub base_url: String,
    pub api_key: String,
    /// Ask for a streamed answer (`"stream": true`).
    pub stream: bool,
    /// Longest silence tolerated while reading an answer.
    pub read_timeout: Duration,
}

impl AnthropicConfig {
    /// The error a call would fail with for want of a key, if the key is missing: for a
    /// program to say so before it starts anything.
    pub fn missing_key(&self) -> Option<LlmError> {
        self.api_key.is_empty().then(|| {
            LlmError::Config(
                "ANTHROPIC_API_KEY is not set: export it, or point ANTHROPIC_BASE_URL at a \
                 compatible endpoint and set a key it accepts"
                    .into(),
            )
        })
    }

    /// Reads `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` the way the official SDKs do.
    /// A missing key is an error only when a call is made, so `corral plugins` works without one.
    pub fn from_env() -> Self {
        Self {
            base_url: std::env::var("ANTHROPIC_BASE_URL")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            api_key: std::env::var("ANTHROPIC_API_KEY").unwrap_or_default(),
            stream: true,
            read_timeout: Duration::from_secs(600),
        }
    }
}

/// The Anthropic provider.
#[derive(Debug, Clone)]
pub struct Anthropic {
    config: AnthropicConfig,
    endpoint: Endpoint,
    /// `POST /v1/messages/count_tokens`: the API's own count of a request's input tokens.
    count_endpoint: Endpoint,
    /// The tools and system prompt, serialised once ([`super::fixed`]).
    fixed: Arc<FixedPart>,
    /// The size of the last body sent: the next one's buffer starts there.
    last_body: Arc<AtomicUsize>,
}

/// Room for a turn's growth beyond the last body's size in a new body's first buffer.
const BODY_HEADROOM: usize = 64 * 1024;

impl Anthropic {
    /// Builds the provider; fails only when the HTTP client cannot be built.
    pub fn new(config: AnthropicConfig) -> Result<Self, LlmError> {
        // The SDKs take the base without `/v1`; a base given with it (as OpenAI's are) would
        // make `/v1/v1/messages`.
        let base = config.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let url = format!("{base}/v1/messages");
        let endpoint = Endpoint::new(PROVIDER, url, config.read_timeout)?;
        let count_url = format!("{base}/v1/messages/count_tokens");
        let count_endpoint = Endpoint::new(PROVIDER, count_url, config.read_timeout)?;
        Ok(Self {
            config,
            endpoint,
            count_endpoint,
            fixed: Arc::default(),
            last_body: Arc::default(),
        })
    }

    async fn send_once(
        &self,
        request: &Request<'_>,
        on_delta: DeltaSink<'_>,
    ) -> Result<Response, LlmError> {
        if let Some(missing) = self.config.missing_key() {
            return Err(missing);
        }
        let fixed = self.fixed.get(
            request.system,
            request.tools,
            u8::from(request.cache),
            || fixed_part(request.system, request.tools, request.cache),
        );
        let capacity = self.last_body.load(Ordering::Relaxed);
        let body = request_body(
            request,
            self.config.stream,
            &fixed,
            capacity + BODY_HEADROOM,
        );
        self.last_body.store(body.len(), Ordering::Relaxed);
        let headers = [
            ("x-api-key", self.config.api_key.as_str()),
            ("anthropic-version", API_VERSION),
        ];
        let response = self.endpoint.post(&headers, body).await?;
        if self.config.stream {
            read_stream(&self.endpoint, response, on_delta).await
        } else {
            let value = self.endpoint.read_json(response).await?;
            let parsed = parse_message(&value)?;
            emit_whole(&parsed.content, on_delta);
            Ok(parsed)
        }
    }
}

impl Anthropic {
    /// The API's count of `request`'s input tokens: the Messages body without `max_tokens`
    /// and `stream`, to `count_tokens`.
    async fn count(&self, request: &Request<'_>) -> Result<Option<u64>, LlmError> {
        if let Some(missing) = self.config.missing_key() {
            return Err(missing);
        }
        let fixed = fixed_part(request.system, request.tools, request.cache);
        let body = request_body(request, false, &fixed, 0);
        let mut body: Value = serde_json::from_slice(&body).map_err(|e| protocol(e.to_string()))?;
        if let Some(map) = body.as_object_mut() {
            map.remove("max_tokens");
            map.remove("stream");
        }
        let headers = [
            ("x-api-key", self.config.api_key.as_str()),
            ("anthropic-version", API_VERSION),
        ];
        let bytes = serde_json::to_vec(&body).map_err(|e| protocol(e.to_string()))?;
        let response = self.count_endpoint.post(&headers, bytes).await?;
        let value = self.count_endpoint.read_json(response).await?;
        Ok(value.get("input_tokens").and_then(Value::as_u64))
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn count_tokens<'a>(
        &'a self,
        request: &'a Request<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>, LlmError>> {
        Box::pin(self.count(request))
    }

    fn send<'a>(
        &'a self,
        request: &'a Request<'a>,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<Response, LlmError>> {
        Box::pin(self.send_once(request, on_delta))
    }
}

/// The JSON body of a Messages request, serialised straight from the borrowed history.
///
/// The history goes as it is kept, thinking blocks and their signatures byte for byte, with two
/// exceptions: a tool_use input that is not an object (a malformed call, kept as the raw string
/// the model sent) goes as `{}`, which the API requires; and a thinking block without a
/// signature (from an OpenAI-compatible server) is left out, since the API would refuse it.
/// Thinking and effort are sent as the model takes them ([`thinking_param`]); with
/// `request.cache`, the prompt cache's breakpoints are placed ([`super::cache`]). `fixed` is the
/// tools and system prompt already serialised ([`fixed_part`]), the same bytes every call.
/// `capacity` is where the buffer starts (the last body's size and some: growing a large buffer
/// by copies costs more than the writing).
fn request_body(request: &Request<'_>, stream: bool, fixed: &str, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity.max(fixed.len() + 256));
    out.extend_from_slice(b"{\"model\":");
    write_json(&mut out, request.model);
    out.extend_from_slice(b",\"max_tokens\":");
    write_json(&mut out, &request.max_tokens);
    let model = models::lookup(request.model);
    if let Some(thinking) = thinking_param(model, request.thinking, request.max_tokens) {
        out.extend_from_slice(b",\"thinking\":");
        write_json(&mut out, &thinking);
    }
    if let Some(effort) = request.effort
        && model.is_some_and(|m| m.thinking.takes_effort())
    {
        out.extend_from_slice(b",\"output_config\":{\"effort\":");
        write_json(&mut out, &effort);
        out.push(b'}');
    }
    if stream {
        out.extend_from_slice(b",\"stream\":true");
    }
    out.extend_from_slice(fixed.as_bytes());
    out.extend_from_slice(b",\"messages\":[");
    let marked = if request.cache {
        super::cache::marked_messages(request.messages)
    } else {
        [None, None]
    };
    for (i, message) in request.messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"role\":");
        write_json(&mut out, &message.role);
        out.extend_from_slice(b",\"content\":[");
        let mut first = true;
        for block in &message.content {
            if matches!(block, ContentBlock::Thinking { signature, .. } if signature.is_empty()) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            match block {
                ContentBlock::ToolUse { id, name, input } if !input.is_object() => {
                    write_json(
                        &mut out,
                        &json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    );
                }
                _ => write_json(&mut out, block),
            }
        }
        if !first && marked.contains(&Some(i)) {
            super::cache::mark_last_object(&mut out);
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// The tools and system prompt of a body, as `,"tools":[...],"system":...` (each left out
/// when empty), with their cache breakpoints when `cache`: the tools' on the last tool, the
/// system prompt as one marked text block. Written once per agent ([`super::fixed`]).
fn fixed_part(system: &str, tools: &[ToolSpec], cache: bool) -> String {
    let mut out = Vec::new();
    if !tools.is_empty() {
        out.extend_from_slice(b",\"tools\":[");
        for (i, tool) in tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json(&mut out, tool);
        }
        if cache {
            super::cache::mark_last_object(&mut out);
        }
        out.push(b']');
    }
    if !system.is_empty() {
        out.extend_from_slice(b",\"system\":");
        if cache {
            out.extend_from_slice(b"[{\"type\":\"text\",\"text\":");
            write_json(&mut out, system);
            out.push(b'}');
            super::cache::mark_last_object(&mut out);
            out.push(b']');
        } else {
            write_json(&mut out, system);
        }
    }
    // Only strings and `serde_json` output went in: UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `value` as JSON. Our types and `serde_json` values cannot fail to serialise (no
/// maps with non-string keys), and a `Vec` cannot fail to grow, so an error cannot happen.
fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    let _ = serde_json::to_writer(out, value);
}

/// The `thinking` field for `model` (`None`: one corral does not know), or `None` to send none.
///
/// - adaptive models take `{type: "adaptive"}`, and `{type: "disabled"}` for `off`, except those
///   that always think, which refuse `disabled`: they get nothing for `off`;
/// - budget models take `{type: "enabled", budget_tokens}`, the budget half of `max_tokens`
///   and at least the API's 1024, below `max_tokens` as the API requires (none when
///   `max_tokens` leaves no room);
/// - an unknown model gets nothing, whatever the setting: it may refuse any of these.
fn thinking_param(
    model: Option<&models::Model>,
    thinking: Thinking,
    max_tokens: u32,
) -> Option<Value> {
    let support = model?.thinking;
    match (support, thinking) {
        (ThinkingSupport::AlwaysAdaptive | ThinkingSupport::Adaptive, Thinking::Adaptive) => {
            Some(json!({"type": "adaptive"}))
        }
        (ThinkingSupport::Adaptive, Thinking::Off) => Some(json!({"type": "disabled"})),
        (ThinkingSupport::AlwaysAdaptive | ThinkingSupport::Budget, Thinking::Off) => None,
        (ThinkingSupport::Budget, Thinking::Adaptive) => {
            let budget = (max_tokens / 2).max(1024);
            (budget < max_tokens).then(|| json!({"type": "enabled", "budget_tokens": budget}))
        }
    }
}

fn protocol(message: impl Into<String>) -> LlmError {
    LlmError::Protocol {
        provider: PROVIDER,
        message: message.into(),
    }
}

/// Converts one content block of the API into ours; `None` for block kinds corral does not use
/// (citations, server tools). Thinking is kept as it came, its signature included.
fn parse_block(value: &Value) -> Result<Option<ContentBlock>, LlmError> {
    let text_or_empty = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match value.get("type").and_then(Value::as_str) {
        Some("thinking") => Ok(Some(ContentBlock::Thinking {
            thinking: text_or_empty("thinking"),
            signature: text_or_empty("signature"),
        })),
        Some("redacted_thinking") => Ok(Some(ContentBlock::RedactedThinking {
            data: str_field(value, "data")?.to_string(),
        })),
        Some("text") => Ok(Some(ContentBlock::Text {
            text: str_field(value, "text")?.to_string(),
        })),
        Some("tool_use") => Ok(Some(ContentBlock::ToolUse {
            id: str_field(value, "id")?.to_string(),
            name: str_field(value, "name")?.to_string(),
            input: value.get("input").cloned().unwrap_or_else(|| json!({})),
        })),
        _ => Ok(None),
    }
}

fn str_field<'v>(value: &'v Value, name: &str) -> Result<&'v str, LlmError> {
    value
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| protocol(format!("a content block has no string `{name}`: {value}")))
}

/// Reads the counts `value` has into `usage` (a stream sends them in two events); the input
/// tokens are the uncached ones until [`total_input`] adds the cache's.
fn parse_usage(value: Option<&Value>, usage: &mut Usage) {
    let Some(value) = value else { return };
    let read = |name: &str, field: &mut u64| {
        if let Some(n) = value.get(name).and_then(Value::as_u64) {
            *field = n;
        }
    };
    read("input_tokens", &mut usage.input_tokens);
    read("output_tokens", &mut usage.output_tokens);
    read(
        "cache_creation_input_tokens",
        &mut usage.cache_creation_input_tokens,
    );
    read(
        "cache_read_input_tokens",
        &mut usage.cache_read_input_tokens,
    );
}

/// The API's `input_tokens` counts only what came after the last cache breakpoint; corral's
/// [`Usage::input_tokens`] is every input token, the cache's written and read ones included.
fn total_input(mut usage: Usage) -> Usage {
    usage.input_tokens = usage
        .input_tokens
        .saturating_add(usage.cache_creation_input_tokens)
        .saturating_add(usage.cache_read_input_tokens);
    usage
}

fn parse_stop_reason(value: Option<&Value>) -> Option<StopReason> {
    value
        .filter(|v| !v.is_null())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Parses a complete (non-streamed) Messages answer.
fn parse_message(value: &Value) -> Result<Response, LlmError> {
    let blocks = value
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| protocol("the answer has no `content` array"))?;
    let mut content = Vec::new();
    for block in blocks {
        content.extend(parse_block(block)?);
    }
    let stop_reason = parse_stop_reason(value.get("stop_reason"))
        .ok_or_else(|| protocol("the answer has no `stop_reason`"))?;
    let mut usage = Usage::default();
    parse_usage(value.get("usage"), &mut usage);
    Ok(Response {
        content,
        stop_reason,
        usage: total_input(usage),
    })
}

/// A content block being assembled from stream events.
enum Partial {
    Text(String),
    Thinking {
        thinking: String,
        signature: String,
    },
    Redacted(String),
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    Ignored,
}

/// Reads a streamed answer to its `message_stop`, or fails.
async fn read_stream(
    endpoint: &Endpoint,
    response: reqwest::Response,
    on_delta: DeltaSink<'_>,
) -> Result<Response, LlmError> {
    let mut assembler = StreamAssembler::default();
    let done = endpoint
        .read_events(response, |event| {
            assembler.apply(&event.event, &event.data, on_delta)
        })
        .await?;
    done.ok_or_else(|| assembler.incomplete())
}

/// The response a list of events makes, read as [`read_stream`] reads a body: events in order
/// until `message_stop` (those after it are never read), and the same error when the list ends
/// before it. The fuzz targets' way in.
#[cfg(feature = "fuzzing")]
pub(crate) fn fold_events(
    events: &[super::sse::SseEvent],
    on_delta: DeltaSink<'_>,
) -> Result<Response, LlmError> {
    let mut assembler = StreamAssembler::default();
    for event in events {
        if let Some(done) = assembler.apply(&event.event, &event.data, on_delta)? {
            return Ok(done);
        }
    }
    Err(assembler.incomplete())
}

/// A non-streamed answer's JSON as a response ([`parse_message`]). The fuzz targets' way in.
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_whole(value: &Value) -> Result<Response, LlmError> {
    parse_message(value)
}

/// Folds stream events into a [`Response`].
#[derive(Default)]
struct StreamAssembler {
    started: bool,
    blocks: Vec<(usize, Partial)>,
    finished: Vec<(usize, ContentBlock)>,
    stop_reason: Option<StopReason>,
    usage: Usage,
}

impl StreamAssembler {
    /// Why a body that ended before `message_stop` is not a whole answer.
    fn incomplete(&self) -> LlmError {
        LlmError::StreamIncomplete {
            provider: PROVIDER,
            message: if self.started {
                "the connection closed before `message_stop`".into()
            } else {
                "the connection closed before any event".into()
            },
        }
    }

    /// Applies one event; returns the response once `message_stop` arrives.
    fn apply(
        &mut self,
        event: &str,
        data: &str,
        on_delta: DeltaSink<'_>,
    ) -> Result<Option<Response>, LlmError> {
        let value: Value = if data.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(data)
                .map_err(|e| protocol(format!("event `{event}` is not JSON ({e}): {data}")))?
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event)
            .to_string();
        match kind.as_str() {
            "message_start" => {
                self.started = true;
                parse_usage(value.pointer("/message/usage"), &mut self.usage);
            }
            "content_block_start" => {
                let index = index_of(&value)?;
                let block = value
                    .get("content_block")
                    .ok_or_else(|| protocol("content_block_start without content_block"))?;
                let partial = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            on_delta(Delta::Text(text));
                        }
                        Partial::Text(text.to_string())
                    }
                    Some("thinking") => {
                        let field = |name: &str| {
                            block
                                .get(name)
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string()
                        };
                        let thinking = field("thinking");
                        on_delta(Delta::Thinking(&thinking));
                        Partial::Thinking {
                            thinking,
                            signature: field("signature"),
                        }
                    }
                    Some("redacted_thinking") => {
                        on_delta(Delta::Thinking(""));
                        Partial::Redacted(str_field(block, "data")?.to_string())
                    }
                    Some("tool_use") => Partial::ToolUse {
                        id: str_field(block, "id")?.to_string(),
                        name: str_field(block, "name")?.to_string(),
                        json: String::new(),
                    },
                    _ => Partial::Ignored,
                };
                self.blocks.push((index, partial));
            }
            "content_block_delta" => {
                let index = index_of(&value)?;
                let delta = value.get("delta").cloned().unwrap_or(Value::Null);
                let partial = self
                    .blocks
                    .iter_mut()
                    .find(|(i, _)| *i == index)
                    .map(|(_, p)| p)
                    .ok_or_else(|| protocol(format!("a delta for unknown block {index}")))?;
                match (delta.get("type").and_then(Value::as_str), partial) {
                    (Some("text_delta"), Partial::Text(text)) => {
                        let piece = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        on_delta(Delta::Text(piece));
                        text.push_str(piece);
                    }
                    (Some("thinking_delta"), Partial::Thinking { thinking, .. }) => {
                        let piece = delta.get("thinking").and_then(Value::as_str).unwrap_or("");
                        on_delta(Delta::Thinking(piece));
                        thinking.push_str(piece);
                    }
                    (Some("signature_delta"), Partial::Thinking { signature, .. }) => {
                        signature
                            .push_str(delta.get("signature").and_then(Value::as_str).unwrap_or(""));
                    }
                    (Some("input_json_delta"), Partial::ToolUse { json, .. }) => {
                        json.push_str(
                            delta
                                .get("partial_json")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        );
                    }
                    _ => {} // citations, and deltas added to the API later
                }
            }
            "content_block_stop" => {
                let index = index_of(&value)?;
                let pos = self
                    .blocks
                    .iter()
                    .position(|(i, _)| *i == index)
                    .ok_or_else(|| protocol(format!("a stop for unknown block {index}")))?;
                let (_, partial) = self.blocks.remove(pos);
                match partial {
                    Partial::Text(text) => {
                        self.finished.push((index, ContentBlock::Text { text }));
                    }
                    Partial::Thinking {
                        thinking,
                        signature,
                    } => self.finished.push((
                        index,
                        ContentBlock::Thinking {
                            thinking,
                            signature,
                        },
                    )),
                    Partial::Redacted(data) => self
                        .finished
                        .push((index, ContentBlock::RedactedThinking { data })),
                    Partial::ToolUse { id, name, json } => {
                        let input = if json.trim().is_empty() {
                            json!({})
                        } else {
                            // A malformed call is kept as the raw text; the agent answers it
                            // with an error the model can read.
                            serde_json::from_str(&json).unwrap_or(Value::String(json))
                        };
                        self.finished
                            .push((index, ContentBlock::ToolUse { id, name, input }));
                    }
                    Partial::Ignored => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = parse_stop_reason(value.pointer("/delta/stop_reason")) {
                    self.stop_reason = Some(reason);
                }
                parse_usage(value.get("usage"), &mut self.usage);
            }
            "message_stop" => {
                if !self.blocks.is_empty() {
                    return Err(LlmError::StreamIncomplete {
                        provider: PROVIDER,
                        message: "message_stop arrived while a content block was open".into(),
                    });
                }
                let stop_reason = self
                    .stop_reason
                    .take()
                    .ok_or_else(|| protocol("message_stop without a stop_reason"))?;
                self.finished.sort_by_key(|(i, _)| *i);
                return Ok(Some(Response {
                    content: std::mem::take(&mut self.finished)
                        .into_iter()
                        .map(|(_, b)| b)
                        .collect(),
                    stop_reason,
                    usage: total_input(self.usage),
                }));
            }
            "error" => {
                let error = value.get("error").cloned().unwrap_or(Value::Null);
                let kind = error
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("stream_error");
                let status = match kind {
                    "overloaded_error" => 529,
                    "rate_limit_error" => 429,
                    "api_error" => 500,
                    _ => 400,
                };
                return Err(LlmError::Api {
                    provider: PROVIDER,
                    status,
                    kind: kind.to_string(),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("the stream reported an error")
                        .to_string(),
                    retry_after: None,
                });
            }
            _ => {} // ping, and events added to the API later
        }
        Ok(None)
    }
}

fn index_of(value: &Value) -> Result<usize, LlmError> {
    value
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| protocol(format!("an event without an index: {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Message, Role};

    /// The body `request` is sent as, parsed back (with a fresh fixed part).
    fn body_of(request: &Request<'_>, stream: bool) -> Value {
        let fixed = fixed_part(request.system, request.tools, request.cache);
        let bytes = request_body(request, stream, &fixed, 0);
        serde_json::from_slice(&bytes).expect("the body is JSON")
    }

    fn marked(value: &Value) -> bool {
        value.get("cache_control") == Some(&json!({"type": "ephemeral"}))
    }

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: format!("tool {name}"),
            input_schema: json!({"type": "object", "properties": {"x": {"type": "string"}}}),
        }
    }

    fn tool_use(id: &str, input: Value) -> ContentBlock {
        ContentBlock::ToolUse {
            id: id.into(),
            name: "a".into(),
            input,
        }
    }

    fn result(id: &str) -> ContentBlock {
        ContentBlock::ToolResult {
            tool_use_id: id.into(),
            content: "out \"quoted\" }".into(),
            is_error: false,
        }
    }

    /// With caching, tools, system and the newest two user messages are marked, four in all,
    /// assistant messages (where thinking is) never; a malformed tool input goes as `{}`.
    #[test]
    fn four_breakpoints_on_the_prefix_and_the_newest_turns() {
        let tools = [spec("a"), spec("b")];
        let assistant = |content| Message {
            role: Role::Assistant,
            content,
        };
        let history = [
            Message::user_text("go"),
            assistant(vec![
                ContentBlock::Thinking {
                    thinking: "t".into(),
                    signature: "s".into(),
                },
                tool_use("1", json!({"x": "y"})),
            ]),
            Message {
                role: Role::User,
                content: vec![result("1")],
            },
            assistant(vec![tool_use("2", json!("not an object"))]),
            Message {
                role: Role::User,
                content: vec![result("2"), ContentBlock::text("<background-results>")],
            },
        ];
        let request = Request {
            model: "claude-opus-5",
            max_tokens: 100,
            thinking: Thinking::Adaptive,
            effort: None,
            cache: true,
            system: "You are corral.",
            tools: &tools,
            messages: &history,
        };
        let body = body_of(&request, true);
        assert_eq!(body["model"], "claude-opus-5");
        assert_eq!(body["max_tokens"], 100);
        assert_eq!(body["stream"], true);
        assert!(!marked(&body["tools"][0]) && marked(&body["tools"][1]));
        assert_eq!(body["tools"][0]["input_schema"], tools[0].input_schema);
        assert_eq!(body["system"][0]["text"], "You are corral.");
        assert!(marked(&body["system"][0]));
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 5);
        assert!(!marked(&messages[0]["content"][0]));
        assert!(marked(&messages[2]["content"][0]));
        assert_eq!(messages[2]["content"][0]["content"], "out \"quoted\" }");
        assert!(!marked(&messages[4]["content"][0]) && marked(&messages[4]["content"][1]));
        assert_eq!(messages[3]["content"][0]["input"], json!({}));
        assert_eq!(messages[1]["content"][1]["input"], json!({"x": "y"}));
        let count = body.to_string().matches("cache_control").count();
        assert_eq!(count, crate::llm::cache::MAX_BREAKPOINTS);
        for assistant in [&messages[1], &messages[3]] {
            assert!(
                !assistant.to_string().contains("cache_control"),
                "{assistant}"
            );
        }
        let plain = body_of(
            &Request {
                cache: false,
                ..request
            },
            false,
        );
        assert!(!plain.to_string().contains("cache_control"), "{plain}");
        assert_eq!(plain["system"], "You are corral.");
        assert!(plain.get("stream").is_none());
    }

    /// A later turn's body begins with the earlier one's bytes up to the newest messages: the
    /// tools and system prompt are the same bytes (written once), the older messages too.
    #[test]
    fn a_later_body_begins_with_the_earlier_ones_bytes() {
        let tools = [spec("a")];
        let mut history = vec![Message::user_text("go")];
        let provider = FixedPart::default();
        let body_at = |history: &[Message]| {
            let request = Request {
                model: "m",
                max_tokens: 10,
                thinking: Thinking::Off,
                effort: None,
                cache: true,
                system: "sys",
                tools: &tools,
                messages: history,
            };
            let fixed = provider.get("sys", &tools, 1, || fixed_part("sys", &tools, true));
            String::from_utf8(request_body(&request, true, &fixed, 0)).expect("UTF-8")
        };
        let first = body_at(&history);
        history.push(Message {
            role: Role::Assistant,
            content: vec![tool_use("1", json!({}))],
        });
        history.push(Message {
            role: Role::User,
            content: vec![result("1")],
        });
        let second = body_at(&history);
        // Everything before the first message's breakpoint is shared.
        let upto = first.find(r#","cache_control""#).expect("a mark");
        let upto = first[upto + 1..]
            .find(r#","cache_control""#)
            .map_or(upto, |n| n + upto + 1);
        let upto = first[upto + 1..]
            .find(r#","cache_control""#)
            .map_or(upto, |n| n + upto + 1);
        assert_eq!(&first[..upto], &second[..upto]);
    }

    fn feed(events: &[(&str, Value)]) -> Result<Option<Response>, LlmError> {
        let mut assembler = StreamAssembler::default();
        let texts = std::sync::Mutex::new(String::new());
        let sink = |d: Delta<'_>| match d {
            Delta::Text(t) => texts.lock().map(|mut s| s.push_str(t)).unwrap_or(()),
            Delta::Thinking(_) => {}
        };
        let mut out = None;
        for (name, data) in events {
            out = assembler.apply(name, &data.to_string(), &sink)?;
        }
        Ok(out)
    }

    /// Text and a tool call whose JSON arrives in pieces assemble into one complete message.
    #[test]
    fn assembles_text_and_tool_use() {
        let response = feed(&[
            ("message_start", json!({"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":1}}})),
            ("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})),
            ("content_block_delta", json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})),
            ("content_block_stop", json!({"type":"content_block_stop","index":0})),
            ("content_block_start", json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"bash","input":{}}})),
            ("content_block_delta", json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"l"}})),
            ("ping", json!({"type":"ping"})),
            ("content_block_delta", json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"s\"}"}})),
            ("content_block_stop", json!({"type":"content_block_stop","index":1})),
            ("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}})),
            ("message_stop", json!({"type":"message_stop"})),
        ])
        .expect("valid stream")
        .expect("complete");
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 30,
                ..Usage::default()
            }
        );
        assert_eq!(
            response.content,
            vec![
                ContentBlock::text("Hi"),
                ContentBlock::ToolUse {
                    id: "t1".into(),
                    name: "bash".into(),
                    input: json!({"command":"ls"})
                },
            ]
        );
    }

    /// A streamed thinking block (its text in pieces, then its signature) and a redacted one
    /// come out exactly as sent, before the text; the display hears that thinking started and
    /// its text, never as answer text.
    #[test]
    fn assembles_thinking_with_its_signature() {
        let start = |i: u64, block: Value| {
            (
                "content_block_start",
                json!({"type":"content_block_start","index":i,"content_block":block}),
            )
        };
        let delta = |i: u64, delta: Value| {
            (
                "content_block_delta",
                json!({"type":"content_block_delta","index":i,"delta":delta}),
            )
        };
        let stop = |i: u64| {
            (
                "content_block_stop",
                json!({"type":"content_block_stop","index":i}),
            )
        };
        let events = [
            (
                "message_start",
                json!({"type":"message_start","message":{"usage":{"input_tokens":3,"cache_read_input_tokens":1000,"cache_creation_input_tokens":20}}}),
            ),
            start(0, json!({"type":"thinking","thinking":""})),
            delta(0, json!({"type":"thinking_delta","thinking":"Let me "})),
            delta(0, json!({"type":"thinking_delta","thinking":"see."})),
            delta(
                0,
                json!({"type":"signature_delta","signature":"EqQBCgIYAh+/="}),
            ),
            stop(0),
            start(1, json!({"type":"redacted_thinking","data":"ENCRYPTED=="})),
            stop(1),
            start(2, json!({"type":"text","text":""})),
            delta(2, json!({"type":"text_delta","text":"Done."})),
            stop(2),
            (
                "message_delta",
                json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}),
            ),
            ("message_stop", json!({"type":"message_stop"})),
        ];
        let mut assembler = StreamAssembler::default();
        let heard = std::sync::Mutex::new(Vec::new());
        let sink = |d: Delta<'_>| {
            let piece = match d {
                Delta::Text(t) => format!("text:{t}"),
                Delta::Thinking(t) => format!("thinking:{t}"),
            };
            heard.lock().map(|mut h| h.push(piece)).unwrap_or(())
        };
        let mut done = None;
        for (name, data) in &events {
            done = assembler
                .apply(name, &data.to_string(), &sink)
                .expect("valid");
        }
        let response = done.expect("complete");
        assert_eq!(
            response.content,
            vec![
                ContentBlock::Thinking {
                    thinking: "Let me see.".into(),
                    signature: "EqQBCgIYAh+/=".into()
                },
                ContentBlock::RedactedThinking {
                    data: "ENCRYPTED==".into()
                },
                ContentBlock::text("Done."),
            ]
        );
        assert_eq!(
            heard.into_inner().expect("lock"),
            [
                "thinking:",
                "thinking:Let me ",
                "thinking:see.",
                "thinking:",
                "text:Done."
            ]
        );
        // Every input token counts, the cache's too.
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 1023,
                output_tokens: 9,
                cache_read_input_tokens: 1000,
                cache_creation_input_tokens: 20,
                reasoning_tokens: 0,
            }
        );
    }

    /// A whole answer's thinking blocks are kept too, and go back out unchanged.
    #[test]
    fn whole_thinking_goes_back_unchanged() {
        let thinking = json!({"type":"thinking","thinking":"hmm","signature":"sig/+="});
        let redacted = json!({"type":"redacted_thinking","data":"abc"});
        let answer = json!({"content":[thinking, redacted, {"type":"tool_use","id":"t","name":"bash","input":{}}],
            "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}});
        let response = parse_message(&answer).expect("valid");
        let history = [
            crate::llm::Message::user_text("go"),
            crate::llm::Message {
                role: crate::llm::Role::Assistant,
                content: response.content,
            },
        ];
        let request = Request {
            model: "m",
            max_tokens: 10,
            thinking: Thinking::Adaptive,
            effort: None,
            cache: false,
            system: "",
            tools: &[],
            messages: &history,
        };
        let body = body_of(&request, false);
        assert_eq!(body["messages"][1]["content"][0], thinking);
        assert_eq!(body["messages"][1]["content"][1], redacted);
    }

    /// What each kind of model is sent for thinking and effort; an unknown one nothing; a
    /// thinking block with no signature (from another provider) is left out.
    #[test]
    fn thinking_and_effort_as_each_model_takes_them() {
        let history = [
            crate::llm::Message::user_text("go"),
            crate::llm::Message {
                role: crate::llm::Role::Assistant,
                content: vec![
                    ContentBlock::Thinking {
                        thinking: "local reasoning".into(),
                        signature: String::new(),
                    },
                    ContentBlock::text("hi"),
                ],
            },
            crate::llm::Message::user_text("more"),
        ];
        let body = |model: &str, thinking: Thinking, max_tokens: u32| {
            body_of(
                &Request {
                    model,
                    max_tokens,
                    thinking,
                    effort: Some(crate::llm::Effort::Low),
                    cache: false,
                    system: "s",
                    tools: &[],
                    messages: &history,
                },
                false,
            )
        };
        let opus = body("claude-opus-5", Thinking::Adaptive, 32_000);
        assert_eq!(opus["thinking"], json!({"type": "adaptive"}));
        assert_eq!(opus["output_config"], json!({"effort": "low"}));
        assert_eq!(
            opus["messages"][1]["content"],
            json!([{"type": "text", "text": "hi"}])
        );
        assert_eq!(
            opus["system"], "s",
            "no cache: the system prompt stays a string"
        );
        let off = body("claude-opus-5", Thinking::Off, 32_000);
        assert_eq!(off["thinking"], json!({"type": "disabled"}));
        let always = body("claude-fable-5", Thinking::Off, 32_000);
        assert!(always.get("thinking").is_none(), "{always}");
        let haiku = body("claude-haiku-4-5-20251001", Thinking::Adaptive, 8192);
        assert_eq!(
            haiku["thinking"],
            json!({"type": "enabled", "budget_tokens": 4096})
        );
        assert!(haiku.get("output_config").is_none(), "{haiku}");
        let tight = body("claude-haiku-4-5", Thinking::Adaptive, 1024);
        assert!(tight.get("thinking").is_none(), "{tight}");
        let unknown = body("my-model", Thinking::Adaptive, 8192);
        assert!(unknown.get("thinking").is_none() && unknown.get("output_config").is_none());
    }

    /// An error event mid-stream is an API error with the provider's kind, retryable when it is
    /// an overload.
    #[test]
    fn error_event_is_an_api_error() {
        let err = feed(&[
            (
                "message_start",
                json!({"type":"message_start","message":{}}),
            ),
            (
                "error",
                json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
            ),
        ])
        .expect_err("error event");
        assert!(err.is_retryable());
        assert!(err.to_string().contains("Overloaded"), "{err}");
    }
}
