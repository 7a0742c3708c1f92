//! Prompt caching for the Anthropic Messages API: where the `cache_control` breakpoints go.
//!
//! An agent sends its whole history on every call, and the history only grows, so each request
//! begins with the bytes of the one before. A breakpoint tells the API to cache the request up
//! to that block, and a later request that begins with the same bytes reads them from the cache
//! (at a tenth of the price, and sooner) instead of paying for them again. corral places at most
//! [`MAX_BREAKPOINTS`], the API's limit:
//!
//! 1. on the last tool (the tools come first in the API's order, and never change in a run);
//! 2. on the system prompt, which becomes one text block (it holds no time or other changing
//!    text, so it is the same on every call);
//! 3. on the last block of the newest message, so the next call can read everything up to it;
//! 4. on the last block of the user message before it, where the previous call put its
//!    breakpoint 3: the cache that call wrote is read from there even when one turn added more
//!    blocks than the API looks back over to find an earlier entry.
//!
//! The breakpoints roll forward as the conversation grows; what lies before the newest two
//! messages is the same, byte for byte, as in the previous request. The background results
//! arrive in a text block at the end of the newest user message, after everything cached
//! before. Thinking blocks are never marked (the API refuses it); they sit in assistant
//! messages, and only user messages are.

use serde_json::{Value, json};

/// The most breakpoints one request may carry.
pub const MAX_BREAKPOINTS: usize = 4;

/// Places the breakpoints on a Messages request body whose `system` is still a string.
pub(super) fn place_breakpoints(body: &mut Value) {
    let mark = json!({"type": "ephemeral"});
    if let Some(last) = body
        .get_mut("tools")
        .and_then(Value::as_array_mut)
        .and_then(|tools| tools.last_mut())
    {
        last["cache_control"] = mark.clone();
    }
    if let Some(text) = body.get("system").and_then(Value::as_str) {
        body["system"] = json!([{"type": "text", "text": text, "cache_control": mark}]);
    }
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    let users = messages
        .iter_mut()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .take(2);
    for message in users {
        if let Some(block) = message
            .get_mut("content")
            .and_then(Value::as_array_mut)
            .and_then(|blocks| blocks.last_mut())
        {
            block["cache_control"] = mark.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(value: &Value) -> bool {
        value.get("cache_control") == Some(&json!({"type": "ephemeral"}))
    }

    /// Tools, system, and the newest two user messages are marked; four in all; assistant
    /// messages (where thinking is) never.
    #[test]
    fn four_breakpoints_on_the_prefix_and_the_newest_turns() {
        let mut body = json!({
            "system": "You are corral.",
            "tools": [{"name": "a"}, {"name": "b"}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "go"}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "tool_use", "id": "1"}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "1"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "2"}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "2"}, {"type": "text", "text": "<background-results>"}]},
            ]
        });
        place_breakpoints(&mut body);
        assert!(!marked(&body["tools"][0]) && marked(&body["tools"][1]));
        assert_eq!(body["system"][0]["text"], "You are corral.");
        assert!(marked(&body["system"][0]));
        let messages = body["messages"].as_array().expect("messages");
        assert!(!marked(&messages[0]["content"][0]));
        assert!(marked(&messages[2]["content"][0]));
        assert!(!marked(&messages[4]["content"][0]) && marked(&messages[4]["content"][1]));
        let count = body.to_string().matches("cache_control").count();
        assert_eq!(count, MAX_BREAKPOINTS);
        for assistant in [&messages[1], &messages[3]] {
            assert!(
                !assistant.to_string().contains("cache_control"),
                "{assistant}"
            );
        }
    }
}
