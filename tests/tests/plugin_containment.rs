//! No plugin takes corral down: manifests that sleep, print, panic, loop or carry 12 MiB are
//! skipped quickly while the others load; an abandoned call gives back every descriptor; 64
//! blocked calls in one go leave the pool usable; floods of log and result bytes are capped
//! and said so; terminal escapes never reach the screen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::plugins::{LogSink, Runtime, WorkspacePlugins};
use corral::policy::{ApprovalStore, Policy, TrustStore, sha256_hex};
use corral::tools::ToolError;
use corral::workspace::Workspace;
use corral_tests::{Corral, ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

/// Each misbehaving manifest is skipped with one line naming its file and cause; the good
/// plugin loads; the start does not wait out a 30 s sleep or a loop (their deadline is 2 s and
/// they load at once); a second start is as quick.
#[test]
fn manifests_that_misbehave_are_skipped_quickly() {
    let corral = Corral::new();
    corral.install(&[
        "misbehave",
        "badmanifest_sleep",
        "badmanifest_print",
        "badmanifest_panic",
        "badmanifest_loop",
        "badmanifest_huge",
    ]);
    for round in ["first start", "second start"] {
        let started = Instant::now();
        let out = corral.run(None, &["plugins"]);
        let took = started.elapsed();
        out.assert_code(0);
        let text = &out.stdout;
        assert!(text.contains("misbehave 0.1.0"), "{round}: {text}");
        let line = |file: &str| {
            text.lines()
                .find(|l| l.starts_with("error: ") && l.contains(file))
                .unwrap_or_else(|| panic!("{round}: no error line for {file}: {text}"))
                .to_string()
        };
        assert!(line("badmanifest_sleep.wasm").contains("did not return within 2 s"));
        assert!(line("badmanifest_loop.wasm").contains("did not return within 2 s"));
        assert!(line("badmanifest_print.wasm").contains("printed to stderr"));
        assert!(line("badmanifest_panic.wasm").contains("panicked"));
        assert!(line("badmanifest_huge.wasm").contains("over the 65536-byte limit"));
        assert!(
            took < Duration::from_secs(20),
            "{round} took {took:?}: the bad manifests held it up"
        );
    }
}

/// Terminal control sequences in a manifest never reach the terminal through `corral plugins`.
#[test]
fn escapes_in_a_manifest_are_stripped() {
    let corral = Corral::new();
    corral.install(&["badmanifest_osc"]);
    let out = corral.run(None, &["plugins"]);
    out.assert_code(0);
    assert!(out.stdout.contains("innocent"), "{}", out.stdout);
    assert!(
        !out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{7}'),
        "escape bytes printed: {:?}",
        out.stdout
    );
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A call that opens 2,000 files and then blocks is dropped at its deadline with everything it
/// held; 64 such calls at once all end at their deadline (waiting for a call slot counts) and
/// the next call works; corral's descriptor count is back where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_give_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    corral_tests::plugins::install(dir.path(), &["misbehave"]);
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/f.txt"), "x").unwrap();
    std::fs::write(
        dir.path().join("corral.toml"),
        "[plugin.misbehave]\nread = [\"data/\"]\ntimeout_ms = 500\n",
    )
    .unwrap();
    let workspace = Workspace::open(dir.path()).unwrap();
    // The user trusts this workspace's file and approves the plugin, as `corral trust` and
    // `corral policy approve` would record it (in a config folder of the test's own).
    let config = tempfile::tempdir().unwrap();
    let toml = std::fs::read(dir.path().join("corral.toml")).unwrap();
    TrustStore::in_dir(config.path())
        .trust(workspace.root(), &sha256_hex(&toml))
        .unwrap();
    let wasm = std::fs::read(dir.path().join(".corral/plugins/misbehave.wasm")).unwrap();
    ApprovalStore::in_dir(config.path())
        .approve(workspace.root(), &[("misbehave".into(), sha256_hex(&wasm))])
        .unwrap();
    let policy = Policy::load(&workspace, Some(&config.path().join("config.toml"))).unwrap();
    let runtime = Runtime::new().unwrap();
    let log: LogSink = Arc::new(|_, _, _| {});
    let found = WorkspacePlugins::load(&runtime, &workspace, &policy, &[], log).await;
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    let (tools, problems) = found.tools(&workspace, &policy);
    assert!(problems.is_empty(), "{problems:?}");
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t.spec().name == name)
            .unwrap()
            .clone()
    };
    let (hold, echo) = (tool("hold"), tool("echo"));

    // Warm up whatever is opened once (the engine's pool, tokio's blocking threads).
    echo.call(json!({"warm": true})).await.unwrap();
    let held = hold
        .call(json!({"path": "data/f.txt", "count": 10, "ms": 0}))
        .await
        .unwrap();
    assert_eq!(held, "held 10 handles");
    let before = open_fds();

    let got = hold
        .call(json!({"path": "data/f.txt", "count": 2000, "ms": 60_000}))
        .await;
    assert!(matches!(got, Err(ToolError::Timeout(_))), "{got:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_one = open_fds();
    assert!(
        after_one <= before + 8,
        "descriptors held after the call was dropped: {before} before, {after_one} after"
    );

    let started = Instant::now();
    let calls = (0..64).map(|_| {
        let hold = hold.clone();
        async move {
            hold.call(json!({"path": "data/f.txt", "count": 50, "ms": 60_000}))
                .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let took = started.elapsed();
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(ToolError::Timeout(_)))),
        "{results:?}"
    );
    assert!(
        took < Duration::from_secs(30),
        "64 blocked calls took {took:?}"
    );
    let echoed = echo.call(json!({"after": 64})).await.unwrap();
    assert_eq!(echoed, r#"{"after":64}"#);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_all = open_fds();
    assert!(
        after_all <= before + 8,
        "descriptors held after 64 dropped calls: {before} before, {after_all} after"
    );
}

/// 4 MiB of log and a 1 MiB result: the log stops at its budget and says how much was
/// dropped, the model gets the result's head and tail with the path of the whole, which is
/// kept; an OSC 52 sequence in a log line never reaches the terminal or the event stream.
#[test]
fn floods_are_capped_and_said_so() {
    let corral = Corral::new();
    corral.install(&["misbehave"]);
    let osc = "clip\u{1b}]52;c;cm0gLXJmIH4=\u{7}board";
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "f",
            "flood",
            json!({"log_bytes": 4 << 20, "result_bytes": 1 << 20, "line": osc}),
        )])
        .into(),
        Turn::text("done").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "--json", "flood"]);
    out.assert_code(0);
    server.assert_clean();
    let body = server.bodies().pop().unwrap();
    let result = &corral_tests::tool_results(&body)[0];
    assert!(!result.is_error, "{}", result.content);
    assert!(
        result.content.len() < 32_000,
        "{} bytes to the model",
        result.content.len()
    );
    assert!(
        result.content.starts_with("BEGIN") && result.content.contains("END"),
        "head and tail kept"
    );
    assert!(
        result.content.contains("bytes of log dropped"),
        "{}",
        &result.content[result.content.len() - 400..]
    );
    let path = result
        .content
        .split('`')
        .find(|s| s.starts_with(".corral/results/"))
        .unwrap_or_else(|| panic!("no results path in the note"));
    let whole = std::fs::read_to_string(corral.path(path)).unwrap();
    assert_eq!(whole.len(), 1 << 20);
    assert!(whole.starts_with("BEGIN") && whole.ends_with("END"));

    let logged: usize = out
        .events()
        .iter()
        .filter(|e| e["type"] == "plugin_log")
        .map(|e| e["message"].as_str().unwrap_or("").len())
        .sum();
    assert!(logged <= 300 * 1024, "{logged} bytes of log let through");
    let messages: Vec<Value> = out
        .events()
        .into_iter()
        .filter(|e| e["type"] == "plugin_log")
        .collect();
    assert!(
        messages.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("clip]52;c;"))),
        "the line is kept, stripped"
    );
    for m in &messages {
        assert!(!m["message"].as_str().unwrap_or("").contains('\u{1b}'));
    }
    assert!(!out.stderr.contains('\u{1b}'), "escape on stderr");
}
