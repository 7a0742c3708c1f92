//! The blocking `bash` tool with real processes: output, exit codes, caps, timeouts, and no
//! process left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::ShellConfig;
use corral::process::Launch;
use corral::tools::{BashTool, Tool, ToolError};
use corral::workspace::Workspace;
use serde_json::json;

fn bash(dir: &tempfile::TempDir) -> BashTool {
    let ws = Arc::new(Workspace::open(dir.path()).expect("workspace"));
    BashTool::new(ws, ShellConfig::default(), Launch::unconfined(), None)
}

fn pids_in(dir: &tempfile::TempDir, file: &str) -> Vec<i32> {
    std::fs::read_to_string(dir.path().join(file))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 checks for existence only.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Waits up to 10 s for every pid to be gone.
fn all_gone(pids: &[i32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if pids.iter().all(|&p| !alive(p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// stdout and stderr come back interleaved in the order written, with the exit code.
#[tokio::test]
async fn output_interleaves_and_reports_the_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bash(&dir)
        .call(json!({"command": "echo one; echo two >&2; echo three; pwd"}))
        .await
        .expect("success");
    let canonical = dir.path().canonicalize().expect("canon");
    assert!(
        out.starts_with(&format!("one\ntwo\nthree\n{}\n", canonical.display())),
        "{out}"
    );
    assert!(out.contains("[exit code 0"), "{out}");

    let failed = bash(&dir)
        .call(json!({"command": "echo oops >&2; exit 7"}))
        .await;
    match failed {
        Err(ToolError::Failed(text)) => assert!(
            text.starts_with("oops\n") && text.contains("[exit code 7"),
            "{text}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Output past the cap is cut in the middle with a note of how much went.
#[tokio::test]
async fn long_output_is_cut_in_the_middle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bash(&dir)
        .call(json!({"command": "echo FIRST; head -c 200000 /dev/zero | tr '\\0' x; echo; echo LAST"}))
        .await
        .expect("success");
    assert!(out.starts_with("FIRST\n"), "{}", &out[..50]);
    assert!(out.contains("LAST\n"), "the tail is kept");
    assert!(
        out.contains("bytes of output cut ...]"),
        "a note says what was cut"
    );
    assert!(out.len() < 31_000, "{} bytes returned", out.len());
}

/// On timeout the whole process group dies, grandchildren included, and the call says so.
#[tokio::test]
async fn a_timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let result = bash(&dir)
        .call(json!({"command": "sleep 100 & echo $! >> pids; (sleep 100 & echo $! >> pids; wait) & echo $$ >> pids; wait", "timeout_secs": 1}))
        .await;
    match result {
        Err(ToolError::Timeout(text)) => assert!(text.contains("timed out after 1 s"), "{text}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let pids = pids_in(&dir, "pids");
    assert_eq!(pids.len(), 3, "the shell and two sleepers wrote their pids");
    assert!(all_gone(&pids), "processes survived: {pids:?}");
}

/// A command that leaves a child running in the background still returns when the shell exits,
/// and the child does not outlive the call.
#[tokio::test]
async fn background_children_do_not_outlive_the_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let out = bash(&dir)
        .call(json!({"command": "sleep 100 & echo $! > pids; echo started"}))
        .await
        .expect("success");
    assert!(out.starts_with("started"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the call did not wait for the sleeper"
    );
    assert!(all_gone(&pids_in(&dir, "pids")), "the sleeper survived");
}
