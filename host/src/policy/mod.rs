//! The workspace policy: `corral.toml` (under the user's `~/.config/corral/config.toml`) says
//! what the shell and each plugin may touch. Deny by default: a plugin gets what it asked for
//! *and* was granted, nothing else; the model can never grant or widen anything.
//!
//! Two records in the user's config folder decide how far the workspace's file is believed:
//! [`TrustStore`] (is this `corral.toml`, byte for byte, trusted? untrusted, it may only
//! narrow) and [`ApprovalStore`] (is this plugin component, by sha256, the one approved? if
//! not, its grants are withheld).
//!
//! The grants become WASI preopens and the plugin's environment in one place,
//! [`Grants::wasi_ctx`], and the wasi:http hook's answer in one other, [`Grants::allows_host`].

mod approval;
mod effective;
mod file;
mod grants;
mod patterns;
mod settings;
mod store;
mod trust;

pub use approval::{APPROVALS_FILE, Approval, ApprovalStore, Approvals};
pub use effective::{GrantSet, Kind, Request, Rights, grants, rights};
pub use file::{MAX_SETTINGS_BYTES, PolicyError, SettingsFiles};
pub use grants::{Capabilities, DirGrant, Files, GUEST_ROOT, Grants, Limits};
pub use patterns::{EnvName, HostPattern, PathGrant, parse_path};
pub use settings::{
    AgentSettings, MAX_MEMORY_MB, MAX_TIMEOUT_MS, PluginPolicy, Policy, WORKSPACE_FILE, config_dir,
    user_file,
};
pub use store::{LOCK_TIMEOUT, MAX_STORE_BYTES, StoreError};
pub use trust::{Ignored, TRUST_FILE, TrustStatus, TrustStore, WorkspaceTrust, sha256_hex};
