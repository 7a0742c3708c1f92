//! `bash {command, timeout_secs?}`: run a shell command in the workspace and wait for it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolError, parse_args, spec};
use crate::config::{Escalation, ShellConfig};
use crate::llm::{BoxFuture, ToolSpec};
use crate::process::journal::{Journal, TaskKind, TaskRecord};
use crate::process::{self, HeadTail, Launch, OutputSink, Sandboxing, WaitOutcome};
use crate::sandbox::escalation::{self, Answer, Handler};
use crate::workspace::Workspace;

/// Output kept for the model: the first and last 15,000 bytes.
const OUTPUT_HEAD: usize = 15_000;
const OUTPUT_TAIL: usize = 15_000;
/// Time a timed-out command gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// The blocking shell tool. `sh -c` in the workspace root, its own process group, stdin closed,
/// in the shell sandbox unless it is off ([`crate::sandbox`]). When the shell exits, or the
/// timeout passes, the whole group is killed: a `bash` call leaves no process behind
/// (long-lived ones belong in `background_run`). A command `[shell] deny` (or `allow`) refuses
/// never starts. A confined command that failed looking blocked may run again outside the
/// sandbox as [`Escalation`] says ([`crate::sandbox::escalation`]).
pub struct BashTool {
    spec: ToolSpec,
    /// Shared with each call's blocking thread.
    call: Arc<Call>,
}

#[derive(Deserialize)]
struct Args {
    command: String,
    timeout_secs: Option<u64>,
}

impl BashTool {
    pub fn new(
        workspace: Arc<Workspace>,
        shell: ShellConfig,
        launch: Launch,
        ask: Option<Handler>,
    ) -> Self {
        let confined = match &launch.sandbox {
            Sandboxing::On(c) => format!(
                " Commands run in a sandbox ({} mode): {}.",
                c.mode().as_str(),
                c.describe()
            ),
            Sandboxing::Refused(e) => format!(" Commands are refused here: {e}."),
            Sandboxing::Off => String::new(),
        };
        let spec = spec(
            "bash",
            &format!(
                "Run a shell command (sh -c) in the workspace root and wait for it to finish. \
                 stdout and stderr are returned interleaved, long output is cut in the middle, \
                 and the exit code is reported. Times out after {} s unless timeout_secs says \
                 otherwise (at most {} s); the whole process group is killed then. Processes it \
                 starts do not outlive it: use background_run for servers and slow commands.{confined}",
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
            call: Arc::new(Call {
                workspace,
                shell,
                launch,
                ask,
                always: Mutex::default(),
                record,
            }),
        }
    }
}

/// What a call needs, on its blocking thread.
struct Call {
    workspace: Arc<Workspace>,
    shell: ShellConfig,
    launch: Launch,
    ask: Option<Handler>,
    /// Commands the user said may always run outside the sandbox, this session.
    always: Mutex<HashSet<String>>,
    /// Every call is recorded in the workspace's task journal, so that a command still running
    /// when corral is killed is ended by the next start.
    record: TaskRecord,
}

impl Call {
    /// Runs one call on the current (blocking) thread: the rules, the confined run, and what
    /// the user allows when it looks blocked.
    fn run(&self, args: Args, cancel: &Cancel) -> Result<String, ToolError> {
        if args.command.trim().is_empty() {
            return Err(ToolError::InvalidInput("the command is empty".into()));
        }
        if let Err(refusal) = self.shell.rules.check(&args.command) {
            return Err(ToolError::Denied(refusal.to_string()));
        }
        let first = run_once(
            &self.workspace,
            &self.shell,
            &self.launch,
            &self.record,
            &args,
            cancel,
        );
        let Sandboxing::On(confinement) = &self.launch.sandbox else {
            return first;
        };
        let output = match &first {
            Err(ToolError::Failed(output)) if escalation::looks_blocked(output) => output,
            _ => return first,
        };
        let remembered = self
            .always
            .lock()
            .is_ok_and(|always| always.contains(&args.command));
        let outside = match self.shell.escalation {
            Escalation::Allow => true,
            Escalation::Ask if remembered => true,
            Escalation::Ask => match &self.ask {
                Some(ask) => {
                    let answer = ask(&escalation::Request {
                        command: &args.command,
                        mode: confinement.mode(),
                        output,
                    });
                    if answer == Answer::Always
                        && let Ok(mut always) = self.always.lock()
                    {
                        always.insert(args.command.clone());
                    }
                    answer != Answer::No
                }
                None => false,
            },
            Escalation::Refuse => false,
        };
        if !outside {
            let note = escalation::note(confinement.mode());
            return Err(ToolError::Failed(format!("{output}\n{note}")));
        }
        let again = run_once(
            &self.workspace,
            &self.shell,
            &self.launch.outside_sandbox(),
            &self.record,
            &args,
            cancel,
        );
        let said = "[blocked in the shell sandbox; the user let it run again outside it]";
        match again {
            Ok(text) => Ok(format!("{said}\n{text}")),
            Err(ToolError::Failed(text)) => Err(ToolError::Failed(format!("{said}\n{text}"))),
            Err(other) => Err(other),
        }
    }
}

/// Runs the command once, as `launch` says; a `cancel` (the call's future was dropped: the
/// user stopped the turn) ends it as a timeout would.
fn run_once(
    workspace: &Workspace,
    shell: &ShellConfig,
    launch: &Launch,
    record: &TaskRecord,
    args: &Args,
    cancel: &Cancel,
) -> Result<String, ToolError> {
    let timeout = args
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(shell.timeout)
        .min(shell.max_timeout);
    let buffer = Arc::new(Mutex::new(HeadTail::new(OUTPUT_HEAD, OUTPUT_TAIL)));
    let started = Instant::now();
    if cancel.is_cancelled() {
        return Err(ToolError::Failed(CANCELLED.into()));
    }
    let child = process::spawn_shell(&args.command, workspace.root(), launch, Some(record))
        .map_err(|e| ToolError::Failed(format!("could not start the command: {e}")))?;
    cancel.watch(child.canceller());
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

/// What a cancelled call answers (the model sees it if the turn is ever resent).
pub const CANCELLED: &str = "(cancelled by the user)";

/// The link between a call's future and its command on the blocking thread: dropping the
/// future before the call ends ([`CancelOnDrop`]) ends the command (SIGTERM to its group, then
/// SIGKILL after the grace), and keeps one from starting.
#[derive(Default)]
struct Cancel {
    state: Mutex<(bool, Option<process::Canceller>)>,
}

impl Cancel {
    fn is_cancelled(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.0)
    }

    /// The running command to end on a cancel (at once, if the cancel came first).
    fn watch(&self, canceller: process::Canceller) {
        if let Ok(mut state) = self.state.lock() {
            if state.0 {
                canceller.cancel();
            }
            state.1 = Some(canceller);
        }
    }

    fn cancel(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.0 = true;
            if let Some(canceller) = &state.1 {
                canceller.cancel();
            }
        }
    }
}

/// Held by a call's future: when it is dropped before the call finished, the call is cancelled.
struct CancelOnDrop {
    cancel: Arc<Cancel>,
    finished: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel.cancel();
        }
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
            let call = self.call.clone();
            let cancel = Arc::new(Cancel::default());
            let mut guard = CancelOnDrop {
                cancel: cancel.clone(),
                finished: false,
            };
            let result = tokio::task::spawn_blocking(move || call.run(args, &cancel))
                .await
                .map_err(|e| ToolError::Failed(format!("the command's thread failed: {e}")))?;
            guard.finished = true;
            result
        })
    }
}
