//! The built-in file tools tried as an attacker and as a busy model would: the policy and
//! corral's state out of reach by every route, a folder swapped for a symlink while thousands
//! of writes run, a dozen edits of one file in one answer, and `read_file` on a FIFO, a socket,
//! a 2 GiB sparse file and binary data. A canary folder outside the workspace must stay
//! untouched in each scenario.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use corral::Workspace;
use corral::tools::{EditFileTool, ReadFileTool, TEMP_PREFIX, Tool, ToolError, WriteFileTool};
use corral_tests::{Corral, ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

/// A folder outside the workspace with a canary file; `assert_untouched` checks it is as it was.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("canary.txt"), "canary").unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn assert_untouched(&self) {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["canary.txt"], "the outside folder changed");
        assert_eq!(
            std::fs::read_to_string(self.path().join("canary.txt")).unwrap(),
            "canary"
        );
    }
}

/// Runs one answer calling `calls` (then a closing answer); returns each result as
/// (id, is_error, text), in the order the results came back.
fn call_tools(corral: &Corral, calls: Vec<Value>) -> Vec<(String, bool, String)> {
    let server = ScriptedServer::start(vec![Turn::tools(calls).into(), Turn::text("done").into()]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let body = server.bodies().pop().unwrap();
    corral_tests::tool_results(&body)
        .into_iter()
        .map(|r| (r.id, r.is_error, r.content))
        .collect()
}

/// The names of the tools offered in the first request of a run.
fn offered(server: &ScriptedServer) -> Vec<String> {
    server.bodies()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// No temporary file of an atomic write is left anywhere under `dir`.
fn assert_no_temp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(TEMP_PREFIX),
            "left behind: {}",
            entry.path().display()
        );
        if entry.file_type().unwrap().is_dir() {
            assert_no_temp_files(&entry.path());
        }
    }
}

/// The model cannot turn a disabled shell back on, or touch corral's state, by any route the
/// file tools take: `corral.toml` by name, by `edit_file`, through a symlink and a hard link;
/// `.corral/` by name, through a symlinked folder, by creating folders in it; and a symlinked
/// folder pointing outside leads nowhere. Each call gets an is_error result naming the rule,
/// reading stays allowed, and the next run still has no shell.
#[test]
fn the_model_cannot_reach_the_policy_or_corrals_state() {
    let corral = Corral::new();
    let outside = Outside::new();
    let policy = "[shell]\nenabled = false\n";
    corral.write("corral.toml", policy);
    std::os::unix::fs::symlink("corral.toml", corral.path("link")).unwrap();
    std::fs::create_dir(corral.path("docs")).unwrap();
    std::os::unix::fs::symlink("../corral.toml", corral.path("docs/config.toml")).unwrap();
    std::fs::hard_link(corral.path("corral.toml"), corral.path("docs/alias.toml")).unwrap();
    std::os::unix::fs::symlink(".corral", corral.path("state")).unwrap();
    std::os::unix::fs::symlink(outside.path(), corral.path("out")).unwrap();
    std::fs::create_dir_all(corral.path(".corral")).unwrap();
    std::fs::write(corral.path(".corral/.gitignore"), "*\n").unwrap();
    let enable = "[shell]\nenabled = true\n";
    let edit = |id: &str, path: &str| {
        tool_use(
            id,
            "edit_file",
            json!({"path": path, "old_text": "false", "new_text": "true"}),
        )
    };
    let write =
        |id: &str, path: &str| tool_use(id, "write_file", json!({"path": path, "content": enable}));
    let got = call_tools(
        &corral,
        vec![
            write("policy", "corral.toml"),
            edit("policy-edit", "corral.toml"),
            write(
                "policy-abs",
                &corral
                    .workspace
                    .path()
                    .join("corral.toml")
                    .display()
                    .to_string(),
            ),
            write("via-link", "link"),
            edit("via-link-edit", "docs/config.toml"),
            write("hard-link", "docs/alias.toml"),
            edit("hard-link-edit", "docs/alias.toml"),
            tool_use(
                "gitignore",
                "edit_file",
                json!({"path": ".corral/.gitignore", "old_text": "*", "new_text": "!"}),
            ),
            write("plugin", ".corral/plugins/evil.wasm"),
            write("via-state", "state/plugins/evil.wasm"),
            write("state-itself", ".corral"),
            write("outside", "out/canary.txt"),
            write("outside-new", "out/new/file.txt"),
            tool_use("read-policy", "read_file", json!({"path": "link"})),
            tool_use(
                "read-state",
                "read_file",
                json!({"path": "state/.gitignore"}),
            ),
            tool_use(
                "read-outside",
                "read_file",
                json!({"path": "out/canary.txt"}),
            ),
        ],
    );
    let policy_rule = "`corral.toml` is the workspace policy";
    let state_rule = "`.corral/` is corral's own state";
    let outside_rule = "leads outside the workspace through the symlink `out`";
    let expect = [
        ("policy", policy_rule),
        ("policy-edit", policy_rule),
        ("policy-abs", policy_rule),
        ("via-link", policy_rule),
        ("via-link-edit", policy_rule),
        ("hard-link", policy_rule),
        ("hard-link-edit", policy_rule),
        ("gitignore", state_rule),
        ("plugin", state_rule),
        ("via-state", state_rule),
        ("state-itself", state_rule),
        ("outside", outside_rule),
        ("outside-new", outside_rule),
    ];
    for (id, rule) in expect {
        let (_, is_error, text) = got.iter().find(|r| r.0 == id).unwrap();
        assert!(
            *is_error && text.contains(rule),
            "{id} should be refused with {rule:?}: {text}"
        );
        assert!(text.starts_with("denied: "), "{id}: {text}");
    }
    let (_, is_error, text) = got.iter().find(|r| r.0 == "read-policy").unwrap();
    assert!(!is_error && text.contains("enabled = false"), "{text}");
    let (_, is_error, text) = got.iter().find(|r| r.0 == "read-state").unwrap();
    assert!(!is_error && text.contains("1\t*"), "{text}");
    let (_, is_error, text) = got.iter().find(|r| r.0 == "read-outside").unwrap();
    assert!(*is_error && text.contains(outside_rule), "{text}");

    assert_eq!(corral.read("corral.toml"), policy);
    assert_eq!(corral.read("docs/alias.toml"), policy);
    assert_eq!(corral.read(".corral/.gitignore"), "*\n");
    assert!(!corral.path(".corral/plugins").exists());
    outside.assert_untouched();
    assert_no_temp_files(corral.workspace.path());

    // The next run still has the shell disabled.
    let server = ScriptedServer::start(vec![Turn::text("no shell").into()]);
    corral.run(Some(&server), &["run", "go"]).assert_code(0);
    let tools = offered(&server);
    assert_eq!(tools, ["read_file", "write_file", "edit_file"], "{tools:?}");
}

/// Twelve `edit_file` calls to distinct lines of one file in one answer (as models batch
/// them), mixed with writes of other files: all twelve are applied, each result says so, and
/// the results come back in the order of the calls.
#[test]
fn twelve_edits_of_one_file_in_one_answer_all_apply() {
    let corral = Corral::new();
    let original: String = (1..=12).map(|i| format!("line {i:02}\n")).collect();
    corral.write("src/list.txt", &original);
    let mut calls = Vec::new();
    for i in 1..=12 {
        calls.push(tool_use(
            &format!("e{i}"),
            "edit_file",
            json!({"path": if i % 2 == 0 { "src/list.txt" } else { "./src/../src/list.txt" },
                   "old_text": format!("line {i:02}\n"),
                   "new_text": format!("LINE {i:02} edited\n")}),
        ));
        if i % 4 == 0 {
            calls.push(tool_use(
                &format!("w{i}"),
                "write_file",
                json!({"path": format!("other/{i}.txt"), "content": "x"}),
            ));
        }
    }
    let ids: Vec<String> = calls
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let got = call_tools(&corral, calls);
    assert_eq!(got.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), ids);
    for (id, is_error, text) in &got {
        assert!(!is_error, "{id}: {text}");
    }
    let expected: String = (1..=12).map(|i| format!("LINE {i:02} edited\n")).collect();
    assert_eq!(corral.read("src/list.txt"), expected);
    for i in [4, 8, 12] {
        assert_eq!(corral.read(&format!("other/{i}.txt")), "x");
    }
    assert_no_temp_files(corral.workspace.path());
}

/// A FIFO is refused at once by all three tools (opening it for reading would wait for a
/// writer forever), and so is a socket; the run ends well within its timeout.
#[test]
fn a_fifo_and_a_socket_are_refused_at_once() {
    let corral = Corral::new();
    let fifo = corral.path("pipe");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0, "mkfifo");
    let _socket = std::os::unix::net::UnixListener::bind(corral.path("sock")).unwrap();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("read", "read_file", json!({"path": "pipe"})),
            tool_use(
                "edit",
                "edit_file",
                json!({"path": "pipe", "old_text": "a", "new_text": "b"}),
            ),
            tool_use(
                "write",
                "write_file",
                json!({"path": "pipe", "content": "x"}),
            ),
            tool_use("socket", "read_file", json!({"path": "sock"})),
        ])
        .into(),
        Turn::text("done").into(),
    ]);
    let started = Instant::now();
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.args(["run", "go"]);
    // A hang fails the test here instead of stalling it.
    let out = corral_tests::cli::wait_output(cmd, Duration::from_secs(60));
    out.assert_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let got = corral_tests::tool_results(&server.bodies()[1]);
    for (result, tool) in got.iter().zip(["read_file", "edit_file", "write_file"]) {
        assert!(
            result.is_error
                && result
                    .content
                    .contains("`pipe` is a FIFO (named pipe), not a regular file")
                && result.content.contains(tool),
            "{result:?}"
        );
    }
    assert!(
        got[3].is_error && got[3].content.contains("`sock` is a socket"),
        "{:?}",
        got[3]
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO was replaced"
    );
}

/// `read_file` with `limit: 10` on a 2 GiB sparse file (2,000 lines of text, then a hole)
/// returns ten lines and says more follow;
/// corral reads only those lines: its peak resident memory (getrusage of the child, through
/// wait4) stays far below the file's size.
#[test]
fn a_2_gib_sparse_file_is_read_by_the_lines_asked_for() {
    const SIZE: u64 = 2 << 30;
    /// Generous: corral itself takes a few tens of MiB; reading the file whole takes 2 GiB.
    const MAX_RSS_KIB: i64 = 256 * 1024;
    let corral = Corral::new();
    // Text first (more than the 8 KiB sniffed for binary data), then a 2 GiB hole.
    let text: String = (1..=2000).map(|i| format!("row {i}\n")).collect();
    corral.write("big.log", &text);
    std::fs::OpenOptions::new()
        .write(true)
        .open(corral.path("big.log"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("head", "read_file", json!({"path": "big.log", "limit": 10})),
            tool_use(
                "middle",
                "read_file",
                json!({"path": "big.log", "offset": 15, "limit": 3}),
            ),
        ])
        .into(),
        Turn::text("done").into(),
    ]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.args(["run", "go"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // Reaped by wait4, which also gives its own rusage.
    #[allow(clippy::zombie_processes)]
    let pid = cmd.spawn().unwrap().id();
    let (status, max_rss_kib) = wait4(pid, Duration::from_secs(120));
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}"
    );
    eprintln!("peak RSS of corral reading 10 lines of a 2 GiB sparse file: {max_rss_kib} KiB");
    assert!(max_rss_kib < MAX_RSS_KIB, "peak RSS {max_rss_kib} KiB");
    server.assert_clean();
    let got = corral_tests::tool_results(&server.bodies()[1]);
    assert!(!got[0].is_error, "{:?}", got[0]);
    let lines: Vec<&str> = got[0].content.lines().collect();
    assert_eq!(lines.len(), 11, "{}", got[0].content);
    assert_eq!(lines[0], "     1\trow 1");
    assert_eq!(lines[9], "    10\trow 10");
    assert!(
        lines[10].contains("more follow: offset 11 reads on")
            && lines[10].contains(&SIZE.to_string()),
        "{}",
        lines[10]
    );
    assert!(!got[1].is_error, "{:?}", got[1]);
    assert!(
        got[1]
            .content
            .starts_with("    15\trow 15\n    16\trow 16\n    17\trow 17\n[lines 15-17"),
        "{}",
        got[1].content
    );
}

/// Waits for the child `pid` (at most `timeout`, then kills it and fails): its wait status
/// and its own peak resident set in KiB.
fn wait4(pid: u32, timeout: Duration) -> (i32, i64) {
    let pid = pid as libc::pid_t;
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(got >= 0, "wait4: {}", std::io::Error::last_os_error());
        if got == pid {
            return (status, usage.ru_maxrss);
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("corral did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A thread that keeps exchanging the workspace's folder `d` with a symlink to `target`
/// (`renameat2(RENAME_EXCHANGE)`: at every instant `d` is one or the other, never missing),
/// until the returned flag is set; it returns how many exchanges it made. The real folder is
/// at `d` or at `aside`, whichever is a folder.
fn swapper(ws: &Path, target: &Path) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    std::os::unix::fs::symlink(target, ws.join("aside")).unwrap();
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let (d, aside) = (c(&ws.join("d")), c(&ws.join("aside")));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut swaps = 0;
        while !flag.load(Ordering::Relaxed) {
            let done = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    d.as_ptr(),
                    libc::AT_FDCWD,
                    aside.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            assert_eq!(done, 0, "renameat2: {}", std::io::Error::last_os_error());
            swaps += 1;
            std::thread::yield_now();
        }
        swaps
    });
    (stop, thread)
}

/// Where the swapped folder is now: `d` or `aside`.
fn real_folder(ws: &Path) -> std::path::PathBuf {
    ["d", "aside"]
        .iter()
        .map(|name| ws.join(name))
        .find(|p| std::fs::symlink_metadata(p).unwrap().is_dir())
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A workspace with the three file tools, called through the library.
struct Tools {
    dir: tempfile::TempDir,
    read: ReadFileTool,
    write: WriteFileTool,
    edit: EditFileTool,
}

impl Tools {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ws = Arc::new(Workspace::open(dir.path()).unwrap());
        Self {
            read: ReadFileTool::new(ws.clone()),
            write: WriteFileTool::new(ws.clone()),
            edit: EditFileTool::new(ws),
            dir,
        }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
}

/// Offsets past the end, an empty file, binary data (at the start, and after text), a
/// folder, long lines, and the per-call byte cap, each answered as the model should read it.
#[test]
fn read_file_edges() {
    let rt = runtime();
    let tools = Tools::new();
    std::fs::write(tools.path("three.txt"), "a\nb\nc\n").unwrap();
    std::fs::write(tools.path("empty.txt"), "").unwrap();
    std::fs::write(tools.path("image.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let mut mixed = b"text one\ntext two\n".to_vec();
    mixed.extend(vec![b'x'; 9000]);
    mixed.extend(b"\n\0\0binary\n");
    std::fs::write(tools.path("mixed.bin"), &mixed).unwrap();
    std::fs::create_dir(tools.path("folder")).unwrap();
    std::fs::write(
        tools.path("long.txt"),
        format!("{}\nshort\n", "y".repeat(5000)),
    )
    .unwrap();
    let wide: String = (0..2000)
        .map(|i| format!("{i:04} {}\n", "z".repeat(995)))
        .collect();
    std::fs::write(tools.path("wide.txt"), &wide).unwrap();
    let read = |input: Value| rt.block_on(tools.read.call(input));

    assert_eq!(
        read(json!({"path": "three.txt", "offset": 10})),
        Err(ToolError::InvalidInput(
            "offset 10 is past the end of `three.txt`, which has 3 lines".into()
        ))
    );
    assert_eq!(
        read(json!({"path": "three.txt", "offset": 3})).unwrap(),
        "     3\tc\n[lines 3-3 of 3]\n"
    );
    assert_eq!(
        read(json!({"path": "three.txt"})).unwrap(),
        "     1\ta\n     2\tb\n     3\tc\n"
    );
    assert_eq!(
        read(json!({"path": "empty.txt"})).unwrap(),
        "[`empty.txt` is empty]"
    );
    assert_eq!(
        read(json!({"path": "image.png"})),
        Err(ToolError::Failed(
            "`image.png` is a binary file (16 bytes)".into()
        ))
    );
    let text = read(json!({"path": "mixed.bin"})).unwrap();
    assert!(text.contains("     2\ttext two\n"), "{text}");
    assert!(
        text.ends_with("[lines 1-3; line 4 holds NUL bytes (binary data): stopped there]\n"),
        "{text}"
    );
    assert!(matches!(
        read(json!({"path": "mixed.bin", "offset": 4})),
        Err(ToolError::Failed(m)) if m.contains("line 4 holds NUL bytes")
    ));
    assert_eq!(
        read(json!({"path": "folder"})),
        Err(ToolError::Failed("`folder` is a directory".into()))
    );
    assert_eq!(
        read(json!({"path": "missing/x"})),
        Err(ToolError::Failed("`missing/x` does not exist".into()))
    );
    let text = read(json!({"path": "long.txt"})).unwrap();
    assert_eq!(
        text,
        format!("     1\t{} [line cut]\n     2\tshort\n", "y".repeat(2000))
    );
    // 2000 lines of 1000 bytes: cut before 256 KiB, with the offset to go on.
    let text = read(json!({"path": "wide.txt"})).unwrap();
    assert!(text.len() <= 256 * 1024, "{}", text.len());
    let shown = text.lines().count() - 1;
    assert!((200..262).contains(&shown), "{shown}");
    assert!(
        text.ends_with(&format!(
            "[lines 1-{shown}; cut here: read_file returns at most 256 KiB a call; offset {} reads on]\n",
            shown + 1
        )),
        "{}",
        text.lines().last().unwrap()
    );
    let next = read(json!({"path": "wide.txt", "offset": shown + 1, "limit": 1})).unwrap();
    assert!(
        next.starts_with(&format!("{:>6}\t{:04} ", shown + 1, shown)),
        "{next}"
    );
}

/// Writes and edits are atomic and keep the file's permission bits; no temporary file is
/// left, and a write onto a folder is refused without touching it.
#[test]
fn writes_replace_files_atomically_and_keep_their_mode() {
    use std::os::unix::fs::PermissionsExt;
    let rt = runtime();
    let tools = Tools::new();
    std::fs::write(tools.path("run.sh"), "echo old\n").unwrap();
    std::fs::set_permissions(tools.path("run.sh"), std::fs::Permissions::from_mode(0o751)).unwrap();
    let out = rt
        .block_on(
            tools
                .edit
                .call(json!({"path": "run.sh", "old_text": "old", "new_text": "new"})),
        )
        .unwrap();
    assert_eq!(out, "Replaced 1 occurrence in run.sh");
    let out = rt
        .block_on(
            tools
                .write
                .call(json!({"path": "run.sh", "content": "echo newer\n"})),
        )
        .unwrap();
    assert_eq!(out, "Wrote 11 bytes to run.sh");
    let meta = std::fs::metadata(tools.path("run.sh")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o751);
    assert_eq!(
        std::fs::read_to_string(tools.path("run.sh")).unwrap(),
        "echo newer\n"
    );
    std::fs::create_dir(tools.path("dir")).unwrap();
    assert_eq!(
        rt.block_on(tools.write.call(json!({"path": "dir", "content": "x"}))),
        Err(ToolError::Failed("`dir` is a directory".into()))
    );
    let out = rt
        .block_on(
            tools
                .write
                .call(json!({"path": "a/b/c.txt", "content": "deep"})),
        )
        .unwrap();
    assert_eq!(out, "Wrote 4 bytes to a/b/c.txt");
    assert_no_temp_files(tools.dir.path());
}

/// A thread keeps swapping the folder `d` for a symlink to an outside folder and back
/// ([`swapper`]) while `write_file` writes `d/x-N` 2,000 times. Nothing ever appears outside; every
/// write reported as a success is in the real folder with its content; every refusal names
/// the symlink; and both happened (the race was real).
#[test]
fn a_folder_swapped_for_a_symlink_during_writes_never_leaks_a_write() {
    const CALLS: usize = 2000;
    let rt = runtime();
    let tools = Tools::new();
    let outside = Outside::new();
    let ws = tools.dir.path().canonicalize().unwrap();
    std::fs::create_dir(ws.join("d")).unwrap();
    let (stop, swapper) = swapper(&ws, outside.path());
    let mut landed = Vec::new();
    let mut refused = 0;
    for i in 0..CALLS {
        let input = json!({"path": format!("d/x-{i}"), "content": format!("write {i}")});
        match rt.block_on(tools.write.call(input)) {
            Ok(_) => landed.push(i),
            Err(ToolError::Denied(m)) if m.contains("through the symlink `d`") => refused += 1,
            Err(e) => panic!("write {i}: {e}"),
        }
        outside.assert_untouched();
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!(
        "{CALLS} writes during {swaps} swaps: {} landed, {refused} refused through the symlink",
        landed.len()
    );
    outside.assert_untouched();
    let real = real_folder(&ws);
    for i in &landed {
        assert_eq!(
            std::fs::read_to_string(real.join(format!("x-{i}"))).unwrap(),
            format!("write {i}"),
            "a write reported as done is missing"
        );
    }
    let files = std::fs::read_dir(&real).unwrap().count();
    assert_eq!(
        files,
        landed.len(),
        "only the writes reported as done are there"
    );
    assert!(
        !landed.is_empty() && refused > 0,
        "the race did not happen: {} landed, {refused} refused",
        landed.len()
    );
    assert_no_temp_files(&ws);
}

/// The same race for `read_file`: the outside folder holds a file of the same name with a
/// secret; however the swaps fall, a read returns the inside file's text or an error, never
/// the secret.
#[test]
fn a_folder_swapped_for_a_symlink_during_reads_never_leaks_a_byte() {
    const CALLS: usize = 2000;
    let rt = runtime();
    let tools = Tools::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("notes.txt"), "SECRET outside\n").unwrap();
    let ws = tools.dir.path().canonicalize().unwrap();
    std::fs::create_dir(ws.join("d")).unwrap();
    std::fs::write(ws.join("d/notes.txt"), "inside\n").unwrap();
    let (stop, swapper) = swapper(&ws, outside.path());
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..CALLS {
        match rt.block_on(tools.read.call(json!({"path": "d/notes.txt"}))) {
            Ok(text) => {
                assert_eq!(text, "     1\tinside\n");
                ok += 1;
            }
            Err(e) => {
                assert!(!e.to_string().contains("SECRET"), "{e}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("{CALLS} reads during {swaps} swaps: {ok} read inside, {refused} refused");
    assert!(
        ok > 0 && refused > 0,
        "the race did not happen: {ok} ok, {refused} refused"
    );
}

/// With the shell taken away, the model must not get a command run outside every sandbox by
/// writing what git runs: a repository's `.git/config` (`core.fsmonitor` runs at the user's
/// next `git status`) and its hooks, by name, through a symlink, or by making a new hook.
/// The shell sandbox keeps both read-only; the file tools refuse them too, naming the rule,
/// and reading them stays allowed.
#[test]
fn the_model_cannot_plant_what_git_runs() {
    let corral = Corral::new();
    corral.write("corral.toml", "[shell]\nenabled = false\n");
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(corral.workspace.path())
        .status()
        .unwrap();
    assert!(git.success());
    let config = corral.read(".git/config");
    std::fs::write(corral.path(".git/hooks/post-checkout"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::symlink(".git/hooks", corral.path("hooks")).unwrap();
    let evil = "[core]\n\tfsmonitor = \"touch pwned #\"\n";
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use(
                "w1",
                "write_file",
                json!({"path": ".git/config", "content": evil}),
            ),
            tool_use(
                "e1",
                "edit_file",
                json!({"path": ".git/config", "old_text": "[core]", "new_text": evil}),
            ),
            tool_use(
                "w2",
                "write_file",
                json!({"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\ntouch pwned\n"}),
            ),
            tool_use(
                "w3",
                "write_file",
                json!({"path": "hooks/post-checkout", "content": "#!/bin/sh\ntouch pwned\n"}),
            ),
            tool_use("r1", "read_file", json!({"path": ".git/config"})),
            tool_use(
                "w4",
                "write_file",
                json!({"path": ".git/info/exclude", "content": "x\n"}),
            ),
        ])
        .into(),
        Turn::text("done").into(),
    ]);
    corral.run(Some(&server), &["run", "go"]).assert_code(0);
    let body = server.bodies().pop().unwrap();
    let results = corral_tests::tool_results(&body);
    for r in &results[..4] {
        assert!(
            r.is_error && r.content.contains("out of reach"),
            "{}: {}",
            r.id,
            r.content
        );
    }
    assert!(!results[4].is_error, "{}", results[4].content);
    assert!(!results[5].is_error, "{}", results[5].content);
    assert_eq!(corral.read(".git/config"), config);
    assert_eq!(corral.read(".git/hooks/post-checkout"), "#!/bin/sh\n");
    assert!(!corral.path(".git/hooks/pre-commit").exists());
}
