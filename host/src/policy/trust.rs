//! Workspace trust, as Claude Code and Codex do it: a workspace's `corral.toml` comes with the
//! folder (a cloned repository, an unpacked archive), so it is untrusted until the user says
//! otherwise with `corral trust` (or yes at `corral chat`'s prompt). Trusting records the
//! sha256 of the file's bytes in the user's config folder (`~/.config/corral/trusted.toml`,
//! keyed by the workspace's canonical path); any later change to the file, by anyone, makes it
//! untrusted again until it is trusted anew.
//!
//! Untrusted, the file may only *narrow* what the user's own settings allow: disable the shell,
//! disable plugins, lower limits, timeouts and turns, shorten the shell's environment. It never
//! chooses the provider, the endpoint (where the API key goes) or the model, never grants a
//! plugin anything, never adds plugin folders, never raises a limit. Each setting it is not
//! allowed is [`Ignored`], and named in [`WorkspaceTrust::warning`].

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::{Store, StoreError, workspace_key};

/// The user's record of trusted workspace files, in their config folder.
pub const TRUST_FILE: &str = "trusted.toml";

const TRUST_HEADER: &str = "# The workspaces whose corral.toml you trust, by canonical path, with the sha256 of the\n# file you trusted. Written by `corral trust`; `corral trust --revoke` removes one.";

/// Whether a workspace's `corral.toml` is trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustStatus {
    /// The workspace has no `corral.toml`: nothing to trust.
    #[default]
    NoFile,
    /// Trusted, with exactly these bytes.
    Trusted,
    /// Never trusted (or the trust was revoked).
    Untrusted,
    /// Trusted once, but the file changed since: untrusted until trusted anew.
    Changed,
}

impl TrustStatus {
    pub fn is_trusted(self) -> bool {
        self == TrustStatus::Trusted
    }
}

/// A setting of an untrusted `corral.toml` that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Where it is, as the file says it: `[agent] base_url`, `[plugin.grep] read`.
    pub setting: String,
    /// Why an untrusted file may not set it: "it would choose where the API key goes".
    pub reason: String,
}

/// What `corral policy show` and the warning line say about the workspace file's trust.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkspaceTrust {
    /// The workspace's `corral.toml`, when there is one.
    pub file: Option<PathBuf>,
    /// The sha256 of the bytes read (hex).
    pub sha256: Option<String>,
    pub status: TrustStatus,
    /// The settings not applied because the file is not trusted.
    pub ignored: Vec<Ignored>,
}

impl WorkspaceTrust {
    /// One line for stderr naming every ignored setting, or `None` when nothing was ignored:
    /// `corral.toml is not trusted: ignoring [agent] base_url, [plugin.grep] read; run
    /// `corral trust``.
    pub fn warning(&self) -> Option<String> {
        if self.ignored.is_empty() {
            return None;
        }
        let names: Vec<&str> = self.ignored.iter().map(|i| i.setting.as_str()).collect();
        let (state, hint) = match self.status {
            TrustStatus::Changed => (
                "changed since you trusted it",
                "run `corral trust` to trust it as it is now",
            ),
            _ => ("is not trusted", "run `corral trust`"),
        };
        Some(format!(
            "{} {state}: ignoring {}; {hint}",
            super::WORKSPACE_FILE,
            names.join(", ")
        ))
    }
}

/// The sha256 of a file's bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The user's trusted workspaces: `trusted.toml` in their config folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStore {
    store: Store,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustRecord {
    #[serde(default)]
    workspace: BTreeMap<String, TrustEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustEntry {
    /// The sha256 of the `corral.toml` trusted.
    sha256: String,
}

impl TrustStore {
    /// The record in the config folder `dir` (`~/.config/corral`).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            store: Store::new(dir.join(TRUST_FILE), TRUST_HEADER),
        }
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The trust of the workspace at `root` whose `corral.toml` has `sha256` (`None`: no file).
    pub fn status(&self, root: &Path, sha256: Option<&str>) -> Result<TrustStatus, StoreError> {
        let Some(sha256) = sha256 else {
            return Ok(TrustStatus::NoFile);
        };
        let key = workspace_key(root)?;
        let record: TrustRecord = self.store.read()?;
        Ok(match record.workspace.get(&key) {
            Some(entry) if entry.sha256 == sha256 => TrustStatus::Trusted,
            Some(_) => TrustStatus::Changed,
            None => TrustStatus::Untrusted,
        })
    }

    /// Trusts the workspace at `root` whose `corral.toml` has `sha256`, replacing an earlier
    /// trust of it.
    pub fn trust(&self, root: &Path, sha256: &str) -> Result<(), StoreError> {
        let key = workspace_key(root)?;
        self.store.update(|record: &mut TrustRecord| {
            record.workspace.insert(
                key,
                TrustEntry {
                    sha256: sha256.to_string(),
                },
            );
        })
    }

    /// Forgets the trust of the workspace at `root`; whether it was trusted.
    pub fn revoke(&self, root: &Path) -> Result<bool, StoreError> {
        let key = workspace_key(root)?;
        self.store
            .update(|record: &mut TrustRecord| record.workspace.remove(&key).is_some())
    }
}

/// Decides, setting by setting, what a workspace file may apply over the user's settings, and
/// collects what it may not. A trusted file (and the user's own) may apply everything.
#[derive(Debug)]
pub(super) struct Gate {
    trusted: bool,
    pub(super) ignored: Vec<Ignored>,
}

impl Gate {
    pub(super) fn new(trusted: bool) -> Self {
        Self {
            trusted,
            ignored: Vec::new(),
        }
    }

    fn ignore(&mut self, setting: impl Into<String>, reason: impl Into<String>) -> bool {
        self.ignored.push(Ignored {
            setting: setting.into(),
            reason: reason.into(),
        });
        false
    }

    /// A setting that chooses something (the provider, the endpoint, the model) rather than
    /// narrowing: applied when trusted, or when it says what is already there.
    pub(super) fn choice(&mut self, setting: &str, same: bool, reason: &str) -> bool {
        self.trusted || same || self.ignore(setting, reason)
    }

    /// A setting that grants or widens (a plugin's grants, plugin folders, the shell turned
    /// back on, a wider environment): applied only when trusted.
    pub(super) fn widening(&mut self, setting: &str, reason: &str) -> bool {
        self.trusted || self.ignore(setting, reason)
    }

    /// A limit: applied when trusted, or when it is no higher than `current`, what the user's
    /// settings (or the defaults) give.
    pub(super) fn limit<T: PartialOrd + Display>(
        &mut self,
        setting: &str,
        value: T,
        current: T,
        unit: &str,
    ) -> bool {
        self.trusted
            || value <= current
            || self.ignore(
                setting,
                format!("it would raise {current}{unit} to {value}{unit}"),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_follows_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::in_dir(dir.path());
        let root = Path::new("/home/me/project");
        let a = sha256_hex(b"[agent]\n");
        let b = sha256_hex(b"[agent]\nbase_url = \"http://evil\"\n");
        assert_eq!(store.status(root, None).unwrap(), TrustStatus::NoFile);
        assert_eq!(
            store.status(root, Some(&a)).unwrap(),
            TrustStatus::Untrusted
        );
        store.trust(root, &a).unwrap();
        assert_eq!(store.status(root, Some(&a)).unwrap(), TrustStatus::Trusted);
        assert_eq!(store.status(root, Some(&b)).unwrap(), TrustStatus::Changed);
        assert_eq!(
            store.status(Path::new("/home/me/other"), Some(&a)).unwrap(),
            TrustStatus::Untrusted,
            "trust is per workspace"
        );
        assert!(store.revoke(root).unwrap());
        assert!(!store.revoke(root).unwrap());
        assert_eq!(
            store.status(root, Some(&a)).unwrap(),
            TrustStatus::Untrusted
        );
    }

    #[test]
    fn the_warning_names_every_ignored_setting() {
        let mut gate = Gate::new(false);
        assert!(!gate.choice("[agent] base_url", false, "x"));
        assert!(
            gate.choice("[agent] model", true, "x"),
            "the same value is no choice"
        );
        assert!(!gate.widening("[plugin.grep] read", "x"));
        assert!(gate.limit("[agent] max_turns", 10, 50, ""));
        assert!(!gate.limit("[shell] timeout_secs", 600, 120, " s"));
        let trust = WorkspaceTrust {
            status: TrustStatus::Untrusted,
            ignored: gate.ignored,
            ..Default::default()
        };
        assert_eq!(
            trust.warning().unwrap(),
            "corral.toml is not trusted: ignoring [agent] base_url, [plugin.grep] read, [shell] timeout_secs; run `corral trust`"
        );
        assert_eq!(trust.ignored[2].reason, "it would raise 120 s to 600 s");
        let mut trusted = Gate::new(true);
        assert!(trusted.widening("[plugin.grep] read", "x") && trusted.ignored.is_empty());
    }
}
