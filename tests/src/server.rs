//! A scripted Anthropic Messages server: real HTTP on `127.0.0.1:0`, JSON and SSE.
//!
//! Each `POST /v1/messages` takes the next [`Reply`] of the script. A request that breaks the
//! API's rules ([`crate::rules`]) is recorded as a violation and refused with a 400, as the real
//! API would; so is a request past the end of the script. Tests end with
//! [`ScriptedServer::assert_clean`]. The serving, recording and refusing are
//! [`crate::scripted`]'s; this file is what is Anthropic's: headers, rules, answers and events.

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

pub use crate::scripted::Recorded;
use crate::scripted::{
    Protocol, Scripted, error_response, json_response, paced_response, random_hex, sse_response,
    wants_stream,
};

/// One answer of the model: content blocks and a stop reason.
#[derive(Debug, Clone)]
pub struct Turn {
    pub blocks: Vec<Value>,
    pub stop_reason: String,
    /// The `usage` the answer reports; `None`: 10 in, 5 out.
    pub usage: Option<Value>,
}

impl Turn {
    /// A final answer: text, `end_turn`.
    pub fn text(text: &str) -> Self {
        Self {
            blocks: vec![json!({"type": "text", "text": text})],
            stop_reason: "end_turn".into(),
            usage: None,
        }
    }

    /// The same answer, reporting `usage` (input counts in `message_start`, output in
    /// `message_delta` when streamed).
    pub fn with_usage(mut self, usage: Value) -> Self {
        self.usage = Some(usage);
        self
    }

    /// The same answer with `blocks` (thinking, say) before its own.
    pub fn after(mut self, blocks: Vec<Value>) -> Self {
        self.blocks.splice(0..0, blocks);
        self
    }

    /// An answer that calls tools (`stop_reason: tool_use`).
    pub fn tools(calls: Vec<Value>) -> Self {
        Self {
            blocks: calls,
            stop_reason: "tool_use".into(),
            usage: None,
        }
    }

    /// Text followed by tool calls.
    pub fn text_and_tools(text: &str, calls: Vec<Value>) -> Self {
        let mut blocks = vec![json!({"type": "text", "text": text})];
        blocks.extend(calls);
        Self {
            blocks,
            stop_reason: "tool_use".into(),
            usage: None,
        }
    }
}

/// `turn`, reporting as its `input_tokens` the request's bytes divided by 4, about what a
/// tokenizer would count: corral's size estimate sees the conversation grow as with a real
/// model.
pub fn sized(turn: Turn) -> Reply {
    Reply::dynamic(move |body| {
        let tokens = body.to_string().len() / 4;
        turn.clone()
            .with_usage(json!({"input_tokens": tokens, "output_tokens": 5}))
            .into()
    })
}

/// A `tool_use` block.
pub fn tool_use(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

/// A `thinking` block with its signature; every later request must carry it back unchanged.
pub fn thinking(text: &str, signature: &str) -> Value {
    json!({"type": "thinking", "thinking": text, "signature": signature})
}

/// A `redacted_thinking` block; every later request must carry it back unchanged.
pub fn redacted_thinking(data: &str) -> Value {
    json!({"type": "redacted_thinking", "data": data})
}

/// `value` without its prompt-cache breakpoints (every `cache_control`, at any depth): the
/// content as corral keeps it in its history and session file.
pub fn without_cache_marks(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "cache_control")
                .map(|(k, v)| (k.clone(), without_cache_marks(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_cache_marks).collect()),
        other => other.clone(),
    }
}

/// The system prompt of a request body: the string, or its text blocks joined (a cached system
/// prompt is a list of blocks).
pub fn system_text(body: &Value) -> String {
    match &body["system"] {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// What the server answers to one request.
pub enum Reply {
    /// The turn as a JSON message, or as SSE events when the request asked to stream.
    Turn(Turn),
    /// An error status with the API's error body, and optionally a `retry-after` header.
    Error {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<String>,
    },
    /// The turn's SSE events, cut off after the first `events` of them (the connection dies).
    CutStream { turn: Turn, events: usize },
    /// Decided when the request arrives, from its body.
    Dynamic(Box<dyn Fn(&Value) -> Reply + Send + Sync>),
    /// The turn from a slow model: its SSE events each `gap` after the one before (the first
    /// too), or the whole JSON message after `gap`.
    Paced {
        turn: Turn,
        gap: std::time::Duration,
    },
}

impl Reply {
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        Reply::Error {
            status,
            kind: kind.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn dynamic(f: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Self {
        Reply::Dynamic(Box::new(f))
    }
}

impl From<Turn> for Reply {
    fn from(turn: Turn) -> Self {
        Reply::Turn(turn)
    }
}

/// The Anthropic Messages API, as the scripted server speaks it.
pub struct Anthropic;

/// A scripted Anthropic Messages server; [`ScriptedServer::url`] is its `ANTHROPIC_BASE_URL`.
pub type ScriptedServer = Scripted<Anthropic>;

impl Protocol for Anthropic {
    type Reply = Reply;
    const BASE: &'static str = "";
    const ENDPOINT: &'static str = "/v1/messages";
    const COUNT_ENDPOINT: Option<&'static str> = Some("/v1/messages/count_tokens");

    fn violations(headers: &HeaderMap, body: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if headers.get("x-api-key").is_none() {
            out.push("no x-api-key header".to_string());
        }
        if headers
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
            != Some("2023-06-01")
        {
            out.push("anthropic-version is not 2023-06-01".to_string());
        }
        out.extend(crate::rules::violations(body));
        out
    }

    fn history_violations(earlier: &[Recorded], answers: &[Value], body: &Value) -> Vec<String> {
        let mut out = crate::rules::thinking_violations(answers, body);
        // A compaction's summarising call is a conversation of its own, and the request after
        // it starts over; between the agent's other calls the prefix rule holds.
        if crate::rules::is_summary_request(body) {
            return out;
        }
        if let Some(last) = earlier.last()
            && crate::rules::starts_over(&last.body, body)
        {
            return out;
        }
        let previous = earlier
            .iter()
            .rev()
            .find(|r| !crate::rules::is_summary_request(&r.body));
        if let Some(previous) = previous {
            out.extend(crate::rules::prefix_violations(&previous.body, body));
        }
        out
    }

    fn answer(reply: &Reply) -> Option<Value> {
        match reply {
            Reply::Turn(turn) | Reply::Paced { turn, .. } => {
                Some(Value::Array(turn.blocks.clone()))
            }
            _ => None,
        }
    }

    fn error_body(kind: &str, message: &str) -> Value {
        json!({"type": "error", "error": {"type": kind, "message": message}})
    }

    fn respond(reply: Reply, body: &Value) -> Response {
        match reply {
            Reply::Turn(turn) if wants_stream(body) => sse_response(sse_frames(&turn), false),
            Reply::Turn(turn) => json_response(&message_json(&turn)),
            Reply::CutStream { turn, events } => {
                sse_response(sse_frames(&turn).into_iter().take(events).collect(), true)
            }
            Reply::Error {
                status,
                kind,
                message,
                retry_after,
            } => error_response(
                status,
                retry_after.as_deref(),
                &Self::error_body(&kind, &message),
            ),
            Reply::Dynamic(f) => Self::respond(f(body), body),
            Reply::Paced { turn, gap } if wants_stream(body) => {
                paced_response("text/event-stream", sse_frames(&turn), gap)
            }
            Reply::Paced { turn, gap } => paced_response(
                "application/json",
                vec![message_json(&turn).to_string()],
                gap,
            ),
        }
    }
}

fn message_id() -> String {
    format!("msg_{}", random_hex())
}

/// A whole (non-streamed) Messages answer.
fn message_json(turn: &Turn) -> Value {
    json!({
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": "scripted",
        "content": turn.blocks,
        "stop_reason": turn.stop_reason,
        "stop_sequence": null,
        "usage": turn.usage.clone().unwrap_or_else(|| json!({"input_tokens": 10, "output_tokens": 5}))
    })
}

fn sse_frames(turn: &Turn) -> Vec<String> {
    sse_events(turn)
        .into_iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// The SSE events of a turn, as the real API sends them: text in two deltas, tool input JSON
/// in three pieces, thinking in two deltas and then its signature, a redacted thinking block
/// whole in its start, a ping in the middle.
pub fn sse_events(turn: &Turn) -> Vec<(String, Value)> {
    let mut start_usage = json!({"input_tokens": 10, "output_tokens": 1});
    let mut output = json!(5);
    if let Some(usage) = &turn.usage {
        start_usage = usage.clone();
        start_usage["output_tokens"] = json!(1);
        output = usage["output_tokens"].clone();
    }
    let mut events = vec![(
        "message_start".to_string(),
        json!({"type": "message_start", "message": {"id": message_id(), "type": "message", "role": "assistant",
            "model": "scripted", "content": [], "stop_reason": null, "usage": start_usage}}),
    )];
    events.push(("ping".into(), json!({"type": "ping"})));
    for (index, block) in turn.blocks.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") => {
                let text = block["text"].as_str().unwrap_or("");
                let mid = text
                    .char_indices()
                    .nth(text.chars().count() / 2)
                    .map_or(0, |(i, _)| i);
                events.push(("content_block_start".into(), json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                for piece in [&text[..mid], &text[mid..]] {
                    events.push(("content_block_delta".into(), json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
                }
            }
            Some("tool_use") => {
                events.push(("content_block_start".into(), json!({"type": "content_block_start", "index": index,
                    "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})));
                let input = block["input"].to_string();
                let chars: Vec<char> = input.chars().collect();
                let third = chars.len().div_ceil(3).max(1);
                for piece in chars.chunks(third) {
                    let piece: String = piece.iter().collect();
                    events.push(("content_block_delta".into(), json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})));
                }
            }
            Some("thinking") => {
                let text = block["thinking"].as_str().unwrap_or("");
                let mid = text
                    .char_indices()
                    .nth(text.chars().count() / 2)
                    .map_or(0, |(i, _)| i);
                events.push(("content_block_start".into(), json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}})));
                for piece in [&text[..mid], &text[mid..]] {
                    events.push(("content_block_delta".into(), json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": piece}})));
                }
                events.push(("content_block_delta".into(), json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": block["signature"]}})));
            }
            Some("redacted_thinking") => {
                events.push((
                    "content_block_start".into(),
                    json!({"type": "content_block_start", "index": index, "content_block": block}),
                ));
            }
            _ => continue,
        }
        events.push((
            "content_block_stop".into(),
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(("message_delta".into(), json!({"type": "message_delta", "delta": {"stop_reason": turn.stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output}})));
    events.push(("message_stop".into(), json!({"type": "message_stop"})));
    events
}

/// One `tool_result` block of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    pub id: String,
    pub is_error: bool,
    pub content: String,
}

/// The `tool_result` blocks of the last message of a request body, in order.
pub fn tool_results(body: &Value) -> Vec<ToolResult> {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null);
    last["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| ToolResult {
            id: b["tool_use_id"].as_str().unwrap_or("").to_string(),
            is_error: b["is_error"].as_bool().unwrap_or(false),
            content: b["content"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}
