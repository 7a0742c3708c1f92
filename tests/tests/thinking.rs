//! The model's thinking end to end: the real `corral` binary against scripted servers that
//! think. The Anthropic server refuses (as the real API answers 400) any later request that does
//! not carry its thinking blocks back unchanged, signatures included; the OpenAI server wants
//! `reasoning_content` back within the tool loop, as DeepSeek does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::openai_server::{Completion, OpenAiServer, call};
use corral_tests::rules::{prefix_violations, thinking_violations};
use corral_tests::{Corral, Reply, ScriptedServer, Turn, redacted_thinking, thinking, tool_use};
use serde_json::{Value, json};

/// Two tool calls, each after thinking (one block with a signature, one redacted), then an
/// answer after more thinking.
fn thinking_script() -> Vec<Reply> {
    vec![
        Turn::tools(vec![
            thinking(
                "The user wants a.txt read. Let me read it.",
                "EqQBCgIYAhIM+sig/1==",
            ),
            redacted_thinking("EmwKAhgBEgy3va3pzix/LafPsn4a"),
            tool_use("r1", "read_file", json!({"path": "a.txt"})),
        ])
        .into(),
        Turn::tools(vec![
            thinking("Now b.txt, to compare.", "EqQBCgIYAhIM+sig/2=="),
            tool_use("r2", "read_file", json!({"path": "b.txt"})),
        ])
        .into(),
        Turn::text("They differ.")
            .after(vec![thinking("a says one, b says two.", "EqQBsig3")])
            .into(),
    ]
}

fn thinking_run(stream: bool) -> (Corral, ScriptedServer) {
    let corral = Corral::new();
    corral.write("a.txt", "one\n");
    corral.write("b.txt", "two\n");
    let server = ScriptedServer::start(thinking_script());
    let mut args = vec!["run", "compare a.txt and b.txt"];
    if !stream {
        args.insert(1, "--no-stream");
    }
    let out = corral.run(Some(&server), &args);
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), "They differ.");
    assert!(
        !out.stdout.contains("Let me read") && !out.stderr.contains("Let me read"),
        "plain output shows no thinking:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    server.assert_clean();
    (corral, server)
}

/// Streamed: thinking and redacted thinking come back in the tool loop exactly as sent (the
/// server's rules refuse anything else), and stay in the session file verbatim.
#[test]
fn streamed_thinking_comes_back_unchanged() {
    let (corral, server) = thinking_run(true);
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        bodies[1]["messages"][1]["content"],
        json!([
            thinking(
                "The user wants a.txt read. Let me read it.",
                "EqQBCgIYAhIM+sig/1=="
            ),
            redacted_thinking("EmwKAhgBEgy3va3pzix/LafPsn4a"),
            tool_use("r1", "read_file", json!({"path": "a.txt"})),
        ])
    );
    let session = std::fs::read_to_string(&corral.sessions()[0]).unwrap();
    for piece in [
        "EqQBCgIYAhIM+sig/1==",
        "EmwKAhgBEgy3va3pzix/LafPsn4a",
        "EqQBsig3",
    ] {
        assert!(session.contains(piece), "the session file lacks {piece}");
    }
}

/// Not streamed: the same, from whole answers.
#[test]
fn whole_thinking_comes_back_unchanged() {
    let (_, server) = thinking_run(false);
    assert_eq!(server.bodies().len(), 3);
}

/// A resumed session sends every thinking block of the earlier run back, byte for byte.
#[test]
fn a_resumed_session_sends_its_thinking_back() {
    let corral = Corral::new();
    corral.write("a.txt", "one\n");
    corral.write("b.txt", "two\n");
    let mut script = thinking_script();
    script.push(Turn::text("Still different.").into());
    let server = ScriptedServer::start(script);
    corral
        .run(Some(&server), &["run", "compare a.txt and b.txt"])
        .assert_code(0);
    corral
        .run(Some(&server), &["run", "--continue", "and now?"])
        .assert_code(0);
    server.assert_clean();
    let last = server.bodies().pop().unwrap();
    let text = last["messages"].to_string();
    for piece in [
        "EqQBCgIYAhIM+sig/1==",
        "EmwKAhgBEgy3va3pzix/LafPsn4a",
        "EqQBCgIYAhIM+sig/2==",
        "EqQBsig3",
    ] {
        assert!(text.contains(piece), "the resumed request lacks {piece}");
    }
}

/// `--json` carries the thinking as `thinking_delta` events, and never as text.
#[test]
fn json_carries_thinking_deltas() {
    let corral = Corral::new();
    corral.write("a.txt", "one\n");
    corral.write("b.txt", "two\n");
    let server = ScriptedServer::start(thinking_script());
    let out = corral.run(Some(&server), &["run", "--json", "compare"]);
    out.assert_code(0);
    let events = out.events();
    let thought: String = events
        .iter()
        .filter(|e| e["type"] == "thinking_delta")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        thought.contains("The user wants a.txt read. Let me read it.")
            && thought.contains("a says one, b says two."),
        "{thought}"
    );
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "text_delta")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(text, "They differ.");
}

/// Thinking and effort are sent as each model takes them: adaptive for the default model,
/// `disabled` with `--thinking off`, effort with `--effort`; nothing to a model corral does
/// not know; `[agent] effort` from corral.toml.
#[test]
fn thinking_settings_as_the_model_takes_them() {
    let body = |args: &[&str], toml: Option<&str>| -> Value {
        let corral = Corral::new();
        if let Some(toml) = toml {
            corral.write("corral.toml", toml);
            corral.trust();
        }
        let server = ScriptedServer::start(vec![Turn::text("ok").into()]);
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.push("hi");
        corral.run(Some(&server), &all).assert_code(0);
        server.assert_clean();
        server.bodies().remove(0)
    };
    let default = body(&[], None);
    assert_eq!(default["model"], "claude-opus-5");
    assert_eq!(default["thinking"], json!({"type": "adaptive"}));
    assert_eq!(default["max_tokens"], 32000);
    assert!(default.get("output_config").is_none());
    let off = body(&["--thinking", "off", "--effort", "low"], None);
    assert_eq!(off["thinking"], json!({"type": "disabled"}));
    assert_eq!(off["output_config"], json!({"effort": "low"}));
    let unknown = body(&["--model", "my-model", "--effort", "max"], None);
    assert!(
        unknown.get("thinking").is_none() && unknown.get("output_config").is_none(),
        "{unknown}"
    );
    assert_eq!(unknown["max_tokens"], 8192);
    let file = body(
        &[],
        Some("[agent]\neffort = \"medium\"\nthinking = \"off\"\n"),
    );
    assert_eq!(file["output_config"], json!({"effort": "medium"}));
    assert_eq!(file["thinking"], json!({"type": "disabled"}));
}

/// A bad value in corral.toml is an error naming the key's line.
#[test]
fn a_bad_effort_is_refused() {
    let corral = Corral::new();
    corral.write("corral.toml", "[agent]\neffort = \"huge\"\n");
    let out = corral.run(None, &["run", "hi"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("unknown effort `huge`"),
        "{}",
        out.stderr
    );
}

/// The rules can fail: a changed signature, a dropped thinking block and a changed prefix are
/// each refused.
#[test]
fn the_rules_catch_a_broken_round_trip() {
    let answer = json!([
        thinking("hm", "sig-A"),
        tool_use("t1", "bash", json!({"command": "ls"}))
    ]);
    let request = |assistant: Value| {
        json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "go"}]},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
        ]})
    };
    assert!(
        thinking_violations(std::slice::from_ref(&answer), &request(answer.clone())).is_empty()
    );
    let changed = json!([
        thinking("hm", "sig-B"),
        tool_use("t1", "bash", json!({"command": "ls"}))
    ]);
    assert_eq!(
        thinking_violations(std::slice::from_ref(&answer), &request(changed)).len(),
        1
    );
    let dropped = json!([tool_use("t1", "bash", json!({"command": "ls"}))]);
    assert_eq!(thinking_violations(&[answer], &request(dropped)).len(), 1);

    let mark = json!({"type": "ephemeral"});
    let with_system = |system: &str| {
        json!({"system": [{"type": "text", "text": system, "cache_control": mark}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "go", "cache_control": mark}]},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": [{"type": "text", "text": "more", "cache_control": mark}]},
        ]})
    };
    let previous = json!({"system": [{"type": "text", "text": "You are corral.", "cache_control": mark}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "go", "cache_control": mark}]}]});
    assert!(prefix_violations(&previous, &with_system("You are corral.")).is_empty());
    let moved = prefix_violations(&previous, &with_system("You are corral. It is 10:41."));
    assert_eq!(moved.len(), 1, "{moved:?}");
}

/// An OpenAI-compatible server's `reasoning_content` is shown as thinking (`--json`), not as
/// text, and goes back as `reasoning_content` within the tool loop, streamed or not.
#[test]
fn openai_reasoning_goes_back_within_the_tool_loop() {
    for stream in [true, false] {
        let server = OpenAiServer::start(vec![
            Completion::tools(vec![call("c1", "read_file", json!({"path": "a.txt"}))])
                .with_reasoning("I need to read a.txt first.")
                .into(),
            Completion::text("It says one.")
                .with_reasoning("It says one.")
                .into(),
        ]);
        let corral = Corral::new().env("OPENAI_BASE_URL", &server.url());
        corral.write("a.txt", "one\n");
        let mut args = vec!["run", "--provider", "openai", "--model", "local", "--json"];
        if !stream {
            args.push("--no-stream");
        }
        args.push("read a.txt");
        let out = corral.run(None, &args);
        out.assert_code(0);
        server.assert_clean();
        let bodies = server.bodies();
        assert_eq!(
            bodies[1]["messages"][2]["reasoning_content"], "I need to read a.txt first.",
            "{}",
            bodies[1]
        );
        let thought: String = out
            .events()
            .iter()
            .filter(|e| e["type"] == "thinking_delta")
            .filter_map(|e| e["text"].as_str())
            .collect();
        assert!(
            thought.starts_with("I need to read a.txt first."),
            "{thought}"
        );
    }
}
