//! Running the real `corral` binary in a temp workspace, with a hermetic environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::ScriptedServer;

/// The longest a single corral run may take in a test before it counts as hung.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// A temp workspace and a temp home for one test, and the way to run corral in them.
pub struct Corral {
    pub workspace: tempfile::TempDir,
    pub home: tempfile::TempDir,
    extra_env: Vec<(String, String)>,
    /// Run from this folder of the workspace and let corral find the project (no
    /// `CORRAL_WORKSPACE`).
    from_subfolder: Option<String>,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct RunOutput {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    /// The JSON lines of stdout (`--json`).
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    }

    /// Panics with both streams unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Default for Corral {
    fn default() -> Self {
        Self::new()
    }
}

impl Corral {
    pub fn new() -> Self {
        Self {
            workspace: tempfile::tempdir().expect("temp workspace"),
            home: tempfile::tempdir().expect("temp home"),
            extra_env: Vec::new(),
            from_subfolder: None,
        }
    }

    /// A workspace and a home folder made beneath `base` instead of the temp folder (which the
    /// shell sandbox lets commands write): for tests of what commands may not write.
    pub fn in_dir(base: &Path) -> Self {
        Self {
            workspace: tempfile::tempdir_in(base).expect("workspace"),
            home: tempfile::tempdir_in(base).expect("home"),
            extra_env: Vec::new(),
            from_subfolder: None,
        }
    }

    /// The `corral` binary of this build. `cargo test --workspace` builds it (the host crate's
    /// own integration tests need it), next to this test's executable.
    pub fn bin() -> PathBuf {
        let exe = std::env::current_exe().expect("current exe");
        let dir = exe.parent().and_then(Path::parent).expect("target dir");
        let bin = dir.join("corral");
        assert!(
            bin.exists(),
            "{} is missing: run the README's test command (cargo test --workspace)",
            bin.display()
        );
        bin
    }

    /// A built example of the host crate, e.g. `embed`.
    pub fn example(name: &str) -> PathBuf {
        let exe = std::env::current_exe().expect("current exe");
        let dir = exe.parent().and_then(Path::parent).expect("target dir");
        let bin = dir.join("examples").join(name);
        assert!(
            bin.exists(),
            "{} is missing: run the README's test command",
            bin.display()
        );
        bin
    }

    /// Adds an environment variable to every later run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.into(), value.into()));
        self
    }

    /// A path inside the workspace.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.workspace.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, content).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Trusts the workspace's `corral.toml` as it is now and approves every plugin component it
    /// grants something, as the user does with `corral trust` and `corral policy approve`. A
    /// test that means its file to take effect calls this after writing it.
    pub fn trust(&self) {
        self.run(None, &["trust"]).assert_code(0);
        self.run(None, &["policy", "approve"]).assert_code(0);
    }

    /// Copies the named plugins (built from source) into the workspace's `.corral/plugins`.
    pub fn install(&self, names: &[&str]) -> PathBuf {
        crate::plugins::install(self.workspace.path(), names)
    }

    /// Runs one model turn calling `calls`, then a closing turn, and checks the requests kept
    /// the API's rules; returns each tool result as (is_error, text), in call order.
    pub fn call_tools(&self, calls: Vec<Value>) -> Vec<(bool, String)> {
        let server = ScriptedServer::start(vec![
            crate::server::Turn::tools(calls).into(),
            crate::server::Turn::text("done").into(),
        ]);
        self.run(Some(&server), &["run", "go"]).assert_code(0);
        server.assert_clean();
        let body = server.bodies().pop().expect("a request");
        crate::server::tool_results(&body)
            .into_iter()
            .map(|r| (r.is_error, r.content))
            .collect()
    }

    /// The session files of the workspace.
    pub fn sessions(&self) -> Vec<PathBuf> {
        let dir = self.path(".corral/sessions");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Runs corral from the folder `rel` of the workspace, with no `CORRAL_WORKSPACE`: corral
    /// finds the project itself, as from a user's shell.
    pub fn from_subfolder(mut self, rel: &str) -> Self {
        std::fs::create_dir_all(self.path(rel)).expect("subfolder");
        self.from_subfolder = Some(rel.to_string());
        self
    }

    /// A command for `program` with a hermetic environment: nothing of the machine's but PATH,
    /// HOME in a temp dir, the Anthropic variables pointing at `server`, and the workspace in
    /// `CORRAL_WORKSPACE` (the workspaces of some tests sit inside this repository, whose git
    /// root corral would otherwise find; see [`from_subfolder`](Self::from_subfolder)).
    pub fn command_for(&self, program: &Path, server: Option<&ScriptedServer>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("XDG_CACHE_HOME", self.home.path().join(".cache"))
            .env("ANTHROPIC_API_KEY", "test-key")
            .stdin(Stdio::null());
        match &self.from_subfolder {
            Some(rel) => cmd.current_dir(self.path(rel)),
            None => cmd
                .current_dir(self.workspace.path())
                .env("CORRAL_WORKSPACE", self.workspace.path()),
        };
        if let Some(server) = server {
            cmd.env("ANTHROPIC_BASE_URL", server.url());
        } else {
            // Nothing listens here: a run that calls the model fails fast.
            cmd.env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9");
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `corral ARGS` against `server` and waits (at most [`RUN_TIMEOUT`]).
    pub fn run(&self, server: Option<&ScriptedServer>, args: &[&str]) -> RunOutput {
        let mut cmd = self.command_for(&Self::bin(), server);
        cmd.args(args);
        wait_output(cmd, RUN_TIMEOUT)
    }

    /// Like [`run`](Self::run), with `input` as standard input.
    pub fn run_with_input(
        &self,
        server: Option<&ScriptedServer>,
        args: &[&str],
        input: &str,
    ) -> RunOutput {
        let mut file = tempfile::tempfile().expect("tempfile");
        std::io::Write::write_all(&mut file, input.as_bytes()).expect("write stdin");
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).expect("seek");
        let mut cmd = self.command_for(&Self::bin(), server);
        cmd.args(args).stdin(file);
        wait_output(cmd, RUN_TIMEOUT)
    }
}

/// Runs `cmd` to the end, killing it and failing the test if it takes longer than `timeout`.
pub fn wait_output(mut cmd: Command, timeout: Duration) -> RunOutput {
    let out_file = tempfile::tempfile().expect("tempfile");
    let err_file = tempfile::tempfile().expect("tempfile");
    cmd.stdout(out_file.try_clone().expect("clone"))
        .stderr(err_file.try_clone().expect("clone"));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    RunOutput {
        code: status.code(),
        stdout: read_all(out_file),
        stderr: read_all(err_file),
    }
}

fn read_all(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    text
}
