//! No process outlives corral: what a command starts with `setsid -f` (a new session and group,
//! re-parented away from its shell) is ended with its `bash` call, with its background task, at
//! exit, and on SIGHUP. Each test marks its processes with a unique argument (`sleep 300.NNN`)
//! and scans `/proc` for them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::background::{BackgroundConfig, BackgroundManager};
use corral::tools::{BashTool, Tool};
use corral::workspace::Workspace;
use corral_tests::{Corral, Reply, ScriptedServer, Turn, tool_results, tool_use};
use serde_json::{Value, json};

/// Pids of the live processes whose command line is `sleep <marker>`.
fn running(marker: &str) -> Vec<i32> {
    let wanted = format!("sleep\0{marker}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.ends_with(wanted.as_bytes()) && c.starts_with(b"sleep\0"))
        })
        .collect()
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

fn gone(marker: &str) -> bool {
    eventually(10, || running(marker).is_empty())
}

/// A reply, decided when the request arrives, saying whether `sleep <marker>` runs then.
fn report(marker: &'static str) -> Reply {
    Reply::dynamic(move |_| {
        let left = running(marker);
        Turn::text(&if left.is_empty() {
            format!("{marker}: none")
        } else {
            format!("{marker}: running {left:?}")
        })
        .into()
    })
}

/// Kills whatever a failed test left with the marker, so it does not linger on the machine.
struct Cleanup(Vec<&'static str>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for marker in &self.0 {
            for pid in running(marker) {
                // SAFETY: signalling a process this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// `setsid -f` from a `bash` call: the process it forks is gone when the call returns (the next
/// model request sees none), though it left the call's process group and session.
#[test]
fn setsid_from_bash_ends_with_the_call() {
    setsid_from_bash(Corral::new(), "300.101", false);
}

/// The same with the shell sandbox off (your own setting): no PID namespace, so the leftover is
/// found by the token it inherited, in the look at `/proc` shared by the shells ending then.
#[test]
fn setsid_from_unconfined_bash_ends_with_the_call() {
    let corral = Corral::new();
    std::fs::create_dir_all(corral.home.path().join(".config/corral")).unwrap();
    std::fs::write(
        corral.home.path().join(".config/corral/config.toml"),
        "[shell]\nsandbox = \"off\"\n",
    )
    .unwrap();
    setsid_from_bash(corral, "300.111", true);
}

fn setsid_from_bash(corral: Corral, marker: &'static str, unconfined: bool) {
    let _cleanup = Cleanup(vec![marker]);
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "b",
            "bash",
            json!({"command": format!("setsid -f sleep {marker}; {}; echo escaped", wait_for(marker))}),
        )])
        .into(),
        report(marker),
    ]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let system = server.bodies()[0]["system"].to_string();
    assert_eq!(system.contains("run unconfined"), unconfined, "{system}");
    let results = tool_results(&server.bodies()[1]);
    assert!(
        results[0].content.starts_with("escaped"),
        "the command ran: {:?}",
        results[0]
    );
    assert_eq!(
        out.stdout.trim(),
        format!("{marker}: none"),
        "the setsid process outlived the bash call"
    );
    assert!(gone(marker));
}

/// The text of the `tool_result` answering `tool_use_id`, anywhere in a request body.
fn result_of(body: &Value, tool_use_id: &str) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == tool_use_id)
        .and_then(|b| b["content"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The task id in a `background_run` result ("Background task <id> started: ...").
fn task_id(result: &str) -> String {
    result
        .strip_prefix("Background task ")
        .and_then(|rest| rest.get(..8))
        .unwrap_or("")
        .to_string()
}

/// A shell loop that waits until `sleep <marker>` runs.
fn wait_for(marker: &str) -> String {
    format!(
        "while [ -z \"$(pgrep -f 'sleep {}')\" ]; do sleep 0.02; done",
        marker.replace('.', "[.]")
    )
}

/// Through the library, without [`corral::process::adopt_orphans`], in the shell sandbox: what
/// a `bash` call `setsid`s away (re-parented to init, out of its group and session) still ends
/// with the call, with the command's PID namespace.
#[test]
fn setsid_from_a_library_bash_call_ends_with_it() {
    setsid_from_library_bash("300.901", true);
}

/// The same unconfined: found by its token.
#[test]
fn setsid_from_an_unconfined_library_bash_call_ends_with_it() {
    setsid_from_library_bash("300.911", false);
}

fn setsid_from_library_bash(marker: &'static str, confined: bool) {
    let _cleanup = Cleanup(vec![marker]);
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::open(dir.path()).unwrap());
    let settings = corral::sandbox::SandboxSettings {
        helper: Some(corral_tests::Corral::bin()),
        ..Default::default()
    };
    let sandbox = match corral::sandbox::Confinement::new(&settings, ws.root()) {
        Ok(Some(confinement)) if confined => corral::process::Sandboxing::On(Arc::new(confinement)),
        _ => {
            eprintln!("the call runs unconfined");
            corral::process::Sandboxing::Off
        }
    };
    let launch = corral::process::Launch {
        sandbox,
        ..Default::default()
    };
    let bash = BashTool::new(ws, corral::ShellConfig::default(), launch, None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = runtime
        .block_on(bash.call(json!({"command": format!("setsid -f sleep {marker}; {}; echo escaped", wait_for(marker))})))
        .unwrap();
    assert!(out.starts_with("escaped"), "{out}");
    assert!(gone(marker), "the setsid process outlived the call");
}

/// `setsid -f` from background tasks. One task's shell exits by itself (once the test lets it):
/// its escaped process is gone when the task ends. Another keeps running: its escaped process
/// lives as long as the task (neither a `bash` call ending meanwhile nor the first task's end
/// takes it), and dies with `kill_background`.
#[test]
fn setsid_from_background_ends_with_the_task() {
    let _cleanup = Cleanup(vec!["300.201", "300.202", "300.203"]);
    let corral = Corral::new();
    let go = corral.path("go");
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use(
                "quick",
                "background_run",
                json!({"command": format!(
                    "setsid -f sleep 300.201; {}; while [ ! -e go ]; do sleep 0.02; done",
                    wait_for("300.201")
                )}),
            ),
            tool_use(
                "long",
                "background_run",
                json!({"command": "setsid -f sleep 300.202; exec sleep 300.203", "timeout_secs": 0}),
            ),
        ])
        .into(),
        Turn::tools(vec![tool_use(
            "w",
            "bash",
            json!({"command": format!("{}; {}", wait_for("300.201"), wait_for("300.202")), "timeout_secs": 60}),
        )])
        .into(),
        // The bash call has ended and both escaped processes run: the quick task may end now,
        // and corral waits for it (it has a timeout; the long one has none).
        Reply::dynamic(move |_| {
            let (quick, long) = (running("300.201"), running("300.202"));
            std::fs::write(&go, "").unwrap();
            Turn::text(&format!("after bash: quick {quick:?}, long {long:?}")).into()
        }),
        Reply::dynamic(|body| {
            let (quick, long) = (running("300.201"), running("300.202"));
            if !quick.is_empty() || long.is_empty() {
                return Turn::text(&format!("wrong: quick {quick:?}, long {long:?}")).into();
            }
            let id = task_id(&result_of(body, "long"));
            Turn::tools(vec![tool_use("k", "kill_background", json!({"task_id": id}))]).into()
        }),
        Reply::dynamic(|_| {
            let left = [running("300.202"), running("300.203")].concat();
            Turn::text(&if left.is_empty() {
                "all gone".to_string()
            } else {
                format!("left: {left:?}")
            })
            .into()
        }),
    ]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    let after_bash = bodies[2]["messages"].to_string();
    assert!(
        after_bash.contains("Background task") && !after_bash.contains("<background-results>"),
        "the quick task ended before the test let it: {after_bash}"
    );
    assert!(
        bodies[3]["messages"]
            .to_string()
            .contains("<background-results>"),
        "the quick task's end reached the model"
    );
    let kill = tool_results(&bodies[4]);
    assert!(kill[0].content.contains("stopped"), "{:?}", kill[0]);
    assert_eq!(out.stdout.trim(), "all gone", "stderr:\n{}", out.stderr);
    for marker in ["300.201", "300.202", "300.203"] {
        assert!(gone(marker), "{marker} outlived corral");
    }
}

/// A server started with no timeout, which forks a `setsid -f` process of its own, dies with
/// corral when `run --no-wait` exits.
#[test]
fn setsid_from_a_server_ends_at_exit() {
    let _cleanup = Cleanup(vec!["300.301", "300.302"]);
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "s",
            "background_run",
            json!({"command": "setsid -f sleep 300.301; exec sleep 300.302", "timeout_secs": 0}),
        )])
        .into(),
        Turn::tools(vec![tool_use(
            "w",
            "bash",
            json!({"command": "while [ -z \"$(pgrep -f 'sleep 300[.]301')\" ]; do sleep 0.02; done", "timeout_secs": 60}),
        )])
        .into(),
        Turn::text("server up").into(),
    ]);
    corral
        .run(Some(&server), &["run", "--no-wait", "serve"])
        .assert_code(0);
    server.assert_clean();
    assert!(gone("300.301"), "the setsid process outlived corral");
    assert!(gone("300.302"), "the server outlived corral");
}

/// SIGHUP (the terminal closed) to a running `corral run`, with a `bash` call under way and a
/// background task that escaped with `setsid -f`: corral exits with 130, as for SIGTERM, and
/// none of their processes is left.
#[test]
fn sighup_ends_everything() {
    let _cleanup = Cleanup(vec!["300.401", "300.402", "300.403"]);
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "r",
            "background_run",
            json!({"command": "setsid -f sleep 300.401; exec sleep 300.402"}),
        )])
        .into(),
        Turn::tools(vec![tool_use(
            "b",
            "bash",
            json!({"command": "sleep 300.403", "timeout_secs": 600}),
        )])
        .into(),
    ]);
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.args(["run", "go"])
        .stdout(std::process::Stdio::null())
        .stderr(stderr.reopen().unwrap());
    let mut child = cmd.spawn().unwrap();
    assert!(
        eventually(60, || ["300.401", "300.402", "300.403"]
            .iter()
            .all(|m| !running(m).is_empty())),
        "the commands never started"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "corral did not stop on SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "SIGHUP exits as SIGTERM does");
    let said = std::fs::read_to_string(stderr.path()).unwrap();
    assert!(
        said.contains("corral: hung up; stopped 2 running command(s)"),
        "{said}"
    );
    for marker in ["300.401", "300.402", "300.403"] {
        assert!(gone(marker), "{marker} outlived corral's SIGHUP");
    }
}

/// Through the library, without [`corral::process::adopt_orphans`]: killing a task still takes
/// the process it `setsid`ed away, since the task's shell holds its whole tree.
#[test]
fn killing_a_task_takes_its_whole_tree() {
    let _cleanup = Cleanup(vec!["300.501"]);
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::open(dir.path()).unwrap());
    let bg = BackgroundManager::new(ws, BackgroundConfig::default(), |_| {});
    let task = bg
        .start("setsid -f sleep 300.501; sleep 300", None)
        .unwrap();
    assert!(eventually(30, || !running("300.501").is_empty()));
    bg.kill(&task.id, "test").unwrap();
    assert!(gone("300.501"), "the setsid process survived the kill");
}

/// Pids of the live processes whose command line holds `needle`.
fn running_with(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.windows(needle.len()).any(|w| w == needle.as_bytes())
                    && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                        s.rsplit(')')
                            .next()
                            .is_some_and(|r| r.trim_start().starts_with('Z'))
                    })
            })
        })
        .collect()
}

/// Waits for `child` (at most 30 s).
fn reap(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "corral did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kill -9` leaves everything running: nothing can clean up at that moment. The next start in
/// that workspace ends it all, says so on stderr, and `--continue` tells the model the truth: the
/// bash call it was waiting for was still running and was ended; of its background tasks, the
/// server (and what it `setsid`ed away) was still running and was ended, and the one that ended
/// meanwhile is reported as ended with its status unknown. The journal then holds nothing of
/// the dead corral.
#[test]
fn after_kill_9_the_next_start_ends_what_was_left() {
    let _cleanup = Cleanup(vec!["300.601", "300.602", "300.603", "300.604"]);
    let corral = Corral::new();
    let first = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use(
                "server",
                "background_run",
                json!({"command": "setsid -f sleep 300.601; exec sleep 300.602", "timeout_secs": 0}),
            ),
            tool_use(
                "brief",
                "background_run",
                json!({"command": "sleep 300.604 & while [ ! -e stop ]; do sleep 0.02; done; kill $!"}),
            ),
        ])
        .into(),
        Turn::tools(vec![tool_use(
            "b",
            "bash",
            json!({"command": format!("{}; sleep 300.603", wait_for("300.601")), "timeout_secs": 600}),
        )])
        .into(),
    ]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&first));
    cmd.args(["run", "go"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let markers = ["300.601", "300.602", "300.603", "300.604"];
    assert!(
        eventually(60, || markers.iter().all(|m| !running(m).is_empty())),
        "the commands never started"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    reap(&mut child);
    std::thread::sleep(Duration::from_millis(300));
    for marker in markers {
        assert!(
            !running(marker).is_empty(),
            "{marker} died with corral: nothing to test"
        );
    }
    // One task ends by itself while no corral runs.
    std::fs::write(corral.path("stop"), "").unwrap();
    assert!(gone("300.604"), "the brief task did not end");
    assert!(eventually(10, || running_with("while [ ! -e stop ]").is_empty()));

    let second = ScriptedServer::start(vec![Reply::dynamic(|_| {
        let left: Vec<i32> = ["300.601", "300.602", "300.603"]
            .iter()
            .flat_map(|m| running(m))
            .collect();
        Turn::text(&format!("left at the first request: {left:?}")).into()
    })]);
    let out = corral.run(Some(&second), &["run", "--continue", "what happened?"]);
    out.assert_code(0);
    second.assert_clean();
    assert_eq!(out.stdout.trim(), "left at the first request: []");
    for marker in ["300.601", "300.602", "300.603"] {
        assert!(gone(marker), "{marker} outlived the next start");
    }
    assert!(
        out.stderr
            .contains("was still running, left by a corral that was stopped without ending it"),
        "{}",
        out.stderr
    );

    let body = &second.bodies()[0];
    let bash = result_of(body, "b");
    assert!(
        bash.contains("still running when corral started again, and was ended then"),
        "the bash call's result: {bash}"
    );
    let server_id = task_id(&result_of(body, "server"));
    let brief_id = task_id(&result_of(body, "brief"));
    let messages = body["messages"].as_array().unwrap();
    let last = messages.last().unwrap()["content"].to_string();
    let note_at = |id: &str| {
        last.find(&format!("[bg:{id}]"))
            .unwrap_or_else(|| panic!("no note on {id}: {last}"))
    };
    let (server_note, brief_note) = (note_at(&server_id), note_at(&brief_id));
    let server_text = &last[server_note..];
    assert!(
        server_text.starts_with(&format!(
            "[bg:{server_id}] killed (corral was stopped without ending it; it was still running"
        )),
        "{last}"
    );
    let brief_text = &last[brief_note..];
    assert!(
        brief_text.starts_with(&format!("[bg:{brief_id}] ended, exit status unknown")),
        "{last}"
    );
    assert!(
        last.contains("what happened?"),
        "the prompt follows: {last}"
    );

    let journal =
        std::fs::read_to_string(corral.path(".corral/tasks/journal.jsonl")).unwrap_or_default();
    assert!(
        !journal.contains("300.60"),
        "the dead corral's entries stay: {journal}"
    );
}

/// Two corrals in one workspace: a start does not touch the commands of a corral that is still
/// running there, and that corral still ends them itself.
#[test]
fn a_start_leaves_a_running_corral_alone() {
    let _cleanup = Cleanup(vec!["300.701", "300.702"]);
    let corral = Corral::new();
    let first = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "s",
            "background_run",
            json!({"command": "exec sleep 300.701", "timeout_secs": 0}),
        )])
        .into(),
        Turn::tools(vec![tool_use(
            "b",
            "bash",
            json!({"command": "sleep 300.702", "timeout_secs": 600}),
        )])
        .into(),
    ]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&first));
    cmd.args(["run", "go"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    assert!(
        eventually(60, || !running("300.701").is_empty()
            && !running("300.702").is_empty()),
        "the commands never started"
    );
    let second = ScriptedServer::start(vec![Turn::text("hello").into()]);
    let out = corral.run(Some(&second), &["run", "hi"]);
    out.assert_code(0);
    assert!(!out.stderr.contains("still running"), "{}", out.stderr);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !running("300.701").is_empty(),
        "a start killed a live corral's task"
    );
    assert!(
        !running("300.702").is_empty(),
        "a start killed a live corral's bash call"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(reap(&mut child).code(), Some(130));
    assert!(gone("300.701") && gone("300.702"));
    let journal =
        std::fs::read_to_string(corral.path(".corral/tasks/journal.jsonl")).unwrap_or_default();
    let open: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("\"start\""))
        .collect();
    let ended = journal.lines().filter(|l| l.contains("\"end\"")).count();
    assert!(open.len() <= ended, "ends recorded at exit: {journal}");
}

/// Under `nohup` (SIGHUP ignored when corral starts), a SIGHUP changes nothing: corral and its
/// command keep running until SIGTERM ends them.
#[test]
fn sighup_under_nohup_is_ignored() {
    let _cleanup = Cleanup(vec!["300.801"]);
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "b",
            "bash",
            json!({"command": "sleep 300.801", "timeout_secs": 600}),
        )])
        .into(),
    ]);
    let nohup = std::process::Command::new("sh")
        .args(["-c", "command -v nohup"])
        .output()
        .unwrap();
    let nohup = String::from_utf8_lossy(&nohup.stdout).trim().to_string();
    assert!(!nohup.is_empty(), "no nohup on this machine");
    let mut cmd = corral.command_for(std::path::Path::new(&nohup), Some(&server));
    cmd.arg(Corral::bin())
        .args(["run", "go"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    assert!(
        eventually(60, || !running("300.801").is_empty()),
        "never started"
    );
    // SAFETY: signalling our own child (nohup has exec'd corral).
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "corral stopped on an ignored SIGHUP"
    );
    assert!(
        !running("300.801").is_empty(),
        "the command stopped on an ignored SIGHUP"
    );
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(reap(&mut child).code(), Some(130));
    assert!(gone("300.801"));
}
