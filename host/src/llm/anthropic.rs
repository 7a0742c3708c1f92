//! The Anthropic Messages API: `POST {base}/v1/messages`, plain JSON or server-sent events.

use std::time::Duration;

use serde_json::{Value, json};

use super::http::{Endpoint, emit_whole_text};
use super::{
    BoxFuture, ContentBlock, LlmError, Provider, Request, Response, StopReason, TextSink, Usage,
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
}

impl Anthropic {
    /// Builds the provider; fails only when the HTTP client cannot be built.
    pub fn new(config: AnthropicConfig) -> Result<Self, LlmError> {
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        let endpoint = Endpoint::new(PROVIDER, url, config.read_timeout)?;
        Ok(Self { config, endpoint })
    }

    async fn send_once(
        &self,
        request: &Request<'_>,
        on_text: TextSink<'_>,
    ) -> Result<Response, LlmError> {
        if self.config.api_key.is_empty() {
            return Err(LlmError::Config(
                "ANTHROPIC_API_KEY is not set: export it, or point ANTHROPIC_BASE_URL at a \
                 compatible endpoint and set a key it accepts"
                    .into(),
            ));
        }
        let body = request_body(request, self.config.stream);
        let headers = [
            ("x-api-key", self.config.api_key.as_str()),
            ("anthropic-version", API_VERSION),
        ];
        let response = self.endpoint.post(&headers, &body).await?;
        if self.config.stream {
            read_stream(&self.endpoint, response, on_text).await
        } else {
            let value = self.endpoint.read_json(response).await?;
            let parsed = parse_message(&value)?;
            emit_whole_text(&parsed.content, on_text);
            Ok(parsed)
        }
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn send<'a>(
        &'a self,
        request: &'a Request<'a>,
        on_text: TextSink<'a>,
    ) -> BoxFuture<'a, Result<Response, LlmError>> {
        Box::pin(self.send_once(request, on_text))
    }
}

/// The JSON body of a Messages request.
fn request_body(request: &Request<'_>, stream: bool) -> Value {
    let mut messages = serde_json::to_value(request.messages).unwrap_or(Value::Null);
    // The API requires tool_use inputs to be objects; a malformed call from the model is kept in
    // the history as the raw string it sent, and goes back as an empty object.
    if let Value::Array(list) = &mut messages {
        for message in list {
            if let Some(Value::Array(blocks)) = message.get_mut("content") {
                for block in blocks {
                    if block.get("type") == Some(&json!("tool_use"))
                        && !block.get("input").is_some_and(Value::is_object)
                    {
                        block["input"] = json!({});
                    }
                }
            }
        }
    }
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    });
    if !request.system.is_empty() {
        body["system"] = json!(request.system);
    }
    if !request.tools.is_empty() {
        body["tools"] = serde_json::to_value(request.tools).unwrap_or(Value::Null);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

fn protocol(message: impl Into<String>) -> LlmError {
    LlmError::Protocol {
        provider: PROVIDER,
        message: message.into(),
    }
}

/// Converts one content block of the API into ours; `None` for block kinds corral does not use.
fn parse_block(value: &Value) -> Result<Option<ContentBlock>, LlmError> {
    match value.get("type").and_then(Value::as_str) {
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

fn parse_usage(value: Option<&Value>, usage: &mut Usage) {
    let Some(value) = value else { return };
    if let Some(n) = value.get("input_tokens").and_then(Value::as_u64) {
        usage.input_tokens = n;
    }
    if let Some(n) = value.get("output_tokens").and_then(Value::as_u64) {
        usage.output_tokens = n;
    }
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
        usage,
    })
}

/// A content block being assembled from stream events.
enum Partial {
    Text(String),
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
    on_text: TextSink<'_>,
) -> Result<Response, LlmError> {
    let mut assembler = StreamAssembler::default();
    let done = endpoint
        .read_events(response, |event| {
            assembler.apply(&event.event, &event.data, on_text)
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
    on_text: TextSink<'_>,
) -> Result<Response, LlmError> {
    let mut assembler = StreamAssembler::default();
    for event in events {
        if let Some(done) = assembler.apply(&event.event, &event.data, on_text)? {
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
        on_text: TextSink<'_>,
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
                            on_text(text);
                        }
                        Partial::Text(text.to_string())
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
                        on_text(piece);
                        text.push_str(piece);
                    }
                    (Some("input_json_delta"), Partial::ToolUse { json, .. }) => {
                        json.push_str(
                            delta
                                .get("partial_json")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        );
                    }
                    _ => {} // thinking, signatures, citations: not used by corral
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
                    usage: self.usage,
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

    fn feed(events: &[(&str, Value)]) -> Result<Option<Response>, LlmError> {
        let mut assembler = StreamAssembler::default();
        let texts = std::sync::Mutex::new(String::new());
        let sink = |t: &str| texts.lock().map(|mut s| s.push_str(t)).unwrap_or(());
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
                output_tokens: 30
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
