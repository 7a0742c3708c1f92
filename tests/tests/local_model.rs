//! corral against a real model, end to end: llama.cpp's `llama-server` serving
//! SmolLM2-135M-Instruct, both built and started by `scripts/local-model.sh`, over both APIs
//! corral speaks (Anthropic `/v1/messages`, OpenAI `/v1/chat/completions`), streamed and not.
//!
//! The model's prose is nonsense, so these tests assert the protocol only: the model called an
//! offered tool with input valid for its schema, corral ran it and sent the result back in the
//! next request (which the real server accepted), and the loop ended with exit code 0.
//!
//! The first run on a machine builds `llama-server` (about 8 minutes on 2 cores; the test crate's
//! `build.rs` starts that build in the background so it overlaps the rest of the test build) and
//! caches it outside the clone. When the server cannot be built here at all (no C++ compiler, no
//! pip, PyPI unreachable: the script exits 3), every test says so loudly and passes; any other
//! failure fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use corral_tests::cargo::repo_root;
use corral_tests::{Corral, RunOutput};
use serde_json::Value;

/// The longest the first build may take (it waits for one already running, too).
const BUILD_TIMEOUT: Duration = Duration::from_secs(45 * 60);
/// The longest the server may take to load the model and answer `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// `scripts/local-model.sh`'s exit code when the server cannot be built on this machine.
const UNAVAILABLE: i32 = 3;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-model.sh")
}

/// `local-model.sh build`, once per test binary: `Ok` when the server and model are cached,
/// `Err(why)` when they cannot be built on this machine. Any other failure panics.
fn built() -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let err = tempfile::NamedTempFile::new().expect("tempfile");
            let mut cmd = Command::new("bash");
            cmd.arg(script())
                .arg("build")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err.reopen().expect("reopen"))
                .process_group(0);
            let started = Instant::now();
            let mut child = cmd.spawn().expect("spawn scripts/local-model.sh build");
            let status = loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    break status;
                }
                if started.elapsed() > BUILD_TIMEOUT {
                    kill_group(&mut child);
                    panic!(
                        "scripts/local-model.sh build took over {BUILD_TIMEOUT:?}:\n{}",
                        read(err.path())
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            let stderr = read(err.path());
            match status.code() {
                Some(0) => Ok(()),
                Some(UNAVAILABLE) => Err(stderr),
                _ => panic!("scripts/local-model.sh build failed ({status}):\n{stderr}"),
            }
        })
        .clone()
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Says loudly, past the test harness's capture, that a test is skipped and why.
fn skip(test: &str, why: &str) {
    let line = "=".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{line}\nSKIPPED {test}: llama-server cannot be built on this machine, so corral is \
         not tested against a real model here.\n{}\n{line}",
        why.trim()
    );
}

/// SIGTERM to the child's process group, SIGKILL 5 s later, and reaps it.
fn kill_group(child: &mut Child) {
    let pgid = child.id() as i32;
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// A `llama-server` of this test, on a free port of 127.0.0.1; killed when dropped, and by the
/// kernel if the test's thread dies first.
struct LocalModel {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl LocalModel {
    /// Starts the server, or returns `None` (after saying why) when it cannot be built here.
    fn start(test: &str) -> Option<Self> {
        if let Err(why) = built() {
            skip(test, &why);
            return None;
        }
        let log = tempfile::NamedTempFile::new().expect("tempfile");
        let mut cmd = Command::new("bash");
        // Port 0: the server binds a free port and names it in its log.
        cmd.arg(script())
            .args(["serve", "0"])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("reopen"))
            .stderr(log.reopen().expect("reopen"))
            .process_group(0);
        // `serve` execs llama-server, so this child is the server itself.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn scripts/local-model.sh serve");
        let mut server = Self {
            child,
            port: 0,
            log,
        };
        if let Err(why) = server.wait_ready() {
            panic!("llama-server did not start: {why}");
        }
        Some(server)
    }

    /// Waits until the log names the port and `/health` there answers 200; `Err(log)` if the
    /// server exits or is too slow.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.port == 0 {
                self.port = listening_port(&self.log()).unwrap_or(0);
            }
            if self.port != 0 && health(self.port) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}):\n{}", self.log()));
            }
            if Instant::now() > deadline {
                kill_group(&mut self.child);
                return Err(format!(
                    "not ready within {READY_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's log so far, for failure messages.
    fn log(&self) -> String {
        read(self.log.path())
    }
}

impl Drop for LocalModel {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// The port of llama-server's `listening on http://127.0.0.1:PORT` log line.
fn listening_port(log: &str) -> Option<u16> {
    let marker = "listening on http://127.0.0.1:";
    let rest = &log[log.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether `GET /health` answers 200.
fn health(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    Anthropic,
    OpenAi,
}

/// What the workspace offers the model, and the prompt that goes with it. Each prompt is worded
/// like the example exchange of `scripts/chat-template.jinja` (`Call read_file with path
/// "example".`), whose tool is the first one offered.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tools {
    /// `corral.toml` turns the shell off: `read_file`, `write_file`, `edit_file`.
    FilesOnly,
    /// The defaults: `bash` first, then the file and background tools.
    Default,
}

impl Tools {
    fn prompt(self) -> &'static str {
        match self {
            Tools::FilesOnly => "Call read_file with path \"notes.txt\".",
            Tools::Default => "Call bash with command \"ls\".",
        }
    }
}

/// One `corral run --json` against `server` over `api`, in a workspace holding `notes.txt`.
fn run(server: &LocalModel, api: Api, stream: bool, tools: Tools) -> (Corral, RunOutput) {
    let corral = match api {
        Api::Anthropic => Corral::new().env("ANTHROPIC_BASE_URL", &server.url()),
        Api::OpenAi => Corral::new().env("OPENAI_BASE_URL", &format!("{}/v1", server.url())),
    };
    corral.write(
        "notes.txt",
        "The meeting is on Tuesday at 10.\nBring the slides.\n",
    );
    if tools == Tools::FilesOnly {
        corral.write("corral.toml", "[shell]\nenabled = false\n");
    }
    let mut args = vec![
        "run",
        "--json",
        "--model",
        "smollm2-135m-instruct",
        "--max-turns",
        "4",
        "--max-tokens",
        "200",
        "--max-retries",
        "1",
    ];
    if api == Api::OpenAi {
        args.extend(["--provider", "openai"]);
    }
    if !stream {
        args.push("--no-stream");
    }
    args.push(tools.prompt());
    let out = corral.run(None, &args);
    (corral, out)
}

/// The JSON Schemas of the tools offered, from corral itself.
fn schemas(corral: &Corral, tools: Tools) -> HashMap<String, Value> {
    use corral::background::{BackgroundConfig, BackgroundManager};
    use corral::tools::{
        BackgroundRunTool, BashTool, CheckBackgroundTool, EditFileTool, KillBackgroundTool,
        ReadFileTool, Tool, WriteFileTool,
    };
    let workspace = Arc::new(corral::Workspace::open(corral.workspace.path()).expect("workspace"));
    let mut offered: Vec<Arc<dyn Tool>> = vec![
        Arc::new(ReadFileTool::new(workspace.clone())),
        Arc::new(WriteFileTool::new(workspace.clone())),
        Arc::new(EditFileTool::new(workspace.clone())),
    ];
    if tools == Tools::Default {
        let manager = Arc::new(BackgroundManager::new(
            workspace.clone(),
            BackgroundConfig::default(),
            |_| {},
        ));
        offered.extend([
            Arc::new(BashTool::new(
                workspace,
                corral::ShellConfig::default(),
                corral::process::Launch::unconfined(),
                None,
            )) as Arc<dyn Tool>,
            Arc::new(BackgroundRunTool::new(manager.clone())),
            Arc::new(CheckBackgroundTool::new(manager.clone())),
            Arc::new(KillBackgroundTool::new(manager)),
        ]);
    }
    offered
        .iter()
        .map(|t| (t.spec().name.clone(), t.spec().input_schema.clone()))
        .collect()
}

/// The protocol of one run, whatever the model wrote: at least one tool call, each of an offered
/// tool with input valid for its schema, each answered, each result sent back to the model in
/// the next request (recorded in the session and accepted by the server), and a clean end.
fn assert_protocol(corral: &Corral, server: &LocalModel, tools: Tools, out: &RunOutput) {
    let context = || {
        format!(
            "--- stdout\n{}\n--- stderr\n{}\n--- llama-server log (end)\n{}",
            out.stdout,
            out.stderr,
            tail(&server.log(), 40)
        )
    };
    assert_eq!(out.code, Some(0), "exit code\n{}", context());
    let events = out.events();
    let schemas = schemas(corral, tools);

    let calls: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_call_started")
        .collect();
    assert!(!calls.is_empty(), "the model called no tool\n{}", context());
    for call in &calls {
        let name = call["name"].as_str().unwrap_or_default();
        let schema = schemas
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not an offered tool\n{}", context()));
        if let Err(e) = corral::tools::schema::validate(&call["input"], schema) {
            panic!(
                "{name} input {} breaks its schema: {e}\n{}",
                call["input"],
                context()
            );
        }
    }

    // Each call is answered, and a model request follows the first answer: the result went back.
    for call in &calls {
        let id = &call["id"];
        let finished = events
            .iter()
            .position(|e| e["type"] == "tool_call_finished" && &e["id"] == id)
            .unwrap_or_else(|| panic!("call {id} never finished\n{}", context()));
        assert!(
            events[finished..]
                .iter()
                .any(|e| e["type"] == "model_request"),
            "no model request after call {id}'s result\n{}",
            context()
        );
    }
    let last = events.last().expect("an event");
    assert_eq!(
        last["type"],
        "finished",
        "the loop did not end\n{}",
        context()
    );

    // The session holds every result, in a user message, under its call's id.
    let sessions = corral.sessions();
    assert_eq!(sessions.len(), 1, "one session file");
    let session = std::fs::read_to_string(&sessions[0]).expect("session file");
    let result_ids: Vec<String> = session
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "message" && l["message"]["role"] == "user")
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|b| b["type"] == "tool_result")
        .filter_map(|b| b["tool_use_id"].as_str().map(String::from))
        .collect();
    for call in &calls {
        let id = call["id"].as_str().unwrap_or_default();
        assert!(
            result_ids.iter().any(|r| r == id),
            "no tool_result for {id} in the session\n{session}"
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Anthropic `/v1/messages`, streamed: the model calls a file tool, gets the result, ends.
#[test]
fn anthropic_streaming_tool_call_round_trip() {
    round_trip(
        "anthropic_streaming_tool_call_round_trip",
        Api::Anthropic,
        true,
        Tools::FilesOnly,
    );
}

/// Anthropic `/v1/messages`, whole answers (`--no-stream`).
#[test]
fn anthropic_json_tool_call_round_trip() {
    round_trip(
        "anthropic_json_tool_call_round_trip",
        Api::Anthropic,
        false,
        Tools::FilesOnly,
    );
}

/// OpenAI `/v1/chat/completions` (`--provider openai`), streamed.
#[test]
fn openai_streaming_tool_call_round_trip() {
    round_trip(
        "openai_streaming_tool_call_round_trip",
        Api::OpenAi,
        true,
        Tools::FilesOnly,
    );
}

/// OpenAI `/v1/chat/completions` (`--provider openai`), whole answers (`--no-stream`).
#[test]
fn openai_json_tool_call_round_trip() {
    round_trip(
        "openai_json_tool_call_round_trip",
        Api::OpenAi,
        false,
        Tools::FilesOnly,
    );
}

/// The default tool set (bash first, seven tools, the longest prompt), over both APIs on one
/// server: the model calls `bash`, and the loop ends.
#[test]
fn default_tools_bash_call_over_both_apis() {
    let test = "default_tools_bash_call_over_both_apis";
    let Some(server) = LocalModel::start(test) else {
        return;
    };
    for api in [Api::Anthropic, Api::OpenAi] {
        let (corral, out) = run(&server, api, true, Tools::Default);
        assert_protocol(&corral, &server, Tools::Default, &out);
    }
}

/// The README's "Run against a local model" block runs as it is, from the repository root with
/// this build's `corral` on `PATH`: build, start, a run over each API, stop. It exits 0, and
/// nothing it started is left in its process group.
#[test]
fn readme_commands_run() {
    let test = "readme_commands_run";
    if let Err(why) = built() {
        skip(test, &why);
        return;
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = &readme[readme
        .find("### Run against a local model")
        .expect("the README's local model section")..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let block = &section[start..start + section[start..].find("```").expect("its end")];

    let corral = Corral::new();
    let bin_dir = Corral::bin().parent().expect("bin dir").to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin_dir];
    dirs.extend(std::env::split_paths(&path));
    let out = tempfile::NamedTempFile::new().expect("tempfile");
    let mut cmd = corral.command_for(std::path::Path::new("bash"), None);
    cmd.args(["-ec", block])
        .current_dir(repo_root())
        // The scripts `cd` as a user would: corral finds the workspace from there.
        .env_remove("CORRAL_WORKSPACE")
        .env("PATH", std::env::join_paths(dirs).expect("PATH"))
        .env("CORRAL_CACHE_DIR", cache_dir())
        .env("TMPDIR", corral.workspace.path())
        .stdout(out.reopen().expect("reopen"))
        .stderr(out.reopen().expect("reopen"))
        .process_group(0);
    let mut child = cmd.spawn().expect("spawn bash");
    let group = child.id() as i32;
    let deadline = Instant::now() + READY_TIMEOUT + 2 * corral_tests::cli::RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever is left of the group (a server the block failed to stop) goes now.
    let left = unsafe { libc::kill(-group, 0) } == 0;
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    let output = read(out.path());
    let status = status.unwrap_or_else(|| panic!("the block took too long:\n{output}"));
    assert!(
        status.success(),
        "the README block failed ({status}):\n{block}\n---\n{output}"
    );
    assert!(!left, "the README block left a process running:\n{output}");
}

/// The cache the script uses, as it finds it from this process's environment; the block runs
/// with a temp home, which must not mean a cold build.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CORRAL_CACHE_DIR") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache")
        });
    base.join("corral")
}

/// Starts a server and checks one run's protocol.
fn round_trip(test: &str, api: Api, stream: bool, tools: Tools) {
    let Some(server) = LocalModel::start(test) else {
        return;
    };
    let (corral, out) = run(&server, api, stream, tools);
    assert_protocol(&corral, &server, tools, &out);
}
