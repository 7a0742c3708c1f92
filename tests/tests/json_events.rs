//! `corral run --json` keeps the promises of docs/json.md: every event it prints is documented
//! there, and the order rules hold on a run with a tool call and a background task the model
//! waits for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::cli::Corral;
use corral_tests::server::{ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

/// The `type`s the first table of docs/json.md documents.
fn documented_types() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/json.md"))
        .expect("docs/json.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|t| *t != "type")
        .map(String::from)
        .collect()
}

#[test]
fn every_event_is_documented_and_comes_in_the_documented_order() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use(
                "bg",
                "background_run",
                json!({"command": "sleep 1.5; echo built", "timeout_secs": 60}),
            ),
            tool_use("sh", "bash", json!({"command": "echo hi"})),
        ])
        .into(),
        Turn::text("Waiting for the build.").into(),
        Turn::text("The build is done.").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "--json", "build it"]);
    out.assert_code(0);
    server.assert_clean();
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    let documented = documented_types();
    assert!(documented.len() >= 15, "{documented:?}");
    for kind in &kinds {
        assert!(
            documented.iter().any(|d| d == kind),
            "`{kind}` is not in docs/json.md"
        );
    }
    let at = |kind: &str| kinds.iter().position(|k| *k == kind);
    let last = |kind: &str| kinds.iter().rposition(|k| *k == kind);
    assert_eq!(kinds.first(), Some(&"session_started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"finished"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "session_started").count(), 1);
    // Each call: model_request .. turn_finished, alternating.
    let calls: Vec<&&str> = kinds
        .iter()
        .filter(|k| **k == "model_request" || **k == "turn_finished")
        .collect();
    assert_eq!(calls.len(), 6, "{kinds:?}");
    assert!(
        calls
            .chunks(2)
            .all(|c| *c[0] == "model_request" && *c[1] == "turn_finished"),
        "{kinds:?}"
    );
    // Each tool call starts before it finishes, and all finish before the next call.
    for id in ["bg", "sh"] {
        let started = events
            .iter()
            .position(|e| e["type"] == "tool_call_started" && e["id"] == id)
            .expect("started");
        let finished = events
            .iter()
            .position(|e| e["type"] == "tool_call_finished" && e["id"] == id)
            .expect("finished");
        let next_call = kinds[finished..]
            .iter()
            .position(|k| *k == "model_request")
            .map(|i| i + finished);
        assert!(started < finished && next_call.is_some(), "{kinds:?}");
    }
    // The task: started, finished, then delivered, just before the call that carries it.
    let (started, finished, delivered) = (
        at("background_started").expect("started"),
        at("background_finished").expect("finished"),
        at("background_delivered").expect("delivered"),
    );
    assert!(started < finished && finished < delivered, "{kinds:?}");
    assert_eq!(kinds[delivered + 1], "model_request", "{kinds:?}");
    assert!(
        at("waiting_for_background").expect("waiting") < finished,
        "{kinds:?}"
    );
    assert!(last("text_delta") < at("finished"), "{kinds:?}");
}
