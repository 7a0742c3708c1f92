//! `corral chat`'s line editor, as a person at a terminal uses it: the real binary with stdin,
//! stdout and stderr on a pseudo-terminal, keys typed as the prompt shows, against a scripted
//! server. What the editor does is checked where it cannot be faked: in the requests the server
//! receives, in the history file, and in what is written after a notice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use corral_tests::pty::{PtyOutput, run_in_pty_answering};
use corral_tests::{Corral, ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

/// Long enough for a chat of a few turns on a loaded machine; a needle that never comes fails
/// the test at this.
const CHAT_TIMEOUT: Duration = Duration::from_secs(60);

/// The prompt the editor draws (colour codes may surround it, not split it).
const PROMPT: &str = "> ";

const ENTER: &str = "\r";
const UP: &str = "\x1b[A";
const TAB: &str = "\t";
const ALT_ENTER: &str = "\x1b\r";

/// `corral chat` on a terminal, typing each reply once its needle has been written.
fn chat(corral: &Corral, server: &ScriptedServer, answers: &[(&str, &str)]) -> PtyOutput {
    let mut cmd = corral.command_for(&Corral::bin(), Some(server));
    cmd.arg("chat");
    let answers = answers
        .iter()
        .map(|(needle, reply)| (needle.to_string(), reply.to_string()))
        .collect();
    run_in_pty_answering(cmd, CHAT_TIMEOUT, answers)
}

/// The text of the last user message of a request.
fn last_prompt(body: &Value) -> String {
    let messages = body["messages"].as_array().expect("messages");
    let last = messages.last().expect("a message");
    match &last["content"] {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        other => panic!("content {other}"),
    }
}

fn shown(out: &PtyOutput) -> String {
    format!(
        "--- screen\n{}\n--- raw\n{:?}",
        out.screen().join("\n"),
        out.raw()
    )
}

/// A background task that ends while the user is half-way through a line prints its notice
/// above the line, and the editor writes the typed half again below it: the line sent holds
/// every key typed, before and after the notice.
#[test]
fn typed_text_survives_a_background_notice() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "bg",
            "background_run",
            json!({"command": "sleep 1.2"}),
        )])
        .into(),
        Turn::text("Started it.").into(),
        Turn::text("Got the whole line.").into(),
    ]);
    let out = chat(
        &corral,
        &server,
        &[
            (PROMPT, "start the task\r"),
            ("Started it.", ""),
            (PROMPT, "half of a li"),
            // The notice, then the typed half drawn again below it, before another key.
            ("completed", ""),
            ("half of a li", "ne, then the rest\r"),
            ("Got the whole line.", ""),
            (PROMPT, "/exit\r"),
        ],
    );
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 3, "{}", shown(&out));
    let sent = last_prompt(&bodies[2]);
    assert!(sent.contains("half of a line, then the rest"), "{sent}");
    let screen = out.screen();
    let notice = screen
        .iter()
        .position(|l| l.contains("completed (exit code 0)"))
        .expect("the notice stays on screen");
    assert!(
        screen[notice + 1..]
            .iter()
            .any(|l| l.contains("half of a line, then the rest")),
        "the line typed is below the notice\n{}",
        shown(&out)
    );
}

/// Up recalls the previous line from the history file, which outlives the chat: a second chat
/// sends the first one's line again with Up and Enter. The file is in `$XDG_STATE_HOME/corral`.
#[test]
fn up_recalls_the_last_line_of_an_earlier_chat() {
    let corral = Corral::new();
    let state = corral.home.path().join("state");
    let corral = corral.env("XDG_STATE_HOME", state.to_str().unwrap());
    let server = ScriptedServer::start(vec![
        Turn::text("Noted.").into(),
        Turn::text("Again.").into(),
    ]);
    let first = chat(
        &corral,
        &server,
        &[
            (PROMPT, "remember this line\r"),
            ("Noted.", ""),
            (PROMPT, "\x04"),
        ],
    );
    first.assert_code(0);
    let history = std::fs::read_to_string(state.join("corral/history")).expect("the history");
    assert!(history.contains("remember this line"), "{history:?}");
    let second = chat(
        &corral,
        &server,
        &[
            (PROMPT, UP),
            ("remember this line", ENTER),
            ("Again.", ""),
            (PROMPT, "\x04"),
        ],
    );
    second.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2, "{}", shown(&second));
    assert_eq!(last_prompt(&bodies[1]), "remember this line");
}

/// `/help` is answered by corral: the list is shown and no request reaches the server; the
/// line is kept in the history under `~/.local/state/corral` when `XDG_STATE_HOME` is unset.
/// Ctrl-D on the empty line leaves.
#[test]
fn help_makes_no_model_call() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![]);
    let out = chat(
        &corral,
        &server,
        &[(PROMPT, "/help\r"), ("this list", ""), (PROMPT, "\x04")],
    );
    out.assert_code(0);
    assert!(server.bodies().is_empty(), "{}", shown(&out));
    let history = corral.home.path().join(".local/state/corral/history");
    let history = std::fs::read_to_string(history).expect("the history under HOME");
    assert!(history.contains("/help"), "{history:?}");
}

/// A history file that cannot be opened (its folder would be beneath a file) is a warning: the
/// chat goes on without history.
#[test]
fn a_history_that_cannot_be_opened_is_a_warning() {
    let corral = Corral::new();
    let blocker = corral.home.path().join("not-a-folder");
    std::fs::write(&blocker, "").unwrap();
    let corral = corral.env("XDG_STATE_HOME", blocker.to_str().unwrap());
    let server = ScriptedServer::start(vec![Turn::text("Still chatting.").into()]);
    let out = chat(
        &corral,
        &server,
        &[
            (PROMPT, "hello\r"),
            ("Still chatting.", ""),
            (PROMPT, "/exit\r"),
        ],
    );
    out.assert_code(0);
    server.assert_clean();
    let raw = out.raw();
    assert!(
        raw.contains("warning: no history: ") && raw.contains("not-a-folder"),
        "{}",
        shown(&out)
    );
}

/// A line ending in `\` goes on on the next, and Alt-Enter starts a new line too: each prompt
/// of two lines reaches the model as one request holding both, without the `\`.
#[test]
fn a_trailing_backslash_or_alt_enter_gives_a_two_line_prompt() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::text("One request.").into(),
        Turn::text("Another one.").into(),
    ]);
    let out = chat(
        &corral,
        &server,
        &[
            (PROMPT, "first line\\\r"),
            ("… ", "second line\r"),
            ("One request.", ""),
            (PROMPT, &format!("third line{ALT_ENTER}")),
            ("… ", "fourth line\r"),
            ("Another one.", ""),
            (PROMPT, "/exit\r"),
        ],
    );
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2, "{}", shown(&out));
    assert_eq!(last_prompt(&bodies[0]), "first line\nsecond line");
    assert_eq!(last_prompt(&bodies[1]), "third line\nfourth line");
}

/// Tab completes `/he` to `/help`, which then runs (`/he` alone is an unknown command).
#[test]
fn tab_completes_a_slash_command() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![]);
    let out = chat(
        &corral,
        &server,
        &[
            (PROMPT, &format!("/he{TAB}")),
            ("help", ENTER),
            ("this list", ""),
            (PROMPT, "/exit\r"),
        ],
    );
    out.assert_code(0);
    assert!(server.bodies().is_empty(), "{}", shown(&out));
    let raw = out.raw();
    assert!(!raw.contains("unknown command"), "{}", shown(&out));
}

/// Ctrl-C typed at the editor's prompt (a key in raw mode, not SIGINT) clears the line and says
/// how to leave; a second one within two seconds leaves, as SIGINT does without the editor.
#[test]
fn ctrl_c_keys_at_the_prompt_leave_on_the_second_press() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![]);
    // A key followed by Ctrl-C: the harness turns a lone Ctrl-C into SIGINT.
    let out = chat(
        &corral,
        &server,
        &[
            (PROMPT, "never sent\u{3}"),
            ("again to leave", ""),
            (PROMPT, "x\u{3}"),
        ],
    );
    out.assert_code(130);
    assert!(server.bodies().is_empty(), "{}", shown(&out));
}

/// Esc during a turn stops it, as Ctrl-C does: the streaming answer is dropped, the prompt
/// comes back, and what was typed while the turn ran (not shown then) is on the new line, so
/// the next prompt holds it and what was typed after.
#[test]
fn esc_stops_the_turn_and_typeahead_is_kept() {
    use corral_tests::Reply;
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Reply::Paced {
            turn: Turn::text("Slowly, one word after another, for a long while."),
            gap: Duration::from_millis(400),
        },
        Turn::text("Fine then.").into(),
    ]);
    let out = chat(
        &corral,
        &server,
        &[
            (PROMPT, "tell me slowly\r"),
            ("one", "next th"),
            ("word", "\x1b"),
            ("stopped", "ing\r"),
            ("Fine then.", "/exit\r"),
        ],
    );
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2, "{}", shown(&out));
    assert_eq!(last_prompt(&bodies[1]), "next thing", "{}", shown(&out));
    assert!(
        !bodies[1].to_string().contains("tell me slowly"),
        "the stopped prompt is taken back out"
    );
}
