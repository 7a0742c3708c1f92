//! A loaded plugin: its manifest, its pre-instantiated component, and how one call runs.
//!
//! Calls are async (wasmtime's `call_async`): a call runs on the caller's task, yields to the
//! executor at every epoch tick, and is one future that owns its `Store`. When the deadline
//! passes, wherever the call is (running wasm, or waiting in a host call), the future is
//! dropped and with it the store: its file descriptors, memory, table and pool slot are back at
//! once. At most [`Runtime::max_concurrent`] calls are in flight; a call waiting for a slot
//! counts against its own deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::limits::{CallLimiter, Exceeded};
use wasmtime_wasi_http::WasiHttpCtx;

use super::bindings::{self, PluginPre};
use super::engine::Runtime;
use super::fs_guard::FsGuardState;
use super::output::{CapturedOutput, sanitize};
use super::state::{CallState, LogSink, NetworkGate};
use crate::policy::{Capabilities, Grants, Limits};

/// Bytes of guest stdout and stderr kept per call.
const CAPTURE_BYTES: usize = 64 * 1024;
/// Resource handles (files, streams, requests) one call may hold at once.
const MAX_HANDLES: usize = 10_000;
/// Bytes one guest-to-host call may transfer (wasmtime's "hostcall fuel"; its default is 128 MiB).
const HOSTCALL_FUEL: usize = 16 * 1024 * 1024;
/// Extra time past a call's deadline before the call's future is dropped, so that a guest
/// spinning in wasm is stopped by its epoch trap (and named as such) first.
const DROP_SLACK: Duration = Duration::from_millis(500);
/// The deadline of one `manifest` call at load time.
pub const MANIFEST_DEADLINE: Duration = Duration::from_secs(2);
/// The memory of one `manifest` call at load time.
const MANIFEST_MEMORY: usize = 64 * 1024 * 1024;

/// What a plugin says of itself (its `manifest` export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub tools: Vec<ToolInfo>,
    pub capabilities: Capabilities,
}

/// One tool of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    /// The JSON Schema text.
    pub input_schema: String,
}

/// How a call ended, when it did not return a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin said the input was wrong.
    #[error("{0}")]
    InvalidInput(String),
    /// The plugin said it failed.
    #[error("{0}")]
    Failed(String),
    /// The call ran past its deadline (in wasm or waiting in a host call) and was dropped.
    #[error("plugin {plugin}: exceeded its {} s deadline", timeout.as_secs_f64())]
    Deadline { plugin: String, timeout: Duration },
    /// The call trapped, ran out of memory or stack: the plugin is fine for the next call.
    #[error("plugin {plugin}: {cause}")]
    Contained { plugin: String, cause: String },
}

/// Why a manifest could not be read. A *lasting* cause (a trap, printing) is the same at every
/// start and is cached with the component; a passing one (the deadline, on a loaded machine)
/// is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub cause: String,
    pub lasting: bool,
}

impl ManifestError {
    fn lasting(cause: impl Into<String>) -> Self {
        Self {
            cause: cause.into(),
            lasting: true,
        }
    }

    fn passing(cause: impl Into<String>) -> Self {
        Self {
            cause: cause.into(),
            lasting: false,
        }
    }
}

/// A call's result text and what corral has to add to it (refused file operations, dropped
/// log bytes), for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutput {
    pub text: String,
    pub notes: Vec<String>,
}

/// A loaded plugin. Cheap to clone; calls may run concurrently, each in its own store.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub manifest: Arc<Manifest>,
    pub file: PathBuf,
    pub source: super::cache::Source,
    /// The sha256 of the component's bytes (hex): what an approval of its grants pins.
    pub sha256: String,
    pre: PluginPre<CallState>,
    runtime: Runtime,
    log: LogSink,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("manifest", &self.manifest)
            .field("file", &self.file)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Stdout and stderr of a call.
struct Captures {
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl LoadedPlugin {
    pub(super) fn new(
        pre: PluginPre<CallState>,
        runtime: Runtime,
        file: PathBuf,
        source: super::cache::Source,
        sha256: String,
        log: LogSink,
        manifest: Manifest,
    ) -> Self {
        Self {
            manifest: Arc::new(manifest),
            file,
            source,
            sha256,
            pre,
            runtime,
            log,
        }
    }

    /// Asks the component in `pre` for its manifest: no grants, [`MANIFEST_DEADLINE`], and
    /// nothing printed (a manifest must be a constant; one that prints, traps, blocks or runs
    /// out of time is refused with the cause).
    pub(super) async fn read_manifest(
        pre: &PluginPre<CallState>,
        runtime: &Runtime,
        log: &LogSink,
    ) -> Result<Manifest, ManifestError> {
        let limits = Limits {
            timeout: MANIFEST_DEADLINE,
            memory: MANIFEST_MEMORY,
        };
        let _slot = runtime
            .calls
            .acquire()
            .await
            .map_err(|_| ManifestError::passing("the plugin runtime is shutting down"))?;
        let (mut store, captures) = store(runtime, log, "(manifest)", &Grants::default(), limits);
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .corral_plugin_tools()
                .call_manifest(&mut store)
                .await
        };
        let raw = match tokio::time::timeout(limits.timeout + DROP_SLACK, call).await {
            Err(_) => {
                return Err(ManifestError::passing(format!(
                    "its manifest did not return within {} s",
                    limits.timeout.as_secs_f64()
                )));
            }
            Ok(Err(error)) if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                return Err(ManifestError::passing(format!(
                    "its manifest did not return within {} s",
                    limits.timeout.as_secs_f64()
                )));
            }
            Ok(Err(error)) => {
                let exceeded = store.data().limits.exceeded();
                let cause = describe_trap(&error, limits, exceeded, &captures.stderr.text());
                return Err(ManifestError::lasting(format!("its manifest {cause}")));
            }
            Ok(Ok(raw)) => raw,
        };
        for (stream, captured) in [("stdout", &captures.stdout), ("stderr", &captures.stderr)] {
            let text = captured.text();
            if !text.is_empty() {
                let first = sanitize(text.lines().next().unwrap_or(""));
                return Err(ManifestError::lasting(format!(
                    "its manifest printed to {stream} (a manifest must not print): {first}"
                )));
            }
        }
        Ok(convert(raw))
    }

    /// Runs `tool` on `input` in a fresh store with `grants` and `limits`, on the calling task.
    /// Waits for a call slot within the deadline; past the deadline the whole call is dropped.
    pub async fn call(
        &self,
        tool: &str,
        input: &str,
        grants: &Grants,
        limits: Limits,
    ) -> Result<CallOutput, CallError> {
        let name = self.manifest.name.clone();
        let started = Instant::now();
        let deadline = limits.timeout + DROP_SLACK;
        let missed = || CallError::Deadline {
            plugin: name.clone(),
            timeout: limits.timeout,
        };
        let slot = tokio::time::timeout(deadline, self.runtime.calls.acquire())
            .await
            .map_err(|_| missed())?
            .map_err(|_| missed())?;
        let (mut store, captures) = store(&self.runtime, &self.log, &name, grants, limits);
        let remaining = deadline.saturating_sub(started.elapsed());
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance
                .corral_plugin_tools()
                .call_call(&mut store, tool, input)
                .await
        };
        let result = tokio::time::timeout(remaining, call).await;
        drop(slot);
        let stdout = captures.stdout.text();
        let stderr = captures.stderr.text();
        if !stdout.is_empty() {
            tracing::info!(target: "corral::plugin", plugin = %name, tool, "stdout:\n{}", sanitize(&stdout));
        }
        if !stderr.is_empty() {
            tracing::info!(target: "corral::plugin", plugin = %name, tool, "stderr:\n{}", sanitize(&stderr));
        }
        let Ok(result) = result else {
            // The store went with the future: nothing of the call is held any more.
            return Err(missed());
        };
        let state = store.data_mut();
        let exceeded = state.limits.exceeded();
        let mut notes = Vec::new();
        notes.extend(state.fs.report());
        if let Some(dropped) = state.log_dropped() {
            (self.log)(&name, super::state::LogLevel::Warn, &dropped);
            notes.push(dropped);
        }
        drop(store);
        match result {
            Ok(Ok(text)) => Ok(CallOutput { text, notes }),
            Ok(Err(bindings::ToolError::InvalidInput(m))) => {
                Err(CallError::InvalidInput(with_notes(sanitize(&m), &notes)))
            }
            Ok(Err(bindings::ToolError::Failed(m))) => {
                Err(CallError::Failed(with_notes(sanitize(&m), &notes)))
            }
            Err(error) if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => Err(missed()),
            Err(error) => Err(CallError::Contained {
                plugin: name.clone(),
                cause: with_notes(describe_trap(&error, limits, exceeded, &stderr), &notes),
            }),
        }
    }
}

fn with_notes(text: String, notes: &[String]) -> String {
    if notes.is_empty() {
        return text;
    }
    format!("{text}\n[{}]", notes.join("; "))
}

/// A fresh store for one call of `plugin` with `grants` and `limits`. Its epoch deadline
/// yields to the executor at every tick and interrupts the guest once `limits.timeout` has
/// passed.
fn store(
    runtime: &Runtime,
    log: &LogSink,
    plugin: &str,
    grants: &Grants,
    limits: Limits,
) -> (Store<CallState>, Captures) {
    let captures = Captures {
        stdout: CapturedOutput::new(CAPTURE_BYTES),
        stderr: CapturedOutput::new(CAPTURE_BYTES),
    };
    let state = CallState {
        wasi: grants.wasi_ctx(captures.stdout.clone(), captures.stderr.clone()),
        table: {
            let mut table = ResourceTable::new();
            table.set_max_capacity(MAX_HANDLES);
            table
        },
        http: WasiHttpCtx::new(),
        hooks: NetworkGate {
            grants: Arc::new(grants.clone()),
            plugin: plugin.to_string(),
        },
        fs: FsGuardState::new(grants.files.guard().cloned(), grants.files.roots().to_vec()),
        limits: CallLimiter::new(limits.memory),
        plugin: plugin.to_string(),
        log: log.clone(),
        logged_bytes: 0,
        dropped_bytes: 0,
    };
    let mut store = Store::new(&runtime.engine, state);
    store.limiter(|state| &mut state.limits);
    store.set_hostcall_fuel(HOSTCALL_FUEL);
    let deadline = Instant::now().checked_add(limits.timeout);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(match deadline {
            Some(deadline) if Instant::now() < deadline => UpdateDeadline::Yield(1),
            _ => UpdateDeadline::Interrupt,
        })
    });
    (store, captures)
}

/// Names the cause of a trap the way the model and the user can act on it. `exceeded` is the
/// limit the store's limiter stopped the call at, if any.
fn describe_trap(
    error: &wasmtime::Error,
    limits: Limits,
    exceeded: Option<Exceeded>,
    stderr: &str,
) -> String {
    let last_stderr = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let detail = if last_stderr.is_empty() {
        String::new()
    } else {
        format!(" ({})", sanitize(last_stderr))
    };
    match (exceeded, error.downcast_ref::<Trap>()) {
        (Some(Exceeded::Memory), _) => format!(
            "exceeded its {} MiB memory limit{detail}",
            limits.memory / (1024 * 1024)
        ),
        (Some(Exceeded::Table), _) => format!(
            "exceeded its limit of {} table elements",
            super::limits::TABLE_ELEMENTS
        ),
        (None, Some(Trap::Interrupt)) => {
            format!("exceeded its {} s deadline", limits.timeout.as_secs_f64())
        }
        (None, Some(Trap::StackOverflow)) => "overflowed its stack".to_string(),
        // Rust and C guests keep a shadow stack at the bottom of linear memory: overflowing it
        // is an out-of-bounds access.
        (None, Some(Trap::MemoryOutOfBounds)) => {
            "overflowed its stack or accessed memory out of bounds".to_string()
        }
        (None, Some(Trap::UnreachableCodeReached)) => format!("panicked{detail}"),
        (None, Some(trap)) => format!("trapped: {trap}{detail}"),
        (None, None) => format!("failed: {}{detail}", sanitize(&format!("{error}"))),
    }
}

/// The manifest as corral keeps it: every text the user may see stripped of control
/// characters (names are checked against `[a-zA-Z0-9_-]` by the loader).
fn convert(raw: bindings::Manifest) -> Manifest {
    Manifest {
        name: raw.name,
        version: sanitize(&raw.version),
        description: sanitize(&raw.description),
        tools: raw
            .tools
            .into_iter()
            .map(|t| ToolInfo {
                name: t.name,
                description: sanitize(&t.description),
                input_schema: t.input_schema,
            })
            .collect(),
        capabilities: Capabilities {
            read: raw.capabilities.read.iter().map(|s| sanitize(s)).collect(),
            write: raw.capabilities.write.iter().map(|s| sanitize(s)).collect(),
            network: raw
                .capabilities
                .network
                .iter()
                .map(|s| sanitize(s))
                .collect(),
            env: raw.capabilities.env.iter().map(|s| sanitize(s)).collect(),
        },
    }
}
