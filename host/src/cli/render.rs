//! Showing events: readable lines on stderr, or JSON lines on stdout.

use std::io::Write;

use corral::Event;
use serde_json::Value;

/// How events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One line per tool call on stderr; text not streamed (printed at the end).
    Lines,
    /// Like `Lines`, and the assistant's text streamed to stdout as it arrives.
    Streaming,
    /// Every event as a JSON line on stdout.
    Json,
}

/// Renders one event.
pub fn render(mode: Mode, event: &Event) {
    if mode == Mode::Json {
        if let Ok(line) = serde_json::to_string(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        return;
    }
    match event {
        Event::TextDelta { text } if mode == Mode::Streaming => {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{text}");
            let _ = out.flush();
        }
        Event::ToolCallFinished {
            name,
            is_error,
            output,
            duration_ms,
            ..
        } => {
            let status = if *is_error {
                format!("error: {}", first_line(output, 120))
            } else {
                "ok".to_string()
            };
            eprintln!("  {name} -> {status} ({})", duration(*duration_ms));
        }
        Event::BackgroundStarted { task_id, command } => {
            eprintln!(
                "◆ background {task_id} started: {}",
                first_line(command, 100)
            );
        }
        Event::BackgroundFinished {
            task_id,
            command,
            status,
            runtime_ms,
            ..
        } => {
            eprintln!(
                "◆ background {task_id} {status} after {}: {}",
                duration(*runtime_ms),
                first_line(command, 80)
            );
        }
        Event::WaitingForBackground { running } => {
            let s = if *running == 1 { "" } else { "s" };
            eprintln!("… waiting for {running} background task{s}");
        }
        Event::PluginLog {
            plugin,
            level,
            message,
        } => {
            tracing::info!(target: "corral::plugin", %plugin, ?level, "{message}");
            if matches!(
                level,
                corral::plugins::LogLevel::Warn | corral::plugins::LogLevel::Error
            ) {
                eprintln!("  [{plugin}] {message}");
            }
        }
        Event::ToolCallStarted { name, input, .. } => {
            eprintln!("● {name} {}", short_input(input, 100));
        }
        Event::Retrying {
            attempt,
            wait_ms,
            error,
        } => {
            eprintln!(
                "  retrying in {} (attempt {attempt}): {error}",
                duration(*wait_ms)
            );
        }
        _ => {}
    }
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

fn first_line(text: &str, max: usize) -> String {
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
