//! The background manager: starts tasks, each on its own thread, and queues a notification
//! when each ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::output::{SharedOutput, TaskOutput};
use super::queue::{Notification, NotificationQueue};
use super::task::{Task, TaskId, TaskState, TaskStatus};
use crate::process::journal::{Journal, TaskKind, TaskRecord};
use crate::process::{self, Launch, WaitOutcome};
use crate::sandbox::rules::CommandRules;
use crate::workspace::Workspace;

/// Characters of output a notification carries.
const NOTIFICATION_TAIL: usize = 2000;
/// Stack of a task's thread: it only spawns, polls and copies output (buffers are on the heap).
const TASK_THREAD_STACK: usize = 256 * 1024;
/// Time between SIGTERM and SIGKILL when a task is ended.
const GRACE: Duration = Duration::from_secs(2);
/// The longest timeout a task may be given, by the model (`background_run`'s `timeout_secs`,
/// whose schema says so) or by `[shell] background_timeout_secs`: 7 days. Longer is refused, so
/// no deadline overflows; `0` (no timeout at all) is the way to ask for more.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Settings of the background manager.
#[derive(Debug, Clone)]
pub struct BackgroundConfig {
    /// Tasks that may run at once (16).
    pub max_tasks: usize,
    /// A task's timeout when the model gives none (30 min); zero for none. At most
    /// [`MAX_TIMEOUT`]: a longer one is taken as [`MAX_TIMEOUT`].
    pub default_timeout: Duration,
    /// Bytes of output written to a task's log before the task is killed (64 MiB).
    pub log_cap: u64,
    /// How commands start: their environment and sandbox. The agent sets it from its
    /// [`crate::ShellConfig`].
    pub launch: Launch,
    /// `[shell] allow` and `deny`, checked before a task starts.
    pub rules: CommandRules,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        Self {
            max_tasks: 16,
            default_timeout: Duration::from_secs(30 * 60),
            log_cap: 64 * 1024 * 1024,
            launch: Launch::unconfined(),
            rules: CommandRules::default(),
        }
    }
}

/// Why a task could not be started or found. Shown to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackgroundError {
    #[error("the command is empty")]
    EmptyCommand,
    #[error("{0}")]
    Refused(String),
    #[error("{0} background tasks are running, the limit; wait for one to end or kill one")]
    TooMany(usize),
    #[error("no background task `{0}`; check_background without an id lists them")]
    UnknownTask(String),
    #[error("could not start the task: {0}")]
    Start(String),
    #[error(
        "timeout_secs {0} is too long: at most {max} (7 days); 0 means no timeout",
        max = MAX_TIMEOUT.as_secs()
    )]
    TimeoutTooLong(u64),
}

/// What the manager reports as tasks start and end. The agent turns these into its events.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEvent {
    Started { task_id: TaskId, command: String },
    Finished(Notification),
}

type TaskEventSink = Arc<dyn Fn(TaskEvent) + Send + Sync>;

/// Runs commands in the background of one workspace.
///
/// Each task is `sh -c COMMAND` in the workspace root, in its own process group, on its own
/// thread. When it ends, exactly one [`Notification`] goes to the queue. Dropping the manager
/// (or [`kill_all`](Self::kill_all)) ends every task still running.
pub struct BackgroundManager {
    root: PathBuf,
    log_dir: PathBuf,
    workspace: Arc<Workspace>,
    config: BackgroundConfig,
    tasks: Mutex<Vec<Arc<Task>>>,
    by_id: Mutex<HashMap<TaskId, Arc<Task>>>,
    queue: Arc<NotificationQueue>,
    events: TaskEventSink,
    /// The workspace's task journal: every task is recorded there, so that one still running
    /// when corral is killed is ended by the next start.
    journal: Arc<Journal>,
}

impl std::fmt::Debug for BackgroundManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundManager")
            .field("root", &self.root)
            .field("config", &self.config)
            .finish()
    }
}

impl BackgroundManager {
    /// A manager for `workspace`; task logs go to `<workspace>/.corral/tasks/`.
    pub fn new(
        workspace: Arc<Workspace>,
        config: BackgroundConfig,
        events: impl Fn(TaskEvent) + Send + Sync + 'static,
    ) -> Self {
        let journal = Arc::new(Journal::new(&workspace.state_dir()));
        Self {
            root: workspace.root().to_path_buf(),
            log_dir: workspace.state_dir().join(crate::workspace::TASKS_DIR),
            workspace,
            config,
            tasks: Mutex::new(Vec::new()),
            by_id: Mutex::new(HashMap::new()),
            queue: Arc::new(NotificationQueue::new()),
            events: Arc::new(events),
            journal,
        }
    }

    pub fn config(&self) -> &BackgroundConfig {
        &self.config
    }

    /// The queue the agent drains.
    pub fn queue(&self) -> &NotificationQueue {
        &self.queue
    }

    /// Starts `command`; returns its id at once. `timeout`: `None` for the default, `Some(0)`
    /// for none at all; longer than [`MAX_TIMEOUT`] is refused with
    /// [`BackgroundError::TimeoutTooLong`]; a command the `[shell]` rules refuse with
    /// [`BackgroundError::Refused`].
    pub fn start(
        &self,
        command: &str,
        timeout: Option<Duration>,
    ) -> Result<Arc<Task>, BackgroundError> {
        if command.trim().is_empty() {
            return Err(BackgroundError::EmptyCommand);
        }
        if let Err(refusal) = self.config.rules.check(command) {
            return Err(BackgroundError::Refused(refusal.to_string()));
        }
        if let Some(t) = timeout
            && t > MAX_TIMEOUT
        {
            return Err(BackgroundError::TimeoutTooLong(t.as_secs()));
        }
        let running = self.running().len();
        if running >= self.config.max_tasks {
            return Err(BackgroundError::TooMany(running));
        }
        let timeout = match timeout.unwrap_or(self.config.default_timeout.min(MAX_TIMEOUT)) {
            t if t.is_zero() => None,
            t => Some(t),
        };
        let id = new_id(&self.by_id);
        let log_path = self.log_dir.join(format!("{id}.log"));
        let task = Arc::new(Task {
            id: id.clone(),
            command: command.to_string(),
            log_display: self.workspace.display(&log_path),
            log_path,
            started_at: SystemTime::now(),
            started: Instant::now(),
            timeout,
            output: Arc::new(Mutex::new(TaskOutput::new(self.config.log_cap))),
            state: Mutex::new(TaskState {
                status: TaskStatus::Running,
                ended: None,
                checked_up_to: 0,
                kill_reason: None,
                canceller: None,
                pgid: None,
            }),
        });
        self.remember(task.clone());
        (self.events)(TaskEvent::Started {
            task_id: id.clone(),
            command: command.to_string(),
        });
        // The task's own thread creates the log and spawns the command, so `start` returns at
        // once and many tasks start in parallel. A spawn that fails ends the task as
        // `failed to start`, with its notification.
        let job = Job {
            record: TaskRecord {
                journal: self.journal.clone(),
                kind: TaskKind::Background,
                id: Some(id.clone()),
                log: Some(task.log_display.clone()),
            },
            task: task.clone(),
            root: self.root.clone(),
            log_dir: self.log_dir.clone(),
            launch: self.config.launch.clone(),
            queue: self.queue.clone(),
            events: self.events.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("bg-{id}"))
            .stack_size(TASK_THREAD_STACK)
            .spawn(move || job.run_guarded());
        if let Err(e) = spawned {
            let error = format!("no thread for the task: {e}");
            let status = TaskStatus::FailedToStart {
                error: error.clone(),
            };
            finish(&task, status, &self.queue, &self.events);
            return Err(BackgroundError::Start(error));
        }
        Ok(task)
    }

    fn remember(&self, task: Arc<Task>) {
        if let Ok(mut by_id) = self.by_id.lock() {
            by_id.insert(task.id.clone(), task.clone());
        }
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task);
        }
    }

    /// Every task, oldest first.
    pub fn tasks(&self) -> Vec<Arc<Task>> {
        self.tasks.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The tasks still running.
    pub fn running(&self) -> Vec<Arc<Task>> {
        self.tasks()
            .into_iter()
            .filter(|t| t.status().is_running())
            .collect()
    }

    /// The task with this id.
    pub fn get(&self, id: &str) -> Result<Arc<Task>, BackgroundError> {
        self.by_id
            .lock()
            .ok()
            .and_then(|m| m.get(id.trim()).cloned())
            .ok_or_else(|| BackgroundError::UnknownTask(id.to_string()))
    }

    /// Ends a task: SIGTERM to its group, SIGKILL after a grace period. Waits (a few seconds at
    /// most) until the task has ended, and returns its final status.
    pub fn kill(&self, id: &str, reason: &str) -> Result<TaskStatus, BackgroundError> {
        let task = self.get(id)?;
        if !task.status().is_running() {
            return Ok(task.status());
        }
        request_kill(&task, reason);
        let deadline = Instant::now() + GRACE + Duration::from_secs(5);
        while task.status().is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(task.status())
    }

    /// Ends every running task (SIGTERM, SIGKILL after the grace period) and waits briefly for
    /// their threads to record it. For corral's exit.
    pub fn kill_all(&self, reason: &str) {
        let running = self.running();
        for task in &running {
            request_kill(task, reason);
        }
        let deadline = Instant::now() + GRACE + Duration::from_secs(3);
        while running.iter().any(|t| t.status().is_running()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Records why the task is to end and cancels its run; a task whose command is not spawned yet
/// cancels itself as soon as it is (see [`Job::run`]).
fn request_kill(task: &Task, reason: &str) {
    let canceller = task.state.lock().ok().and_then(|mut state| {
        state.kill_reason.get_or_insert_with(|| reason.to_string());
        state.canceller.clone()
    });
    if let Some(canceller) = canceller {
        canceller.cancel();
    }
}

impl Drop for BackgroundManager {
    fn drop(&mut self) {
        self.kill_all("corral exited");
    }
}

/// A fresh 8-hex-character id not yet used.
fn new_id(by_id: &Mutex<HashMap<TaskId, Arc<Task>>>) -> TaskId {
    loop {
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        if by_id.lock().map(|m| !m.contains_key(&id)).unwrap_or(true) {
            return id;
        }
    }
}

/// Everything a task's thread needs.
struct Job {
    record: TaskRecord,
    task: Arc<Task>,
    root: PathBuf,
    log_dir: PathBuf,
    launch: Launch,
    queue: Arc<NotificationQueue>,
    events: TaskEventSink,
}

impl Job {
    /// [`run`](Self::run), and should it panic (a bug in corral), the task still ends: its
    /// group is killed and it finishes as killed, with its one notification, instead of
    /// showing "running" forever.
    fn run_guarded(self) {
        let (task, queue, events) = (self.task.clone(), self.queue.clone(), self.events.clone());
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run()));
        if let Err(panic) = panic {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let state = task
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (running, pgid) = (state.status.is_running(), state.pgid);
            drop(state);
            if let Some(pgid) = pgid {
                process::kill_group(pgid, libc::SIGKILL);
            }
            if running {
                let reason = format!("corral's supervisor of the task failed: {what}");
                finish(&task, TaskStatus::Killed { reason }, &queue, &events);
            }
        }
    }

    /// The task's thread: creates the log, spawns the command, supervises it to its end, then
    /// records the end and queues the one notification.
    fn run(self) {
        let task = &self.task;
        let failed = |error: String| {
            finish(
                task,
                TaskStatus::FailedToStart { error },
                &self.queue,
                &self.events,
            );
        };
        // Beneath the folder's handle, never through a symlink a cloned repository put there.
        let name = task.log_path.file_name().unwrap_or_default();
        let log = crate::workspace::open_state_folder(&self.log_dir, true)
            .and_then(|dir| dir.ok_or_else(|| std::io::ErrorKind::NotFound.into()))
            .and_then(|dir| dir.create(name))
            .map(cap_std::fs::File::into_std);
        match log {
            Ok(file) => {
                if let Ok(mut output) = task.output.lock() {
                    output.attach_log(file);
                }
            }
            Err(e) => return failed(format!("{}: {e}", task.log_display)),
        }
        let child =
            match process::spawn_shell(&task.command, &self.root, &self.launch, Some(&self.record))
            {
                Ok(child) => child,
                Err(e) => return failed(e.to_string()),
            };
        let canceller = child.canceller();
        let kill_now = task
            .state
            .lock()
            .map(|mut state| {
                state.canceller = Some(canceller.clone());
                state.pgid = Some(child.pgid());
                state.kill_reason.is_some()
            })
            .unwrap_or(false);
        if kill_now {
            canceller.cancel();
        }
        let end = child.run(
            task.timeout,
            GRACE,
            Duration::from_secs(2),
            SharedOutput(task.output.clone()),
        );
        let cap_hit = task.output.lock().map(|o| o.cap_hit).unwrap_or(false);
        let kill_reason = task.state.lock().ok().and_then(|s| s.kill_reason.clone());
        let status = match end.outcome {
            _ if cap_hit => TaskStatus::Killed {
                reason: "its output passed the log cap".into(),
            },
            Ok(WaitOutcome::Exited(status)) => {
                use std::os::unix::process::ExitStatusExt;
                match (status.code(), status.signal()) {
                    (Some(code), _) => TaskStatus::Completed { exit_code: code },
                    (None, Some(signal)) => match kill_reason {
                        Some(reason) => TaskStatus::Killed { reason },
                        None => TaskStatus::Signalled { signal },
                    },
                    (None, None) => TaskStatus::Signalled { signal: 0 },
                }
            }
            Ok(WaitOutcome::TimedOut) => TaskStatus::TimedOut {
                after_secs: task.timeout.map_or(0, |t| t.as_secs()),
            },
            Ok(WaitOutcome::Cancelled) => TaskStatus::Killed {
                reason: kill_reason.unwrap_or_else(|| "killed".into()),
            },
            Err(e) => TaskStatus::Killed {
                reason: format!("waiting for it failed: {e}"),
            },
        };
        finish(task, status, &self.queue, &self.events);
    }
}

/// Records a task's end and queues its notification. Called once per task.
fn finish(task: &Task, status: TaskStatus, queue: &NotificationQueue, events: &TaskEventSink) {
    let (tail, output_bytes) = task
        .output
        .lock()
        .map(|o| (o.buffer.tail_lines(NOTIFICATION_TAIL), o.buffer.total()))
        .unwrap_or_default();
    let runtime = task.started.elapsed();
    {
        let mut state = task
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.status = status.clone();
        state.ended = Some(Instant::now());
    }
    let notification = Notification {
        task_id: task.id.clone(),
        command: task.command.clone(),
        status,
        runtime,
        tail,
        output_bytes,
        log: task.log_display.clone(),
    };
    // The event first: whoever watches the events (`--json`) sees a task end before the
    // model is handed its result (the queue is drained before every model call).
    events(TaskEvent::Finished(notification.clone()));
    queue.push(notification);
}
