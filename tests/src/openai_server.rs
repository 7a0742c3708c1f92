//! A scripted OpenAI Chat Completions server: real HTTP on `127.0.0.1:0`, JSON and SSE.
//!
//! Each `POST /v1/chat/completions` takes the next [`Reply`] of the script. A request that
//! breaks the API's rules ([`crate::openai_rules`]) is recorded as a violation and refused with
//! a 400; so is a request past the end of the script. Tests end with
//! [`OpenAiServer::assert_clean`]. [`OpenAiServer::url`] is the `OPENAI_BASE_URL` (with `/v1`).
//!
//! Streams look like OpenAI's: a first chunk with the role, text in pieces, each tool call's
//! id and name in its first piece and its `arguments` in the rest, a chunk with the
//! `finish_reason`, a usage chunk when `stream_options.include_usage` asked for it, and
//! `data: [DONE]`.

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use crate::scripted::{
    Protocol, Scripted, error_response, json_response, random_hex, sse_response, wants_stream,
};

/// One tool call of an answer. `arguments` is sent as is: JSON text, or anything else.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// `None` sends a call without an id.
    pub id: Option<String>,
    pub name: String,
    pub arguments: String,
}

/// A tool call with JSON arguments.
pub fn call(id: &str, name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: Some(id.into()),
        name: name.into(),
        arguments: arguments.to_string(),
    }
}

/// One answer of the model.
#[derive(Debug, Clone)]
pub struct Completion {
    /// `None` sends `"content": null`.
    pub content: Option<String>,
    /// Sent as `reasoning_content`, as llama-server, vLLM and DeepSeek do; `None`: none.
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: String,
    /// How many stream chunks each text and each tool call's arguments are split into.
    pub pieces: usize,
}

impl Completion {
    /// A final answer: text, `stop`.
    pub fn text(text: &str) -> Self {
        Self {
            content: Some(text.into()),
            reasoning: None,
            tool_calls: Vec::new(),
            finish_reason: "stop".into(),
            pieces: 3,
        }
    }

    /// An answer that only calls tools: `content: null`, `finish_reason: tool_calls`.
    pub fn tools(calls: Vec<ToolCall>) -> Self {
        Self {
            content: None,
            reasoning: None,
            tool_calls: calls,
            finish_reason: "tool_calls".into(),
            pieces: 3,
        }
    }

    /// Text and tool calls.
    pub fn text_and_tools(text: &str, calls: Vec<ToolCall>) -> Self {
        Self {
            content: Some(text.into()),
            ..Self::tools(calls)
        }
    }

    /// The same answer, thinking `reasoning` first.
    pub fn with_reasoning(mut self, reasoning: &str) -> Self {
        self.reasoning = Some(reasoning.into());
        self
    }

    /// Streams text and arguments in `pieces` chunks each (at most one a character).
    pub fn in_pieces(mut self, pieces: usize) -> Self {
        self.pieces = pieces.max(1);
        self
    }
}

/// What the server answers to one request.
pub enum Reply {
    /// The completion as JSON, or as SSE chunks when the request asked to stream.
    Completion(Completion),
    /// An error status with OpenAI's error body, and optionally a `retry-after` header.
    Error {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<String>,
    },
    /// The completion's SSE chunks, cut off after the first `chunks` of them (the connection
    /// dies, no `[DONE]`).
    CutStream {
        completion: Completion,
        chunks: usize,
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
}

impl From<Completion> for Reply {
    fn from(completion: Completion) -> Self {
        Reply::Completion(completion)
    }
}

/// The OpenAI Chat Completions API, as the scripted server speaks it.
pub struct OpenAi;

/// A scripted OpenAI Chat Completions server.
pub type OpenAiServer = Scripted<OpenAi>;

impl Protocol for OpenAi {
    type Reply = Reply;
    const BASE: &'static str = "/v1";
    const ENDPOINT: &'static str = "/chat/completions";

    fn violations(headers: &HeaderMap, body: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(auth) = headers.get("authorization") {
            let ok = auth
                .to_str()
                .ok()
                .and_then(|a| a.strip_prefix("Bearer "))
                .is_some_and(|key| !key.trim().is_empty());
            if !ok {
                out.push(format!("authorization is not `Bearer <key>`: {auth:?}"));
            }
        }
        out.extend(crate::openai_rules::violations(body));
        out
    }

    fn history_violations(
        _earlier: &[crate::scripted::Recorded],
        answers: &[Value],
        body: &Value,
    ) -> Vec<String> {
        crate::openai_rules::reasoning_violations(answers, body)
    }

    fn answer(reply: &Reply) -> Option<Value> {
        match reply {
            Reply::Completion(c) => Some(json!({
                "reasoning": c.reasoning,
                "tool_call_ids": c.tool_calls.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
            })),
            _ => None,
        }
    }

    fn error_body(kind: &str, message: &str) -> Value {
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
    }

    fn respond(reply: Reply, body: &Value) -> Response {
        let usage = body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
        match reply {
            Reply::Completion(completion) if wants_stream(body) => {
                sse_response(sse_frames(&completion, usage), false)
            }
            Reply::Completion(completion) => json_response(&completion_json(&completion)),
            Reply::CutStream { completion, chunks } => sse_response(
                sse_frames(&completion, usage)
                    .into_iter()
                    .take(chunks)
                    .collect(),
                true,
            ),
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
        }
    }
}

fn usage() -> Value {
    json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
}

/// A whole (non-streamed) answer.
fn completion_json(completion: &Completion) -> Value {
    let mut message = json!({"role": "assistant", "content": completion.content});
    if let Some(reasoning) = &completion.reasoning {
        message["reasoning_content"] = json!(reasoning);
    }
    if !completion.tool_calls.is_empty() {
        let calls: Vec<Value> = completion
            .tool_calls
            .iter()
            .map(|c| {
                let mut call = json!({"type": "function",
                    "function": {"name": c.name, "arguments": c.arguments}});
                if let Some(id) = &c.id {
                    call["id"] = json!(id);
                }
                call
            })
            .collect();
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": format!("chatcmpl-{}", random_hex()),
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "scripted",
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": completion.finish_reason}],
        "usage": usage(),
    })
}

/// `text` in `pieces` parts (fewer when it is shorter), split at character boundaries.
fn split(text: &str, pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(pieces.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The stream chunks of a completion, as `data:` frames.
pub fn sse_frames(completion: &Completion, include_usage: bool) -> Vec<String> {
    let id = format!("chatcmpl-{}", random_hex());
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "scripted", "choices": [{"index": 0, "delta": delta, "logprobs": null,
            "finish_reason": finish}]})
    };
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for piece in split(
        completion.reasoning.as_deref().unwrap_or(""),
        completion.pieces,
    ) {
        chunks.push(chunk(json!({"reasoning_content": piece}), Value::Null));
    }
    for piece in split(
        completion.content.as_deref().unwrap_or(""),
        completion.pieces,
    ) {
        chunks.push(chunk(json!({"content": piece}), Value::Null));
    }
    for (index, call) in completion.tool_calls.iter().enumerate() {
        let mut first = json!({"index": index, "type": "function",
            "function": {"name": call.name, "arguments": ""}});
        if let Some(id) = &call.id {
            first["id"] = json!(id);
        }
        chunks.push(chunk(json!({"tool_calls": [first]}), Value::Null));
        for piece in split(&call.arguments, completion.pieces) {
            chunks.push(chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    chunks.push(chunk(json!({}), json!(completion.finish_reason)));
    if include_usage {
        chunks.push(
            json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "scripted", "choices": [], "usage": usage()}),
        );
    }
    let mut frames: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    frames.push("data: [DONE]\n\n".into());
    frames
}
