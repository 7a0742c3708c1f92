//! The agent loop end to end: the real `corral` binary against the scripted Anthropic server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::{Corral, Reply, ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

/// The tool_result blocks of the last user message of a request, as (id, is_error, content).
fn results(body: &Value) -> Vec<(String, bool, String)> {
    corral_tests::tool_results(body)
        .into_iter()
        .map(|r| (r.id, r.is_error, r.content))
        .collect()
}

fn write_edit_read_script() -> Vec<Reply> {
    vec![
        Turn::text_and_tools(
            "I'll write the file.",
            vec![tool_use(
                "w1",
                "write_file",
                json!({"path": "notes/hello.txt", "content": "hello world\nsecond line\n"}),
            )],
        )
        .into(),
        Turn::tools(vec![tool_use(
            "e1",
            "edit_file",
            json!({"path": "notes/hello.txt", "old_text": "world", "new_text": "corral"}),
        )])
        .into(),
        Turn::tools(vec![tool_use(
            "r1",
            "read_file",
            json!({"path": "notes/hello.txt"}),
        )])
        .into(),
        Turn::text("The file now says hello corral.").into(),
    ]
}

fn assert_write_edit_read(corral: &Corral, server: &ScriptedServer, stdout: &str, stderr: &str) {
    server.assert_clean();
    assert_eq!(
        corral.read("notes/hello.txt"),
        "hello corral\nsecond line\n"
    );
    assert_eq!(stdout.trim(), "The file now says hello corral.");
    // One line per tool call: the tool, its short input, ok, the duration.
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("● ")).collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    for (line, (tool, input)) in lines.iter().zip([
        (
            "write_file",
            "{\"content\":\"hello world\\nsecond line\\n\",\"path\":\"notes/hello.txt\"}",
        ),
        ("edit_file", "{\"new_text\":\"corral\""),
        ("read_file", "notes/hello.txt"),
    ]) {
        assert!(
            line.starts_with(&format!("● {tool} {input}"))
                && line.contains(" -> ok (")
                && line.ends_with(" ms)"),
            "no line for {tool} in stderr:\n{stderr}"
        );
    }
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4);
    let read = results(&bodies[3]);
    assert_eq!(read.len(), 1);
    assert!(!read[0].1, "read_file failed: {}", read[0].2);
    assert!(
        read[0].2.contains("1\thello corral") && read[0].2.contains("2\tsecond line"),
        "{}",
        read[0].2
    );
    // The system prompt tells the model where it works and what it has.
    let system = corral_tests::system_text(&bodies[0]);
    assert!(
        system.contains(
            &corral
                .workspace
                .path()
                .canonicalize()
                .expect("canon")
                .display()
                .to_string()
        ),
        "{system}"
    );
    let names: Vec<&str> = bodies[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "bash",
            "read_file",
            "write_file",
            "edit_file",
            "background_run",
            "check_background",
            "kill_background"
        ]
    );
}

/// The foundation's "done when": corral writes a file, edits it, reads it back and prints the
/// model's final text, streaming; the session file holds every message of the run.
#[test]
fn writes_edits_and_reads_a_file_streaming() {
    let corral = Corral::new();
    let server = ScriptedServer::start(write_edit_read_script());
    let out = corral.run(Some(&server), &["run", "Say hello in notes/hello.txt"]);
    out.assert_code(0);
    assert!(
        server.bodies().iter().all(|b| b["stream"] == true),
        "every request streams by default"
    );
    assert_write_edit_read(&corral, &server, &out.stdout, &out.stderr);

    let sessions = corral.sessions();
    assert_eq!(sessions.len(), 1);
    let lines: Vec<Value> = std::fs::read_to_string(&sessions[0])
        .expect("session")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines[0]["type"], "session");
    let messages: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "message")
        .map(|l| &l["message"])
        .collect();
    // user prompt, then (assistant, user results) x3, then the final assistant text.
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ]
    );
    let last_request = server.bodies().pop().expect("requests");
    assert_eq!(
        serde_json::to_value(&messages[..7]).expect("value"),
        corral_tests::without_cache_marks(&last_request["messages"]),
        "the session file holds exactly what was sent"
    );
}

/// The same run with whole JSON answers instead of a stream.
#[test]
fn writes_edits_and_reads_a_file_without_streaming() {
    let corral = Corral::new();
    let server = ScriptedServer::start(write_edit_read_script());
    let out = corral.run(Some(&server), &["run", "--no-stream", "Say hello"]);
    out.assert_code(0);
    assert!(server.bodies().iter().all(|b| b.get("stream").is_none()));
    assert_write_edit_read(&corral, &server, &out.stdout, &out.stderr);
}

/// Two calls in one answer run at once: the first waits for a file only the second creates, so
/// run one after the other it would time out. Results come back in the order asked.
#[test]
fn tool_calls_of_one_answer_run_concurrently_and_stay_in_order() {
    let corral = Corral::new();
    let waiter = "for i in $(seq 150); do [ -f flag ] && break; sleep 0.1; done; test -f flag && echo saw-flag";
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("a", "bash", json!({"command": waiter, "timeout_secs": 30})),
            tool_use(
                "b",
                "bash",
                json!({"command": "touch flag && echo made-flag"}),
            ),
        ])
        .into(),
        Turn::text("done").into(),
    ]);
    corral.run(Some(&server), &["run", "go"]).assert_code(0);
    server.assert_clean();
    let got = results(&server.bodies()[1]);
    assert_eq!(
        got.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(!got[0].1 && got[0].2.contains("saw-flag"), "{:?}", got[0]);
    assert!(!got[1].1 && got[1].2.contains("made-flag"), "{:?}", got[1]);
}

/// An unknown tool, input that breaks the schema, malformed JSON arguments, and paths that
/// leave the workspace each get an is_error result saying what was wrong; the loop goes on.
#[test]
fn bad_tool_calls_become_errors_the_model_can_read() {
    let corral = Corral::new();
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret"), "s3cret").expect("write");
    std::os::unix::fs::symlink(outside.path(), corral.path("link")).expect("symlink");
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("t1", "launch_rockets", json!({})),
            tool_use("t2", "bash", json!({"cmd": "ls"})),
            tool_use("t3", "read_file", json!({"path": 7})),
            tool_use("t4", "read_file", json!({"path": "../outside.txt"})),
            tool_use("t5", "read_file", json!({"path": "/etc/passwd"})),
            tool_use("t6", "read_file", json!({"path": "link/secret"})),
            tool_use(
                "t7",
                "write_file",
                json!({"path": "link/new", "content": "x"}),
            ),
            tool_use(
                "t8",
                "edit_file",
                json!({"path": "missing.txt", "old_text": "a", "new_text": "b"}),
            ),
        ])
        .into(),
        Turn::text("I see my mistakes.").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let got = results(&server.bodies()[1]);
    assert_eq!(got.len(), 8);
    assert!(
        got.iter().all(|r| r.1),
        "every result is an error: {got:#?}"
    );
    let expect = [
        "unknown tool `launch_rockets`",
        "missing required field `command`",
        "input.path: expected string",
        "`../outside.txt` is outside the workspace",
        "`/etc/passwd` is outside the workspace",
        "leads outside the workspace through the symlink `link`",
        "leads outside the workspace through the symlink `link`",
        "`missing.txt` does not exist",
    ];
    for (result, want) in got.iter().zip(expect) {
        assert!(
            result.2.contains(want),
            "{} should say {want:?}: {}",
            result.0,
            result.2
        );
    }
    assert!(
        !outside.path().join("new").exists(),
        "nothing was written outside"
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("● launch_rockets {} -> error: unknown tool")),
        "{}",
        out.stderr
    );
}

/// edit_file refuses text that is absent or ambiguous, and replaces every occurrence with
/// replace_all.
#[test]
fn edit_file_needs_unique_text_or_replace_all() {
    let corral = Corral::new();
    corral.write("a.txt", "x x x\n");
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use(
                "1",
                "edit_file",
                json!({"path": "a.txt", "old_text": "y", "new_text": "z"}),
            ),
            tool_use(
                "2",
                "edit_file",
                json!({"path": "a.txt", "old_text": "x", "new_text": "z"}),
            ),
        ])
        .into(),
        Turn::tools(vec![tool_use(
            "3",
            "edit_file",
            json!({"path": "a.txt", "old_text": "x", "new_text": "z", "replace_all": true}),
        )])
        .into(),
        Turn::text("ok").into(),
    ]);
    corral.run(Some(&server), &["run", "go"]).assert_code(0);
    server.assert_clean();
    let first = results(&server.bodies()[1]);
    assert!(
        first[0].1 && first[0].2.contains("not found"),
        "{:?}",
        first[0]
    );
    assert!(
        first[1].1 && first[1].2.contains("occurs 3 times"),
        "{:?}",
        first[1]
    );
    let second = results(&server.bodies()[2]);
    assert_eq!(
        (second[0].1, second[0].2.as_str()),
        (false, "Replaced 3 occurrences in a.txt")
    );
    assert_eq!(corral.read("a.txt"), "z z z\n");
}

/// A model that never stops calling tools is stopped at --max-turns with exit code 1, and the
/// history so far stays in the session file.
#[test]
fn max_turns_stops_the_run_and_keeps_the_history() {
    let corral = Corral::new();
    let call = |i: usize| -> Reply {
        Turn::tools(vec![tool_use(
            &format!("t{i}"),
            "bash",
            json!({"command": "echo again"}),
        )])
        .into()
    };
    let server = ScriptedServer::start((0..3).map(call).collect());
    let out = corral.run(Some(&server), &["run", "--max-turns", "3", "loop forever"]);
    out.assert_code(1);
    server.assert_clean();
    assert!(
        out.stderr.contains("stopped after 3 model calls"),
        "{}",
        out.stderr
    );
    let session = std::fs::read_to_string(&corral.sessions()[0]).expect("session");
    assert_eq!(
        session.matches("\"tool_result\"").count(),
        3,
        "every call's result was kept"
    );
}

/// A 429 and a 529 are retried (honouring retry-after) and the run succeeds.
#[test]
fn rate_limits_and_overload_are_retried() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Reply::Error {
            status: 429,
            kind: "rate_limit_error".into(),
            message: "slow down".into(),
            retry_after: Some("0".into()),
        },
        Reply::Error {
            status: 529,
            kind: "overloaded_error".into(),
            message: "Overloaded".into(),
            retry_after: Some("0".into()),
        },
        Turn::text("made it").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "--json", "hi"]);
    out.assert_code(0);
    server.assert_clean();
    let events = out.events();
    let retries: Vec<&Value> = events.iter().filter(|e| e["type"] == "retrying").collect();
    assert_eq!(retries.len(), 2, "{events:#?}");
    assert!(
        retries[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("slow down")
    );
    assert_eq!(events.last().expect("events")["type"], "finished");
    assert_eq!(events.last().expect("events")["text"], "made it");
}

/// A 401 is final: exit code 1 and the API's own message, no retry, and the variable the key
/// comes from.
#[test]
fn an_auth_error_shows_the_apis_message() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![Reply::error(
        401,
        "authentication_error",
        "invalid x-api-key",
    )]);
    let out = corral.run(Some(&server), &["run", "hi"]);
    out.assert_code(1);
    server.assert_clean();
    assert!(out.stderr.contains("invalid x-api-key"), "{}", out.stderr);
    assert!(out.stderr.contains("ANTHROPIC_API_KEY"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

/// Retries are bounded: after them, a clear error.
#[test]
fn retries_give_up_with_a_clear_error() {
    let corral = Corral::new();
    let overloaded = || Reply::Error {
        status: 529,
        kind: "overloaded_error".into(),
        message: "Overloaded".into(),
        retry_after: Some("0".into()),
    };
    let server = ScriptedServer::start(vec![overloaded(), overloaded(), overloaded()]);
    let out = corral.run(Some(&server), &["run", "--max-retries", "2", "hi"]);
    out.assert_code(1);
    server.assert_clean();
    assert!(
        out.stderr.contains("gave up after 3 attempts") && out.stderr.contains("Overloaded"),
        "{}",
        out.stderr
    );
}

/// A stream cut mid-message is an error, never half a message taken for a whole one: nothing of
/// it reaches the history, and the tool it began to ask for never runs.
#[test]
fn a_stream_cut_mid_message_is_an_error() {
    let corral = Corral::new();
    let turn = Turn::text_and_tools(
        "Writing",
        vec![tool_use(
            "w",
            "write_file",
            json!({"path": "half.txt", "content": "x"}),
        )],
    );
    let server = ScriptedServer::start(vec![
        Reply::CutStream {
            turn: turn.clone(),
            events: 7,
        },
        Reply::CutStream { turn, events: 4 },
    ]);
    let out = corral.run(Some(&server), &["run", "--max-retries", "1", "hi"]);
    out.assert_code(1);
    server.assert_clean();
    assert!(
        out.stderr
            .contains("stream ended before the message was complete"),
        "{}",
        out.stderr
    );
    assert!(!corral.path("half.txt").exists());
    let session = std::fs::read_to_string(&corral.sessions()[0]).expect("session");
    assert!(
        !session.contains("\"assistant\""),
        "no assistant message was kept:\n{session}"
    );
}

/// A cut stream followed by a whole one succeeds: the retry sends the same request again.
#[test]
fn a_cut_stream_is_retried() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Reply::CutStream {
            turn: Turn::text("partial"),
            events: 3,
        },
        Turn::text("whole answer").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "hi"]);
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(out.stdout.trim(), "whole answer");
    let bodies = server.bodies();
    assert_eq!(bodies[0]["messages"], bodies[1]["messages"]);
}

/// --continue resumes the latest session with its whole history; --resume takes an id.
#[test]
fn sessions_resume() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "w",
            "write_file",
            json!({"path": "a.txt", "content": "1"}),
        )])
        .into(),
        Turn::text("first done").into(),
        Turn::text("second done").into(),
        Turn::text("third done").into(),
    ]);
    corral.run(Some(&server), &["run", "first"]).assert_code(0);
    let session = corral.sessions()[0].clone();
    let id = session
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .to_string();
    corral
        .run(Some(&server), &["run", "--continue", "second"])
        .assert_code(0);
    corral
        .run(Some(&server), &["run", "--resume", &id[..8], "third"])
        .assert_code(0);
    server.assert_clean();
    assert_eq!(corral.sessions().len(), 1, "no new session was made");
    let bodies = server.bodies();
    let texts = |b: &Value| -> Vec<String> {
        b["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["type"] == "text")
            .map(|c| c["text"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(texts(&bodies[2]), ["first", "first done", "second"]);
    assert_eq!(
        texts(&bodies[3]),
        ["first", "first done", "second", "second done", "third"]
    );

    let unknown = corral.run(Some(&server), &["run", "--resume", "nope", "x"]);
    unknown.assert_code(2);
    assert!(
        unknown.stderr.contains("no session `nope`"),
        "{}",
        unknown.stderr
    );
}

/// Configuration errors exit with 2 before any model call: a workspace that does not exist.
#[test]
fn a_missing_workspace_is_a_usage_error() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![]);
    let out = corral.run(
        Some(&server),
        &["run", "--workspace", "/nonexistent/place", "hi"],
    );
    out.assert_code(2);
    assert!(out.stderr.contains("/nonexistent/place"), "{}", out.stderr);
    assert!(server.requests().is_empty());
}

/// --json prints the event stream: the session, tool calls with their results, usage, the end.
#[test]
fn json_prints_the_event_stream() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "b",
            "bash",
            json!({"command": "echo hi; exit 3"}),
        )])
        .into(),
        Turn::text("exit three").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "--json", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let events = out.events();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|k| *k != "text_delta")
        .collect();
    assert_eq!(
        kinds,
        [
            "session_started",
            "model_request",
            "turn_finished",
            "tool_call_started",
            "tool_call_finished",
            "model_request",
            "turn_finished",
            "finished"
        ]
    );
    let finished = &events
        .iter()
        .find(|e| e["type"] == "tool_call_finished")
        .expect("finished");
    assert_eq!(finished["is_error"], true);
    assert!(
        finished["output"]
            .as_str()
            .unwrap_or("")
            .contains("hi\n\n[exit code 3"),
        "{finished}"
    );
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "text_delta")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(deltas, "exit three");
    assert_eq!(
        events.last().expect("last")["usage"],
        json!({"input_tokens": 20, "output_tokens": 10})
    );
}

/// The embedding example runs against the server and prints the model's answer.
#[test]
fn the_embedding_example_runs() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "w",
            "write_file",
            json!({"path": "from-example.txt", "content": "embedded"}),
        )])
        .into(),
        Turn::text("Embedded agent done.").into(),
    ]);
    let mut cmd = corral.command_for(&Corral::example("embed"), Some(&server));
    cmd.arg(corral.workspace.path()).arg("write a file");
    let out = corral_tests::cli::wait_output(cmd, corral_tests::cli::RUN_TIMEOUT);
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(out.stdout.trim(), "Embedded agent done.");
    assert_eq!(corral.read("from-example.txt"), "embedded");
}

/// `corral chat` takes a line a turn, keeps the history between turns, and leaves on `/exit`.
#[test]
fn chat_keeps_the_history_between_lines() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::text("Hello there.").into(),
        Turn::text("You said hi before.").into(),
    ]);
    let out = corral.run_with_input(
        Some(&server),
        &["chat"],
        "hi\n\nwhat did I say?\n/exit\nnever sent\n",
    );
    out.assert_code(0);
    server.assert_clean();
    assert!(
        out.stdout.contains("Hello there.") && out.stdout.contains("You said hi before."),
        "{}",
        out.stdout
    );
    let second = &server.bodies()[1]["messages"];
    assert_eq!(second.as_array().map(Vec::len), Some(3), "{second}");
    assert_eq!(second[0]["content"][0]["text"], "hi");
    assert_eq!(second[2]["content"][0]["text"], "what did I say?");
}
