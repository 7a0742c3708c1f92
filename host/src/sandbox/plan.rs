//! The plan a helper confines itself by: fixed once per agent from the user's settings and the
//! workspace, handed to the helper as JSON in its arguments. Every path in it is absolute and
//! canonical where it exists, so the helper never resolves anything the settings did not name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{SandboxMode, SandboxSettings};
use crate::workspace::{POLICY_FILE, STATE_DIR};

/// The network a confined command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetPlan {
    /// Unix sockets only.
    Off,
    /// Everything.
    On,
    /// TCP to corral's proxy on loopback, at this port, and Unix sockets.
    Proxy { port: u16 },
}

/// What one confined command may touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The workspace root.
    pub workspace: PathBuf,
    /// Whether commands may write beneath the workspace (`"workspace"` mode).
    pub workspace_writable: bool,
    /// Entries of the workspace that stay read-only whatever the mode: the policy file and
    /// corral's state folder.
    pub protected: Vec<PathBuf>,
    /// Folders and files commands may write besides the workspace: the temp folders, the
    /// devices every tool writes to, `[shell] writable`.
    pub writable: Vec<PathBuf>,
    /// Paths commands may not read.
    pub hidden: Vec<PathBuf>,
    pub network: NetPlan,
    /// Whether the helper tries a mount namespace first (it does unless [`NO_NAMESPACES_ENV`]
    /// is set to `1` in corral's environment, which checks the Landlock-only way).
    pub namespaces: bool,
}

/// Set to `1` in corral's environment, the helper skips the mount namespace and confines
/// commands the Landlock-only way, as on a system without user namespaces.
pub const NO_NAMESPACES_ENV: &str = "CORRAL_SANDBOX_NO_NAMESPACES";

/// Entries of a git repository at the workspace root that would run code outside the
/// sandbox later (hooks, `core.hooksPath`, `core.fsmonitor`): read-only to commands when they
/// exist (in a mount namespace; the Landlock-only way cannot protect them).
const GIT_PROTECTED: &[&str] = &[".git/hooks", ".git/config"];

/// The entries of `workspace` that stay read-only: the policy file and the state folder always,
/// the git entries that exist.
fn protected(workspace: &Path) -> Vec<PathBuf> {
    [POLICY_FILE, STATE_DIR]
        .iter()
        .map(|name| workspace.join(name))
        .chain(
            GIT_PROTECTED
                .iter()
                .map(|rel| workspace.join(rel))
                .filter(|p| p.exists()),
        )
        .collect()
}

/// Devices commands may write (and use): the sinks and sources every tool expects, and
/// terminals.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
];

/// The temp folders commands may write, as Codex allows: `/tmp`, `/var/tmp` and `$TMPDIR`.
fn temp_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/tmp"), PathBuf::from("/var/tmp")];
    if let Some(tmp) = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()) {
        dirs.push(PathBuf::from(tmp));
    }
    dirs
}

/// The canonical form of `path` when it exists (a symlink's target is what the kernel
/// checks), else the path as given.
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

impl Plan {
    /// The paths whose coming, going or replacement makes this plan (and the mounts and rules
    /// made from it) out of date: every entry that would be protected if it existed, and every
    /// hidden path.
    pub fn watched(&self) -> Vec<PathBuf> {
        [POLICY_FILE, STATE_DIR]
            .iter()
            .chain(GIT_PROTECTED)
            .map(|rel| self.workspace.join(rel))
            .chain(self.hidden.iter().cloned())
            .collect()
    }

    /// This plan with its protected entries as the disk shows them now (a `.git/config` made
    /// since counts).
    pub fn refreshed(&self) -> Self {
        Self {
            protected: protected(&self.workspace),
            ..self.clone()
        }
    }

    pub fn new(settings: &SandboxSettings, workspace: &Path, network: NetPlan) -> Self {
        let workspace = canonical(workspace);
        let protected = protected(&workspace);
        let mut writable: Vec<PathBuf> = temp_dirs()
            .into_iter()
            .chain(DEVICES.iter().map(PathBuf::from))
            .chain(settings.writable.iter().cloned())
            .map(|p| canonical(&p))
            .collect();
        writable.sort();
        writable.dedup();
        // A hidden path that holds the workspace would hide the work itself: the workspace wins.
        let mut hidden: Vec<PathBuf> = settings
            .hidden
            .iter()
            .map(|p| canonical(p))
            .filter(|p| !workspace.starts_with(p))
            .collect();
        hidden.sort();
        hidden.dedup();
        Self {
            workspace,
            workspace_writable: settings.mode == SandboxMode::Workspace,
            protected,
            writable,
            hidden,
            network,
            namespaces: std::env::var_os(NO_NAMESPACES_ENV).is_none_or(|v| v != "1"),
        }
    }
}
