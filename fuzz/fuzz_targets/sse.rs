//! The SSE framer (`corral::llm::sse`): bytes as they come off the network, cut anywhere.
//!
//! Input: up to 4 bytes that choose the chunk sizes, then the wire bytes. What must hold: no
//! panic, and the events (and whether a partial event is left) do not depend on where the
//! network cut the bytes.
#![no_main]

use corral::llm::sse::SseParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, wire) = data.split_at(data.len().min(4));
    let mut whole = SseParser::new();
    let expected = whole.push(wire);

    let mut cut = SseParser::new();
    let mut events = Vec::new();
    let mut rest = wire;
    let mut i = 0;
    while !rest.is_empty() {
        let size = head
            .get(i % head.len().max(1))
            .map_or(1, |b| 1 + usize::from(b % 32));
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        events.extend(cut.push(chunk));
        rest = tail;
        i += 1;
    }
    assert_eq!(
        events, expected,
        "the events depend on where the bytes were cut"
    );
    assert_eq!(cut.has_partial(), whole.has_partial());
});
