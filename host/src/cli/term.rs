//! The terminal display: what `corral run` and `corral chat` show when stderr is a terminal.
//!
//! - The lines of the plain display ([`super::render::line`]), coloured unless `NO_COLOR` is
//!   set (to anything but the empty string).
//! - The assistant's text streamed to stdout as it arrives (when stdout is a terminal too), so
//!   the final answer is already on screen when the prompt ends.
//! - One **status line** at the bottom of stderr, redrawn ten times a second by a thread of its
//!   own while a prompt runs: a spinner while the model is being waited for (from the request
//!   to its first text or the end of its answer), the tool calls running, and the background
//!   tasks still running with their runtimes:
//!   `⠹ bash (3 s)  ⧗ 2 background tasks running: npm install (41 s), cargo test (12 s)`.
//!   While the model thinks, its thinking is folded into the spinner, dimmed: `⠹ thinking
//!   (4 s)`; the thinking text itself is never written (it is in the session file, and in
//!   `--json`'s `thinking_delta` events).
//!
//! Every write happens under one lock. The status line is erased (`\r`, then erase-line
//! `ESC[2K`) before anything else is written and drawn again after, and it is cut to the
//! terminal's width so it never wraps: lines never interleave with it. It is not drawn while a
//! line of streamed text is open, nor while `chat` waits for input. While `chat`'s line editor
//! reads a line ([`Terminal::editing`]), lines go to the editor's printer instead, which writes
//! them above the line being typed and leaves that line as it was, and the status line is not
//! drawn (during a turn, the editor reads the answer to a question). `NO_COLOR` turns colours
//! off but keeps the status line, which moves the cursor and erases but sets no colour. With
//! `RUST_LOG` set there is no status line, since tracing writes to stderr from any thread.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use corral::Event;

use super::render::{self, Line, Tone};

/// How often the status line is redrawn.
const TICK: Duration = Duration::from_millis(100);

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Erases the terminal line the cursor is on and returns to its start.
const ERASE_LINE: &str = "\r\x1b[2K";

/// Where `chat`'s line editor takes lines to print above the line being typed (see
/// [`super::editor`]).
pub type Printer = std::sync::mpsc::SyncSender<String>;

/// The terminal display. Its ticker thread ends when the display is dropped.
pub struct Terminal {
    state: Arc<Mutex<State>>,
}

struct State {
    color: bool,
    status_line: bool,
    stream_text: bool,
    /// A prompt is running (from its first model request to [`Terminal::finish`]).
    active: bool,
    /// `chat`'s input prompt, while it waits for a line.
    prompt: Option<String>,
    /// The line editor's printer, while the editor reads a line.
    printer: Option<Printer>,
    /// The model was asked and has not answered yet.
    waiting_since: Option<Instant>,
    /// The model is thinking (a thinking block streams), since then.
    thinking_since: Option<Instant>,
    tools: Vec<Running>,
    background: Vec<Running>,
    /// The status line is on screen.
    drawn: bool,
    /// Streamed text has been written to stdout without its line's end.
    text_open: bool,
    frame: usize,
}

/// A tool call or background task still running.
struct Running {
    id: String,
    label: String,
    since: Instant,
}

impl Terminal {
    /// A display with colours or not, with a status line or not, streaming the text to stdout
    /// or not.
    pub fn new(color: bool, status_line: bool, stream_text: bool) -> Self {
        let state = Arc::new(Mutex::new(State {
            color,
            status_line,
            stream_text,
            active: false,
            prompt: None,
            printer: None,
            waiting_since: None,
            thinking_since: None,
            tools: Vec::new(),
            background: Vec::new(),
            drawn: false,
            text_open: false,
            frame: 0,
        }));
        if status_line {
            let weak = Arc::downgrade(&state);
            std::thread::spawn(move || tick(&weak));
        }
        Self { state }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the assistant's text goes to stdout as it arrives.
    pub fn streams_text(&self) -> bool {
        self.lock().stream_text
    }

    pub fn show(&self, event: &Event) {
        let mut state = self.lock();
        let now = Instant::now();
        match event {
            Event::ModelRequest { .. } => {
                state.active = true;
                state.prompt = None;
                state.waiting_since = Some(now);
                state.thinking_since = None;
            }
            Event::ThinkingDelta { .. } => {
                state.waiting_since = None;
                state.thinking_since.get_or_insert(now);
            }
            Event::TextDelta { text } => {
                state.waiting_since = None;
                state.thinking_since = None;
                if state.stream_text && !text.is_empty() {
                    state.erase();
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(text.as_bytes());
                    let _ = out.flush();
                    state.text_open = !text.ends_with('\n');
                }
            }
            Event::TurnFinished { .. } => {
                state.waiting_since = None;
                state.thinking_since = None;
                state.end_text_line();
            }
            Event::Retrying { .. } => state.end_text_line(),
            Event::ToolCallStarted { id, name, .. } => state.tools.push(Running {
                id: id.clone(),
                label: name.clone(),
                since: now,
            }),
            Event::ToolCallFinished { id, .. } => state.tools.retain(|t| t.id != *id),
            Event::BackgroundStarted { task_id, command } => state.background.push(Running {
                id: task_id.clone(),
                label: render::first_line(command, 40),
                since: now,
            }),
            Event::BackgroundFinished { task_id, .. } => {
                state.background.retain(|t| t.id != *task_id)
            }
            _ => {}
        }
        if let Some(line) = render::line(event) {
            state.print(&line);
        }
        state.draw();
    }

    /// A plain informational line.
    pub fn note(&self, text: &str) {
        self.lock()
            .print(&Line::new(vec![(Tone::Plain, text.to_string())]));
    }

    /// Shows `chat`'s input prompt; lines shown until the next model request go above it.
    pub fn prompt(&self, prompt: &str) {
        let mut state = self.lock();
        state.erase();
        state.end_text_line();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(prompt.as_bytes());
        let _ = err.flush();
        state.prompt = Some(prompt.to_string());
    }

    /// `chat`'s line editor reads a line from now on (`Some`), and draws its own prompt: lines
    /// shown until it is done go to `printer`, above the line being typed. `None` when it is
    /// done. A line the printer cannot take (its queue is full, the editor is gone) is written
    /// as it would be without an editor.
    pub fn editing(&self, printer: Option<Printer>) {
        let mut state = self.lock();
        if printer.is_some() {
            state.erase();
            state.end_text_line();
            state.prompt = None;
        }
        state.printer = printer;
    }

    /// The prompt ended: the status line goes, an open line of text is ended.
    pub fn finish(&self) {
        let mut state = self.lock();
        state.erase();
        state.end_text_line();
        state.active = false;
        state.waiting_since = None;
        state.thinking_since = None;
        state.tools.clear();
    }
}

/// The ticker: redraws the status line every [`TICK`] until the display is dropped.
fn tick(state: &Weak<Mutex<State>>) {
    loop {
        std::thread::sleep(TICK);
        let Some(state) = state.upgrade() else { return };
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.frame = state.frame.wrapping_add(1);
        state.draw();
    }
}

impl State {
    /// Writes `line` on stderr, on a line of its own, above the status line or the prompt.
    fn print(&mut self, line: &Line) {
        if let Some(printer) = &self.printer {
            let mut text = String::new();
            for (tone, piece) in &line.0 {
                self.paint(&mut text, *tone, piece);
            }
            match printer.try_send(text) {
                Ok(()) => return,
                Err(_) => self.printer = None,
            }
        }
        self.erase();
        self.end_text_line();
        let mut text = String::new();
        if self.prompt.is_some() {
            text.push_str(ERASE_LINE);
        }
        for (tone, piece) in &line.0 {
            self.paint(&mut text, *tone, piece);
        }
        text.push('\n');
        if let Some(prompt) = &self.prompt {
            text.push_str(prompt);
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    /// Appends `piece` to `out`, in its colour when colours are on.
    fn paint(&self, out: &mut String, tone: Tone, piece: &str) {
        let code = match tone {
            Tone::Plain => None,
            Tone::Strong => Some("1"),
            Tone::Dim => Some("2"),
            Tone::Tool => Some("1;36"),
            Tone::Ok => Some("32"),
            Tone::Error => Some("31"),
            Tone::Background => Some("35"),
            Tone::Warn => Some("33"),
        };
        match code.filter(|_| self.color) {
            Some(code) => {
                out.push_str(&format!("\x1b[{code}m{piece}\x1b[0m"));
            }
            None => out.push_str(piece),
        }
    }

    /// Erases the status line if it is on screen.
    fn erase(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(ERASE_LINE.as_bytes());
            let _ = err.flush();
            self.drawn = false;
        }
    }

    /// Ends a line of streamed text left open on stdout.
    fn end_text_line(&mut self) {
        if self.text_open {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"\n");
            let _ = out.flush();
            self.text_open = false;
        }
    }

    /// Draws (or redraws, or erases) the status line.
    fn draw(&mut self) {
        // While the editor reads (an escalation question during a turn), its line is the
        // bottom one: the status line waits.
        if !self.status_line || !self.active || self.text_open || self.printer.is_some() {
            return;
        }
        let Some(status) = self.status(Instant::now()) else {
            self.erase();
            return;
        };
        let status = fit(&status, columns().saturating_sub(1));
        let mut text = String::from(ERASE_LINE);
        let (frame, rest) = match status.chars().next() {
            Some(c) if SPINNER.contains(&c) => status.split_at(c.len_utf8()),
            _ => ("", status.as_str()),
        };
        self.paint(&mut text, Tone::Tool, frame);
        self.paint(&mut text, Tone::Dim, rest);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
        self.drawn = true;
    }

    /// The status line's text, or `None` when nothing is running.
    fn status(&self, now: Instant) -> Option<String> {
        let frame = SPINNER[self.frame % SPINNER.len()];
        let mut parts = Vec::new();
        if let Some(since) = self.thinking_since {
            parts.push(format!(
                "{frame} thinking ({})",
                seconds(now.saturating_duration_since(since))
            ));
        } else if let Some(since) = self.waiting_since {
            parts.push(format!(
                "{frame} waiting for the model ({})",
                seconds(now.saturating_duration_since(since))
            ));
        } else if let Some(first) = self.tools.first() {
            let names: Vec<&str> = self.tools.iter().map(|t| t.label.as_str()).collect();
            parts.push(format!(
                "{frame} {} ({})",
                names.join(", "),
                seconds(now.saturating_duration_since(first.since))
            ));
        }
        if !self.background.is_empty() {
            let n = self.background.len();
            let s = if n == 1 { "" } else { "s" };
            let tasks: Vec<String> = self
                .background
                .iter()
                .map(|t| {
                    format!(
                        "{} ({})",
                        t.label,
                        seconds(now.saturating_duration_since(t.since))
                    )
                })
                .collect();
            parts.push(format!(
                "⧗ {n} background task{s} running: {}",
                tasks.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join("  "))
    }
}

/// `41 s`, `2 min 5 s`: the runtimes of the status line, to the second.
fn seconds(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs} s")
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

/// `text` cut to at most `width` columns, with `…` when cut. Characters outside ASCII count as
/// two columns (some are wide), so a cut line may be shorter than it could be, never longer.
fn fit(text: &str, width: usize) -> String {
    let cols = |c: char| if c.is_ascii() { 1 } else { 2 };
    if text.chars().map(cols).sum::<usize>() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        if used + cols(c) + 2 > width {
            break;
        }
        used += cols(c);
        out.push(c);
    }
    out.push('…');
    out
}

/// The width of the terminal on stderr, 80 when it cannot be told.
fn columns() -> usize {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which is valid and ours.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_never_outgrows_the_terminal() {
        assert_eq!(fit("short", 10), "short");
        let cut = fit("⧗ 1 background task running: npm install (41 s)", 20);
        assert!(cut.ends_with('…'), "{cut}");
        let cols: usize = cut.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
        assert!(cols <= 20, "{cut}: {cols} columns");
    }

    #[test]
    fn runtimes_are_shown_to_the_second() {
        assert_eq!(seconds(Duration::from_millis(41_900)), "41 s");
        assert_eq!(seconds(Duration::from_secs(125)), "2 min 5 s");
    }

    /// While the line editor reads (an escalation question during a turn), the status line is
    /// not drawn over its line, and lines go to the editor's printer.
    #[test]
    fn the_status_line_waits_while_the_editor_reads() {
        let terminal = Terminal::new(false, true, false);
        let (printer, printed) = std::sync::mpsc::sync_channel(4);
        terminal.editing(Some(printer));
        let mut state = terminal.lock();
        state.active = true;
        state.waiting_since = Some(Instant::now());
        state.draw();
        assert!(
            !state.drawn,
            "the status line was drawn over the editor's line"
        );
        state.print(&Line(vec![(Tone::Plain, "◆ background done".into())]));
        assert_eq!(printed.try_recv().as_deref(), Ok("◆ background done"));
    }

    #[test]
    fn the_status_line_names_what_runs() {
        let terminal = Terminal::new(false, false, false);
        let mut state = terminal.lock();
        let start = Instant::now();
        assert_eq!(state.status(start), None);
        state.waiting_since = Some(start);
        state.background.push(Running {
            id: "a".into(),
            label: "npm install".into(),
            since: start,
        });
        state.background.push(Running {
            id: "b".into(),
            label: "cargo test".into(),
            since: start + Duration::from_secs(29),
        });
        assert_eq!(
            state.status(start + Duration::from_secs(41)).as_deref(),
            Some(
                "⠋ waiting for the model (41 s)  \
                 ⧗ 2 background tasks running: npm install (41 s), cargo test (12 s)"
            )
        );
        state.background.clear();
        state.waiting_since = None;
        state.thinking_since = Some(start);
        assert_eq!(
            state.status(start + Duration::from_secs(4)).as_deref(),
            Some("⠋ thinking (4 s)")
        );
    }
}
