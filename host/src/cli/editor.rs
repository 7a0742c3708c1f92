//! `chat`'s input: where the lines typed come from.
//!
//! - **At a terminal** (stdin and stderr are terminals and `TERM` is not `dumb`): a line editor,
//!   [reedline](https://docs.rs/reedline), on a thread of its own. Emacs keys; Up and Down walk
//!   the history, which is kept in [`history_path`] (at most [`HISTORY_LINES`] entries); Tab
//!   completes a slash command; a line ending in `\` goes on on the next line, and Alt-Enter
//!   inserts a newline. While it reads, the display's lines (a background task ending) are
//!   printed above the line being typed, which stays as it was. The terminal is in raw mode only
//!   while the editor reads: during a turn it is back in cooked mode, so Ctrl-C raises SIGINT and
//!   stops the turn as always. At the prompt, Ctrl-C comes back as [`Read::Interrupted`] and
//!   Ctrl-D on an empty line as [`Read::End`]. A display line that comes in the instant Enter
//!   is pressed (after the editor last looked, every [`PRINTER_POLL`]) is printed at the next
//!   prompt: reedline keeps it, and gives no way to take it back. While a turn runs, the
//!   editor thread watches the keys instead ([`super::keys`]): Esc stops the turn, a line
//!   typed with its Enter is the next prompt, and text typed without one is put on the next
//!   prompt's line.
//! - **Otherwise** (a pipe, a file, a script): plain lines read from stdin, no escape codes; a
//!   line ending in `\` goes on on the next one there too.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reedline::{
    ColumnarMenu, Completer, CompletionResult, Emacs, FileBackedHistory, Highlighter, KeyCode,
    KeyModifiers, MenuBuilder, Prompt, PromptEditMode, PromptHistorySearch, Reedline,
    ReedlineEvent, ReedlineMenu, Signal, Span, StyledText, Suggestion, ValidationResult, Validator,
};
use tokio::sync::Mutex;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::render::Display;
use super::term::Printer;

/// The most entries the history file keeps; the oldest go first.
pub const HISTORY_LINES: usize = 1000;

/// How many lines the editor's printer holds before it has printed them (it prints every
/// [`PRINTER_POLL`]); a line past that is written as without an editor.
const PRINTER_LINES: usize = 64;

/// How often the editor looks for lines to print above the line being typed.
const PRINTER_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Turns the terminal's bracketed paste off, which the editor turns on while it reads (when
/// stdout is a terminal), so a paste reaches the editor as one piece rather than line by line.
const BRACKETED_PASTE_OFF: &[u8] = b"\x1b[?2004l";

/// The name of the completion menu, as its key binding calls it.
const COMPLETION_MENU: &str = "completion_menu";

/// What reading a line gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A line (or several, joined by `\n`), without its end.
    Line(String),
    /// Ctrl-C at the editor's prompt (the terminal is in raw mode then: no SIGINT is raised).
    Interrupted,
    /// End of input: Ctrl-D on an empty line, stdin closed, or the editor failed.
    End,
}

/// `chat`'s one reader of stdin: the prompt loop asks it for the next line between turns, an
/// escalation question for its answer during one.
pub struct Input {
    reads: Mutex<UnboundedReceiver<Read>>,
    /// `None` for plain lines.
    editor: Option<EditorHandle>,
}

/// The editor thread, seen from `chat`.
struct EditorHandle {
    requests: std::sync::mpsc::Sender<Request>,
    /// A line has been asked for and not yet taken.
    asked: AtomicBool,
    /// The editor is reading now (its prompt is on screen, the terminal in raw mode).
    reading: Arc<AtomicBool>,
    /// The keys of a turn are watched now (the terminal without echo).
    watching: Arc<AtomicBool>,
    printer: Printer,
    /// The terminal's settings before the editor first read, to put back if corral leaves while
    /// the editor reads.
    cooked: Option<libc::termios>,
}

enum Request {
    /// A turn runs: watch for Esc and keep what is typed ([`super::keys`]).
    Watch,
    /// The next chat line, with the chat prompt, kept in the history.
    Line,
    /// An answer to a question, not kept: the lines before its last are written once the
    /// status line is erased, the last is the prompt.
    Answer { before: String, prompt: String },
}

impl Input {
    /// Starts reading: the editor at a terminal, plain lines otherwise (see the module doc).
    /// `display` is told when the editor reads, to print its lines above the line typed.
    pub fn start(display: &Display) -> Self {
        let (reads_tx, reads) = unbounded_channel();
        let terminal = std::io::stdin().is_terminal()
            && std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        let editor = if terminal {
            Some(start_editor(display.clone(), reads_tx))
        } else {
            start_plain(reads_tx);
            None
        };
        Self {
            reads: Mutex::new(reads),
            editor,
        }
    }

    /// The next line typed at the prompt `> `. With the editor, a line asked for and not taken
    /// (the wait was dropped for a signal) is the one this returns: the editor is not asked
    /// twice. Cancel-safe.
    pub async fn next(&self, display: &Display) -> Read {
        match &self.editor {
            Some(editor) => {
                if !editor.asked.swap(true, Ordering::SeqCst) {
                    let _ = editor.requests.send(Request::Line);
                }
            }
            None => display.prompt("> "),
        }
        let read = self.reads.lock().await.recv().await.unwrap_or(Read::End);
        if let Some(editor) = &self.editor {
            editor.asked.store(false, Ordering::SeqCst);
        }
        read
    }

    /// A turn begins: with the editor, Esc stops it from now on and what is typed is kept for
    /// the next prompt, until [`next`](Self::next) or [`answer`](Self::answer).
    pub fn turn_started(&self) {
        if let Some(editor) = &self.editor {
            let _ = editor.requests.send(Request::Watch);
        }
    }

    /// Asks `question` and waits for the answer, an empty one at the end of input. Blocks: for
    /// a blocking thread, while the prompt loop waits for a turn (so not for [`next`]).
    ///
    /// [`next`]: Self::next
    pub fn answer(&self, question: &str) -> String {
        use std::io::Write;
        let (before, last) = question.rsplit_once('\n').unwrap_or(("", question));
        let mut reads = self.reads.blocking_lock();
        match &self.editor {
            Some(editor) => {
                let _ = editor.requests.send(Request::Answer {
                    before: before.trim_start_matches('\n').to_string(),
                    prompt: last.to_string(),
                });
            }
            None => {
                let _ = write!(std::io::stderr(), "{question}");
                let _ = std::io::stderr().flush();
            }
        }
        match reads.blocking_recv() {
            Some(Read::Line(line)) => line,
            _ => String::new(),
        }
    }

    /// Writes a line on stderr; above the line being typed while the editor reads.
    pub fn say(&self, text: &str) {
        if let Some(editor) = &self.editor
            && editor.reading.load(Ordering::SeqCst)
            && editor.printer.try_send(text.to_string()).is_ok()
        {
            return;
        }
        super::signals::last_words(text);
    }

    /// Puts the terminal back as it was before the editor, for when corral leaves while the
    /// editor may be reading (a signal). Nothing without the editor.
    pub fn restore_terminal(&self) {
        if let Some(editor) = &self.editor
            && let Some(cooked) = &editor.cooked
            && (editor.reading.load(Ordering::SeqCst) || editor.watching.load(Ordering::SeqCst))
        {
            // SAFETY: tcsetattr reads one termios, which is valid and ours, for a descriptor
            // that stays open.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, cooked) };
            if std::io::stdout().is_terminal() {
                let _ = std::io::Write::write_all(&mut std::io::stdout(), BRACKETED_PASTE_OFF);
            }
            let _ = std::io::Write::write_all(&mut std::io::stderr(), b"\r\n");
        }
    }
}

/// Reads stdin line by line on a thread, joining lines continued with `\`.
fn start_plain(reads: UnboundedSender<Read>) {
    std::thread::spawn(move || {
        let mut pending: Option<String> = None;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let line = match pending.take() {
                Some(mut before) => {
                    before.push('\n');
                    before.push_str(&line);
                    before
                }
                None => line,
            };
            if let Some(head) = line.strip_suffix('\\') {
                pending = Some(head.to_string());
                continue;
            }
            if reads.send(Read::Line(line)).is_err() {
                return;
            }
        }
        if let Some(rest) = pending {
            let _ = reads.send(Read::Line(rest));
        }
        let _ = reads.send(Read::End);
    });
}

/// Starts the editor thread, which reads a line each time it is asked.
fn start_editor(display: Display, reads: UnboundedSender<Read>) -> EditorHandle {
    let (requests, asked) = std::sync::mpsc::channel::<Request>();
    let printer = reedline::ExternalPrinter::<String>::new(PRINTER_LINES);
    let sender = printer.sender();
    let reading = Arc::new(AtomicBool::new(false));
    let watching = Arc::new(AtomicBool::new(false));
    let cooked = {
        // SAFETY: tcgetattr writes one termios through the pointer, which is valid and ours.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        (unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut termios) } == 0).then_some(termios)
    };
    let handle = EditorHandle {
        requests,
        asked: AtomicBool::new(false),
        reading: reading.clone(),
        watching: watching.clone(),
        printer: sender.clone(),
        cooked,
    };
    std::thread::spawn(move || {
        let mut editor = line_editor(printer);
        // Answers to questions are not chat lines: their own editor, with no history.
        let mut asker = Reedline::create()
            .with_highlighter(Box::new(Unstyled))
            .with_ansi_colors(colors());
        let mut history_failed = false;
        let mut pending: Option<Request> = None;
        let mut typeahead = String::new();
        let mut queued: std::collections::VecDeque<String> = Default::default();
        loop {
            let request = match pending.take() {
                Some(request) => request,
                None => match asked.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                },
            };
            if let Request::Watch = request {
                watching.store(true, Ordering::SeqCst);
                let typed = super::keys::watch(|wait| match asked.recv_timeout(wait) {
                    Ok(next) => {
                        pending = Some(next);
                        true
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => false,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => true,
                });
                watching.store(false, Ordering::SeqCst);
                let (lines, partial) = typed;
                if !lines.is_empty() {
                    // A line ended during the turn goes before the text typed earlier.
                    let first = std::mem::take(&mut typeahead) + &lines[0];
                    queued.push_back(first);
                    queued.extend(lines.into_iter().skip(1));
                }
                typeahead.push_str(&partial);
                continue;
            }
            if matches!(request, Request::Line)
                && let Some(line) = queued.pop_front()
            {
                // Typed ahead with its Enter: sent as it was, shown as if typed now.
                super::signals::last_words(&format!("> {line}"));
                if reads.send(Read::Line(line)).is_err() {
                    return;
                }
                continue;
            }
            if matches!(request, Request::Line) && !typeahead.is_empty() {
                editor.run_edit_commands(&[reedline::EditCommand::InsertString(std::mem::take(
                    &mut typeahead,
                ))]);
            }
            display.editing(Some(sender.clone()));
            reading.store(true, Ordering::SeqCst);
            let signal = match &request {
                Request::Line => editor.read_line(&ChatPrompt(String::new())),
                Request::Answer { before, prompt } => {
                    if !before.is_empty() {
                        super::signals::last_words(before);
                    }
                    asker.read_line(&ChatPrompt(prompt.clone()))
                }
                Request::Watch => unreachable!("a watch request is taken above"),
            };
            reading.store(false, Ordering::SeqCst);
            display.editing(None);
            let read = match signal {
                Ok(Signal::Success(text)) => Read::Line(joined(&text)),
                Ok(Signal::CtrlC) => Read::Interrupted,
                Ok(Signal::CtrlD) => {
                    // The shell's prompt starts on a line of its own.
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), b"\n");
                    Read::End
                }
                Ok(_) => Read::Line(String::new()),
                Err(error) => {
                    super::signals::last_words(&format!("corral: the line editor failed: {error}"));
                    Read::End
                }
            };
            if matches!(request, Request::Line)
                && matches!(read, Read::Line(_))
                && let Err(error) = editor.sync_history()
                && !std::mem::replace(&mut history_failed, true)
            {
                super::signals::last_words(&format!(
                    "corral: warning: the history could not be saved: {error}"
                ));
            }
            if matches!(request, Request::Answer { .. }) && pending.is_none() {
                // The turn goes on after the question.
                pending = Some(Request::Watch);
            }
            if reads.send(read).is_err() {
                return;
            }
        }
    });
    handle
}

/// The chat's editor: history in its file, slash commands completed on Tab, `\` continuing a
/// line, background lines printed above it.
fn line_editor(printer: reedline::ExternalPrinter<String>) -> Reedline {
    let mut keys = reedline::default_emacs_keybindings();
    keys.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![
            ReedlineEvent::Menu(COMPLETION_MENU.to_string()),
            ReedlineEvent::MenuNext,
        ]),
    );
    let editor = Reedline::create()
        .with_edit_mode(Box::new(Emacs::new(keys)))
        .with_completer(Box::new(SlashCompleter))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(
            ColumnarMenu::default().with_name(COMPLETION_MENU),
        )))
        .with_quick_completions(true)
        .with_partial_completions(true)
        .with_validator(Box::new(Continued))
        .with_highlighter(Box::new(Unstyled))
        .with_ansi_colors(colors())
        .use_bracketed_paste(std::io::stdout().is_terminal())
        .with_external_printer(printer)
        .with_poll_interval(PRINTER_POLL);
    match history_path().map(|path| {
        FileBackedHistory::with_file(HISTORY_LINES, path.clone()).map_err(|e| (path, e))
    }) {
        Some(Ok(history)) => editor.with_history(Box::new(history)),
        Some(Err((path, error))) => {
            super::signals::last_words(&format!(
                "corral: warning: no history: {} cannot be opened: {error}",
                path.display()
            ));
            editor
        }
        None => {
            super::signals::last_words(
                "corral: warning: no history: neither XDG_STATE_HOME nor HOME is set",
            );
            editor
        }
    }
}

/// The history file: `$XDG_STATE_HOME/corral/history`, or `~/.local/state/corral/history`
/// when `XDG_STATE_HOME` is unset, empty or relative; `None` without a home either. Its folder
/// is made on first use.
pub fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| dirs::home_dir().map(|home| home.join(".local").join("state")))?;
    Some(state.join("corral").join("history"))
}

/// Colours unless `NO_COLOR` is set (to anything but the empty string).
fn colors() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The editor's text with each `\` that continued a line taken out.
fn joined(text: &str) -> String {
    text.replace("\\\r\n", "\n").replace("\\\n", "\n")
}

/// `> `, or the question asked; `… ` before each continued line.
struct ChatPrompt(String);

impl Prompt for ChatPrompt {
    fn render_prompt_left(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.0)
    }
    fn render_prompt_right(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed("")
    }
    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(if self.0.is_empty() { "> " } else { "" })
    }
    fn render_prompt_multiline_indicator(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed("… ")
    }
    fn render_prompt_history_search_indicator(
        &self,
        search: PromptHistorySearch,
    ) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Owned(format!("(history search: {}) ", search.term))
    }
}

/// A line whose last line ends in `\` is not done: Enter starts the next line.
struct Continued;

impl Validator for Continued {
    fn validate(&self, line: &str) -> ValidationResult {
        if line.ends_with('\\') {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Complete
        }
    }
}

/// The text typed as typed, in the terminal's own colour.
struct Unstyled;

impl Highlighter for Unstyled {
    fn highlight(&self, line: &str, _cursor: usize) -> StyledText {
        let mut text = StyledText::new();
        text.push((Default::default(), line.to_string()));
        text
    }
}

/// Completes the command word of a line that starts with `/`, from [`super::slash::HELP`].
struct SlashCompleter;

impl Completer for SlashCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        CompletionResult::fresh(slash_suggestions(line, pos))
    }
}

/// The slash commands `line` up to `pos` may be the start of; none unless it is one word
/// starting with `/`. A command that takes an argument is completed with a space after it.
fn slash_suggestions(line: &str, pos: usize) -> Vec<Suggestion> {
    let typed = line.get(..pos).unwrap_or(line);
    if !typed.starts_with('/') || typed.contains(char::is_whitespace) {
        return Vec::new();
    }
    super::slash::HELP
        .iter()
        .filter_map(|(usage, what)| {
            let (name, arg) = usage.split_once(' ').unwrap_or((usage, ""));
            name.starts_with(typed).then(|| Suggestion {
                value: name.to_string(),
                description: Some((*what).to_string()),
                span: Span::new(0, pos),
                append_whitespace: !arg.is_empty(),
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_completes_the_command_word_only() {
        let names = |line: &str| -> Vec<String> {
            slash_suggestions(line, line.len())
                .into_iter()
                .map(|s| s.value)
                .collect()
        };
        assert_eq!(names("/he"), ["/help"]);
        assert_eq!(names("/").len(), super::super::slash::HELP.len());
        assert!(names("/help me").is_empty(), "not past the command word");
        assert!(names("hel").is_empty(), "not in a prompt");
        let kill = slash_suggestions("/ki", 3);
        assert_eq!(kill[0].value, "/kill");
        assert!(kill[0].append_whitespace, "/kill takes an id");
    }

    #[test]
    fn a_trailing_backslash_continues_the_line() {
        assert!(matches!(
            Continued.validate("first \\"),
            ValidationResult::Incomplete
        ));
        assert!(matches!(
            Continued.validate("first \\\nsecond"),
            ValidationResult::Complete
        ));
        assert_eq!(joined("first \\\nsecond"), "first \nsecond");
        assert_eq!(joined("one\nline"), "one\nline");
    }
}
