//! The OpenAI Chat Completions stream assembler: an SSE body, framed as corral frames it,
//! folded into a response (`corral::fuzzing::openai_stream`); and, when the input is JSON, the
//! non-streamed answer parser.
//!
//! What must hold: no panic; a response's text is exactly the text streamed to the terminal,
//! never an empty text block; every tool call has an id (a generated one when the server sent
//! none), and a call makes the stop reason `tool_use` unless the server gave another than
//! `stop`; its usage can be added to a running total, as the agent adds every turn's.
#![no_main]

use std::sync::Mutex;

use corral::llm::sse::SseParser;
use corral::llm::{ContentBlock, Delta, Response, StopReason, Usage};
use libfuzzer_sys::fuzz_target;

fn check(response: &Response) {
    let mut calls = 0;
    for block in &response.content {
        match block {
            ContentBlock::Text { text } => assert!(!text.is_empty(), "an empty text block"),
            ContentBlock::ToolUse { id, .. } => {
                assert!(!id.is_empty(), "a tool call without an id");
                calls += 1;
            }
            ContentBlock::ToolResult { .. } => panic!("a tool result in an answer"),
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => {}
        }
    }
    if calls > 0 {
        assert_ne!(
            response.stop_reason,
            StopReason::EndTurn,
            "called tools, said end_turn"
        );
    }
    let mut total = Usage::default();
    total += response.usage;
    total += response.usage;
}

fuzz_target!(|data: &[u8]| {
    let events = SseParser::new().push(data);
    let streamed = Mutex::new(String::new());
    let sink = |d: Delta<'_>| {
        let Delta::Text(t) = d else { return };
        if let Ok(mut s) = streamed.lock() {
            s.push_str(t);
        }
    };
    if let Ok(response) = corral::fuzzing::openai_stream(&events, &sink) {
        check(&response);
        let streamed = streamed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let text: String = response
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(streamed, text, "streamed text differs from the answer's");
    }
    if let Ok(value) = serde_json::from_slice(data)
        && let Ok(response) = corral::fuzzing::openai_completion(&value)
    {
        check(&response);
    }
});
