//! Every session corral writes can be resumed: tool input nested past the depth rule is refused
//! (a tool error the model can act on) and kept as a note, input within it is kept verbatim, and
//! a last line cut off by a kill is dropped with a warning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral::tools::schema::MAX_INPUT_DEPTH;
use corral_tests::{Corral, ScriptedServer, Turn, tool_results, tool_use};
use serde_json::{Map, Value, json};

/// `{"a": {"a": ... 1}}`, `levels` objects deep.
fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        let mut map = Map::new();
        map.insert("a".into(), value);
        value = Value::Object(map);
    }
    value
}

/// Every line of the session file is whole JSON.
fn assert_lines_whole(corral: &Corral) {
    let text = std::fs::read_to_string(&corral.sessions()[0]).unwrap();
    assert!(text.ends_with('\n'), "the file ends with a whole line");
    for (i, line) in text.lines().enumerate() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line:.200}", i + 1));
    }
}

/// A 127-deep input (the deepest the streamed JSON parser takes) is refused with a tool error
/// naming the rule; one at exactly the limit reaches its tool. `--continue` then resumes the
/// session, whose history carries the shallow input verbatim and a note for the deep one.
#[test]
fn deep_tool_input_is_refused_and_the_session_resumes() {
    let corral = Corral::new();
    corral.write("a.txt", "hello\n");
    // The object itself is one level: the `deep` field adds the rest.
    let at_limit = json!({"path": "a.txt", "deep": nested(MAX_INPUT_DEPTH - 2)});
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("deep", "read_file", nested(127)),
            tool_use("edge", "read_file", at_limit.clone()),
        ])
        .into(),
        Turn::text("first done").into(),
        Turn::text("second done").into(),
    ]);
    corral.run(Some(&server), &["run", "first"]).assert_code(0);
    let results = tool_results(&server.bodies()[1]);
    assert!(results[0].is_error, "{:?}", results[0]);
    assert!(
        results[0]
            .content
            .contains("input: nested 127 levels deep; a tool's input may nest at most 64 levels"),
        "{:?}",
        results[0]
    );
    assert!(results[1].is_error, "{:?}", results[1]);
    assert!(
        results[1].content.contains("unknown field `deep`"),
        "an input at the limit passes the depth rule and meets the schema: {:?}",
        results[1]
    );
    assert_lines_whole(&corral);

    let resumed = corral.run(Some(&server), &["run", "--continue", "second"]);
    resumed.assert_code(0);
    server.assert_clean();
    assert_eq!(resumed.stdout.trim(), "second done");
    let messages = server.bodies()[2]["messages"].as_array().unwrap().clone();
    let calls: Vec<&Value> = messages[1]["content"].as_array().unwrap().iter().collect();
    assert_eq!(
        calls[0]["input"]["corral_refused_input"]
            .as_str()
            .unwrap_or(""),
        results[0].content.trim_start_matches("invalid input: "),
        "the deep input is kept as the note that refused it"
    );
    assert_eq!(
        calls[1]["input"], at_limit,
        "the input at the limit is kept"
    );
}

/// A last line cut off mid-write resumes with that line dropped and a warning on stderr; the
/// cut bytes are removed, so the next run appends whole lines and resumes without a warning.
#[test]
fn a_torn_last_line_is_dropped_with_a_warning() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::text("first done").into(),
        Turn::text("second done").into(),
        Turn::text("third done").into(),
    ]);
    corral.run(Some(&server), &["run", "first"]).assert_code(0);
    let path = corral.sessions()[0].clone();
    let whole = std::fs::read_to_string(&path).unwrap();
    let torn = r#"{"type":"message","message":{"role":"user","content":[{"type":"te"#;
    std::fs::write(&path, format!("{whole}{torn}")).unwrap();

    let second = corral.run(Some(&server), &["run", "--continue", "second"]);
    second.assert_code(0);
    assert!(
        second.stderr.contains("corral: warning: session file")
            && second
                .stderr
                .contains(&format!("its last line ({} bytes) was cut off", torn.len())),
        "{}",
        second.stderr
    );
    assert_lines_whole(&corral);
    let texts = |i: usize| -> Vec<String> {
        server.bodies()[i]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["text"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(texts(1), ["first", "first done", "second"]);

    let third = corral.run(Some(&server), &["run", "-q", "--continue", "third"]);
    third.assert_code(0);
    assert!(!third.stderr.contains("warning"), "{}", third.stderr);
    server.assert_clean();
    assert_eq!(
        texts(2),
        ["first", "first done", "second", "second done", "third"]
    );

    // --quiet still shows the warning: something was dropped.
    let whole = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{whole}{{\"type\":\"mess")).unwrap();
    let quiet = corral.run(
        None,
        &["run", "-q", "--max-retries", "0", "--continue", "fourth"],
    );
    assert!(
        quiet.stderr.contains("corral: warning: session file"),
        "{}",
        quiet.stderr
    );
}

/// A bad line that is not the last is corruption: corral refuses to resume and names the line,
/// and the file is left as it was.
#[test]
fn a_bad_line_inside_the_file_is_an_error() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![Turn::text("first done").into()]);
    corral.run(Some(&server), &["run", "first"]).assert_code(0);
    let path = corral.sessions()[0].clone();
    let whole = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = whole.lines().collect();
    lines.insert(1, "{not json");
    let broken = format!("{}\n", lines.join("\n"));
    std::fs::write(&path, &broken).unwrap();
    let out = corral.run(Some(&server), &["run", "--continue", "second"]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains(", line 2:"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    server.assert_clean();
}
