//! `bash {command, timeout_secs?}`: run a shell command in the workspace and wait for it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolError, parse_args, spec};
use crate::config::ShellConfig;
use crate::llm::{BoxFuture, ToolSpec};
use crate::process::journal::{Journal, TaskKind, TaskRecord};
use crate::process::{self, HeadTail, OutputSink, WaitOutcome};
use crate::workspace::Workspace;

/// Output kept for the model: the first and last 15,000 bytes.
const OUTPUT_HEAD: usize = 15_000;
const OUTPUT_TAIL: usize = 15_000;
/// Time a timed-out command gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// The blocking shell tool. `sh -c` in the workspace root, its own process group, stdin closed.
/// When the shell exits, or the timeout passes, the whole group is killed: a `bash` call leaves no
/// process behind (long-lived ones belong in `background_run`).
pub struct BashTool {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
    shell: ShellConfig,
    /// Every call is recorded in the workspace's task journal, so that a command still running
    /// when corral is killed is ended by the next start.
    record: TaskRecord,
}

#[derive(Deserialize)]
struct Args {
    command: String,
    timeout_secs: Option<u64>,
}

impl BashTool {
    pub fn new(workspace: Arc<Workspace>, shell: ShellConfig) -> Self {
        let spec = spec(
            "bash",
            &format!(
                "Run a shell command (sh -c) in the workspace root and wait for it to finish. \
                 stdout and stderr are returned interleaved, long output is cut in the middle, \
                 and the exit code is reported. Times out after {} s unless timeout_secs says \
                 otherwise (at most {} s); the whole process group is killed then. Processes it \
                 starts do not outlive it: use background_run for servers and slow commands.",
                shell.timeout.as_secs(),
                shell.max_timeout.as_secs()
            ),
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "minLength": 1, "description": "The command line, run by sh -c."},
                    "timeout_secs": {"type": "integer", "minimum": 1, "maximum": shell.max_timeout.as_secs(), "description": "Seconds before the command is killed."}
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        );
        let record = TaskRecord {
            journal: Arc::new(Journal::new(&workspace.state_dir())),
            kind: TaskKind::Bash,
            id: None,
            log: None,
        };
        Self {
            spec,
            workspace,
            shell,
            record,
        }
    }
}

/// Runs one call on the current (blocking) thread.
fn run(
    workspace: &Workspace,
    shell: &ShellConfig,
    record: &TaskRecord,
    args: Args,
) -> Result<String, ToolError> {
    if args.command.trim().is_empty() {
        return Err(ToolError::InvalidInput("the command is empty".into()));
    }
    let timeout = args
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(shell.timeout)
        .min(shell.max_timeout);
    let buffer = Arc::new(Mutex::new(HeadTail::new(OUTPUT_HEAD, OUTPUT_TAIL)));
    let started = Instant::now();
    let child = process::spawn_shell(&args.command, workspace.root(), &shell.env, Some(record))
        .map_err(|e| ToolError::Failed(format!("could not start the command: {e}")))?;
    let end = child.run(
        Some(timeout),
        GRACE,
        Duration::from_secs(2),
        SharedBuffer(buffer.clone()),
    );
    let (outcome, drained) = (end.outcome, end.drained);
    let mut output = buffer.lock().map(|b| b.render()).unwrap_or_default();
    if !drained {
        output.push_str("\n[output may be incomplete: a process left the group and kept it open]");
    }
    let elapsed = started.elapsed().as_secs_f64();
    match outcome {
        Ok(WaitOutcome::Exited(status)) if status.success() => {
            Ok(format!("{output}\n[exit code 0, {elapsed:.1} s]")
                .trim_start()
                .to_string())
        }
        Ok(WaitOutcome::Exited(status)) => Err(ToolError::Failed(
            format!(
                "{output}\n[{}, {elapsed:.1} s]",
                process::describe_status(&status)
            )
            .trim_start()
            .to_string(),
        )),
        Ok(WaitOutcome::TimedOut | WaitOutcome::Cancelled) => Err(ToolError::Timeout(
            format!(
                "{output}\n[timed out after {} s; the process group was killed]",
                timeout.as_secs()
            )
            .trim_start()
            .to_string(),
        )),
        Err(e) => Err(ToolError::Failed(format!(
            "waiting for the command failed: {e}"
        ))),
    }
}

struct SharedBuffer(Arc<Mutex<HeadTail>>);

impl OutputSink for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> bool {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.push(bytes);
        }
        true
    }
}

impl Tool for BashTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let args: Args = parse_args(input)?;
            let (workspace, shell) = (self.workspace.clone(), self.shell.clone());
            let record = self.record.clone();
            tokio::task::spawn_blocking(move || run(&workspace, &shell, &record, args))
                .await
                .map_err(|e| ToolError::Failed(format!("the command's thread failed: {e}")))?
        })
    }
}
