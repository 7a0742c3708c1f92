//! What a person at a terminal sees: the real `corral` binary with its stdout and stderr on a
//! pseudo-terminal, against a scripted server that answers slowly. And what scripts see: plain
//! lines when stderr is not a terminal, only the answer with `--quiet`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use corral_tests::cli::RUN_TIMEOUT;
use corral_tests::pty::{PtyOutput, colour_sequences, run_in_pty};
use corral_tests::{Corral, Reply, ScriptedServer, Turn, tool_use};
use serde_json::json;

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

const ANSWER: &str = "The answer is 42, says the shell.";

/// A model that says a few words, runs `echo hi`, then answers; each SSE event `gap` after the
/// one before, so each answer starts after a wait and its text comes in two pieces `gap` apart.
fn slow_script(gap: Duration) -> Vec<Reply> {
    vec![
        Reply::Paced {
            turn: Turn::text_and_tools(
                "Let me look.",
                vec![tool_use("b1", "bash", json!({"command": "echo hi"}))],
            ),
            gap,
        },
        Reply::Paced {
            turn: Turn::text(ANSWER),
            gap,
        },
    ]
}

/// `corral ARGS` with stdout and stderr on a pseudo-terminal.
fn on_terminal(corral: &Corral, server: &ScriptedServer, args: &[&str]) -> PtyOutput {
    let mut cmd = corral.command_for(&Corral::bin(), Some(server));
    cmd.args(args);
    run_in_pty(cmd, RUN_TIMEOUT)
}

/// The distinct spinner frames drawn.
fn spinner_frames(raw: &str) -> usize {
    SPINNER.iter().filter(|f| raw.contains(**f)).count()
}

/// The lines the slow script leaves on screen: the text of both turns, the tool call's two
/// lines, the token count, the session's id; no status line, nothing twice.
fn assert_slow_script_screen(out: &PtyOutput) {
    let screen = out.screen();
    let shown = screen.join("\n");
    assert_eq!(screen.len(), 6, "{shown}");
    assert_eq!(screen[0], "Let me look.", "{shown}");
    assert_eq!(screen[1], "● bash echo hi", "{shown}");
    assert!(
        screen[2].starts_with("  bash -> ok (") && screen[2].ends_with(')'),
        "{shown}"
    );
    assert_eq!(screen[3], ANSWER, "{shown}");
    assert_eq!(screen[4], "tokens: 20 in, 10 out", "{shown}");
    assert!(screen[5].starts_with("session "), "{shown}");
    assert_eq!(out.raw().matches(ANSWER).count(), 1, "{:?}", out.raw());
}

/// On a terminal, `corral run` shows a spinner while the model thinks, streams the text as it
/// arrives (the first half is on screen before the server sends the second), shows the tool call
/// with its result and duration, in colour, and ends with the token count, the answer written
/// once and no status line left behind.
#[test]
fn a_terminal_shows_the_work_as_it_happens() {
    let corral = Corral::new();
    let gap = Duration::from_millis(300);
    let server = ScriptedServer::start(slow_script(gap));
    let out = on_terminal(&corral, &server, &["run", "what is the answer?"]);
    out.assert_code(0);
    server.assert_clean();
    assert_slow_script_screen(&out);

    let raw = out.raw();
    let waiting = out.first_seen("waiting for the model").expect("a spinner");
    let text = out.first_seen("Let me").expect("the first text");
    assert!(waiting < text, "the spinner shows before the text");
    assert!(
        spinner_frames(&raw) >= 3,
        "the spinner turns while the model is waited for: {raw:?}"
    );

    let half = out.first_seen("The answer is 42").expect("half the answer");
    let whole = out.first_seen(ANSWER).expect("the whole answer");
    assert!(
        whole >= half + gap / 2,
        "streamed: half at {half:?}, whole at {whole:?}"
    );

    assert!(colour_sequences(&raw) > 0, "colours: {raw:?}");
    assert!(raw.contains("\x1b[32mok\x1b[0m"), "ok in green: {raw:?}");
}

/// `NO_COLOR` turns every colour off; the spinner, which only moves the cursor and erases its
/// line, stays.
#[test]
fn no_color_turns_colours_off() {
    let corral = Corral::new().env("NO_COLOR", "1");
    let server = ScriptedServer::start(slow_script(Duration::from_millis(200)));
    let out = on_terminal(&corral, &server, &["run", "what is the answer?"]);
    out.assert_code(0);
    server.assert_clean();
    assert_slow_script_screen(&out);
    let raw = out.raw();
    assert_eq!(colour_sequences(&raw), 0, "{raw:?}");
    assert!(spinner_frames(&raw) >= 1, "{raw:?}");
}

/// While `run` waits for a background task, the status line names it with its runtime; the
/// task's start and end are lines of their own, and the status line is gone at the end.
#[test]
fn the_status_line_follows_background_tasks() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "r",
            "background_run",
            json!({"command": "sleep 1.5"}),
        )])
        .into(),
        Turn::text("Waiting for it.").into(),
        Turn::text("It finished.").into(),
    ]);
    let out = on_terminal(&corral, &server, &["run", "sleep a little"]);
    out.assert_code(0);
    server.assert_clean();
    let raw = out.raw();
    assert!(
        raw.contains("⧗ 1 background task running: sleep 1.5 ("),
        "{raw:?}"
    );
    let screen = out.screen();
    let shown = screen.join("\n");
    // The one line that holds every piece of `pieces`, in order.
    let at = |pieces: &[&str]| {
        let holds = |line: &str| {
            let mut rest = line;
            pieces.iter().all(|p| match rest.find(p) {
                Some(i) => {
                    rest = &rest[i + p.len()..];
                    true
                }
                None => false,
            })
        };
        let found: Vec<usize> = (0..screen.len()).filter(|&i| holds(&screen[i])).collect();
        assert_eq!(found.len(), 1, "one line with {pieces:?}\n{shown}");
        found[0]
    };
    at(&["● background_run sleep 1.5"]);
    at(&["  background_run -> ok ("]);
    at(&["◆ background ", " started: sleep 1.5"]);
    let lines = [
        at(&["Waiting for it."]),
        at(&["… waiting for 1 background task"]),
        at(&[
            "◆ background ",
            " completed (exit code 0) after 1.",
            ": sleep 1.5",
        ]),
        at(&["It finished."]),
        at(&["tokens: 30 in, 15 out"]),
        at(&["session "]),
    ];
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}\n{shown}");
    assert_eq!(screen.len(), 9, "{shown}");
}

/// `corral chat` on a terminal streams each answer once, with the spinner before it.
#[test]
fn chat_on_a_terminal_streams_each_answer_once() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![Reply::Paced {
        turn: Turn::text("Chat answer here."),
        gap: Duration::from_millis(200),
    }]);
    let mut input = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut input, b"hello\n/exit\n").unwrap();
    std::io::Seek::rewind(&mut input).unwrap();
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.arg("chat").stdin(input);
    let out = run_in_pty(cmd, RUN_TIMEOUT);
    out.assert_code(0);
    server.assert_clean();
    let raw = out.raw();
    assert_eq!(raw.matches("Chat answer here.").count(), 1, "{raw:?}");
    assert!(spinner_frames(&raw) >= 1, "{raw:?}");
    let screen = out.screen();
    assert!(screen[0].starts_with("corral chat in "), "{screen:?}");
    assert!(
        screen.iter().any(|l| l == "Chat answer here."),
        "{screen:?}"
    );
    assert!(
        screen.iter().any(|l| l == "tokens: 10 in, 5 out"),
        "{screen:?}"
    );
}

/// `--quiet` prints the answer and nothing else, on a terminal or not; a failure prints its
/// error on stderr and nothing on stdout.
#[test]
fn quiet_prints_only_the_answer() {
    let corral = Corral::new();
    let script = || {
        vec![
            Turn::tools(vec![tool_use("b1", "bash", json!({"command": "echo hi"}))]).into(),
            Turn::text("It is 42.").into(),
        ]
    };

    let server = ScriptedServer::start(script());
    let out = on_terminal(&corral, &server, &["run", "--quiet", "answer?"]);
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(out.raw(), "It is 42.\r\n");

    let server = ScriptedServer::start(script());
    let out = corral.run(Some(&server), &["run", "-q", "answer?"]);
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(out.stdout, "It is 42.\n");
    assert_eq!(out.stderr, "");

    let server = ScriptedServer::start(vec![Reply::error(
        400,
        "invalid_request_error",
        "prompt is too long",
    )]);
    let out = corral.run(Some(&server), &["run", "--quiet", "answer?"]);
    out.assert_code(1);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("prompt is too long"), "{}", out.stderr);
}

/// Without a terminal, the lines are the plain ones scripts read, with no escape sequence, the
/// token count last; stdout holds only the final answer.
#[test]
fn plain_output_has_no_escapes_and_ends_with_the_token_count() {
    let corral = Corral::new().env("TERM", "xterm-256color");
    let server = ScriptedServer::start(vec![
        Turn::text_and_tools(
            "Let me look.",
            vec![tool_use("b1", "bash", json!({"command": "echo hi"}))],
        )
        .into(),
        Turn::text(ANSWER).into(),
    ]);
    let out = corral.run(Some(&server), &["run", "what is the answer?"]);
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(out.stdout, format!("{ANSWER}\n"));
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stderr);
    assert!(
        lines[0].starts_with("● bash echo hi -> ok (") && lines[0].ends_with(')'),
        "{}",
        out.stderr
    );
    assert_eq!(lines[1], "tokens: 20 in, 10 out");
    assert!(lines[2].starts_with("session "), "{}", out.stderr);
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);
}

/// `corral chat` without a terminal streams each turn's text to stdout and ends its line before
/// the next, so a transcript reads line by line.
#[test]
fn plain_chat_ends_each_turns_text_with_a_line() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::text_and_tools(
            "Let me look.",
            vec![tool_use("b1", "bash", json!({"command": "echo hi"}))],
        )
        .into(),
        Turn::text(ANSWER).into(),
    ]);
    let out = corral.run_with_input(Some(&server), &["chat"], "what is the answer?\n/exit\n");
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(out.stdout, format!("Let me look.\n{ANSWER}\n"));
    assert!(
        out.stderr.contains("tokens: 20 in, 10 out"),
        "{}",
        out.stderr
    );
}

/// Ctrl-C in `chat` stops the turn, not the program: during a slow answer and during a `bash`
/// call (whose command dies), the prompt comes back, background tasks keep running, and the
/// next prompt's request is valid (the stopped call answered `(cancelled by the user)`). At the
/// prompt, one Ctrl-C says how to leave and a second one leaves.
#[test]
fn ctrl_c_in_chat_stops_the_turn_not_the_program() {
    use corral_tests::pty::{CTRL_C, run_in_pty_answering};
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Reply::Paced {
            turn: Turn::text("Slowly, one word after another, for a long while."),
            gap: Duration::from_millis(400),
        },
        Turn::tools(vec![tool_use(
            "bg",
            "background_run",
            json!({"command": "sleep 30.8", "timeout_secs": 0}),
        )])
        .into(),
        Turn::tools(vec![tool_use(
            "sl",
            "bash",
            json!({"command": "sleep 30.7"}),
        )])
        .into(),
        Turn::text("Still here.").into(),
    ]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.arg("chat");
    let answers: Vec<(String, String)> = [
        ("> ", "tell me slowly\n"),
        ("Slowly", CTRL_C),
        ("stopped", "start the work\n"),
        ("30.7", CTRL_C),
        ("stopped", "/tasks\n"),
        ("sleep 30.8", "and now?\n"),
        // Once the prompt is back (the answer's turn has ended):
        ("Still here.", "/usage\n"),
        ("this chat:", CTRL_C),
        ("again to leave", CTRL_C),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let out = run_in_pty_answering(cmd, Duration::from_secs(60), answers);
    out.assert_code(130);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4, "{}", out.screen().join("\n"));
    let last = bodies[3].to_string();
    assert!(last.contains("(cancelled by the user)"), "{last}");
    // A stopped turn is closed: a prompt no call answered is taken back out, a turn stopped
    // during its tools ends with corral's note, and each next prompt is a turn of its own.
    let second = bodies[1].to_string();
    assert!(!second.contains("tell me slowly"), "{second}");
    assert!(last.contains("stopped by the user"), "{last}");
    let screen = out.screen().join("\n");
    assert!(
        screen.contains("running"),
        "/tasks showed the task running: {screen}"
    );
    // The stopped call's command is gone; the background task died at the exit.
    let alive = |marker: &str| {
        std::process::Command::new("pgrep")
            .args(["-f", marker])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    };
    assert!(!alive("sleep 30[.]7"), "the stopped bash command survived");
    assert!(
        !alive("sleep 30[.]8"),
        "the background task outlived corral"
    );
}

/// A hostile model's tool inputs and a command's output carry terminal escapes (a title set by
/// OSC, a line erased and rewritten, a backspace, a C1 code): corral's own lines about the calls
/// never pass them to the user's terminal, so what ran cannot be hidden or disguised there.
#[test]
fn escapes_in_tool_inputs_and_outputs_never_reach_the_terminal() {
    let corral = Corral::new();
    let sneaky = "rm -f gone.txt \u{1b}[2K\r\u{1b}]0;pwned\u{7}echo harmless\u{8}\u{9b}2J";
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("b", "bash", json!({"command": sneaky})),
            tool_use(
                "o",
                "bash",
                json!({"command": "printf '\\033[2K\\033]0;t\\007fine\\n'; exit 3"}),
            ),
            tool_use(
                "t",
                "background_run",
                json!({"command": format!("sleep 5; {sneaky}")}),
            ),
            tool_use("r", "read_file", json!({"path": "\u{1b}[31mmissing"})),
        ])
        .into(),
        Turn::text("done").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "--no-wait", "go"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("● bash rm -f gone.txt"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "a control character on stderr: {:?}",
        out.stderr
    );
}
