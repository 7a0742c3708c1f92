//! A long conversation is compacted before it outgrows the model's context window, a "prompt is
//! too long" answer is recovered once, a compacted session resumes compacted, and a failed or
//! undone turn leaves a history the next prompt can go on from. All against the scripted
//! Anthropic server, which refuses any request that breaks the API's rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::long_session::reading_model;
use corral_tests::rules::{SUMMARY_TAG, is_summary_request};
use corral_tests::{Corral, Reply, ScriptedServer, Turn, sized, tool_use};
use serde_json::{Value, json};

/// A window small enough that a few 5 kB results fill it.
const WINDOW: usize = 16_000;

/// A workspace with a 5 kB file and `[agent] context_window = WINDOW`, trusted.
fn workspace() -> Corral {
    let corral = Corral::new();
    let line = format!("{}\n", "x".repeat(99));
    corral.write("a.txt", &line.repeat(50));
    corral.write(
        "corral.toml",
        &format!("[agent]\ncontext_window = {WINDOW}\n"),
    );
    corral.trust();
    corral
}

fn first_text(body: &Value) -> String {
    body["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn session_lines(corral: &Corral) -> Vec<Value> {
    let text = std::fs::read_to_string(&corral.sessions()[0]).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// With a small declared window, a 30-call session is compacted before it outgrows it: the
/// summarising call offers no tools, the request after it opens with the summary, is valid,
/// and is under the threshold; old results are replaced by pointers to files that hold them;
/// the session file records each compaction and `--json` reports it.
#[test]
fn a_long_session_is_compacted_under_the_window() {
    let corral = workspace();
    let calls = 30;
    let server = ScriptedServer::start(reading_model(calls, calls + 1 + 10));
    let out = corral.run(
        Some(&server),
        &[
            "run",
            "--json",
            "--max-turns",
            "100",
            "read a.txt again and again",
        ],
    );
    let bodies = server.bodies();
    out.assert_code(0);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    let summaries: Vec<usize> = (0..bodies.len())
        .filter(|&i| is_summary_request(&bodies[i]))
        .collect();
    assert!(
        !summaries.is_empty(),
        "no compaction in {} requests",
        bodies.len()
    );
    assert_eq!(
        bodies.len(),
        calls + 1 + summaries.len(),
        "every call answered once"
    );
    let threshold = WINDOW * 80 / 100;
    for (n, &i) in summaries.iter().enumerate() {
        let summary = &bodies[i];
        assert!(summary.get("tools").is_none());
        // The first summarises the prompt; each later one the summary before it too.
        let summarised = summary["messages"][0].to_string();
        let expected = if n == 0 {
            "User: read a.txt again and again"
        } else {
            SUMMARY_TAG
        };
        assert!(summarised.contains(expected), "{summarised}");
        let after = &bodies[i + 1];
        let text = first_text(after);
        assert!(text.starts_with(SUMMARY_TAG), "{text}");
        assert!(text.contains("read a.txt repeatedly"), "{text}");
        let tokens = after.to_string().len() / 4;
        assert!(tokens < threshold, "request {} is {tokens} tokens", i + 1);
        // The request that asked for the compaction came close to the threshold.
        assert!(bodies[i - 1].to_string().len() / 4 > threshold / 2);
    }
    for body in &bodies {
        assert!(
            body.to_string().len() / 4 < WINDOW,
            "a request outgrew the window"
        );
    }
    // Old results are pointers to files that hold them.
    let last = bodies.last().unwrap().to_string();
    let pointer = ".corral/results/r0.txt";
    assert!(corral.read(pointer).contains(&"x".repeat(99)));
    assert!(
        last.contains(".corral/results/r") || !last.contains("r0"),
        "moved results are named by their file"
    );
    let lines = session_lines(&corral);
    let compacts = lines.iter().filter(|l| l["type"] == "compact").count();
    assert_eq!(compacts, summaries.len());
    // The whole transcript stays: every result once, as it was first written.
    let whole = lines
        .iter()
        .filter(|l| l["type"] == "message")
        .filter(|l| l.to_string().contains("tool_result"))
        .count();
    assert_eq!(whole, calls);
    let events = out.events();
    let compacted: Vec<&Value> = events.iter().filter(|e| e["type"] == "compacted").collect();
    assert_eq!(compacted.len(), summaries.len());
    assert_eq!(compacted[0]["reason"], "threshold");
    assert_eq!(compacted[0]["context_window"], WINDOW);
    assert!(compacted[0]["tokens_after"].as_u64() < compacted[0]["tokens_before"].as_u64());
}

/// Where the provider counts tokens (Anthropic's `count_tokens`), its count has the last word
/// once the estimate says a request nears the window: with a counter that finds half the
/// tokens the estimate does, the same session compacts fewer times, the counter is asked only
/// near the threshold, and its requests are valid count requests (no `max_tokens`).
#[test]
fn the_providers_count_has_the_last_word() {
    let calls = 30;
    let session = |bytes_per_token: usize| {
        let corral = workspace();
        let server = ScriptedServer::start(reading_model(calls, calls + 1 + 12));
        server.count_bytes_per_token(bytes_per_token);
        let out = corral.run(
            Some(&server),
            &["run", "--max-turns", "100", "read a.txt again and again"],
        );
        out.assert_code(0);
        assert!(server.violations().is_empty(), "{:?}", server.violations());
        let summaries = server
            .bodies()
            .iter()
            .filter(|b| is_summary_request(b))
            .count();
        (summaries, server.counted())
    };
    let (as_estimated, counted) = session(4);
    assert!(as_estimated > 0 && !counted.is_empty());
    let (halved, counted) = session(8);
    assert!(
        halved < as_estimated,
        "{halved} compactions, {as_estimated} without the count"
    );
    let threshold = WINDOW * 80 / 100;
    for body in &counted {
        assert!(body.get("max_tokens").is_none() && body.get("stream").is_none());
        assert!(
            body.to_string().len() / 4 > threshold * 9 / 10,
            "counted far from the threshold"
        );
    }
}

/// An answer allowed three quarters of the window: compaction comes earlier (a quarter of the
/// window is kept for the answer), and a request near the top is given only the `max_tokens`
/// the window has left, so input and answer never exceed it together (the API refuses that).
#[test]
fn room_is_left_for_a_long_answer() {
    let corral = workspace();
    let calls = 30;
    let server = ScriptedServer::start(reading_model(calls, calls + 1 + 12));
    let out = corral.run(
        Some(&server),
        &[
            "run",
            "--max-tokens",
            "12000",
            "--max-turns",
            "100",
            "read a.txt again and again",
        ],
    );
    out.assert_code(0);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    let bodies = server.bodies();
    let mut clamped = 0;
    for body in bodies.iter().filter(|b| !is_summary_request(b)) {
        let max_tokens = body["max_tokens"].as_u64().unwrap() as usize;
        assert!(max_tokens <= 12_000);
        clamped += usize::from(max_tokens < 12_000);
        let input = body.to_string().len() / 4;
        assert!(
            input + max_tokens <= WINDOW + WINDOW / 20,
            "{input} tokens of input and max_tokens {max_tokens} exceed the window"
        );
    }
    assert!(clamped > 0, "no request came near the top");
}

/// A 400 "prompt is too long" leads to one compaction and the same call again, which
/// succeeds; a second refusal in a row ends the run with the API's message, after exactly one
/// compaction.
#[test]
fn prompt_too_long_is_recovered_once() {
    let too_long = || {
        Reply::error(
            400,
            "invalid_request_error",
            "prompt is too long: 250000 tokens > 200000 maximum",
        )
    };
    let read = |id: &str| {
        sized(Turn::tools(vec![tool_use(
            id,
            "read_file",
            json!({"path": "a.txt"}),
        )]))
    };
    let corral = Corral::new();
    corral.write("a.txt", "hello\n");
    let server = ScriptedServer::start(vec![
        read("r1"),
        read("r2"),
        too_long(),
        Turn::text("The user asked to read a.txt; it says hello.").into(),
        Turn::text("done").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "--json", "read a.txt twice"]);
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert!(is_summary_request(&bodies[3]));
    let retried = &bodies[4];
    assert!(first_text(retried).starts_with(SUMMARY_TAG));
    let messages = retried["messages"].as_array().unwrap();
    assert_eq!(
        messages.last(),
        bodies[2]["messages"].as_array().unwrap().last()
    );
    let events = out.events();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "compacted" && e["reason"] == "prompt_too_long")
    );

    // Resumed, the session is the compacted one: the summary first, then what was kept.
    let server = ScriptedServer::start(vec![Turn::text("again done").into()]);
    corral
        .run(Some(&server), &["run", "--continue", "and now?"])
        .assert_code(0);
    server.assert_clean();
    let resumed = &server.bodies()[0];
    assert!(first_text(resumed).starts_with(SUMMARY_TAG));
    let resumed = resumed["messages"].as_array().unwrap();
    assert_eq!(
        resumed.len(),
        messages.len() + 2,
        "+ \"done\" and the new prompt"
    );
    assert_eq!(
        corral_tests::without_cache_marks(&Value::Array(resumed[1..messages.len()].to_vec())),
        corral_tests::without_cache_marks(&Value::Array(messages[1..].to_vec())),
    );

    // Twice in a row: one compaction, then the error.
    let corral = Corral::new();
    corral.write("a.txt", "hello\n");
    let server = ScriptedServer::start(vec![
        read("r1"),
        read("r2"),
        too_long(),
        Turn::text("summary").into(),
        too_long(),
    ]);
    let out = corral.run(Some(&server), &["run", "read a.txt twice"]);
    out.assert_code(1);
    assert!(out.stderr.contains("prompt is too long"), "{}", out.stderr);
    assert_eq!(server.bodies().len(), 5);
}

/// A prompt whose model call failed is taken back out (the session file keeps it, marked),
/// so the next prompt is a turn of its own; a turn that failed after its tools ran is closed
/// by a note, and the next prompt follows it. Both histories are valid.
#[test]
fn a_failed_turn_does_not_poison_the_next_prompt() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Reply::error(
            400,
            "invalid_request_error",
            "something in this request is wrong",
        ),
        Turn::text("second answered").into(),
    ]);
    corral.run(Some(&server), &["run", "first"]).assert_code(1);
    let out = corral.run(Some(&server), &["run", "--continue", "second"]);
    out.assert_code(0);
    server.assert_clean();
    let second = server.bodies()[1]["messages"].clone();
    assert_eq!(second.as_array().unwrap().len(), 1, "{second}");
    assert!(!second.to_string().contains("first"), "{second}");
    let lines = session_lines(&corral);
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    assert!(
        kinds.contains(&"failed") && kinds.contains(&"truncate"),
        "{kinds:?}"
    );
    assert!(
        lines.iter().any(|l| l.to_string().contains("\"first\"")),
        "the transcript keeps it"
    );

    let corral = Corral::new();
    corral.write("a.txt", "hello\n");
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use("r1", "read_file", json!({"path": "a.txt"}))]).into(),
        Reply::error(
            400,
            "invalid_request_error",
            "something in this request is wrong",
        ),
        Turn::text("second answered").into(),
    ]);
    corral.run(Some(&server), &["run", "first"]).assert_code(1);
    corral
        .run(Some(&server), &["run", "--continue", "second"])
        .assert_code(0);
    server.assert_clean();
    let messages = server.bodies()[2]["messages"].as_array().unwrap().clone();
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
    assert!(messages[3].to_string().contains("this turn stopped here"));
    assert_eq!(
        messages[4]["content"].as_array().unwrap().len(),
        1,
        "a turn of its own"
    );
}

/// A background result that reached the model only in a prompt whose call failed is not lost
/// with the prompt: the next prompt's request carries it (the queue had let it go).
#[test]
fn background_results_outlive_a_failed_prompt() {
    use corral_tests::pty::run_in_pty_answering;
    use std::time::Duration;
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "bg",
            "background_run",
            json!({"command": "sleep 0.5; echo carried-$((6*7))", "timeout_secs": 0}),
        )])
        .into(),
        Turn::text("Started it.").into(),
        Reply::error(
            400,
            "invalid_request_error",
            "something in this request is wrong",
        ),
        Turn::text("Noted.").into(),
    ]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.arg("chat");
    let answers: Vec<(String, String)> = [
        ("> ", "start it\n"),
        ("completed", "what happened?\n"),
        ("taken back out", "and now?\n"),
        ("Noted.", "/exit\n"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let out = run_in_pty_answering(cmd, Duration::from_secs(30), answers);
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4, "{}", out.screen().join("\n"));
    let failed = bodies[2].to_string();
    assert!(failed.contains("carried-42"), "{failed}");
    let last = bodies[3].to_string();
    assert!(last.contains("carried-42"), "the result was lost: {last}");
    assert!(!last.contains("what happened?"), "{last}");
    assert_eq!(last.matches("carried-42").count(), 1, "{last}");
}

/// In chat, /undo takes the last prompt and its answer back (and says when there is nothing
/// to undo); /compact summarises the older turns on demand, and the next prompt follows the
/// summary. Neither reaches the model as a prompt.
#[test]
fn chat_undo_and_compact() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::text("one").into(),
        Turn::text("two").into(),
        Turn::text("three").into(),
        Turn::text("The user said first and third.").into(),
        Turn::text("four").into(),
    ]);
    let input = "/undo\nfirst\nsecond\n/undo\nthird\n/compact\nfourth\n/exit\n";
    let out = corral.run_with_input(Some(&server), &["chat"], input);
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    let texts = |b: &Value| -> Vec<String> {
        b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["text"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(
        texts(&bodies[2]),
        ["first", "one", "third"],
        "second was undone"
    );
    assert!(is_summary_request(&bodies[3]));
    let after = texts(&bodies[4]);
    assert!(after[0].starts_with(SUMMARY_TAG), "{after:?}");
    assert_eq!(after[1..], ["third", "three", "fourth"]);
    let err = &out.stderr;
    assert!(err.contains("nothing to undo"), "{err}");
    assert!(err.contains("took the last turn back"), "{err}");
    assert!(err.contains("compacted"), "{err}");
    let lines = session_lines(&corral);
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "truncate" && l["reason"] == "undo")
    );
}
