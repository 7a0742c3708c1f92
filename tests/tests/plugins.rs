//! WebAssembly plugins built from source, driven through the real binary and the agent loop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::{Corral, ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

/// The tool results of the last message of a request, as (is_error, content).
fn results(body: &Value) -> Vec<(bool, String)> {
    corral_tests::tool_results(body)
        .into_iter()
        .map(|r| (r.is_error, r.content))
        .collect()
}

/// Plugin tools are offered beside the built-ins with their schemas, and a pure plugin (jq)
/// answers through the agent loop.
#[test]
fn a_plugin_tool_is_offered_and_called() {
    let corral = Corral::new();
    corral.install(&["jq"]);
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("q", "jq", json!({"filter": ".items[] | .name", "json": "{\"items\":[{\"name\":\"a\"},{\"name\":\"b\"}]}"})),
            tool_use("bad", "jq", json!({"filter": ".[", "json": "{}"})),
        ])
        .into(),
        Turn::text("names: a, b").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "list the names"]);
    out.assert_code(0);
    server.assert_clean();
    let first = &server.bodies()[0];
    let jq = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "jq")
        .expect("jq offered");
    assert_eq!(jq["input_schema"]["type"], "object");
    let got = results(&server.bodies()[1]);
    assert_eq!(got[0], (false, "\"a\"\n\"b\"\n".to_string()));
    assert!(
        got[1].0 && got[1].1.starts_with("invalid input:"),
        "{:?}",
        got[1]
    );
}

/// Each misbehaving tool is contained with an error naming the cause, and the very next call to
/// the same plugin succeeds.
#[test]
fn misbehaving_plugins_are_contained() {
    let corral = Corral::new();
    corral.install(&["misbehave"]);
    let mut script = Vec::new();
    for (i, (tool, input)) in [
        ("spin", json!({})),
        ("hog", json!({})),
        ("recurse", json!({})),
        ("panic", json!({"message": "boom"})),
    ]
    .into_iter()
    .enumerate()
    {
        script.push(
            Turn::tools(vec![
                tool_use(&format!("bad{i}"), tool, input),
                tool_use(&format!("ok{i}"), "echo", json!({"after": tool})),
            ])
            .into(),
        );
    }
    script.push(Turn::text("survived").into());
    let server = ScriptedServer::start(script);
    let out = corral.run(Some(&server), &["run", "misbehave"]);
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    let expect = [
        "exceeded its 10 s deadline",
        "exceeded its 64 MiB memory limit",
        "overflowed its stack",
        "panicked",
    ];
    for (i, want) in expect.iter().enumerate() {
        let got = results(&bodies[i + 1]);
        assert!(
            got[0].0 && got[0].1.starts_with("plugin misbehave: ") && got[0].1.contains(want),
            "call {i}: {:?}",
            got[0]
        );
        assert!(
            !got[1].0 && got[1].1.contains("after"),
            "the next call works: {:?}",
            got[1]
        );
    }
}

/// A corrupt .wasm is reported with its file and cause while the others load; the second start
/// takes every plugin from the compile cache.
#[test]
fn corrupt_plugins_are_skipped_and_the_cache_is_used() {
    let corral = Corral::new();
    let dir = corral.install(&["jq", "grep"]);
    std::fs::write(dir.join("broken.wasm"), b"\0asm not really").unwrap();
    let list = |corral: &Corral| -> Value {
        let out = corral.run(None, &["plugins", "--json"]);
        out.assert_code(0);
        serde_json::from_str(out.stdout.trim()).unwrap()
    };
    let first = list(&corral);
    let names: Vec<&str> = first["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["manifest"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["grep", "jq"]);
    let errors = first["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(errors[0]["file"].as_str().unwrap().ends_with("broken.wasm"));
    assert!(
        errors[0]["cause"]
            .as_str()
            .unwrap()
            .contains("not a valid WebAssembly component"),
        "{}",
        errors[0]
    );
    assert!(
        first["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["source"] == "compiled")
    );
    let second = list(&corral);
    assert!(
        second["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["source"] == "cached"),
        "{second}"
    );
    let text = corral.run(None, &["plugins"]);
    assert!(
        text.stdout.contains("grep 0.1.0") && text.stdout.contains("asks read **: NOT granted"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("error: plugin ") && text.stdout.contains("broken.wasm skipped"),
        "{}",
        text.stdout
    );
}

/// Until the workspace grants anything, a plugin reaches nothing: every escape is refused.
#[test]
fn plugins_get_nothing_by_default() {
    let corral = Corral::new().env("SECRET_TOKEN", "hunter2");
    corral.install(&["misbehave"]);
    std::os::unix::fs::symlink("/etc", corral.path("etc-link")).unwrap();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use("e", "escape", json!({"symlink": "etc-link/passwd", "env": "SECRET_TOKEN", "url": "http://127.0.0.1:9/x"}))]).into(),
        Turn::text("contained").into(),
    ]);
    corral.run(Some(&server), &["run", "escape"]).assert_code(0);
    server.assert_clean();
    let got = results(&server.bodies()[1]);
    let report: Value =
        serde_json::from_str(&got[0].1).unwrap_or_else(|e| panic!("{e}: {}", got[0].1));
    assert_eq!(report["all_refused"], true, "{report:#}");
    assert!(
        report["attempts"].as_array().unwrap().len() >= 4,
        "{report:#}"
    );
}

/// grep searches only what the workspace grants, with context lines and a result limit.
#[test]
fn grep_searches_granted_files() {
    let corral = Corral::new();
    corral.install(&["grep"]);
    corral.write("src/main.rs", "// entry\nfn main() {\n    run();\n}\n");
    corral.write("src/lib.rs", "pub fn run() {}\n");
    corral.write("secret/keys.rs", "fn main() { leak() }\n");
    corral.write("corral.toml", "[plugin.grep]\nread = [\"src/\"]\n");
    corral.trust();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use(
                "a",
                "grep",
                json!({"pattern": "fn (main|run)", "path": "src", "context": 1}),
            ),
            tool_use("b", "grep", json!({"pattern": "leak", "path": "secret"})),
            tool_use("c", "grep", json!({"pattern": "(", "path": "src"})),
        ])
        .into(),
        Turn::text("found").into(),
    ]);
    corral
        .run(Some(&server), &["run", "find main"])
        .assert_code(0);
    server.assert_clean();
    let got = results(&server.bodies()[1]);
    assert!(!got[0].0, "{:?}", got[0]);
    assert!(
        got[0].1.contains("src/main.rs:2: fn main() {")
            && got[0].1.contains("src/main.rs-1- // entry"),
        "{}",
        got[0].1
    );
    assert!(
        got[0].1.contains("src/lib.rs:1: pub fn run() {}"),
        "{}",
        got[0].1
    );
    assert!(!got[0].1.contains("leak"));
    assert!(
        got[1].0 && got[1].1.contains("secret"),
        "outside the grant: {:?}",
        got[1]
    );
    assert!(
        got[2].0 && got[2].1.starts_with("invalid input:"),
        "{:?}",
        got[2]
    );
}

/// A plugin blocked in a host call (a sleep) past its deadline is abandoned with an error naming
/// the deadline, and corral does not wait for it to exit.
#[test]
fn a_call_blocked_in_the_host_is_cut_at_the_deadline() {
    let corral = Corral::new();
    corral.install(&["misbehave"]);
    corral.write("corral.toml", "[plugin.misbehave]\ntimeout_ms = 1000\n");
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("s", "sleep", json!({"ms": 60000})),
            tool_use("e", "echo", json!({"x": 1})),
        ])
        .into(),
        Turn::text("moved on").into(),
    ]);
    let started = std::time::Instant::now();
    corral.run(Some(&server), &["run", "sleep"]).assert_code(0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(45),
        "corral waited for the sleeping plugin"
    );
    server.assert_clean();
    let got = results(&server.bodies()[1]);
    assert!(
        got[0].0
            && got[0]
                .1
                .contains("plugin misbehave: exceeded its 1 s deadline"),
        "{:?}",
        got[0]
    );
    assert!(!got[1].0, "{:?}", got[1]);
}

/// Guest stdout and stderr are captured, capped, into corral's log, never to the model; host.log
/// lines reach the event stream tagged with the plugin's name.
#[test]
fn plugin_output_goes_to_the_log_and_events() {
    let corral = Corral::new().env("RUST_LOG", "corral::plugin=info");
    corral.install(&["misbehave"]);
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use("n", "noisy", json!({"bytes": 1_000_000}))]).into(),
        Turn::text("quiet now").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "--json", "be noisy"]);
    out.assert_code(0);
    server.assert_clean();
    let got = results(&server.bodies()[1]);
    assert!(
        !got[0].0 && !got[0].1.contains("quick brown fox"),
        "output is not the result: {:?}",
        got[0]
    );
    assert!(
        out.stderr.contains("noisy: the quick brown fox")
            && out.stderr.contains("more bytes dropped]"),
        "{}",
        &out.stderr[..out.stderr.len().min(2000)]
    );
    assert!(
        out.stderr.len() < 400_000,
        "the capture is capped: {} bytes",
        out.stderr.len()
    );
    let logs: Vec<Value> = out
        .events()
        .into_iter()
        .filter(|e| e["type"] == "plugin_log")
        .collect();
    assert_eq!(logs.len(), 5, "{logs:#?}");
    assert!(logs.iter().all(|l| l["plugin"] == "misbehave"));
    assert_eq!(logs[4]["level"], "error");
}

/// corral.toml (trusted) adds plugin folders and disables plugins by name; two plugins of the
/// same name are both skipped, with one line naming both files.
#[test]
fn plugin_folders_disabled_plugins_and_clashes() {
    let corral = Corral::new();
    let extra = corral.path("tools/wasm");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::copy(corral_tests::plugins::built("jq"), extra.join("jq.wasm")).unwrap();
    std::fs::copy(
        corral_tests::plugins::built("jq"),
        extra.join("jq-copy.wasm"),
    )
    .unwrap();
    std::fs::copy(
        corral_tests::plugins::built("grep"),
        extra.join("grep.wasm"),
    )
    .unwrap();
    std::fs::copy(
        corral_tests::plugins::built("fetch"),
        extra.join("fetch.wasm"),
    )
    .unwrap();
    corral.write(
        "corral.toml",
        "[plugins]\ndirs = [\"tools/wasm\"]\ndisabled = [\"grep\"]\n",
    );
    corral.trust();
    let out = corral.run(None, &["plugins", "--json"]);
    out.assert_code(0);
    let listed: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let names: Vec<&str> = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["manifest"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fetch"]);
    assert_eq!(listed["disabled"], json!(["grep"]));
    let errors = listed["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]["cause"]
            .as_str()
            .unwrap()
            .contains("both are named `jq`"),
        "{errors:?}"
    );
    let files = [&errors[0]["file"], &errors[0]["also"][0]];
    assert!(
        files
            .iter()
            .any(|f| f.as_str().unwrap().ends_with("jq.wasm"))
            && files
                .iter()
                .any(|f| f.as_str().unwrap().ends_with("jq-copy.wasm")),
        "{errors:?}"
    );
}

/// A plugin file rewritten in place (same path, same inode) is read again at the next start:
/// its stamp changed, so the component and the hash are the new file's, never those recorded
/// for the old one; an unchanged file comes from the cache with the hash first recorded.
#[test]
fn a_plugin_rewritten_in_place_is_read_again() {
    let corral = Corral::new();
    let dir = corral.install(&[]);
    let file = dir.join("tool.wasm");
    std::fs::write(
        &file,
        std::fs::read(corral_tests::plugins::built("grep")).unwrap(),
    )
    .unwrap();
    let list = |corral: &Corral| -> Value {
        let out = corral.run(None, &["plugins", "--json"]);
        out.assert_code(0);
        let listed: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        listed["plugins"][0].clone()
    };
    let first = list(&corral);
    assert_eq!(first["manifest"]["name"], "grep", "{first}");
    assert_eq!(first["source"], "compiled");
    let again = list(&corral);
    assert_eq!(again["source"], "cached", "{again}");
    assert_eq!(again["sha256"], first["sha256"]);
    std::fs::write(
        &file,
        std::fs::read(corral_tests::plugins::built("jq")).unwrap(),
    )
    .unwrap();
    let rewritten = list(&corral);
    assert_eq!(rewritten["manifest"]["name"], "jq", "{rewritten}");
    assert_ne!(rewritten["sha256"], first["sha256"]);
    assert!(rewritten["sha256"].as_str().is_some_and(|s| s.len() == 64));
}
