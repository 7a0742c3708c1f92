//! `corral sessions`: the sessions of a workspace, newest first.

use std::process::ExitCode;

use corral::Workspace;

use super::args::SessionsArgs;

/// The longest a last prompt is shown in the table (characters).
const PROMPT_WIDTH: usize = 60;

pub fn list(args: SessionsArgs) -> ExitCode {
    let root = super::args::workspace_root(args.workspace.as_deref(), args.json);
    let workspace = match Workspace::open(&root) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("corral: workspace {}: {e}", root.display());
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let (sessions, problems) = match corral::agent::list_sessions(
        &workspace.state_dir().join(corral::workspace::SESSIONS_DIR),
    ) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("corral: {e}");
            return ExitCode::FAILURE;
        }
    };
    for problem in problems {
        eprintln!("corral: skipped: {problem}");
    }
    if args.json {
        for s in &sessions {
            let line = serde_json::json!({
                "id": s.id,
                "created_unix": s.created_unix,
                "turns": s.turns,
                "input_tokens": s.usage.input_tokens,
                "output_tokens": s.usage.output_tokens,
                "last_prompt": s.last_prompt,
            });
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    if sessions.is_empty() {
        println!("no sessions in {}", workspace.root().display());
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<36}  {:<16}  {:>5}  {:>15}  LAST PROMPT",
        "ID", "STARTED", "TURNS", "TOKENS IN/OUT"
    );
    for s in &sessions {
        println!(
            "{:<36}  {:<16}  {:>5}  {:>15}  {}",
            s.id,
            started(s.created_unix),
            s.turns,
            format!("{}/{}", s.usage.input_tokens, s.usage.output_tokens),
            one_line(s.last_prompt.as_deref().unwrap_or("-"))
        );
    }
    ExitCode::SUCCESS
}

/// `2026-12-03 14:02` in the local time zone (UTC where none is known).
fn started(unix: u64) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(i64::try_from(unix).unwrap_or(i64::MAX)) else {
        return "-".into();
    };
    ts.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// The prompt on one line, cut to [`PROMPT_WIDTH`] characters.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(PROMPT_WIDTH) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
