//! WebAssembly tool plugins: the wasmtime runtime, loading and caching, per-call stores with
//! limits, the host imports, and the grants that are the only way out of the sandbox.
//!
//! A plugin is a component of the `corral:plugin@0.1.0` world (`wit/`). At startup the plugin
//! folders are scanned; each component is compiled once (then cached), pre-instantiated, and
//! asked for its manifest. Every tool call gets a fresh `Store` with the plugin's grants (deny
//! by default), a deadline (epoch interruption), and a memory limit. A trap, a deadline or a
//! limit becomes an error result naming the cause, and the next call starts clean.

mod bindings;
mod cache;
mod engine;
mod grants;
mod loader;
mod output;
mod plugin;
mod state;
mod tool;

pub use cache::{Source, default_cache_dir};
pub use engine::Runtime;
pub use grants::{DirGrant, GUEST_ROOT, Grants};
pub use loader::{LoadError, PluginSet, load_dirs};
pub use plugin::{CallError, Capabilities, Limits, LoadedPlugin, Manifest, ToolInfo};
pub use state::{LogLevel, LogSink};
pub use tool::PluginTool;
