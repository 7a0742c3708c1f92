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
//!
//! The marks are written as the body is serialised from the borrowed history
//! ([`mark_last_object`] on the block just written); the tools and the system prompt with
//! theirs are serialised once per agent ([`super::fixed`]), so the cached prefix is the same
//! bytes on every call.

use super::{Message, Role};

/// The most breakpoints one request may carry.
pub const MAX_BREAKPOINTS: usize = 4;

/// A breakpoint, as the member it adds to the object it marks.
const MARK: &[u8] = br#","cache_control":{"type":"ephemeral"}"#;

/// The messages whose last block carries a breakpoint (3 and 4 above): the newest two user
/// messages, by index.
pub(super) fn marked_messages(messages: &[Message]) -> [Option<usize>; 2] {
    let mut users = messages
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, m)| m.role == Role::User)
        .map(|(i, _)| i);
    [users.next(), users.next()]
}

/// Marks the JSON object that `out` ends with (just written, its closing `}` last): the mark
/// goes in as its last member. Does nothing when `out` does not end with an object.
pub(super) fn mark_last_object(out: &mut Vec<u8>) {
    if out.last() == Some(&b'}') {
        out.pop();
        out.extend_from_slice(MARK);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The newest two user messages are the marked ones, whatever lies between them.
    #[test]
    fn the_newest_two_user_messages_are_marked() {
        let user = || Message::user_text("u");
        let assistant = || Message {
            role: Role::Assistant,
            content: vec![super::super::ContentBlock::text("a")],
        };
        let history = [user(), assistant(), user(), assistant(), user()];
        assert_eq!(marked_messages(&history), [Some(4), Some(2)]);
        assert_eq!(marked_messages(&history[..1]), [Some(0), None]);
        let mut out = br#"{"type":"text","text":"}"}"#.to_vec();
        mark_last_object(&mut out);
        let value: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(value["cache_control"]["type"], "ephemeral");
        assert_eq!(value["text"], "}");
    }
}
