//! WebAssembly tool plugins: the wasmtime runtime, loading and caching, per-call stores with
//! limits, the host imports, and the grants that are the only way out of the sandbox.
//!
//! A plugin is a component of the `corral:plugin@0.1.0` world (`wit/`). At startup the plugin
//! folders are scanned; each component is compiled once (then cached), pre-instantiated, and
//! asked for its manifest. Every tool call gets a fresh `Store` with the plugin's grants (deny
//! by default), a deadline (epoch interruption), and a memory limit. A trap, a deadline or a
//! limit becomes an error result naming the cause, and the next call starts clean. What a call
//! may reach comes from [`crate::policy`]: its [`Grants`] and [`Limits`].

mod bindings;
mod cache;
mod engine;
mod fs_guard;
mod limits;
mod loader;
mod output;
mod plugin;
mod state;
mod tool;
mod workspace;

pub use cache::{Source, default_cache_dir};
pub use engine::{DEFAULT_MAX_CONCURRENT, Runtime};
pub use loader::{LoadError, MAX_MANIFEST_TEXT, MAX_TOOLS, PluginSet, any_plugin, load_dirs};
pub use output::sanitize;
pub use plugin::{CallError, CallOutput, LoadedPlugin, MANIFEST_DEADLINE, Manifest, ToolInfo};
pub use state::LOG_BYTES_PER_CALL;
pub use tool::RESULT_BYTES_TO_MODEL;
// The policy types a plugin call takes, for callers that build them directly.
pub use crate::policy::{Capabilities, DirGrant, Files, GUEST_ROOT, Grants, Limits};
pub use state::{LogLevel, LogSink};
pub use tool::PluginTool;
pub use workspace::{WorkspacePlugins, plugin_dirs};
