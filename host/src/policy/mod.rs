//! The workspace policy: `corral.toml` (under the user's `~/.config/corral/config.toml`) says
//! what the shell and each plugin may touch. Deny by default: a plugin gets what it asked for
//! *and* was granted, nothing else; the model can never grant or widen anything.
//!
//! The grants become WASI preopens and the plugin's environment in one place,
//! [`Grants::wasi_ctx`], and the wasi:http hook's answer in one other, [`Grants::allows_host`].

mod effective;
mod file;
mod grants;
mod patterns;
mod settings;

pub use effective::{Rights, grants, rights};
pub use file::PolicyError;
pub use grants::{Capabilities, DirGrant, Files, GUEST_ROOT, Grants, Limits};
pub use patterns::{PathGrant, check_host, parse_path};
pub use settings::{
    AgentSettings, MAX_MEMORY_MB, MAX_TIMEOUT_MS, PluginPolicy, Policy, WORKSPACE_FILE, user_file,
};
