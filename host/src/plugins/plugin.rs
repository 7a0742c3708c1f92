//! A loaded plugin: its manifest, its pre-instantiated component, and how one call runs.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder, Trap};
use wasmtime_wasi_http::WasiHttpCtx;

use super::bindings::{self, PluginPre};
use super::engine::{EPOCH_TICK, Runtime};
use super::output::CapturedOutput;
use super::state::{CallState, LogSink, NetworkGate};
use crate::policy::{Capabilities, Grants, Limits};

/// Bytes of guest stdout and stderr kept per call.
const CAPTURE_BYTES: usize = 64 * 1024;
/// Resource handles (files, streams, requests) one call may hold at once.
const MAX_HANDLES: usize = 10_000;
/// Bytes one guest-to-host call may transfer (wasmtime's "hostcall fuel"; its default is 128 MiB).
const HOSTCALL_FUEL: usize = 16 * 1024 * 1024;

/// What a plugin says of itself (its `manifest` export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub tools: Vec<ToolInfo>,
    pub capabilities: Capabilities,
}

/// One tool of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// The call trapped, ran out of time or memory: the plugin is fine for the next call.
    #[error("plugin {plugin}: {cause}")]
    Contained { plugin: String, cause: String },
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
    ) -> wasmtime::Result<Self> {
        let mut plugin = Self {
            manifest: Arc::new(Manifest {
                name: file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                version: String::new(),
                description: String::new(),
                tools: Vec::new(),
                capabilities: Capabilities::default(),
            }),
            file,
            source,
            sha256,
            pre,
            runtime,
            log,
        };
        let (mut store, _captures) = plugin.store(&Grants::default(), Limits::default())?;
        let instance = plugin.pre.instantiate(&mut store)?;
        let raw = instance.corral_plugin_tools().call_manifest(&mut store)?;
        plugin.manifest = Arc::new(convert(raw));
        Ok(plugin)
    }

    fn store(
        &self,
        grants: &Grants,
        limits: Limits,
    ) -> wasmtime::Result<(Store<CallState>, Captures)> {
        let captures = Captures {
            stdout: CapturedOutput::new(CAPTURE_BYTES),
            stderr: CapturedOutput::new(CAPTURE_BYTES),
        };
        let state = CallState {
            wasi: grants.wasi_ctx(captures.stdout.clone(), captures.stderr.clone())?,
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_HANDLES);
                table
            },
            http: WasiHttpCtx::new(),
            hooks: NetworkGate {
                grants: Arc::new(grants.clone()),
                plugin: self.manifest.name.clone(),
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory)
                .instances(16)
                .tables(64)
                .memories(16)
                .trap_on_grow_failure(true)
                .build(),
            plugin: self.manifest.name.clone(),
            log: self.log.clone(),
            logged: 0,
        };
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        let ticks = (limits.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX / 2));
        store.epoch_deadline_trap();
        Ok((store, captures))
    }

    /// Runs `tool` on `input` in a fresh store with `grants` and `limits`. Blocking: call it
    /// off the async executor.
    pub fn call_blocking(
        &self,
        tool: &str,
        input: &str,
        grants: &Grants,
        limits: Limits,
    ) -> Result<String, CallError> {
        let name = self.manifest.name.clone();
        let contained = |cause: String| CallError::Contained {
            plugin: name.clone(),
            cause,
        };
        let (mut store, captures) = self
            .store(grants, limits)
            .map_err(|e| contained(format!("could not set up the call: {e}")))?;
        let result = self.pre.instantiate(&mut store).and_then(|instance| {
            instance
                .corral_plugin_tools()
                .call_call(&mut store, tool, input)
        });
        let stdout = captures.stdout.text();
        let stderr = captures.stderr.text();
        if !stdout.is_empty() {
            tracing::info!(target: "corral::plugin", plugin = %name, tool, "stdout:\n{stdout}");
        }
        if !stderr.is_empty() {
            tracing::info!(target: "corral::plugin", plugin = %name, tool, "stderr:\n{stderr}");
        }
        match result {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(bindings::ToolError::InvalidInput(m))) => Err(CallError::InvalidInput(m)),
            Ok(Err(bindings::ToolError::Failed(m))) => Err(CallError::Failed(m)),
            Err(error) => Err(contained(describe_trap(&error, limits, &stderr))),
        }
    }
}

/// Names the cause of a trap the way the model and the user can act on it.
fn describe_trap(error: &wasmtime::Error, limits: Limits, stderr: &str) -> String {
    let last_stderr = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let detail = if last_stderr.is_empty() {
        String::new()
    } else {
        format!(" ({last_stderr})")
    };
    let text = format!("{error:?}");
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            format!("exceeded its {} s deadline", limits.timeout.as_secs_f64())
        }
        Some(Trap::StackOverflow) => "overflowed its stack".to_string(),
        // Rust and C guests keep a shadow stack at the bottom of linear memory: overflowing it
        // is an out-of-bounds access.
        Some(Trap::MemoryOutOfBounds) => {
            "overflowed its stack or accessed memory out of bounds".to_string()
        }
        Some(Trap::UnreachableCodeReached)
            if text.contains("memory") || stderr.contains("memory allocation") =>
        {
            format!(
                "exceeded its {} MiB memory limit{detail}",
                limits.memory / (1024 * 1024)
            )
        }
        Some(Trap::UnreachableCodeReached) => format!("panicked{detail}"),
        Some(trap) => format!("trapped: {trap}{detail}"),
        None if text.contains("grow") || text.contains("memory") => {
            format!(
                "exceeded its {} MiB memory limit",
                limits.memory / (1024 * 1024)
            )
        }
        None => format!("failed: {error}{detail}"),
    }
}

fn convert(raw: bindings::Manifest) -> Manifest {
    Manifest {
        name: raw.name,
        version: raw.version,
        description: raw.description,
        tools: raw
            .tools
            .into_iter()
            .map(|t| ToolInfo {
                name: t.name,
                description: t.description,
                input_schema: t.input_schema,
            })
            .collect(),
        capabilities: Capabilities {
            read: raw.capabilities.read,
            write: raw.capabilities.write,
            network: raw.capabilities.network,
            env: raw.capabilities.env,
        },
    }
}
