//! Guest stdout and stderr: captured into memory up to a cap; the rest is counted and dropped,
//! so a noisy plugin neither fails nor grows corral.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// `text` with the characters that drive a terminal removed: C0 controls but newline and tab,
/// DEL, and C1 controls (ESC, CSI and OSC sequences such as OSC 52, which writes the
/// clipboard, and window titles). Every plugin-supplied string goes through it before corral
/// prints it or keeps it for display.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            c == '\n' || c == '\t' || !(c.is_control() || ('\u{80}'..='\u{9f}').contains(&c))
        })
        .collect()
}

/// A capped in-memory sink for one stream of one call.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: u64,
    cap: usize,
}

impl CapturedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                cap,
                ..Default::default()
            })),
        }
    }

    /// What was kept, and a note of what was dropped.
    pub fn text(&self) -> String {
        let Ok(inner) = self.inner.lock() else {
            return String::new();
        };
        let mut text = String::from_utf8_lossy(&inner.bytes).into_owned();
        if inner.dropped > 0 {
            text.push_str(&format!("\n[... {} more bytes dropped]", inner.dropped));
        }
        text
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Ok(mut inner) = self.inner.lock() {
            let room = inner.cap.saturating_sub(inner.bytes.len());
            let take = room.min(buf.len());
            inner.bytes.extend_from_slice(&buf[..take]);
            inner.dropped += (buf.len() - take) as u64;
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_sequences_are_removed() {
        let osc52 = "before\u{1b}]52;c;ZXZpbA==\u{7}after\u{9b}2J\ttab\nline\r";
        assert_eq!(
            super::sanitize(osc52),
            "before]52;c;ZXZpbA==after2J\ttab\nline"
        );
    }
}
