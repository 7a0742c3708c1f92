//! The Anthropic stream assembler: an SSE body, framed as corral frames it, folded into a
//! response (`corral::fuzzing::anthropic_stream`); and, when the input is JSON, the
//! non-streamed answer parser.
//!
//! What must hold: no panic; a response's text blocks hold exactly the text streamed to the
//! terminal; its usage can be added to a running total, as the agent adds every turn's.
#![no_main]

use std::sync::Mutex;

use corral::llm::sse::SseParser;
use corral::llm::{ContentBlock, Delta, Response, Usage};
use libfuzzer_sys::fuzz_target;

fn text_len(response: &Response) -> usize {
    response
        .content
        .iter()
        .map(|b| match b {
            ContentBlock::Text { text } => text.len(),
            _ => 0,
        })
        .sum()
}

/// The agent sums the usage of every turn of a prompt.
fn add_up(response: &Response) {
    let mut total = Usage::default();
    total += response.usage;
    total += response.usage;
}

fuzz_target!(|data: &[u8]| {
    let events = SseParser::new().push(data);
    let streamed = Mutex::new(0usize);
    let sink = |d: Delta<'_>| {
        let Delta::Text(t) = d else { return };
        if let Ok(mut n) = streamed.lock() {
            *n += t.len();
        }
    };
    if let Ok(response) = corral::fuzzing::anthropic_stream(&events, &sink) {
        let streamed = *streamed.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(
            streamed,
            text_len(&response),
            "streamed text differs from the answer's"
        );
        add_up(&response);
    }
    if let Ok(value) = serde_json::from_slice(data)
        && let Ok(response) = corral::fuzzing::anthropic_message(&value)
    {
        add_up(&response);
    }
});
