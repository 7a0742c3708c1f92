//! Every duration corral takes from the model, a flag or a settings file is bounded where it is
//! read: huge values are refused with a clear error (a tool error for the model, exit 2 for a
//! file), never an arithmetic panic or a task stuck "running".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::background::{
    BackgroundConfig, BackgroundError, BackgroundManager, MAX_TIMEOUT, TaskStatus,
};
use corral::workspace::Workspace;
use corral_tests::{Corral, ScriptedServer, Turn, tool_results, tool_use};
use serde_json::json;

fn manager(dir: &tempfile::TempDir, config: BackgroundConfig) -> Arc<BackgroundManager> {
    let ws = Arc::new(Workspace::open(dir.path()).unwrap());
    Arc::new(BackgroundManager::new(ws, config, |_| {}))
}

fn ends_within(secs: u64, task: &corral::background::Task) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if !task.status().is_running() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The model asks for timeouts near `u64::MAX` from `background_run` and `bash`: both calls are
/// refused with a tool error naming the limit, and the run goes on to its end.
#[test]
fn huge_timeouts_from_the_model_are_tool_errors() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use(
                "bg",
                "background_run",
                json!({"command": "echo never", "timeout_secs": u64::MAX}),
            ),
            tool_use(
                "sh",
                "bash",
                json!({"command": "echo never", "timeout_secs": u64::MAX}),
            ),
            tool_use(
                "ok",
                "background_run",
                json!({"command": "echo fine", "timeout_secs": MAX_TIMEOUT.as_secs()}),
            ),
        ])
        .into(),
        Turn::text("waiting for it").into(),
        Turn::text("done").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let results = tool_results(&server.bodies()[1]);
    assert!(results[0].is_error, "{:?}", results[0]);
    assert!(
        results[0]
            .content
            .contains("input.timeout_secs: must be at most 604800"),
        "{:?}",
        results[0]
    );
    assert!(results[1].is_error, "{:?}", results[1]);
    assert!(
        results[1]
            .content
            .contains("input.timeout_secs: must be at most 600"),
        "{:?}",
        results[1]
    );
    assert!(
        !results[2].is_error && results[2].content.contains("started: echo fine"),
        "the longest allowed timeout works: {:?}",
        results[2]
    );
    assert!(
        out.stderr.contains("completed (exit code 0)"),
        "the 7-day task ran to its end: {}",
        out.stderr
    );
}

/// Through the library: a timeout past the limit is refused, the limit itself and a default of
/// `Duration::MAX` (taken as the limit) run to their end, and a default of zero means none.
#[test]
fn the_manager_bounds_every_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let bg = manager(&dir, BackgroundConfig::default());
    assert_eq!(
        bg.start("true", Some(Duration::from_secs(u64::MAX)))
            .unwrap_err(),
        BackgroundError::TimeoutTooLong(u64::MAX)
    );
    assert_eq!(
        bg.start("true", Some(Duration::MAX)).unwrap_err(),
        BackgroundError::TimeoutTooLong(u64::MAX)
    );
    let longest = bg.start("true", Some(MAX_TIMEOUT)).unwrap();
    assert!(ends_within(30, &longest), "the task stayed running");
    assert_eq!(longest.status(), TaskStatus::Completed { exit_code: 0 });

    let huge_default = manager(
        &dir,
        BackgroundConfig {
            default_timeout: Duration::MAX,
            ..Default::default()
        },
    );
    let task = huge_default.start("exit 4", None).unwrap();
    assert_eq!(task.timeout, Some(MAX_TIMEOUT));
    assert!(ends_within(30, &task), "the task stayed running");
    assert_eq!(task.status(), TaskStatus::Completed { exit_code: 4 });

    let no_default = manager(
        &dir,
        BackgroundConfig {
            default_timeout: Duration::ZERO,
            ..Default::default()
        },
    );
    let task = no_default.start("sleep 1", None).unwrap();
    assert_eq!(task.timeout, None, "a zero default is no timeout");
    assert!(ends_within(30, &task));
    assert_eq!(task.status(), TaskStatus::Completed { exit_code: 0 });
}

/// `[shell]` durations out of range stop corral with exit 2 and the file, line and column,
/// before any model call; the largest values TOML can hold (i64::MAX) included.
#[test]
fn shell_durations_in_corral_toml_are_bounded() {
    let corral = Corral::new();
    let cases = [
        (
            "[shell]\ntimeout_secs = 9223372036854775807\n",
            "corral.toml:2:16:",
            "timeout_secs must be from 1 to 600, not 9223372036854775807",
        ),
        (
            "[shell]\ntimeout_secs = 0\n",
            "corral.toml:2:16:",
            "timeout_secs must be from 1 to 600, not 0",
        ),
        (
            "[shell]\nenabled = true\nbackground_timeout_secs = 9223372036854775807\n",
            "corral.toml:3:27:",
            "background_timeout_secs must be from 0 to 604800, not 9223372036854775807",
        ),
        (
            "[shell]\nbackground_timeout_secs = 604801\n",
            "corral.toml:2:27:",
            "background_timeout_secs must be from 0 to 604800, not 604801",
        ),
    ];
    for (toml, at, what) in cases {
        corral.write("corral.toml", toml);
        for args in [&["run", "never sent"][..], &["policy", "check"]] {
            let out = corral.run(None, args);
            out.assert_code(2);
            assert!(
                out.stderr.contains(at) && out.stderr.contains(what),
                "{toml:?} with {args:?} gave: {}",
                out.stderr
            );
        }
    }
    // The bounds themselves are accepted.
    corral.write(
        "corral.toml",
        "[shell]\ntimeout_secs = 600\nbackground_timeout_secs = 604800\n",
    );
    corral.run(None, &["policy", "check"]).assert_code(0);
    corral.write("corral.toml", "[shell]\nbackground_timeout_secs = 0\n");
    corral.run(None, &["policy", "check"]).assert_code(0);
}

/// `background_timeout_secs = 0` means no default timeout: the model is told so, and a task it
/// starts without one is not killed. (No timeout is a widening: it takes a trusted file.)
#[test]
fn a_zero_background_default_is_no_timeout() {
    let corral = Corral::new();
    corral.write("corral.toml", "[shell]\nbackground_timeout_secs = 0\n");
    corral.trust();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "bg",
            "background_run",
            json!({"command": "sleep 1; echo slept"}),
        )])
        .into(),
        Turn::text("done").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "--no-wait", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let tools = server.bodies()[0]["tools"].as_array().unwrap().clone();
    let run = tools
        .iter()
        .find(|t| t["name"] == "background_run")
        .unwrap();
    assert!(
        run["description"]
            .as_str()
            .unwrap()
            .contains("Runs without a timeout unless timeout_secs says otherwise"),
        "{}",
        run["description"]
    );
}

/// `--wait-timeout` at `u64::MAX` waits for the task like any other value, without a panic.
#[test]
fn a_huge_wait_timeout_is_no_panic() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "bg",
            "background_run",
            json!({"command": "sleep 1; echo waited for"}),
        )])
        .into(),
        Turn::text("started").into(),
        Turn::text("got it").into(),
    ]);
    let max = u64::MAX.to_string();
    let out = corral.run(Some(&server), &["run", "--wait-timeout", &max, "go"]);
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(out.stdout.trim(), "got it");
    let last = server.bodies()[2]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .to_string();
    assert!(last.contains("waited for"), "{last}");
}
