//! Grants pinned to the component, not its name. A plugin names itself in its manifest, so a
//! name alone proves nothing: granting a plugin also takes the user's approval of its exact
//! component, the sha256 of its `.wasm` bytes, recorded in the user's config folder
//! (`~/.config/corral/approved.toml`, per workspace and plugin name) by `corral policy approve`
//! or a yes at `corral chat`'s prompt.
//!
//! A plugin whose component is not the approved one (never approved, or changed since) still
//! loads and runs, as a pure function: it gets **no grants** (no files, hosts or variables)
//! until approved again. A plugin that would get nothing from the workspace needs no approval.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::store::{Store, StoreError, workspace_key};

/// The user's record of approved plugin components, in their config folder.
pub const APPROVALS_FILE: &str = "approved.toml";

/// Hex digits of a sha256 shown in text (the JSON has all 64).
const SHOWN_HEX: usize = 16;

const APPROVALS_HEADER: &str = "# The plugin components whose grants you approved, per workspace (by canonical path):\n# plugin name = the sha256 of its .wasm. Written by `corral policy approve`.";

/// The approved components of one workspace: plugin name to sha256.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Approvals(BTreeMap<String, String>);

impl Approvals {
    /// The approved sha256 of plugin `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Records an approval in memory (after the store recorded it).
    pub fn insert(&mut self, name: &str, sha256: &str) {
        self.0.insert(name.to_string(), sha256.to_string());
    }
}

/// Whether a plugin's grants apply: its component against the user's approval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Approval {
    /// The workspace grants it nothing it asked for: there is nothing to approve.
    #[default]
    NotNeeded,
    /// This component was approved: its grants apply.
    Approved { sha256: String },
    /// Never approved in this workspace: grants withheld.
    NotApproved { sha256: String },
    /// Another component was approved under this name: grants withheld.
    Changed { sha256: String, approved: String },
}

impl Approval {
    /// The approval of a component with `sha256` that the workspace would grant something
    /// (`needed`), given the approved sha256 of its name.
    pub fn decide(needed: bool, sha256: &str, approved: Option<&str>) -> Approval {
        let sha256 = sha256.to_string();
        match approved {
            _ if !needed => Approval::NotNeeded,
            Some(a) if a == sha256 => Approval::Approved { sha256 },
            Some(a) => Approval::Changed {
                sha256,
                approved: a.to_string(),
            },
            None => Approval::NotApproved { sha256 },
        }
    }

    /// Whether the plugin's grants are withheld.
    pub fn withholds(&self) -> bool {
        matches!(
            self,
            Approval::NotApproved { .. } | Approval::Changed { .. }
        )
    }
}

fn short(sha256: &str) -> &str {
    sha256.get(..SHOWN_HEX).unwrap_or(sha256)
}

/// `approved (sha256 ...)`, `grants withheld: not approved (sha256 ...)`, `grants withheld:
/// changed since approved (sha256 ..., approved ...)`, `no approval needed`.
impl fmt::Display for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Approval::NotNeeded => f.write_str("no approval needed"),
            Approval::Approved { sha256 } => write!(f, "approved (sha256 {})", short(sha256)),
            Approval::NotApproved { sha256 } => {
                write!(
                    f,
                    "grants withheld: not approved (sha256 {})",
                    short(sha256)
                )
            }
            Approval::Changed { sha256, approved } => write!(
                f,
                "grants withheld: changed since approved (sha256 {}, approved {})",
                short(sha256),
                short(approved)
            ),
        }
    }
}

/// The user's approved components: `approved.toml` in their config folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalStore {
    store: Store,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalRecord {
    #[serde(default)]
    workspace: BTreeMap<String, BTreeMap<String, String>>,
}

impl ApprovalStore {
    /// The record in the config folder `dir` (`~/.config/corral`).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            store: Store::new(dir.join(APPROVALS_FILE), APPROVALS_HEADER),
        }
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The approvals of the workspace at `root`.
    pub fn for_workspace(&self, root: &Path) -> Result<Approvals, StoreError> {
        let key = workspace_key(root)?;
        let mut record: ApprovalRecord = self.store.read()?;
        Ok(Approvals(record.workspace.remove(&key).unwrap_or_default()))
    }

    /// Approves each `(name, sha256)` in the workspace at `root`, replacing earlier approvals
    /// of those names.
    pub fn approve(&self, root: &Path, plugins: &[(String, String)]) -> Result<(), StoreError> {
        let key = workspace_key(root)?;
        self.store.update(|record: &mut ApprovalRecord| {
            let approved = record.workspace.entry(key).or_default();
            for (name, sha256) in plugins {
                approved.insert(name.clone(), sha256.clone());
            }
        })
    }

    /// Forgets the approvals of `names` (all of the workspace's when empty) in the workspace at
    /// `root`; the names that were approved.
    pub fn revoke(&self, root: &Path, names: &[String]) -> Result<Vec<String>, StoreError> {
        let key = workspace_key(root)?;
        self.store.update(|record: &mut ApprovalRecord| {
            let Some(approved) = record.workspace.get_mut(&key) else {
                return Vec::new();
            };
            let removed: Vec<String> = if names.is_empty() {
                std::mem::take(approved).into_keys().collect()
            } else {
                names
                    .iter()
                    .filter(|n| approved.remove(n.as_str()).is_some())
                    .cloned()
                    .collect()
            };
            if approved.is_empty() {
                record.workspace.remove(&key);
            }
            removed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_pin_the_hash_per_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::in_dir(dir.path());
        let ws = Path::new("/home/me/project");
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        store.approve(ws, &[("grep".into(), a.clone())]).unwrap();
        let approvals = store.for_workspace(ws).unwrap();
        assert_eq!(
            Approval::decide(true, &a, approvals.get("grep")),
            Approval::Approved { sha256: a.clone() }
        );
        let changed = Approval::decide(true, &b, approvals.get("grep"));
        assert!(changed.withholds());
        assert_eq!(
            changed.to_string(),
            "grants withheld: changed since approved (sha256 bbbbbbbbbbbbbbbb, approved aaaaaaaaaaaaaaaa)"
        );
        let other = store.for_workspace(Path::new("/elsewhere")).unwrap();
        assert_eq!(
            Approval::decide(true, &a, other.get("grep")).to_string(),
            "grants withheld: not approved (sha256 aaaaaaaaaaaaaaaa)",
            "approvals are per workspace"
        );
        assert_eq!(
            Approval::decide(false, &b, None),
            Approval::NotNeeded,
            "nothing granted, nothing to approve"
        );
        assert_eq!(store.revoke(ws, &[]).unwrap(), ["grep"]);
        assert_eq!(store.for_workspace(ws).unwrap(), Approvals::default());
    }
}
