//! The OpenAI Chat Completions API's rules for a request, checked on the raw JSON body.
//!
//! Written apart from corral's own mapping on purpose, like [`crate::rules`]: the test server
//! must catch what corral gets wrong, not share its mistakes. Where OpenAI is lenient and the
//! servers that copy it are not (llama-server and vLLM parse `arguments`), the stricter rule is
//! checked.

use std::collections::HashSet;

use serde_json::Value;

/// Every rule `body` breaks, as readable sentences; empty when the request is valid.
pub fn violations(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if !body.get("model").is_some_and(Value::is_string) {
        out.push("no `model`".to_string());
    }
    for limit in ["max_tokens", "max_completion_tokens"] {
        if body.get(limit).is_some_and(|v| !v.is_u64()) {
            out.push(format!("`{limit}` is not an integer"));
        }
    }
    if body.get("max_tokens").is_some() && body.get("max_completion_tokens").is_some() {
        out.push("both `max_tokens` and `max_completion_tokens`".to_string());
    }
    if body.get("stream_options").is_some() && body.get("stream") != Some(&Value::Bool(true)) {
        out.push("`stream_options` without `\"stream\": true`".to_string());
    }
    if let Some(tools) = body.get("tools") {
        check_tools(tools, &mut out);
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        out.push("no `messages` array".to_string());
        return out;
    };
    if messages.is_empty() {
        out.push("`messages` is empty".to_string());
        return out;
    }
    check_messages(messages, &mut out);
    out
}

fn check_tools(tools: &Value, out: &mut Vec<String>) {
    let Some(tools) = tools.as_array() else {
        out.push("`tools` is not an array".to_string());
        return;
    };
    let mut names = HashSet::new();
    for tool in tools {
        if tool.get("type") != Some(&Value::from("function")) {
            out.push(format!("a tool's type is not \"function\": {tool}"));
        }
        let function = tool.get("function").unwrap_or(&Value::Null);
        let name = function.get("name").and_then(Value::as_str).unwrap_or("");
        let ok_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_name {
            out.push(format!("tool name {name:?} is not ^[a-zA-Z0-9_-]{{1,64}}$"));
        }
        if !names.insert(name.to_string()) {
            out.push(format!("two tools are named {name:?}"));
        }
        if function.get("description").is_some_and(|d| !d.is_string()) {
            out.push(format!("tool {name}: description is not a string"));
        }
        if function.pointer("/parameters/type") != Some(&Value::from("object")) {
            out.push(format!("tool {name}: parameters.type is not \"object\""));
        }
    }
}

fn is_text(content: Option<&Value>) -> bool {
    match content {
        Some(Value::String(_)) => true,
        Some(Value::Array(parts)) => parts
            .iter()
            .all(|p| p.get("type") == Some(&Value::from("text")) && p["text"].is_string()),
        _ => false,
    }
}

fn check_messages(messages: &[Value], out: &mut Vec<String>) {
    // Tool call ids of the last assistant message not yet answered by a `tool` message.
    let mut owed: Vec<String> = Vec::new();
    // Whether a `tool` message may come now: right after tool calls, or after other tool messages.
    let mut in_tool_answers = false;
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "tool" {
            if !owed.is_empty() {
                out.push(format!(
                    "message {i} ({role}) comes before tool messages answer the calls {owed:?}"
                ));
                owed.clear();
            }
            in_tool_answers = false;
        }
        let content = message.get("content");
        match role {
            "system" | "developer" | "user" => {
                if !is_text(content) {
                    out.push(format!("message {i} ({role}) has no text content"));
                }
                if role == "user" && content.and_then(Value::as_str) == Some("") {
                    out.push(format!("message {i} (user) is empty"));
                }
            }
            "assistant" => {
                let calls = message.get("tool_calls");
                let calls = match calls {
                    None => &[][..],
                    Some(Value::Array(calls)) if !calls.is_empty() => calls.as_slice(),
                    Some(other) => {
                        out.push(format!(
                            "message {i}: tool_calls is not a non-empty array: {other}"
                        ));
                        &[][..]
                    }
                };
                let text_ok = is_text(content) || (content.is_some_and(Value::is_null));
                if !text_ok {
                    out.push(format!(
                        "message {i} (assistant): content is not text or null"
                    ));
                }
                if calls.is_empty() && !is_text(content) {
                    out.push(format!(
                        "message {i} (assistant) has neither content nor tool_calls"
                    ));
                }
                for call in calls {
                    let id = call.get("id").and_then(Value::as_str).unwrap_or("");
                    if id.is_empty() {
                        out.push(format!("message {i}: a tool call has no id: {call}"));
                    }
                    if owed.iter().any(|o| o == id) {
                        out.push(format!("message {i}: two tool calls with the id {id:?}"));
                    }
                    if call.get("type") != Some(&Value::from("function")) {
                        out.push(format!(
                            "message {i}: tool call {id:?} has no type function"
                        ));
                    }
                    if !call.pointer("/function/name").is_some_and(Value::is_string) {
                        out.push(format!(
                            "message {i}: tool call {id:?} has no function name"
                        ));
                    }
                    match call.pointer("/function/arguments") {
                        Some(Value::String(text)) => {
                            let parsed: Result<Value, _> = serde_json::from_str(text);
                            if !parsed.as_ref().is_ok_and(Value::is_object) {
                                out.push(format!(
                                    "message {i}: tool call {id:?} arguments are not a JSON object: {text}"
                                ));
                            }
                        }
                        _ => out.push(format!(
                            "message {i}: tool call {id:?} arguments are not a string of JSON"
                        )),
                    }
                    owed.push(id.to_string());
                }
                in_tool_answers = !calls.is_empty();
            }
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !in_tool_answers {
                    out.push(format!(
                        "message {i} (tool, {id:?}) does not follow an assistant message with tool_calls"
                    ));
                } else if let Some(pos) = owed.iter().position(|o| o == id) {
                    owed.remove(pos);
                } else {
                    out.push(format!(
                        "message {i}: tool message for {id:?}, which no pending tool call has"
                    ));
                }
                if !content.is_some_and(Value::is_string) {
                    out.push(format!("message {i} (tool): content is not a string"));
                }
            }
            other => out.push(format!("message {i} has the unknown role {other:?}")),
        }
    }
    if !owed.is_empty() {
        out.push(format!(
            "the request ends with tool calls {owed:?} unanswered"
        ));
    }
    let last = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str);
    if last == Some("assistant") {
        out.push("the last message is from the assistant (a prefill corral never means)".into());
    }
}

/// DeepSeek's rule on reasoning, which corral follows for every server: an answer that came
/// with `reasoning_content` and called tools (`answers`, as the server remembers them) gets its
/// reasoning back, unchanged, while its tool loop is under way (after the last `user`
/// message), and not after: DeepSeek refuses reasoning from before the latest prompt.
pub fn reasoning_violations(answers: &[Value], body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_user = messages
        .iter()
        .rposition(|m| m["role"] == "user")
        .unwrap_or(0);
    for answer in answers {
        let Some(reasoning) = answer["reasoning"].as_str() else {
            continue;
        };
        let ids = &answer["tool_call_ids"];
        if ids
            .as_array()
            .is_none_or(|ids| ids.is_empty() || ids.iter().any(Value::is_null))
        {
            continue;
        }
        let found = messages.iter().enumerate().find(|(_, m)| {
            m["role"] == "assistant"
                && m["tool_calls"]
                    .as_array()
                    .map(|calls| calls.iter().map(|c| c["id"].clone()).collect::<Vec<_>>())
                    .as_ref()
                    == ids.as_array()
        });
        let Some((i, message)) = found else { continue };
        let back = message.get("reasoning_content");
        if i > last_user && back != Some(&Value::from(reasoning)) {
            out.push(format!(
                "message {i}: the reasoning of the tool loop under way did not come back as `reasoning_content`: {message}"
            ));
        }
        if i < last_user && back.is_some() {
            out.push(format!(
                "message {i}: reasoning from before the latest prompt was sent back: {message}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> Value {
        json!({"id": id, "type": "function", "function": {"name": "bash", "arguments": "{}"}})
    }

    fn body(messages: Value) -> Value {
        json!({"model": "m", "messages": messages})
    }

    /// The rules catch what a wrong mapping would send, and pass a right one.
    #[test]
    fn the_rules_catch_bad_requests() {
        let good = body(json!([
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": null, "tool_calls": [call("a"), call("b")]},
            {"role": "tool", "tool_call_id": "a", "content": "ok"},
            {"role": "tool", "tool_call_id": "b", "content": "ok"},
            {"role": "user", "content": "more"},
        ]));
        assert_eq!(violations(&good), Vec::<String>::new());
        let unanswered = body(json!([
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": null, "tool_calls": [call("a"), call("b")]},
            {"role": "tool", "tool_call_id": "a", "content": "ok"},
            {"role": "user", "content": "more"},
        ]));
        assert!(violations(&unanswered)[0].contains("[\"b\"]"));
        let stray = body(json!([
            {"role": "user", "content": "u"},
            {"role": "tool", "tool_call_id": "a", "content": "ok"},
        ]));
        assert_eq!(violations(&stray).len(), 1);
        let prefill = body(json!([
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "half"},
        ]));
        assert!(violations(&prefill)[0].contains("last message"));
        let object_arguments = body(json!([
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "bash", "arguments": {}}}]},
            {"role": "tool", "tool_call_id": "a", "content": "ok"},
        ]));
        assert_eq!(violations(&object_arguments).len(), 1);
        let bad_tool = json!({"model": "m", "messages": [{"role": "user", "content": "u"}],
            "tools": [{"type": "function", "function": {"name": "a b", "parameters": {}}}],
            "stream_options": {"include_usage": true}});
        assert_eq!(
            violations(&bad_tool).len(),
            3,
            "{:?}",
            violations(&bad_tool)
        );
    }
}
