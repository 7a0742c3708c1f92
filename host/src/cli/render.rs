//! Showing events: which display a command uses, and the lines every display shares.
//!
//! - **JSON** (`run --json`): every event as a JSON line on stdout.
//! - **Quiet** (`--quiet`, for scripts): nothing; the command prints the final answer on stdout,
//!   and errors go to stderr as always.
//! - **Plain** (stderr is not a terminal, or `TERM=dumb`): one line per tool call, background
//!   task, retry and wait on stderr, in the fixed formats of [`line`] that scripts and tests
//!   read; `chat` streams the text to stdout, `run` prints the final answer at the end.
//! - **Terminal** (stderr is a terminal): the same lines, coloured unless `NO_COLOR` is set,
//!   the text streamed as it arrives and a status line kept up to date; see [`super::term`].

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use corral::Event;
use serde_json::Value;

use super::term::Terminal;

/// Where a command's events go. Cheap to clone: the agent's event sink and the plugins' log
/// sink each hold one, and may call it from several threads at once.
#[derive(Clone)]
pub struct Display(Arc<Kind>);

enum Kind {
    Json,
    Quiet,
    Plain {
        stream_text: bool,
        /// Streamed text has been written to stdout without its line's end.
        text_open: AtomicBool,
        /// The short input of each tool call under way, by call id: a plain display writes one
        /// line per call, when it ends.
        calls: Mutex<HashMap<String, String>>,
    },
    Terminal(Terminal),
}

impl Display {
    /// The display of `corral run`: JSON lines with `--json`, nothing with `--quiet`; else the
    /// terminal display when stderr is a terminal (the text streamed when stdout is one too),
    /// plain lines otherwise.
    pub fn for_run(json: bool, quiet: bool) -> Self {
        if json {
            return Self(Arc::new(Kind::Json));
        }
        Self::choose(quiet, std::io::stdout().is_terminal(), false)
    }

    /// The display of `corral chat`: like `run`'s, with the text always streamed to stdout.
    pub fn for_chat(quiet: bool) -> Self {
        Self::choose(quiet, true, true)
    }

    /// Plain lines on stderr, whatever stderr is (`corral plugins`).
    pub fn plain() -> Self {
        Self(Arc::new(Kind::Plain {
            stream_text: false,
            text_open: AtomicBool::new(false),
            calls: Mutex::default(),
        }))
    }

    fn choose(quiet: bool, stream_on_terminal: bool, stream_plain: bool) -> Self {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        let kind = if quiet {
            Kind::Quiet
        } else if std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        {
            // Tracing writes to stderr from any thread, which would tear a status line.
            Kind::Terminal(Terminal::new(
                !set("NO_COLOR"),
                !set("RUST_LOG"),
                stream_on_terminal,
            ))
        } else {
            Kind::Plain {
                stream_text: stream_plain,
                text_open: AtomicBool::new(false),
                calls: Mutex::default(),
            }
        };
        Self(Arc::new(kind))
    }

    /// Shows one event.
    pub fn show(&self, event: &Event) {
        if let Event::PluginLog {
            plugin,
            level,
            message,
        } = event
        {
            tracing::info!(target: "corral::plugin", %plugin, ?level, "{message}");
        }
        // Warnings reach stderr in every mode, `--quiet` and `--json` included.
        if let Event::Warning { .. } = event
            && matches!(&*self.0, Kind::Json | Kind::Quiet)
            && let Some(line) = line(event)
        {
            let _ = writeln!(std::io::stderr(), "{}", line.text());
        }
        match &*self.0 {
            Kind::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            Kind::Quiet => {}
            Kind::Plain {
                stream_text,
                text_open,
                calls,
            } => match event {
                Event::TextDelta { text } if *stream_text => {
                    let mut out = std::io::stdout().lock();
                    let _ = write!(out, "{text}");
                    let _ = out.flush();
                    text_open.store(!text.ends_with('\n'), Ordering::SeqCst);
                }
                Event::ToolCallStarted { id, input, .. } => {
                    if let Ok(mut calls) = calls.lock() {
                        calls.insert(id.clone(), short_input(input, 100));
                    }
                }
                Event::ToolCallFinished { id, .. } => {
                    let input = calls.lock().ok().and_then(|mut c| c.remove(id));
                    if let Some(line) = call_line(event, input.as_deref().unwrap_or("")) {
                        end_text_line(text_open);
                        err_line(&line.text());
                    }
                }
                _ => {
                    let line = line(event);
                    if matches!(event, Event::TurnFinished { .. }) || line.is_some() {
                        end_text_line(text_open);
                    }
                    if let Some(line) = line {
                        err_line(&line.text());
                    }
                }
            },
            Kind::Terminal(terminal) => terminal.show(event),
        }
    }

    /// An informational line on stderr (`chat`'s banner); nothing when quiet or JSON.
    pub fn note(&self, text: &str) {
        match &*self.0 {
            Kind::Json | Kind::Quiet => {}
            Kind::Plain { .. } => err_line(text),
            Kind::Terminal(terminal) => terminal.note(text),
        }
    }

    /// `chat`'s input prompt, on stderr; nothing when quiet. A line shown while the prompt waits
    /// (a background task ending) is written above it on a terminal.
    pub fn prompt(&self, prompt: &str) {
        match &*self.0 {
            Kind::Json | Kind::Quiet => {}
            Kind::Plain { .. } => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(prompt.as_bytes());
                let _ = err.flush();
            }
            Kind::Terminal(terminal) => terminal.prompt(prompt),
        }
    }

    /// `chat`'s line editor reads a line (`Some`, with where to print lines meanwhile) or is done
    /// (`None`); see [`Terminal::editing`]. Nothing for the other displays: plain lines are not
    /// shown with an editor, and quiet shows none.
    pub fn editing(&self, printer: Option<super::term::Printer>) {
        if let Kind::Terminal(terminal) = &*self.0 {
            terminal.editing(printer);
        }
    }

    /// A prompt ended, answered or failed: the status line is erased and a line of streamed
    /// text is ended, so what the command prints next starts on a clean line.
    pub fn finish(&self) {
        if let Kind::Terminal(terminal) = &*self.0 {
            terminal.finish();
        }
    }

    /// The final answer of a prompt, on stdout, unless it was streamed there already; call it
    /// after [`finish`](Self::finish).
    pub fn answer(&self, text: &str) {
        let streamed = match &*self.0 {
            Kind::Json => return,
            Kind::Quiet => false,
            Kind::Plain {
                stream_text,
                text_open,
                ..
            } => {
                end_text_line(text_open);
                *stream_text
            }
            Kind::Terminal(terminal) => terminal.streams_text(),
        };
        if !streamed {
            let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
        }
    }
}

/// Ends a line of streamed text left open on stdout, so that what follows starts a line.
fn end_text_line(text_open: &AtomicBool) {
    if text_open.swap(false, Ordering::SeqCst) {
        let _ = writeln!(std::io::stdout());
    }
}

/// One line on stderr. A failed write is ignored: once the terminal is gone (SIGHUP) or the
/// reader of a pipe has left, `eprintln!` would panic, and corral is still ending its commands.
fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// How a piece of a [`Line`] looks on a terminal with colours; plain lines ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    /// A tool's name.
    Strong,
    /// Inputs, durations, counts.
    Dim,
    /// The `●` of a tool call.
    Tool,
    Ok,
    Error,
    /// The `◆` of a background task.
    Background,
    /// Waits and retries.
    Warn,
}

/// One line of the display, in pieces, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line(pub Vec<(Tone, String)>);

impl Line {
    /// A line of `pieces`, each stripped of control characters: inputs, outputs and commands
    /// come from the model and what it ran, and an escape sequence in them would reach the
    /// user's terminal, where it could erase or disguise what ran. The displays add their own
    /// colours around the pieces.
    pub fn new(pieces: Vec<(Tone, String)>) -> Self {
        Self(
            pieces
                .into_iter()
                .map(|(tone, text)| (tone, corral::plugins::sanitize(&text)))
                .collect(),
        )
    }

    /// The line's text, as plain lines show it.
    pub fn text(&self) -> String {
        self.0.iter().map(|(_, s)| s.as_str()).collect()
    }
}

/// The line `event` is shown as, or `None` for an event that is not a line of its own. These
/// texts are the plain display's fixed formats; the terminal display only colours them.
pub fn line(event: &Event) -> Option<Line> {
    use Tone::*;
    let piece = |tone: Tone, text: &str| (tone, text.to_string());
    let pieces = match event {
        Event::ToolCallStarted { name, input, .. } => vec![
            piece(Tool, "●"),
            piece(Plain, " "),
            piece(Strong, name),
            piece(Plain, " "),
            piece(Dim, &short_input(input, 100)),
        ],
        Event::ToolCallFinished {
            name,
            is_error,
            output,
            duration_ms,
            ..
        } => vec![
            piece(Plain, "  "),
            piece(Strong, name),
            piece(Plain, " -> "),
            if *is_error {
                piece(Error, &format!("error: {}", first_line(output, 120)))
            } else {
                piece(Ok, "ok")
            },
            piece(Dim, &format!(" ({})", duration(*duration_ms))),
        ],
        Event::BackgroundStarted { task_id, command } => vec![
            piece(Background, "◆"),
            piece(Plain, &format!(" background {task_id} started: ")),
            piece(Dim, &first_line(command, 100)),
        ],
        Event::BackgroundFinished {
            task_id,
            command,
            status,
            exit_code,
            runtime_ms,
        } => vec![
            piece(Background, "◆"),
            piece(Plain, &format!(" background {task_id} ")),
            piece(if *exit_code == Some(0) { Ok } else { Error }, status),
            piece(Plain, &format!(" after {}: ", duration(*runtime_ms))),
            piece(Dim, &first_line(command, 80)),
        ],
        Event::WaitingForBackground { running } => {
            let s = if *running == 1 { "" } else { "s" };
            vec![piece(
                Warn,
                &format!("… waiting for {running} background task{s}"),
            )]
        }
        Event::PluginLog {
            plugin,
            level: corral::plugins::LogLevel::Warn | corral::plugins::LogLevel::Error,
            message,
        } => vec![piece(Warn, &format!("  [{plugin}] {message}"))],
        Event::Retrying {
            attempt,
            max_retries,
            wait_ms,
            error,
        } => vec![piece(
            Warn,
            &format!(
                "  retrying in {} ({attempt}/{max_retries}): {error}",
                duration(*wait_ms)
            ),
        )],
        Event::Warning { message } => vec![piece(Warn, &format!("corral: warning: {message}"))],
        Event::Compacted(c) => vec![piece(
            Dim,
            &format!(
                "… compacted the conversation: {} messages summarised, {} kept; about {} → {} of {} tokens",
                c.summarized, c.kept, c.tokens_before, c.tokens_after, c.context_window
            ),
        )],
        Event::Finished { usage, .. } => vec![piece(Dim, &tokens(usage))],
        _ => return None,
    };
    Some(Line::new(pieces))
}

/// The closing count of a prompt: `tokens: 1234 in (1100 cached), 567 out`. The parentheses
/// say what of the input was read from the prompt cache and written to it, and what of the
/// output was thinking, each only when the server reported some.
fn tokens(usage: &corral::llm::Usage) -> String {
    let mut parts = Vec::new();
    if usage.cache_read_input_tokens > 0 {
        parts.push(format!("{} cached", usage.cache_read_input_tokens));
    }
    if usage.cache_creation_input_tokens > 0 {
        parts.push(format!("{} written", usage.cache_creation_input_tokens));
    }
    let cached = if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    };
    let reasoning = if usage.reasoning_tokens > 0 {
        format!(" ({} reasoning)", usage.reasoning_tokens)
    } else {
        String::new()
    };
    format!(
        "tokens: {} in{cached}, {} out{reasoning}",
        usage.input_tokens, usage.output_tokens
    )
}

/// The one line a plain display writes for a tool call, when it ends: the tool, its short
/// input, `ok` or the error, the duration. `None` for any other event.
pub fn call_line(event: &Event, input: &str) -> Option<Line> {
    let Event::ToolCallFinished {
        name,
        is_error,
        output,
        duration_ms,
        ..
    } = event
    else {
        return None;
    };
    let mut pieces = vec![
        (Tone::Tool, "●".to_string()),
        (Tone::Plain, " ".to_string()),
        (Tone::Strong, name.clone()),
    ];
    if !input.is_empty() {
        pieces.push((Tone::Plain, " ".to_string()));
        pieces.push((Tone::Dim, input.to_string()));
    }
    pieces.push((Tone::Plain, " -> ".to_string()));
    pieces.push(if *is_error {
        (Tone::Error, format!("error: {}", first_line(output, 120)))
    } else {
        (Tone::Ok, "ok".to_string())
    });
    pieces.push((Tone::Dim, format!(" ({})", duration(*duration_ms))));
    Some(Line::new(pieces))
}

/// The input of a tool call on one line, cut to `max` characters.
pub fn short_input(input: &Value, max: usize) -> String {
    let text = match input {
        Value::Object(map) if map.len() == 1 => map
            .values()
            .next()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default(),
        other => other.to_string(),
    };
    first_line(&text, max)
}

/// The first line of `text`, cut to `max` characters, with `…` when anything was left out.
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut short: String = line.chars().take(max).collect();
    if short.len() < text.trim_end().len() {
        short.push('…');
    }
    short
}

pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The plain formats scripts and the end-to-end tests read, piece by piece.
    #[test]
    fn plain_lines_keep_their_formats() {
        let text = |event: Event| line(&event).map(|l| l.text());
        assert_eq!(
            text(Event::ToolCallStarted {
                id: "1".into(),
                name: "bash".into(),
                input: json!({"command": "cargo test"}),
            }),
            Some("● bash cargo test".into())
        );
        assert_eq!(
            text(Event::ToolCallFinished {
                id: "1".into(),
                name: "bash".into(),
                is_error: true,
                output: "exit code 1\nmore".into(),
                duration_ms: 12_400,
            }),
            Some("  bash -> error: exit code 1… (12.4 s)".into())
        );
        assert_eq!(
            text(Event::BackgroundFinished {
                task_id: "3f2a9c1e".into(),
                command: "npm install".into(),
                status: "completed (exit code 0)".into(),
                exit_code: Some(0),
                runtime_ms: 41_200,
            }),
            Some("◆ background 3f2a9c1e completed (exit code 0) after 41.2 s: npm install".into())
        );
        assert_eq!(
            text(Event::WaitingForBackground { running: 2 }),
            Some("… waiting for 2 background tasks".into())
        );
        assert_eq!(
            text(Event::Finished {
                text: String::new(),
                usage: corral::llm::Usage {
                    input_tokens: 1234,
                    output_tokens: 567,
                    ..Default::default()
                },
            }),
            Some("tokens: 1234 in, 567 out".into())
        );
        assert_eq!(
            text(Event::Finished {
                text: String::new(),
                usage: corral::llm::Usage {
                    input_tokens: 1234,
                    output_tokens: 567,
                    cache_read_input_tokens: 1100,
                    ..Default::default()
                },
            }),
            Some("tokens: 1234 in (1100 cached), 567 out".into())
        );
        assert_eq!(
            text(Event::Finished {
                text: String::new(),
                usage: corral::llm::Usage {
                    input_tokens: 1234,
                    output_tokens: 567,
                    cache_read_input_tokens: 1000,
                    cache_creation_input_tokens: 200,
                    reasoning_tokens: 300,
                },
            }),
            Some("tokens: 1234 in (1000 cached, 200 written), 567 out (300 reasoning)".into())
        );
        // Thinking is never a line of its own: plain mode prints nothing of it.
        assert_eq!(text(Event::ThinkingDelta { text: "hm".into() }), None);
        assert_eq!(text(Event::TextDelta { text: "hi".into() }), None);
        let finished = Event::ToolCallFinished {
            id: "1".into(),
            name: "bash".into(),
            is_error: false,
            output: "ok".into(),
            duration_ms: 12,
        };
        assert_eq!(
            call_line(&finished, "cargo test").map(|l| l.text()),
            Some("● bash cargo test -> ok (12 ms)".into())
        );
    }
}
