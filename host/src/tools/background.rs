//! `background_run`, `check_background`, `kill_background`: the model's handles on background
//! tasks (the names of the learn-claude-code s08 lesson, so prompts written for it still work).

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolError, parse_args, spec};
use crate::background::{BackgroundError, BackgroundManager, MAX_TIMEOUT, Task, format_runtime};
use crate::llm::{BoxFuture, ToolSpec};
use crate::process::tail_lines;

/// Characters of output `check_background` shows.
const CHECK_CHARS: usize = 4000;
/// Matching lines `check_background` shows with a filter.
const FILTER_LINES: usize = 200;

impl From<BackgroundError> for ToolError {
    fn from(error: BackgroundError) -> Self {
        match error {
            BackgroundError::EmptyCommand | BackgroundError::TimeoutTooLong(_) => {
                ToolError::InvalidInput(error.to_string())
            }
            BackgroundError::Refused(why) => ToolError::Denied(why),
            _ => ToolError::Failed(error.to_string()),
        }
    }
}

/// Runs blocking manager work off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ToolError::Failed(format!("background tool thread failed: {e}")))?
}

/// `background_run {command, timeout_secs?}`.
pub struct BackgroundRunTool {
    spec: ToolSpec,
    manager: Arc<BackgroundManager>,
}

#[derive(Deserialize)]
struct RunArgs {
    command: String,
    timeout_secs: Option<u64>,
}

impl BackgroundRunTool {
    pub fn new(manager: Arc<BackgroundManager>) -> Self {
        let config = manager.config();
        let default = match config.default_timeout.min(MAX_TIMEOUT).as_secs() {
            0 => "Runs without a timeout".to_string(),
            secs if secs % 60 == 0 => format!("Times out after {} min", secs / 60),
            secs => format!("Times out after {secs} s"),
        };
        let spec = spec(
            "background_run",
            &format!(
                "Start a shell command (sh -c, in the workspace root) in the background and \
                 return at once with its task id. Use it for slow work (installs, builds, test \
                 suites) and for servers. When the command ends, its status, exit code and the \
                 end of its output arrive by themselves in a <background-results> block; keep \
                 working meanwhile instead of waiting. {default} unless timeout_secs says \
                 otherwise (at most {} s, 7 days); timeout_secs 0 means never (servers, \
                 watchers). At most {} tasks run at once.",
                MAX_TIMEOUT.as_secs(),
                config.max_tasks
            ),
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "minLength": 1},
                    "timeout_secs": {"type": "integer", "minimum": 0, "maximum": MAX_TIMEOUT.as_secs(), "description": "Seconds before the task is killed; 0 for no timeout."}
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        );
        Self { spec, manager }
    }
}

impl Tool for BackgroundRunTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let args: RunArgs = parse_args(input)?;
            let manager = self.manager.clone();
            blocking(move || {
                let task =
                    manager.start(&args.command, args.timeout_secs.map(Duration::from_secs))?;
                Ok(format!(
                    "Background task {} started: {}",
                    task.id, task.command
                ))
            })
            .await
        })
    }
}

/// `check_background {task_id?, new_only?, filter?}`.
pub struct CheckBackgroundTool {
    spec: ToolSpec,
    manager: Arc<BackgroundManager>,
}

#[derive(Deserialize)]
struct CheckArgs {
    task_id: Option<String>,
    #[serde(default)]
    new_only: bool,
    filter: Option<String>,
}

impl CheckBackgroundTool {
    pub fn new(manager: Arc<BackgroundManager>) -> Self {
        let spec = spec(
            "check_background",
            "Without task_id: one line per background task (id, status, runtime, command). With \
             task_id: its status, exit code, runtime and the end of its output; new_only shows \
             only output printed since the last check of that task; filter (a regex) shows only \
             the matching lines.",
            json!({
                "type": "object",
                "properties": {
                    "task_id": {"type": "string"},
                    "new_only": {"type": "boolean"},
                    "filter": {"type": "string", "description": "A regular expression; only matching lines are shown."}
                },
                "additionalProperties": false
            }),
        );
        Self { spec, manager }
    }
}

impl Tool for CheckBackgroundTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let args: CheckArgs = parse_args(input)?;
            let manager = self.manager.clone();
            blocking(move || match &args.task_id {
                None => Ok(list(&manager)),
                Some(id) => {
                    let filter = args
                        .filter
                        .as_deref()
                        .map(regex::Regex::new)
                        .transpose()
                        .map_err(|e| ToolError::InvalidInput(format!("filter: {e}")))?;
                    check(&*manager.get(id)?, args.new_only, filter.as_ref())
                }
            })
            .await
        })
    }
}

fn list(manager: &BackgroundManager) -> String {
    let tasks = manager.tasks();
    if tasks.is_empty() {
        return "No background tasks.".to_string();
    }
    tasks
        .iter()
        .map(|t| {
            format!(
                "{}  {}  {}  {}",
                t.id,
                t.status(),
                format_runtime(t.runtime()),
                t.command
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(task: &Task, new_only: bool, filter: Option<&regex::Regex>) -> Result<String, ToolError> {
    let status = task.status();
    let (logged, rendered, total) = task
        .output
        .lock()
        .map(|o| (o.logged, o.buffer.render(), o.buffer.total()))
        .map_err(|_| ToolError::Failed("the task's output is unavailable".into()))?;
    let from = if new_only {
        task.state.lock().map(|s| s.checked_up_to).unwrap_or(0)
    } else {
        0
    };
    let mut out = format!(
        "task {}: {status}, {}\ncommand: {}\nlog: {} ({total} bytes of output)\n",
        task.id,
        if status.is_running() {
            format!("running for {}", format_runtime(task.runtime()))
        } else {
            format!("ran {}", format_runtime(task.runtime()))
        },
        task.command,
        task.log_display,
    );
    let text = if new_only || filter.is_some() {
        read_log(task, from, logged)?
    } else {
        rendered
    };
    match filter {
        Some(re) => {
            let matches: Vec<String> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| re.is_match(l))
                .map(|(i, l)| format!("{}: {l}", i + 1))
                .collect();
            let shown = matches.len().min(FILTER_LINES);
            out.push_str(&format!(
                "--- {} lines matching /{}/{}{}\n",
                matches.len(),
                re.as_str(),
                if new_only { " in new output" } else { "" },
                if shown < matches.len() {
                    format!(" (the last {shown})")
                } else {
                    String::new()
                }
            ));
            for line in &matches[matches.len() - shown..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        None => {
            let label = if new_only { "new output" } else { "output" };
            let tail = tail_lines(&text, CHECK_CHARS);
            if tail.len() < text.trim_end().len() {
                out.push_str(&format!("--- {label} (the end; the whole is in the log)\n"));
            } else {
                out.push_str(&format!("--- {label}\n"));
            }
            out.push_str(if tail.is_empty() { "(none)" } else { tail });
            out.push('\n');
        }
    }
    if let Ok(mut state) = task.state.lock() {
        state.checked_up_to = logged;
    }
    Ok(out)
}

/// Bytes `from..to` of the task's log, as text.
fn read_log(task: &Task, from: u64, to: u64) -> Result<String, ToolError> {
    let mut file = std::fs::File::open(&task.log_path)
        .map_err(|e| ToolError::Failed(format!("{}: {e}", task.log_display)))?;
    file.seek(SeekFrom::Start(from))
        .map_err(|e| ToolError::Failed(format!("{}: {e}", task.log_display)))?;
    let mut bytes = Vec::new();
    file.take(to.saturating_sub(from))
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed(format!("{}: {e}", task.log_display)))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `kill_background {task_id}`.
pub struct KillBackgroundTool {
    spec: ToolSpec,
    manager: Arc<BackgroundManager>,
}

#[derive(Deserialize)]
struct KillArgs {
    task_id: String,
}

impl KillBackgroundTool {
    pub fn new(manager: Arc<BackgroundManager>) -> Self {
        let spec = spec(
            "kill_background",
            "Stop a background task: SIGTERM to its whole process group, SIGKILL after a short \
             grace period.",
            json!({
                "type": "object",
                "properties": {"task_id": {"type": "string", "minLength": 1}},
                "required": ["task_id"],
                "additionalProperties": false
            }),
        );
        Self { spec, manager }
    }
}

impl Tool for KillBackgroundTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let args: KillArgs = parse_args(input)?;
            let manager = self.manager.clone();
            blocking(move || {
                let task = manager.get(&args.task_id)?;
                if !task.status().is_running() {
                    return Ok(format!(
                        "Task {} had already ended: {}",
                        task.id,
                        task.status()
                    ));
                }
                let status = manager.kill(&task.id, "by kill_background")?;
                Ok(format!("Task {} stopped: {status}", task.id))
            })
            .await
        })
    }
}
