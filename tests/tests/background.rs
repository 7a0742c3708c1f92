//! Background tasks with real processes: the agent keeps working while they run, their results
//! reach the model before its next call, and nothing outlives a kill, a timeout or corral.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::background::{BackgroundConfig, BackgroundManager, HEAD_BYTES, TAIL_BYTES, TaskStatus};
use corral::tools::{CheckBackgroundTool, Tool};
use corral::workspace::Workspace;
use corral_tests::{Corral, Reply, ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

fn manager(dir: &tempfile::TempDir, config: BackgroundConfig) -> Arc<BackgroundManager> {
    let ws = Arc::new(Workspace::open(dir.path()).unwrap());
    Arc::new(BackgroundManager::new(ws, config, |_| {}))
}

/// Waits (at most `secs`) for `cond`.
fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn group_gone(pgid: i32) -> bool {
    eventually(10, || !corral::process::group_alive(pgid))
}

fn read_pid(path: &std::path::Path) -> i32 {
    assert!(
        eventually(30, || std::fs::read_to_string(path)
            .is_ok_and(|s| s.ends_with('\n'))),
        "no pid file {}",
        path.display()
    );
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A model turn that waits (with bash) until the task has written its pid: the task has surely
/// started before the model goes on, so what follows cannot end it before it runs.
fn until_pid_written() -> Reply {
    Turn::tools(vec![tool_use(
        "w",
        "bash",
        json!({"command": "while [ ! -s pid ]; do sleep 0.05; done", "timeout_secs": 60}),
    )])
    .into()
}

fn stamp(path: &std::path::Path) -> f64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

fn last_user_texts(body: &Value) -> Vec<String> {
    let last = body["messages"].as_array().unwrap().last().unwrap().clone();
    last["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "text")
        .map(|b| b["text"].as_str().unwrap().to_string())
        .collect()
}

/// The heart of corral: two tasks (3 s and 2 s) and a write_file in one turn. The file exists
/// before either task ends, the tasks run in parallel, and the model's next request carries
/// both results in one <background-results> block, after the tool results of that request.
#[test]
fn slow_tasks_run_while_the_agent_keeps_working() {
    let corral = Corral::new();
    let task = |name: &str, secs: u32| {
        format!(
            "date +%s.%N > {name}.start; sleep {secs}; echo {name} finished; date +%s.%N > {name}.end"
        )
    };
    let wait_both = "while [ ! -f slow.end ] || [ ! -f quick.end ]; do sleep 0.05; done; sleep 1.5; echo both ended";
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("r1", "background_run", json!({"command": task("slow", 3)})),
            tool_use("r2", "background_run", json!({"command": task("quick", 2)})),
            tool_use(
                "w",
                "write_file",
                json!({"path": "config.toml", "content": "ready = true\n"}),
            ),
        ])
        .into(),
        Turn::tools(vec![tool_use(
            "b",
            "bash",
            json!({"command": wait_both, "timeout_secs": 60}),
        )])
        .into(),
        Turn::text("Both done and the config is written.").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "install and configure"]);
    out.assert_code(0);
    server.assert_clean();

    // The write happened before either task ended; both ran at once.
    let written = std::fs::metadata(corral.path("config.toml"))
        .unwrap()
        .modified()
        .unwrap();
    let written = written
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = stamp(&corral.path("slow.start")).min(stamp(&corral.path("quick.start")));
    let (slow_end, quick_end) = (
        stamp(&corral.path("slow.end")),
        stamp(&corral.path("quick.end")),
    );
    assert!(
        written < quick_end.min(slow_end),
        "config.toml was written after a task ended"
    );
    assert!(
        slow_end - start < 4.5,
        "slow ended {:.2} s after the start: not in parallel",
        slow_end - start
    );
    assert!(
        quick_end - start < 4.5,
        "quick ended {:.2} s after the start",
        quick_end - start
    );

    let bodies = server.bodies();
    let started: Vec<String> = bodies[1]["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|b| b["content"].as_str().unwrap().to_string())
        .collect();
    assert!(
        started[0].starts_with("Background task ") && started[0].contains(" started: date"),
        "{}",
        started[0]
    );
    assert!(
        last_user_texts(&bodies[1]).is_empty(),
        "no result yet while both run"
    );

    let last = bodies[2]["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(
        last["content"][0]["type"], "tool_result",
        "tool results first"
    );
    let texts = last_user_texts(&bodies[2]);
    assert_eq!(texts.len(), 1, "one block: {texts:?}");
    let block = &texts[0];
    assert!(
        block.starts_with("<background-results>\n[bg:")
            && block.ends_with("\n</background-results>"),
        "{block}"
    );
    assert_eq!(block.matches("[bg:").count(), 2, "{block}");
    assert_eq!(
        block.matches("completed (exit code 0)").count(),
        2,
        "{block}"
    );
    assert!(
        block.contains("slow finished") && block.contains("quick finished"),
        "{block}"
    );
    assert!(block.contains("log: .corral/tasks/"), "{block}");
    for line in [
        "◆ background",
        "started: date",
        "completed (exit code 0) after",
    ] {
        assert!(
            out.stderr.contains(line),
            "stderr lacks {line:?}:\n{}",
            out.stderr
        );
    }
}

/// When the model ends its turn while a task runs, `corral run` waits for it and calls the model
/// again with its result (a new user message); a non-zero exit is reported with its code.
#[test]
fn corral_run_waits_for_running_tasks() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "r",
            "background_run",
            json!({"command": "sleep 1; echo tests failed >&2; exit 3"}),
        )])
        .into(),
        Turn::text("I'll wait for the tests.").into(),
        Reply::dynamic(|body| {
            let texts = last_user_texts(body);
            let ok = texts.len() == 1
                && texts[0].contains("completed (exit code 3)")
                && texts[0].contains("tests failed");
            Turn::text(if ok { "saw exit 3" } else { "no result" }).into()
        }),
    ]);
    let out = corral.run(Some(&server), &["run", "run the tests"]);
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(out.stdout.trim(), "saw exit 3");
    let bodies = server.bodies();
    let roles: Vec<&str> = bodies[2]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
    assert!(
        out.stderr.contains("waiting for 1 background task"),
        "{}",
        out.stderr
    );
}

/// --no-wait exits when the model ends its turn, and the running task dies with corral.
#[test]
fn no_wait_exits_and_leaves_no_orphan() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "r",
            "background_run",
            json!({"command": "echo $$ > pid; sleep 100 & sleep 100"}),
        )])
        .into(),
        until_pid_written(),
        Turn::text("started").into(),
    ]);
    let started = Instant::now();
    corral
        .run(Some(&server), &["run", "--no-wait", "start it"])
        .assert_code(0);
    server.assert_clean();
    assert!(started.elapsed() < Duration::from_secs(60));
    let pgid = read_pid(&corral.path("pid"));
    assert!(group_gone(pgid), "the task's group outlived corral");
}

/// A server started with timeout 0 does not keep `corral run` waiting, and is killed at exit.
#[test]
fn untimed_tasks_do_not_hold_corral_and_die_with_it() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "r",
            "background_run",
            json!({"command": "echo $$ > pid; exec sleep 300", "timeout_secs": 0}),
        )])
        .into(),
        until_pid_written(),
        Turn::text("server up").into(),
    ]);
    corral
        .run(Some(&server), &["run", "start the server"])
        .assert_code(0);
    server.assert_clean();
    assert!(group_gone(read_pid(&corral.path("pid"))));
}

/// SIGINT to a running `corral run` stops it with exit code 130 and leaves no child.
#[test]
fn sigint_leaves_no_child() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "r",
            "background_run",
            json!({"command": "echo $$ > pid; sleep 100 & sleep 100"}),
        )])
        .into(),
        Turn::text("waiting").into(),
    ]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.args(["run", "go"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let pgid = read_pid(&corral.path("pid"));
    assert!(
        eventually(30, || server.requests().len() == 2),
        "corral never ended its turn"
    );
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "corral did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    assert!(group_gone(pgid), "the task's group survived SIGINT");
}

/// kill_background and a timeout end the whole group; the status says which.
#[test]
fn kill_and_timeout_end_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let bg = manager(&dir, BackgroundConfig::default());
    let killed = bg
        .start("echo $$ > k.pid; sleep 100 & sleep 100", None)
        .unwrap();
    let timed = bg
        .start(
            "echo $$ > t.pid; sleep 100 & sleep 100",
            Some(Duration::from_secs(1)),
        )
        .unwrap();
    let (kpid, tpid) = (
        read_pid(&dir.path().join("k.pid")),
        read_pid(&dir.path().join("t.pid")),
    );
    assert_eq!(
        bg.kill(&killed.id, "by kill_background").unwrap(),
        TaskStatus::Killed {
            reason: "by kill_background".into()
        }
    );
    assert!(group_gone(kpid));
    assert!(eventually(30, || !timed.status().is_running()));
    assert_eq!(timed.status(), TaskStatus::TimedOut { after_secs: 1 });
    assert!(group_gone(tpid));
    let notes = bg.queue().drain();
    assert_eq!(notes.len(), 2, "one notification each: {notes:?}");
}

/// Output beyond the in-memory buffer: head and tail in memory, every byte in the log.
#[test]
fn big_output_keeps_head_and_tail_and_logs_everything() {
    let dir = tempfile::tempdir().unwrap();
    let bg = manager(&dir, BackgroundConfig::default());
    let task = bg.start("seq 1 200000", None).unwrap();
    assert!(eventually(60, || !task.status().is_running()));
    let expected: String = (1..=200000).map(|i| format!("{i}\n")).collect();
    assert_eq!(
        std::fs::read_to_string(&task.log_path).unwrap(),
        expected,
        "the log has everything"
    );
    let out = task.output.lock().unwrap();
    assert!(out.buffer.held() <= HEAD_BYTES + TAIL_BYTES);
    assert_eq!(out.buffer.total(), expected.len() as u64);
    let rendered = out.buffer.render();
    assert!(rendered.starts_with("1\n2\n3\n") && rendered.ends_with("199999\n200000\n"));
    let note = bg.queue().drain().pop().unwrap();
    assert!(
        note.tail.ends_with("200000")
            && note.tail.starts_with(char::is_numeric)
            && note.tail.len() <= 2000,
        "{}",
        note.tail
    );
}

/// Past the log cap the task is killed and its status says why.
#[test]
fn the_log_cap_kills_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let bg = manager(
        &dir,
        BackgroundConfig {
            log_cap: 100_000,
            ..Default::default()
        },
    );
    let task = bg.start("yes corral", None).unwrap();
    assert!(eventually(30, || !task.status().is_running()));
    assert_eq!(
        task.status(),
        TaskStatus::Killed {
            reason: "its output passed the log cap".into()
        }
    );
    assert_eq!(std::fs::metadata(&task.log_path).unwrap().len(), 100_000);
}

/// check_background: new_only shows only what is new since the last check, filter only the
/// matching lines, and without an id one line per task.
#[tokio::test]
async fn check_background_new_only_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let bg = manager(&dir, BackgroundConfig::default());
    let check = CheckBackgroundTool::new(bg.clone());
    let task = bg.start("echo first; echo ERROR one; while [ ! -f go ]; do sleep 0.05; done; echo second; echo ERROR two", None).unwrap();
    assert!(eventually(30, || task.output.lock().unwrap().logged >= 16));
    let id = task.id.clone();
    let first = check
        .call(json!({"task_id": id, "new_only": true}))
        .await
        .unwrap();
    assert!(
        first.contains("running for") && first.contains("first\nERROR one"),
        "{first}"
    );
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert!(eventually(30, || !task.status().is_running()));
    let second = check
        .call(json!({"task_id": id, "new_only": true}))
        .await
        .unwrap();
    assert!(
        second.contains("completed (exit code 0)") && second.contains("second\nERROR two"),
        "{second}"
    );
    let shown = second.split("--- new output\n").nth(1).unwrap();
    assert_eq!(
        shown, "second\nERROR two\n",
        "old output is not shown again"
    );
    let errors = check
        .call(json!({"task_id": id, "filter": "^ERROR"}))
        .await
        .unwrap();
    assert!(
        errors.contains("2 lines matching /^ERROR/\n2: ERROR one\n4: ERROR two\n"),
        "{errors}"
    );
    let nothing_new = check
        .call(json!({"task_id": id, "new_only": true}))
        .await
        .unwrap();
    assert!(
        nothing_new.ends_with("--- new output\n(none)\n"),
        "{nothing_new}"
    );
    let list = check.call(json!({})).await.unwrap();
    assert!(
        list.starts_with(&format!("{id}  completed (exit code 0)  ")),
        "{list}"
    );
    let bad = check
        .call(json!({"task_id": id, "filter": "("}))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("filter"), "{bad}");
}

/// 200 tasks started at once give exactly 200 notifications: none twice, none lost.
#[test]
fn two_hundred_tasks_two_hundred_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let bg = manager(
        &dir,
        BackgroundConfig {
            max_tasks: 200,
            ..Default::default()
        },
    );
    let ids: HashSet<String> = (0..200)
        .map(|_| bg.start("true", None).unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 200, "ids are unique");
    let mut seen = Vec::new();
    assert!(
        eventually(120, || {
            seen.extend(bg.queue().drain());
            seen.len() >= 200
        }),
        "only {} notifications",
        seen.len()
    );
    std::thread::sleep(Duration::from_millis(300));
    seen.extend(bg.queue().drain());
    assert_eq!(seen.len(), 200);
    let got: HashSet<String> = seen.iter().map(|n| n.task_id.clone()).collect();
    assert_eq!(got, ids);
    assert!(
        seen.iter()
            .all(|n| n.status == TaskStatus::Completed { exit_code: 0 })
    );
}

/// Limits and bad input: one task too many, an empty command, an unknown id; nothing else is
/// disturbed.
#[test]
fn limits_and_bad_input_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bg = manager(
        &dir,
        BackgroundConfig {
            max_tasks: 2,
            ..Default::default()
        },
    );
    let a = bg.start("sleep 30", None).unwrap();
    let _b = bg.start("sleep 30", None).unwrap();
    let err = bg.start("sleep 30", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "2 background tasks are running, the limit; wait for one to end or kill one"
    );
    assert_eq!(
        bg.start("   ", None).unwrap_err().to_string(),
        "the command is empty"
    );
    assert!(
        bg.kill("nope", "x")
            .unwrap_err()
            .to_string()
            .contains("no background task `nope`")
    );
    assert!(
        a.status().is_running(),
        "the running tasks were not disturbed"
    );
    assert_eq!(bg.running().len(), 2);
    bg.kill_all("test over");
    assert!(bg.running().is_empty());
}

/// In `corral chat`, `/tasks` lists the background tasks and `/kill` stops one (an unknown id is
/// a clear error); leaving the chat stops what is still running.
#[test]
fn chat_lists_and_kills_tasks() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "r",
            "background_run",
            json!({"command": "echo $$ > pid; sleep 300"}),
        )])
        .into(),
        until_pid_written(),
        Turn::text("started it").into(),
    ]);
    let out = corral.run_with_input(
        Some(&server),
        &["chat"],
        "start the server\n/tasks\n/kill nope\n/exit\n",
    );
    out.assert_code(0);
    server.assert_clean();
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("running") && l.contains("sleep 300"));
    assert!(line.is_some(), "/tasks listed nothing:\n{}", out.stderr);
    assert!(
        out.stderr.contains("no background task `nope`"),
        "{}",
        out.stderr
    );
    assert!(
        group_gone(read_pid(&corral.path("pid"))),
        "the task outlived the chat"
    );
}
