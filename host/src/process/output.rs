//! A bounded record of a process's output: the first bytes and the last bytes, with a count of
//! what fell in between.

use std::collections::VecDeque;

/// Keeps at most `head_cap + tail_cap` bytes of a stream, however long the stream is.
#[derive(Debug, Clone)]
pub struct HeadTail {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

impl HeadTail {
    pub fn new(head_cap: usize, tail_cap: usize) -> Self {
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap,
            tail_cap,
            total: 0,
        }
    }

    /// Appends bytes; memory stays within the caps.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.head.len() < self.head_cap {
            let take = (self.head_cap - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    /// Every byte ever pushed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes pushed but no longer held.
    pub fn cut(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// Bytes held in memory now.
    pub fn held(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// The output as text: the head, a note of how much was cut when anything was, the tail.
    pub fn render(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        let cut = self.cut();
        if cut > 0 {
            out.push_str(&format!("\n[... {cut} bytes of output cut ...]\n"));
        }
        let (a, b) = self.tail.as_slices();
        let mut tail = Vec::with_capacity(a.len() + b.len());
        tail.extend_from_slice(a);
        tail.extend_from_slice(b);
        out.push_str(&String::from_utf8_lossy(&tail));
        out
    }

    /// The last `max_chars` characters or fewer, starting at a line boundary when one exists
    /// within them: what a notification shows.
    pub fn tail_lines(&self, max_chars: usize) -> String {
        let text = self.render();
        tail_lines(&text, max_chars).to_string()
    }
}

/// The end of `text`, at most `max_chars` characters, cut at the first line start inside that
/// window (so whole lines are shown) unless the window holds a single partial line.
pub fn tail_lines(text: &str, max_chars: usize) -> &str {
    let text = text.trim_end_matches('\n');
    let count = text.chars().count();
    if count <= max_chars {
        return text;
    }
    let start = text
        .char_indices()
        .nth(count - max_chars)
        .map_or(0, |(i, _)| i);
    let window = &text[start..];
    match window.find('\n') {
        Some(nl) if nl + 1 < window.len() => &window[nl + 1..],
        _ => window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long stream keeps its first and last bytes and says how much was cut.
    #[test]
    fn keeps_head_and_tail() {
        let mut buf = HeadTail::new(4, 4);
        for chunk in [&b"abc"[..], b"defgh", b"ijklmnop", b"q"] {
            buf.push(chunk);
        }
        assert_eq!(buf.total(), 17);
        assert_eq!(buf.held(), 8);
        assert_eq!(buf.render(), "abcd\n[... 9 bytes of output cut ...]\nnopq");
    }

    #[test]
    fn short_output_is_whole() {
        let mut buf = HeadTail::new(4, 4);
        buf.push(b"hi\n");
        assert_eq!(buf.render(), "hi\n");
        assert_eq!(buf.cut(), 0);
    }

    #[test]
    fn tail_lines_starts_at_a_line() {
        assert_eq!(tail_lines("one\ntwo\nthree\n", 9), "three");
        assert_eq!(tail_lines("one\ntwo\nthree\n", 100), "one\ntwo\nthree");
        assert_eq!(tail_lines("abcdefgh", 3), "fgh");
    }
}
