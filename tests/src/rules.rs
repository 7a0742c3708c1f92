//! The Anthropic Messages API's rules for a request, checked on the raw JSON body.
//!
//! Written apart from corral's own checks on purpose: the test server must catch what corral
//! gets wrong, not share its mistakes.
//!
//! Besides the rules of one request ([`violations`]), two need the conversation so far: the
//! model's thinking must come back unchanged ([`thinking_violations`]), and a request must begin
//! with the bytes the previous one cached ([`prefix_violations`]).

use serde_json::Value;

use crate::cache::Units;

/// The most `cache_control` breakpoints the API takes in one request.
pub const MAX_BREAKPOINTS: usize = 4;

/// Every rule `body` breaks, as readable sentences; empty when the request is valid.
pub fn violations(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if !body.get("model").is_some_and(Value::is_string) {
        out.push("no `model`".to_string());
    }
    if !body.get("max_tokens").is_some_and(Value::is_u64) {
        out.push("no integer `max_tokens`".to_string());
    }
    if let Some(tools) = body.get("tools") {
        for tool in tools.as_array().into_iter().flatten() {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
            let ok_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok_name {
                out.push(format!("tool name {name:?} is not ^[a-zA-Z0-9_-]{{1,64}}$"));
            }
            if tool.pointer("/input_schema/type") != Some(&Value::from("object")) {
                out.push(format!("tool {name}: input_schema.type is not \"object\""));
            }
        }
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        out.push("no `messages` array".to_string());
        return out;
    };
    out.extend(breakpoint_violations(body));
    for (i, message) in messages.iter().enumerate() {
        for block in message["content"].as_array().into_iter().flatten() {
            let signed = block["signature"].as_str().is_some_and(|s| !s.is_empty());
            if block["type"] == "thinking" && !signed {
                out.push(format!(
                    "message {i}: a thinking block without its signature"
                ));
            }
            if block["type"] == "redacted_thinking" && !block["data"].is_string() {
                out.push(format!(
                    "message {i}: a redacted_thinking block without its data"
                ));
            }
        }
    }
    if messages.is_empty() {
        out.push("`messages` is empty".to_string());
        return out;
    }
    let role = |m: &Value| {
        m.get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if role(&messages[0]) != "user" {
        out.push("the first message is not from the user".to_string());
    }
    if role(&messages[messages.len() - 1]) != "user" {
        out.push(
            "the last message is not from the user (a prefill corral never means)".to_string(),
        );
    }
    for (i, message) in messages.iter().enumerate() {
        let content = message.get("content").and_then(Value::as_array);
        let Some(content) = content.filter(|c| !c.is_empty()) else {
            out.push(format!("message {i} has no content blocks"));
            continue;
        };
        if i > 0 && role(&messages[i - 1]) == role(message) {
            out.push(format!(
                "messages {} and {i} are both from {}",
                i - 1,
                role(message)
            ));
        }
        let kind = |b: &Value| {
            b.get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        if role(message) == "assistant" {
            let ids: Vec<&str> = content
                .iter()
                .filter(|b| kind(b) == "tool_use")
                .filter_map(|b| b.get("id").and_then(Value::as_str))
                .collect();
            for block in content.iter().filter(|b| kind(b) == "tool_use") {
                if !block.get("input").is_some_and(Value::is_object) {
                    out.push(format!("message {i}: a tool_use input is not an object"));
                }
            }
            if ids.is_empty() {
                continue;
            }
            let Some(next) = messages.get(i + 1) else {
                out.push(format!("message {i} asks for tools and nothing answers it"));
                continue;
            };
            let next_content = next.get("content").and_then(Value::as_array);
            let answered: Vec<&str> = next_content
                .into_iter()
                .flatten()
                .take_while(|b| kind(b) == "tool_result")
                .filter_map(|b| b.get("tool_use_id").and_then(Value::as_str))
                .collect();
            if answered != ids {
                out.push(format!(
                    "message {} must open with tool_result blocks for {ids:?}, in order; it has {answered:?}",
                    i + 1
                ));
            }
        } else {
            let owed: Vec<&str> = if i > 0 {
                messages[i - 1]
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|b| kind(b) == "tool_use")
                    .filter_map(|b| b.get("id").and_then(Value::as_str))
                    .collect()
            } else {
                Vec::new()
            };
            for block in content.iter().filter(|b| kind(b) == "tool_result") {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !owed.contains(&id) {
                    out.push(format!("message {i}: tool_result for {id:?}, which the previous message did not ask for"));
                }
            }
        }
    }
    out
}

/// The prompt cache's rules: at most [`MAX_BREAKPOINTS`], each `{"type": "ephemeral"}`, none on
/// a thinking block (the API refuses those); and, once there are any, on the stable prefix (the
/// last tool, the system prompt) and on the newest message, as corral promises.
fn breakpoint_violations(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut marks = Vec::new();
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    let system = body["system"].as_array().cloned().unwrap_or_default();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let blocks = messages
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default());
    for block in tools.iter().chain(&system).cloned().chain(blocks) {
        if let Some(mark) = block.get("cache_control") {
            marks.push(mark.clone());
            if matches!(
                block["type"].as_str(),
                Some("thinking" | "redacted_thinking")
            ) {
                out.push("a cache breakpoint on a thinking block".to_string());
            }
        }
    }
    if marks.is_empty() {
        return out;
    }
    if marks.len() > MAX_BREAKPOINTS {
        out.push(format!(
            "{} cache breakpoints; the API takes at most {MAX_BREAKPOINTS}",
            marks.len()
        ));
    }
    for mark in &marks {
        if mark["type"] != "ephemeral" {
            out.push(format!("a cache breakpoint that is not ephemeral: {mark}"));
        }
    }
    let marked = |v: Option<&Value>| v.is_some_and(|v| v.get("cache_control").is_some());
    if !tools.is_empty() && !marked(tools.last()) {
        out.push("the prompt is cached but the last tool has no breakpoint".to_string());
    }
    if body["system"].is_string() {
        out.push("the prompt is cached but the system prompt is a string, which cannot be".into());
    } else if !system.is_empty() && !marked(system.last()) {
        out.push("the prompt is cached but the system prompt has no breakpoint".to_string());
    }
    let newest = messages
        .last()
        .and_then(|m| m["content"].as_array())
        .and_then(|c| c.last());
    if !marked(newest) {
        out.push(
            "the prompt is cached but the newest message's last block has no breakpoint".into(),
        );
    }
    out
}

/// Whether `block` is a thinking block of either kind.
fn is_thinking(block: &Value) -> bool {
    matches!(
        block["type"].as_str(),
        Some("thinking" | "redacted_thinking")
    )
}

/// The real API's rule on thinking, made stricter, as corral keeps every block: each answer
/// with thinking the server gave (`answers`, each its content blocks) must come back in `body`
/// exactly as it was sent, its thinking blocks and their signatures unchanged, in place. The
/// message that came back is the assistant message whose other blocks are the answer's; when
/// the request holds none (another conversation against the same server), there is nothing to
/// check.
pub fn thinking_violations(answers: &[Value], body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let without_thinking = |blocks: &[Value]| -> Vec<Value> {
        blocks.iter().filter(|b| !is_thinking(b)).cloned().collect()
    };
    for answer in answers {
        let sent = answer.as_array().cloned().unwrap_or_default();
        if !sent.iter().any(is_thinking) {
            continue;
        }
        let rest = without_thinking(&sent);
        let back = messages.iter().find(|m| {
            m["role"] == "assistant"
                && m["content"]
                    .as_array()
                    .is_some_and(|c| without_thinking(c) == rest)
        });
        if let Some(back) = back
            && back["content"] != Value::Array(sent.clone())
        {
            out.push(format!(
                "the model's thinking did not come back unchanged (the API answers 400): sent {}, got {}",
                Value::Array(sent),
                back["content"]
            ));
        }
    }
    out
}

/// How corral's compacted history begins: its first user message opens with this block.
pub const SUMMARY_TAG: &str = "<conversation-summary>";

/// Whether `body` is the summarising call of a compaction: no tools, one user message holding
/// a `<transcript>`.
pub fn is_summary_request(body: &Value) -> bool {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    body.get("tools").is_none()
        && messages.len() == 1
        && messages[0].to_string().contains("<transcript>")
}

/// Whether `body` starts over after a compaction: it comes right after the summarising call
/// (`previous` is that call) and opens with the summary. The prefix rule cannot hold across
/// that request (the cache of the long history is given up on purpose); it holds again from
/// the next one.
pub fn starts_over(previous: &Value, body: &Value) -> bool {
    is_summary_request(previous)
        && body["messages"][0]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with(SUMMARY_TAG))
}

/// How many blocks before a breakpoint the API looks for an earlier cache entry (its
/// documented 20).
pub const LOOKBACK_BLOCKS: usize = 20;

/// Prefix stability: a request that goes on with the conversation of `previous`, the request
/// before it (it has more messages: one that has as many or fewer took a turn back, after an
/// `/undo` or a failed call), must begin with `previous`'s bytes up to `previous`'s last cache
/// breakpoint, and carry a breakpoint of its own at or less than [`LOOKBACK_BLOCKS`] after
/// it; otherwise the cache `previous` wrote is never read. Breakpoint markers aside
/// ([`Units`]).
pub fn prefix_violations(previous: &Value, body: &Value) -> Vec<String> {
    let count = |body: &Value| body["messages"].as_array().map_or(0, Vec::len);
    if count(body) < 2 || count(body) <= count(previous) {
        return Vec::new();
    }
    let before = Units::of(previous);
    let Some(&last) = before.breakpoints.last() else {
        return Vec::new();
    };
    let cached = before.prefix(last);
    let now = Units::of(body);
    let bytes = now.bytes();
    if !bytes.starts_with(&cached) {
        let at = cached
            .bytes()
            .zip(bytes.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let around = |s: &str| {
            s.get(at.saturating_sub(40)..(at + 40).min(s.len()))
                .unwrap_or("")
                .to_string()
        };
        return vec![format!(
            "the bytes up to the previous request's last cache breakpoint differ from it at byte {at}: now {:?}, before {:?}",
            around(&bytes),
            around(&cached)
        )];
    }
    if !now
        .breakpoints
        .iter()
        .any(|&b| b >= last && b - last <= LOOKBACK_BLOCKS)
    {
        return vec![format!(
            "no cache breakpoint at or within {LOOKBACK_BLOCKS} blocks after the previous request's last one (block {last}): its cache is never read; breakpoints now at {:?}",
            now.breakpoints
        )];
    }
    Vec::new()
}
