//! OpenAI Chat Completions: `POST {base}/chat/completions`, plain JSON or server-sent events.
//!
//! Most other servers speak it too (llama-server, vLLM, Ollama, LM Studio, gateways), so this is
//! also how corral reaches a local model. corral's history is Anthropic-shaped; this file maps
//! it onto OpenAI messages on the way out:
//!
//! - the system prompt becomes a leading `system` message;
//! - an assistant message becomes one `assistant` message: its text as `content` (`null` when
//!   there is none) and each `tool_use` as a `tool_calls` entry whose `arguments` is JSON text;
//! - an assistant message's thinking goes as `reasoning_content` (as llama-server, vLLM and
//!   DeepSeek name it), but only within the tool loop under way: after the last user message that
//!   is not only tool results, as DeepSeek requires (it refuses older reasoning, and the others
//!   ignore it);
//! - a user message becomes one `tool` message per `tool_result`, in order (an error result's
//!   text starts with `Error: `, as OpenAI has no error flag), then its text blocks as one
//!   `user` message;
//! - tools become `{"type": "function", "function": {name, description, parameters}}`;
//!
//! and maps the answer back: `reasoning_content` (or `reasoning`) to a thinking block without a
//! signature, `content` to a text block, `tool_calls` to `tool_use` blocks (a
//! missing id gets a generated `call_...` one, and `arguments` that are not valid JSON are kept
//! as the raw string, which the tool registry answers with an error the model can read),
//! `finish_reason` to a [`StopReason`], `usage` to [`Usage`] (with
//! `prompt_tokens_details.cached_tokens` and `completion_tokens_details.reasoning_tokens`).

use std::time::Duration;

use serde_json::{Value, json};

use super::http::{Endpoint, emit_whole};
use super::sse::SseEvent;
use super::{
    BoxFuture, ContentBlock, Delta, DeltaSink, LlmError, Message, Provider, Request, Response,
    Role, StopReason, ToolSpec, Usage,
};

const PROVIDER: &str = "openai";
/// The endpoint used when `OPENAI_BASE_URL` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// OpenAI's own host: the one that needs a key, and `max_completion_tokens`.
const OPENAI_HOST: &str = "api.openai.com";

/// How to reach a Chat Completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL without `/chat/completions`, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>`; no header at all when empty.
    pub api_key: String,
    /// Ask for a streamed answer (`"stream": true`, with usage in the last chunk).
    pub stream: bool,
    /// Longest silence tolerated while reading an answer.
    pub read_timeout: Duration,
}

impl OpenAiConfig {
    /// The error a call would fail with for want of a key: OpenAI itself needs one, a local
    /// server does not.
    pub fn missing_key(&self) -> Option<LlmError> {
        (self.api_key.is_empty() && self.is_openai()).then(|| {
            LlmError::Config(
                "OPENAI_API_KEY is not set: export it, or point OPENAI_BASE_URL at a compatible \
                 server (a local one needs no key)"
                    .into(),
            )
        })
    }

    /// Reads `OPENAI_API_KEY` and `OPENAI_BASE_URL` the way the official SDKs do.
    ///
    /// A missing key is an error only when a call is made, and only for `api.openai.com`: local
    /// servers (llama-server, vLLM, Ollama) need none.
    pub fn from_env() -> Self {
        Self {
            base_url: std::env::var("OPENAI_BASE_URL")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            api_key: std::env::var("OPENAI_API_KEY").unwrap_or_default(),
            stream: true,
            read_timeout: Duration::from_secs(600),
        }
    }

    /// Whether the base URL is OpenAI's own API rather than a compatible server.
    fn is_openai(&self) -> bool {
        reqwest::Url::parse(&self.base_url)
            .ok()
            .and_then(|url| url.host_str().map(|h| h.eq_ignore_ascii_case(OPENAI_HOST)))
            .unwrap_or(false)
    }
}

/// The OpenAI Chat Completions provider.
#[derive(Debug, Clone)]
pub struct OpenAi {
    config: OpenAiConfig,
    endpoint: Endpoint,
}

impl OpenAi {
    /// Builds the provider; fails only when the HTTP client cannot be built.
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let endpoint = Endpoint::new(PROVIDER, url, config.read_timeout)?;
        Ok(Self { config, endpoint })
    }

    async fn send_once(
        &self,
        request: &Request<'_>,
        on_delta: DeltaSink<'_>,
    ) -> Result<Response, LlmError> {
        let official = self.config.is_openai();
        if let Some(missing) = self.config.missing_key() {
            return Err(missing);
        }
        let body = request_body(request, self.config.stream, official);
        let bearer = format!("Bearer {}", self.config.api_key);
        let headers: &[(&str, &str)] = if self.config.api_key.is_empty() {
            &[]
        } else {
            &[("authorization", bearer.as_str())]
        };
        let response = self
            .endpoint
            .post(headers, serde_json::to_vec(&body).unwrap_or_default())
            .await?;
        if self.config.stream {
            let mut assembler = StreamAssembler::default();
            let done = self
                .endpoint
                .read_events(response, |event| assembler.apply(event, on_delta))
                .await?;
            match done {
                Some(response) => Ok(response),
                None => assembler.finish_without_done(),
            }
        } else {
            let value = self.endpoint.read_json(response).await?;
            let parsed = parse_completion(&value)?;
            emit_whole(&parsed.content, on_delta);
            Ok(parsed)
        }
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn send<'a>(
        &'a self,
        request: &'a Request<'a>,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<Response, LlmError>> {
        Box::pin(self.send_once(request, on_delta))
    }
}

/// The JSON body of a Chat Completions request.
///
/// OpenAI's own API gets `max_completion_tokens` (its newer models refuse `max_tokens`); other
/// servers get `max_tokens`, which all of them understand.
fn request_body(request: &Request<'_>, stream: bool, official: bool) -> Value {
    let mut body = json!({
        "model": request.model,
        "messages": to_messages(request.system, request.messages),
    });
    let limit = if official {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body[limit] = json!(request.max_tokens);
    if !request.tools.is_empty() {
        body["tools"] = Value::Array(request.tools.iter().map(to_tool).collect());
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn to_tool(tool: &ToolSpec) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.input_schema,
        }
    })
}

/// corral's history as OpenAI messages (see the module doc for the mapping).
fn to_messages(system: &str, messages: &[Message]) -> Vec<Value> {
    let mut out = Vec::new();
    if !system.is_empty() {
        out.push(json!({"role": "system", "content": system}));
    }
    // The tool loop under way starts after the last user message that is not only results.
    let loop_start = messages
        .iter()
        .rposition(|m| {
            m.role == Role::User
                && !m
                    .content
                    .iter()
                    .any(|b| matches!(b, ContentBlock::ToolResult { .. }))
        })
        .unwrap_or(0);
    for (i, message) in messages.iter().enumerate() {
        match message.role {
            Role::Assistant => out.push(to_assistant(message, i > loop_start)),
            Role::User => to_user(message, &mut out),
        }
    }
    out
}

fn to_assistant(message: &Message, with_reasoning: bool) -> Value {
    let text = message.text();
    let reasoning: String = message
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Thinking { thinking, .. } => Some(thinking.as_str()),
            _ => None,
        })
        .collect();
    let calls: Vec<Value> = message
        .tool_uses()
        .map(|call| {
            // A call whose arguments were not valid JSON is kept in the history as the raw
            // string; it goes back as `{}`, since servers that parse arguments refuse the rest.
            // The error result the model got quotes what it sent.
            let arguments = if call.input.is_object() {
                call.input.to_string()
            } else {
                "{}".to_string()
            };
            json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments},
            })
        })
        .collect();
    let mut out = json!({"role": "assistant"});
    out["content"] = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    if !calls.is_empty() {
        out["tool_calls"] = Value::Array(calls);
    }
    if with_reasoning && !reasoning.is_empty() {
        out["reasoning_content"] = Value::String(reasoning);
    }
    out
}

fn to_user(message: &Message, out: &mut Vec<Value>) {
    let mut texts = Vec::new();
    for block in &message.content {
        match block {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let content = if *is_error {
                    format!("Error: {content}")
                } else {
                    content.clone()
                };
                out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}));
            }
            ContentBlock::Text { text } => texts.push(text.as_str()),
            // Never in a user message: the history's rules keep the model's blocks with the
            // assistant.
            ContentBlock::ToolUse { .. }
            | ContentBlock::Thinking { .. }
            | ContentBlock::RedactedThinking { .. } => {}
        }
    }
    if !texts.is_empty() {
        out.push(json!({"role": "user", "content": texts.join("\n\n")}));
    }
}

fn protocol(message: impl Into<String>) -> LlmError {
    LlmError::Protocol {
        provider: PROVIDER,
        message: message.into(),
    }
}

/// Maps a `finish_reason`; `None` for a missing or null one.
fn stop_reason(value: Option<&Value>) -> Option<StopReason> {
    Some(match value?.as_str()? {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::Refusal,
        other => StopReason::Other(other.to_string()),
    })
}

fn parse_usage(value: Option<&Value>, usage: &mut Usage) {
    let Some(value) = value else { return };
    if let Some(n) = value.get("prompt_tokens").and_then(Value::as_u64) {
        usage.input_tokens = n;
    }
    if let Some(n) = value.get("completion_tokens").and_then(Value::as_u64) {
        usage.output_tokens = n;
    }
    if let Some(n) = value
        .pointer("/prompt_tokens_details/cached_tokens")
        .and_then(Value::as_u64)
    {
        usage.cache_read_input_tokens = n;
    }
    if let Some(n) = value
        .pointer("/completion_tokens_details/reasoning_tokens")
        .and_then(Value::as_u64)
    {
        usage.reasoning_tokens = n;
    }
}

/// The tool input from `arguments` as the model sent them: JSON text (empty means no
/// arguments), or, from a few servers, the object itself. Text that is not valid JSON is kept as
/// the raw string.
fn parse_arguments(arguments: Option<&Value>) -> Value {
    match arguments {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(raw)) if raw.trim().is_empty() => json!({}),
        Some(Value::String(raw)) => {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone()))
        }
        Some(other) => other.clone(),
    }
}

/// A fresh id for a tool call the server sent without one.
fn generated_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("call_{}", &hex[..24])
}

/// Builds the response from the reasoning, text and tool calls of an answer. Empty text and
/// reasoning are dropped (the Anthropic API, and corral's history, refuse empty text blocks); a
/// model that called tools but said `stop` (some local servers do) stopped to use them.
fn assemble(
    reasoning: String,
    text: String,
    calls: Vec<(String, String, Value)>,
    finish: Option<StopReason>,
    usage: Usage,
) -> Response {
    let mut content = Vec::new();
    if !reasoning.is_empty() {
        content.push(ContentBlock::Thinking {
            thinking: reasoning,
            signature: String::new(),
        });
    }
    if !text.is_empty() {
        content.push(ContentBlock::Text { text });
    }
    let called = !calls.is_empty();
    for (id, name, input) in calls {
        let id = if id.is_empty() { generated_id() } else { id };
        content.push(ContentBlock::ToolUse { id, name, input });
    }
    let stop_reason = match finish {
        Some(StopReason::EndTurn) | None if called => StopReason::ToolUse,
        Some(reason) => reason,
        None => StopReason::EndTurn,
    };
    Response {
        content,
        stop_reason,
        usage,
    }
}

/// The text of a message's `content`: a string, `null`, or (from a few servers) a list of parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Parses a complete (non-streamed) answer. The whole body arrived, so a missing
/// `finish_reason` is taken from what the message holds rather than refused.
fn parse_completion(value: &Value) -> Result<Response, LlmError> {
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(stream_error(error));
    }
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| protocol(format!("the answer has no choices: {value}")))?;
    let message = choice
        .get("message")
        .ok_or_else(|| protocol("the answer's choice has no `message`"))?;
    let mut calls = Vec::new();
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| protocol(format!("a tool call has no function name: {call}")))?;
        calls.push((
            call.get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name.to_string(),
            parse_arguments(function.get("arguments")),
        ));
    }
    let mut usage = Usage::default();
    parse_usage(value.get("usage"), &mut usage);
    let reasoning = ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|name| message.get(*name).and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    Ok(assemble(
        reasoning,
        content_text(message.get("content")),
        calls,
        stop_reason(choice.get("finish_reason")),
        usage,
    ))
}

/// An `error` object sent in place of an answer, mid-stream or in a 200 body (vLLM and
/// llama-server do), as [`LlmError::Api`]: its numeric `code` as the status when it has one, a
/// server error (retryable) when it does not say.
fn stream_error(error: &Value) -> LlmError {
    let text = |name: &str| error.get(name).and_then(Value::as_str);
    let kind = text("type").or_else(|| text("code")).unwrap_or("");
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(if kind.contains("rate_limit") {
            429
        } else if kind.is_empty() || kind.contains("server") {
            500
        } else {
            400
        });
    LlmError::Api {
        provider: PROVIDER,
        status,
        kind: if kind.is_empty() {
            "stream_error"
        } else {
            kind
        }
        .to_string(),
        message: text("message")
            .or_else(|| error.as_str())
            .unwrap_or("the stream reported an error")
            .to_string(),
        retry_after: None,
    }
}

/// The response a list of events makes, read as a streamed body is: events in order until
/// `data: [DONE]` (those after it are never read), and the same verdict when the list ends
/// before it. The fuzz targets' way in.
#[cfg(feature = "fuzzing")]
pub(crate) fn fold_events(
    events: &[SseEvent],
    on_delta: DeltaSink<'_>,
) -> Result<Response, LlmError> {
    let mut assembler = StreamAssembler::default();
    for event in events {
        if let Some(done) = assembler.apply(event, on_delta)? {
            return Ok(done);
        }
    }
    assembler.finish_without_done()
}

/// A non-streamed answer's JSON as a response ([`parse_completion`]). The fuzz targets' way in.
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_whole(value: &Value) -> Result<Response, LlmError> {
    parse_completion(value)
}

/// A tool call being assembled from stream chunks.
#[derive(Debug, Default)]
struct PartialCall {
    /// The chunk's `index`, which keys the pieces of one call.
    index: Option<u64>,
    id: String,
    name: String,
    arguments: String,
}

/// Folds stream chunks into a [`Response`].
#[derive(Debug, Default)]
struct StreamAssembler {
    started: bool,
    reasoning: String,
    text: String,
    calls: Vec<PartialCall>,
    finish: Option<StopReason>,
    usage: Usage,
}

impl StreamAssembler {
    /// Applies one event; returns the response once `data: [DONE]` arrives.
    fn apply(
        &mut self,
        event: &SseEvent,
        on_delta: DeltaSink<'_>,
    ) -> Result<Option<Response>, LlmError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Some(self.finish()));
        }
        if data.is_empty() {
            return Ok(None);
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| protocol(format!("a stream chunk is not JSON ({e}): {data}")))?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(stream_error(error));
        }
        self.started = true;
        parse_usage(chunk.get("usage").filter(|u| !u.is_null()), &mut self.usage);
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|choices| {
                choices
                    .iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        let Some(choice) = choice else {
            return Ok(None); // the usage chunk, and keep-alives
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(piece) = ["reasoning_content", "reasoning"]
            .iter()
            .find_map(|name| delta.get(*name).and_then(Value::as_str))
            && !piece.is_empty()
        {
            on_delta(Delta::Thinking(piece));
            self.reasoning.push_str(piece);
        }
        if let Some(piece) = delta.get("content").and_then(Value::as_str)
            && !piece.is_empty()
        {
            on_delta(Delta::Text(piece));
            self.text.push_str(piece);
        }
        for piece in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.apply_call(piece);
        }
        if let Some(reason) = stop_reason(choice.get("finish_reason")) {
            self.finish = Some(reason);
        }
        Ok(None)
    }

    /// Adds one piece of a tool call. Pieces are keyed by `index`; the id and name come in the
    /// first piece of a call and the arguments in any number of pieces. A server that sends no
    /// index starts a new call with each new id.
    fn apply_call(&mut self, piece: &Value) {
        let index = piece.get("index").and_then(Value::as_u64);
        let id = piece.get("id").and_then(Value::as_str).unwrap_or("");
        let function = piece.get("function").unwrap_or(&Value::Null);
        let existing = match index {
            Some(index) => self.calls.iter().position(|c| c.index == Some(index)),
            None if id.is_empty() || self.calls.last().is_some_and(|c| c.id == id) => {
                self.calls.len().checked_sub(1)
            }
            None => None,
        };
        let call = match existing {
            Some(position) => &mut self.calls[position],
            None => {
                self.calls.push(PartialCall {
                    index,
                    ..PartialCall::default()
                });
                let last = self.calls.len() - 1;
                &mut self.calls[last]
            }
        };
        if call.id.is_empty() {
            call.id = id.to_string();
        }
        if let Some(name) = function.get("name").and_then(Value::as_str)
            && call.name.is_empty()
        {
            call.name = name.to_string();
        }
        match function.get("arguments") {
            Some(Value::String(part)) => call.arguments.push_str(part),
            Some(Value::Null) | None => {}
            Some(whole) => call.arguments = whole.to_string(),
        }
    }

    /// The response gathered so far, taken as whole.
    fn finish(&mut self) -> Response {
        let mut calls = std::mem::take(&mut self.calls);
        calls.sort_by_key(|c| c.index);
        let calls = calls
            .into_iter()
            .map(|c| {
                let input = parse_arguments(Some(&Value::String(c.arguments)));
                (c.id, c.name, input)
            })
            .collect();
        assemble(
            std::mem::take(&mut self.reasoning),
            std::mem::take(&mut self.text),
            calls,
            self.finish.take(),
            self.usage,
        )
    }

    /// The body ended without `data: [DONE]`: whole only if a `finish_reason` came.
    fn finish_without_done(mut self) -> Result<Response, LlmError> {
        if self.finish.is_some() {
            return Ok(self.finish());
        }
        Err(LlmError::StreamIncomplete {
            provider: PROVIDER,
            message: if self.started {
                "the connection closed before a `finish_reason` or `[DONE]`".into()
            } else {
                "the connection closed before any chunk".into()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool_use(id: &str, name: &str, input: Value) -> ContentBlock {
        ContentBlock::ToolUse {
            id: id.into(),
            name: name.into(),
            input,
        }
    }

    fn tool_result(id: &str, content: &str, is_error: bool) -> ContentBlock {
        ContentBlock::ToolResult {
            tool_use_id: id.into(),
            content: content.into(),
            is_error,
        }
    }

    /// Feeds chunks (and `[DONE]` when `done`) through the assembler; returns the response and
    /// the text given to the sink.
    fn feed(chunks: &[Value], done: bool) -> (Result<Response, LlmError>, String) {
        let texts = std::sync::Mutex::new(String::new());
        let sink = |d: Delta<'_>| match d {
            Delta::Text(t) => texts.lock().map(|mut s| s.push_str(t)).unwrap_or(()),
            Delta::Thinking(_) => {}
        };
        let mut assembler = StreamAssembler::default();
        let mut data: Vec<String> = chunks.iter().map(Value::to_string).collect();
        if done {
            data.push("[DONE]".into());
        }
        let mut result = None;
        for data in data {
            let event = SseEvent {
                event: String::new(),
                data,
            };
            match assembler.apply(&event, &sink) {
                Ok(Some(response)) => {
                    result = Some(Ok(response));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    result = Some(Err(e));
                    break;
                }
            }
        }
        let result = result.unwrap_or_else(|| assembler.finish_without_done());
        let text = texts.lock().map(|s| s.clone()).unwrap_or_default();
        (result, text)
    }

    fn delta(delta: Value) -> Value {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
    }

    fn finish(reason: &str) -> Value {
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    }

    /// A whole tool-using conversation maps onto OpenAI messages: system first; the assistant's
    /// calls as `tool_calls` with JSON-text arguments and null content when it said nothing;
    /// every result as a `tool` message (errors marked), then the user's text.
    #[test]
    fn history_maps_onto_openai_messages() {
        let history = vec![
            Message::user_text("fix it"),
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentBlock::text("Looking."),
                    tool_use("call_1", "read_file", json!({"path": "a.rs"})),
                    tool_use("0", "bash", json!({"command": "ls"})),
                ],
            },
            Message {
                role: Role::User,
                content: vec![
                    tool_result("call_1", "1\tfn main() {}", false),
                    tool_result("0", "exit code 2", true),
                    ContentBlock::text("<background-results>...</background-results>"),
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![tool_use("x", "bash", Value::String("{not json".into()))],
            },
            Message {
                role: Role::User,
                content: vec![tool_result("x", "the tool input is not valid JSON", true)],
            },
        ];
        let messages = to_messages("You are corral.", &history);
        assert_eq!(
            Value::Array(messages),
            json!([
                {"role": "system", "content": "You are corral."},
                {"role": "user", "content": "fix it"},
                {"role": "assistant", "content": "Looking.", "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "read_file", "arguments": "{\"path\":\"a.rs\"}"}},
                    {"id": "0", "type": "function",
                     "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "1\tfn main() {}"},
                {"role": "tool", "tool_call_id": "0", "content": "Error: exit code 2"},
                {"role": "user", "content": "<background-results>...</background-results>"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "x", "type": "function", "function": {"name": "bash", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "x", "content": "Error: the tool input is not valid JSON"},
            ])
        );
    }

    /// Tools become functions; streaming asks for usage; OpenAI itself gets
    /// `max_completion_tokens`, other servers `max_tokens`.
    #[test]
    fn request_body_has_functions_and_the_right_limit() {
        let tools = [ToolSpec {
            name: "bash".into(),
            description: "Run a command.".into(),
            input_schema: json!({"type": "object", "properties": {"command": {"type": "string"}}}),
        }];
        let messages = [Message::user_text("hi")];
        let request = Request {
            model: "gpt-test",
            max_tokens: 100,
            thinking: crate::llm::Thinking::Adaptive,
            effort: None,
            cache: true,
            system: "",
            tools: &tools,
            messages: &messages,
        };
        let body = request_body(&request, true, false);
        assert_eq!(
            body,
            json!({
                "model": "gpt-test",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 100,
                "tools": [{"type": "function", "function": {"name": "bash",
                    "description": "Run a command.",
                    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}],
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
        let official = request_body(&request, false, true);
        assert_eq!(official["max_completion_tokens"], 100);
        assert!(official.get("max_tokens").is_none());
        assert!(official.get("stream").is_none() && official.get("stream_options").is_none());
    }

    /// Only OpenAI's own host needs a key.
    #[test]
    fn only_api_openai_com_is_official() {
        let config = |base: &str| OpenAiConfig {
            base_url: base.into(),
            api_key: String::new(),
            stream: true,
            read_timeout: Duration::from_secs(1),
        };
        assert!(config(DEFAULT_BASE_URL).is_openai());
        assert!(config("https://API.openai.com/v1/").is_openai());
        assert!(!config("http://127.0.0.1:8080/v1").is_openai());
        assert!(!config("https://api.openai.com.example.org/v1").is_openai());
    }

    /// A whole answer with text, a tool call with an odd id, one without an id, and malformed
    /// arguments maps back to blocks; usage is read.
    #[test]
    fn a_whole_answer_maps_back() {
        let response = parse_completion(&json!({
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {"id": "0", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}},
                    {"type": "function", "function": {"name": "bash", "arguments": "{\"command\": \"ls"}},
                ]
            }}],
            "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}
        }))
        .expect("valid answer");
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 21,
                output_tokens: 9,
                ..Usage::default()
            }
        );
        assert_eq!(response.content.len(), 3);
        assert_eq!(response.content[0], ContentBlock::text("Let me look."));
        assert_eq!(
            response.content[1],
            tool_use("0", "read_file", json!({"path": "a"}))
        );
        let ContentBlock::ToolUse { id, name, input } = &response.content[2] else {
            panic!("not a tool call: {:?}", response.content[2]);
        };
        assert!(id.starts_with("call_") && id.len() > 5, "{id}");
        assert_eq!(name, "bash");
        assert_eq!(input, &Value::String("{\"command\": \"ls".into()));
    }

    /// Null content with tool calls gives only tool_use blocks; finish reasons map; a `stop` with
    /// tool calls is taken as a tool stop.
    #[test]
    fn finish_reasons_and_null_content() {
        let answer = |content: Value, calls: Value, reason: &str| {
            parse_completion(&json!({"choices": [{"index": 0, "finish_reason": reason,
                "message": {"role": "assistant", "content": content, "tool_calls": calls}}]}))
            .expect("valid answer")
        };
        let call = json!([{"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]);
        let null_content = answer(Value::Null, call.clone(), "tool_calls");
        assert_eq!(null_content.content, vec![tool_use("c", "bash", json!({}))]);
        assert_eq!(
            answer(Value::Null, call, "stop").stop_reason,
            StopReason::ToolUse
        );
        let text = |reason: &str| answer(json!("hi"), Value::Null, reason).stop_reason;
        assert_eq!(text("stop"), StopReason::EndTurn);
        assert_eq!(text("length"), StopReason::MaxTokens);
        assert_eq!(text("content_filter"), StopReason::Refusal);
        assert_eq!(text("eos"), StopReason::Other("eos".into()));
    }

    /// Text in pieces, and two tool calls whose arguments arrive in many pieces keyed by index
    /// (id and name only in the first), assemble into one message; usage comes in the last chunk.
    #[test]
    fn a_stream_assembles_text_and_split_tool_calls() {
        let call = |index: u64, first: Option<(&str, &str)>, args: &str| {
            let mut piece = json!({"index": index, "function": {"arguments": args}});
            if let Some((id, name)) = first {
                piece["id"] = json!(id);
                piece["type"] = json!("function");
                piece["function"]["name"] = json!(name);
            }
            delta(json!({"tool_calls": [piece]}))
        };
        let long_id = "a".repeat(40);
        let (response, text) = feed(
            &[
                delta(json!({"role": "assistant", "content": ""})),
                delta(json!({"content": "Two "})),
                delta(json!({"content": "calls."})),
                call(0, Some(("0", "write_file")), ""),
                call(0, None, "{\"path\": \"a.txt\", "),
                call(1, Some((&long_id, "bash")), "{\"comm"),
                call(0, None, "\"content\": \"x\"}"),
                call(1, None, "and\": \"ls\"}"),
                finish("tool_calls"),
                json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}),
            ],
            true,
        );
        let response = response.expect("whole");
        assert_eq!(text, "Two calls.");
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 7,
                output_tokens: 3,
                ..Usage::default()
            }
        );
        assert_eq!(
            response.content,
            vec![
                ContentBlock::text("Two calls."),
                tool_use("0", "write_file", json!({"path": "a.txt", "content": "x"})),
                tool_use(&long_id, "bash", json!({"command": "ls"})),
            ]
        );
    }

    /// Servers that send no index (each call whole, in its own piece) still give separate calls,
    /// and a call without an id gets one.
    #[test]
    fn a_stream_without_indexes_or_ids() {
        let (response, _) = feed(
            &[
                delta(
                    json!({"tool_calls": [{"id": "a", "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}}]}),
                ),
                delta(
                    json!({"tool_calls": [{"id": "b", "function": {"name": "bash", "arguments": "{\"command\":\"pwd\"}"}}]}),
                ),
                finish("tool_calls"),
            ],
            true,
        );
        let response = response.expect("whole");
        assert_eq!(
            response.content,
            vec![
                tool_use("a", "bash", json!({"command": "ls"})),
                tool_use("b", "bash", json!({"command": "pwd"})),
            ]
        );
        let (response, _) = feed(
            &[
                delta(
                    json!({"tool_calls": [{"index": 0, "function": {"name": "bash", "arguments": ""}}]}),
                ),
                finish("tool_calls"),
            ],
            true,
        );
        let response = response.expect("whole");
        let ContentBlock::ToolUse { id, input, .. } = &response.content[0] else {
            panic!("{response:?}");
        };
        assert!(id.starts_with("call_"), "{id}");
        assert_eq!(input, &json!({}));
    }

    /// A stream that ends without `[DONE]` is whole only if a finish_reason came; otherwise it
    /// is incomplete (and so retried), never half a message.
    #[test]
    fn a_stream_without_done_needs_a_finish_reason() {
        let (whole, _) = feed(&[delta(json!({"content": "hi"})), finish("stop")], false);
        assert_eq!(
            whole.expect("whole").content,
            vec![ContentBlock::text("hi")]
        );
        let (cut, _) = feed(
            &[
                delta(json!({"content": "hi"})),
                delta(
                    json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "bash", "arguments": "{\"co"}}]}),
                ),
            ],
            false,
        );
        let error = cut.expect_err("incomplete");
        assert!(
            matches!(error, LlmError::StreamIncomplete { .. }),
            "{error}"
        );
        assert!(error.is_retryable());
        let (empty, _) = feed(&[], false);
        assert!(
            empty
                .expect_err("incomplete")
                .to_string()
                .contains("before any chunk")
        );
    }

    /// Streamed `reasoning_content` becomes a thinking block before the text, heard as
    /// thinking; cached and reasoning token counts are read.
    #[test]
    fn a_stream_with_reasoning() {
        let (response, text) = feed(
            &[
                delta(json!({"reasoning_content": "The user "})),
                delta(json!({"reasoning_content": "wants hi."})),
                delta(json!({"content": "hi"})),
                finish("stop"),
                json!({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 8,
                    "prompt_tokens_details": {"cached_tokens": 40},
                    "completion_tokens_details": {"reasoning_tokens": 6}}}),
            ],
            true,
        );
        let response = response.expect("whole");
        assert_eq!(text, "hi", "thinking is not text");
        assert_eq!(
            response.content,
            vec![
                ContentBlock::Thinking {
                    thinking: "The user wants hi.".into(),
                    signature: String::new()
                },
                ContentBlock::text("hi"),
            ]
        );
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 50,
                output_tokens: 8,
                cache_read_input_tokens: 40,
                reasoning_tokens: 6,
                ..Usage::default()
            }
        );
    }

    /// Reasoning goes back as `reasoning_content` within the tool loop under way, and not for
    /// turns before the user's latest prompt.
    #[test]
    fn reasoning_goes_back_within_the_tool_loop() {
        let thought = |t: &str| ContentBlock::Thinking {
            thinking: t.into(),
            signature: String::new(),
        };
        let history = vec![
            Message::user_text("first"),
            Message {
                role: Role::Assistant,
                content: vec![thought("old"), ContentBlock::text("done")],
            },
            Message::user_text("second"),
            Message {
                role: Role::Assistant,
                content: vec![thought("new"), tool_use("c", "bash", json!({}))],
            },
            Message {
                role: Role::User,
                content: vec![tool_result("c", "ok", false)],
            },
        ];
        let messages = to_messages("", &history);
        assert!(
            messages[1].get("reasoning_content").is_none(),
            "{}",
            messages[1]
        );
        assert_eq!(messages[3]["reasoning_content"], "new");
    }

    /// An error chunk mid-stream is an API error: retryable when it is a server error, final
    /// when its code says the request is wrong.
    #[test]
    fn error_chunks_are_api_errors() {
        let (server, _) = feed(
            &[
                delta(json!({"content": "hi"})),
                json!({"error": {"message": "The server had an error", "type": "server_error"}}),
            ],
            false,
        );
        let server = server.expect_err("error");
        assert!(server.is_retryable(), "{server}");
        assert!(server.to_string().contains("The server had an error"));
        let (bad, _) = feed(
            &[
                json!({"error": {"message": "context too long", "type": "BadRequestError", "code": 400}}),
            ],
            false,
        );
        let bad = bad.expect_err("error");
        assert!(!bad.is_retryable(), "{bad}");
        assert!(bad.to_string().contains("400"), "{bad}");
    }
}
