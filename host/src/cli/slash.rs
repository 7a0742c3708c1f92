//! The slash commands of `corral chat`: handled here, never sent to the model. A line that
//! starts with `/` and a letter is a command, and an unknown one is an error, not a prompt;
//! `//` at the start sends the rest as a prompt that begins with `/`.

/// One chat line, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Text for the model.
    Prompt(String),
    /// A command for corral.
    Command(Slash),
    /// Nothing (an empty line).
    Empty,
}

/// The commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slash {
    Help,
    Tasks,
    Kill(String),
    Clear,
    /// Show the model, or switch to this one.
    Model(Option<String>),
    Usage,
    /// Summarise the older turns now.
    Compact,
    /// Take the last turn back.
    Undo,
    Exit,
}

/// The commands with what they do, as `/help` shows them.
pub const HELP: &[(&str, &str)] = &[
    ("/help", "this list"),
    (
        "/tasks",
        "the background tasks: id, status, runtime, command",
    ),
    ("/kill ID", "stop a background task"),
    ("/clear", "start a new session (the old one stays on disk)"),
    (
        "/model [NAME]",
        "show the model, or use NAME from the next call on",
    ),
    ("/usage", "the tokens this chat has used"),
    ("/compact", "summarise the older turns now, to free context"),
    (
        "/undo",
        "take the last prompt and everything after it back out",
    ),
    ("/exit", "leave (also /quit, Ctrl-D)"),
];

/// Reads one line as typed. An unknown command, or one missing its argument, is an error to
/// show (nothing is sent).
pub fn parse(line: &str) -> Result<Line, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Line::Empty);
    }
    if let Some(rest) = line.strip_prefix("//") {
        return Ok(Line::Prompt(format!("/{rest}")));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Line::Prompt(line.to_string()));
    };
    if !command.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Ok(Line::Prompt(line.to_string()));
    }
    let (word, arg) = command
        .split_once(char::is_whitespace)
        .map_or((command, ""), |(w, a)| (w, a.trim()));
    let slash = match word {
        "help" => Slash::Help,
        "tasks" => Slash::Tasks,
        "kill" if arg.is_empty() => return Err("/kill needs a task id (see /tasks)".into()),
        "kill" => Slash::Kill(arg.to_string()),
        "clear" => Slash::Clear,
        "model" => Slash::Model((!arg.is_empty()).then(|| arg.to_string())),
        "usage" => Slash::Usage,
        "compact" => Slash::Compact,
        "undo" => Slash::Undo,
        "exit" | "quit" => Slash::Exit,
        other => {
            return Err(format!(
                "unknown command /{other} (/help lists them; start with // to send a line \
                 beginning with /)"
            ));
        }
    };
    Ok(Line::Command(slash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_prompts_and_mistakes() {
        assert_eq!(parse("  "), Ok(Line::Empty));
        assert_eq!(parse("fix it"), Ok(Line::Prompt("fix it".into())));
        assert_eq!(
            parse("/kill  ab12 "),
            Ok(Line::Command(Slash::Kill("ab12".into())))
        );
        assert_eq!(parse("/model"), Ok(Line::Command(Slash::Model(None))));
        assert_eq!(parse("/quit"), Ok(Line::Command(Slash::Exit)));
        assert_eq!(parse("/compact"), Ok(Line::Command(Slash::Compact)));
        assert_eq!(parse("/undo"), Ok(Line::Command(Slash::Undo)));
        assert_eq!(
            parse("//etc is a folder"),
            Ok(Line::Prompt("/etc is a folder".into()))
        );
        assert_eq!(
            parse("/ not a command"),
            Ok(Line::Prompt("/ not a command".into()))
        );
        assert!(parse("/kill").is_err());
        assert!(
            parse("/frobnicate now")
                .unwrap_err()
                .contains("/frobnicate")
        );
    }
}
