//! Server-sent events framing, as the Anthropic and OpenAI streaming APIs use it.
//!
//! Bytes go in as they arrive from the network, in pieces of any size; whole events come out.

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty when the server sent none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns every event they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(pos) = self.buffer.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data || !self.current.event.is_empty() {
                    events.push(std::mem::take(&mut self.current));
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment, used as keep-alive
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.current.event = value.to_string(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {} // id, retry: not used by these APIs
            }
        }
        events
    }

    /// Whether bytes of an unfinished event are still buffered.
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty() || self.has_data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events split at every possible byte come out whole and in order.
    #[test]
    fn events_survive_any_split() {
        let wire = b"event: ping\ndata: {}\n\n: keep-alive\r\nevent: message_delta\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: [DONE]\n\n";
        for split in 0..wire.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&wire[..split]);
            events.extend(parser.push(&wire[split..]));
            assert_eq!(
                events,
                vec![
                    SseEvent {
                        event: "ping".into(),
                        data: "{}".into()
                    },
                    SseEvent {
                        event: "message_delta".into(),
                        data: "{\"a\":\n1}".into()
                    },
                    SseEvent {
                        event: String::new(),
                        data: "[DONE]".into()
                    },
                ],
                "split at {split}"
            );
            assert!(!parser.has_partial());
        }
    }
}
