//! The Anthropic Messages API's rules for a request, checked on the raw JSON body.
//!
//! Written apart from corral's own checks on purpose: the test server must catch what corral
//! gets wrong, not share its mistakes.

use serde_json::Value;

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
