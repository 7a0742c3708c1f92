//! Effective rights: what a plugin asks for (its manifest) and what the workspace grants, both.
//! A grant nobody asked for gives nothing; a request nobody granted is reported as such.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::grants::{Capabilities, DirGrant, Grants};
use super::patterns::{self, PathGrant};
use super::settings::PluginPolicy;
use crate::workspace::Workspace;

/// Files copied into one view at most.
const MAX_VIEW_FILES: usize = 100_000;

/// The rights of one plugin, for `corral policy show` and `corral plugins`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rights {
    pub plugin: String,
    pub asked: Capabilities,
    pub granted: Capabilities,
    pub effective: Capabilities,
    /// Requests the workspace does not grant, e.g. `read **`.
    pub asked_not_granted: Vec<String>,
    /// Grants the plugin did not ask for (they give nothing), e.g. `network api.github.com`.
    pub granted_not_asked: Vec<String>,
}

/// Computes the effective rights of a plugin that asks for `asked` under `policy`.
pub fn rights(plugin: &str, asked: &Capabilities, policy: &PluginPolicy) -> Rights {
    let mut rights = Rights {
        plugin: plugin.to_string(),
        asked: asked.clone(),
        ..Default::default()
    };
    let show = |list: &[PathGrant]| list.iter().map(PathGrant::display).collect::<Vec<_>>();
    rights.granted = Capabilities {
        read: show(&policy.read),
        write: show(&policy.write),
        network: policy.network.clone(),
        env: policy.env.clone(),
    };
    let readers: Vec<&String> = asked.read.iter().chain(&asked.write).collect();
    for grant in &policy.read {
        if readers
            .iter()
            .any(|r| patterns::path_request_covers(r, grant))
        {
            rights.effective.read.push(grant.display());
        } else {
            rights
                .granted_not_asked
                .push(format!("read {}", grant.display()));
        }
    }
    for grant in &policy.write {
        if asked
            .write
            .iter()
            .any(|r| patterns::path_request_covers(r, grant))
        {
            rights.effective.write.push(grant.display());
        } else {
            rights
                .granted_not_asked
                .push(format!("write {}", grant.display()));
        }
    }
    for grant in &policy.network {
        if asked
            .network
            .iter()
            .any(|r| patterns::host_request_covers(r, grant))
        {
            rights.effective.network.push(grant.clone());
        } else {
            rights.granted_not_asked.push(format!("network {grant}"));
        }
    }
    for grant in &policy.env {
        if asked
            .env
            .iter()
            .any(|r| patterns::env_request_covers(r, grant))
        {
            rights.effective.env.push(grant.clone());
        } else {
            rights.granted_not_asked.push(format!("env {grant}"));
        }
    }
    let covered_path =
        |r: &str, list: &[PathGrant]| list.iter().any(|g| patterns::path_request_covers(r, g));
    for r in &asked.read {
        if !covered_path(r, &policy.read) && !covered_path(r, &policy.write) {
            rights.asked_not_granted.push(format!("read {r}"));
        }
    }
    for r in &asked.write {
        if !covered_path(r, &policy.write) {
            rights.asked_not_granted.push(format!("write {r}"));
        }
    }
    for r in &asked.network {
        if !policy
            .network
            .iter()
            .any(|g| patterns::host_request_covers(r, g))
        {
            rights.asked_not_granted.push(format!("network {r}"));
        }
    }
    for r in &asked.env {
        if !policy
            .env
            .iter()
            .any(|g| patterns::env_request_covers(r, g))
        {
            rights.asked_not_granted.push(format!("env {r}"));
        }
    }
    rights
}

/// Turns effective rights into the runtime's [`Grants`]: folder grants become preopens under
/// `/workspace` (read-write where writing is granted); file and glob grants are gathered into
/// a read-only view folder (`.corral/views/<plugin>`, hard links of the matching files, made
/// anew at each start) mounted at `/workspace`. Symlinks are never put in a view.
pub fn grants(
    workspace: &Workspace,
    rights: &Rights,
    policy: &PluginPolicy,
) -> std::io::Result<Grants> {
    let effective_read: Vec<&PathGrant> = policy
        .read
        .iter()
        .filter(|g| rights.effective.read.contains(&g.display()))
        .collect();
    let effective_write: Vec<&PathGrant> = policy
        .write
        .iter()
        .filter(|g| rights.effective.write.contains(&g.display()))
        .collect();
    let mut grants = Grants {
        network: rights.effective.network.clone(),
        env: rights.effective.env.clone(),
        ..Default::default()
    };
    let mut folders: Vec<(String, bool)> = Vec::new();
    for grant in effective_write {
        folders.push((grant.base().to_string(), true));
    }
    let mut files = Vec::new();
    for grant in effective_read {
        match grant {
            PathGrant::Folder { rel } => {
                if !folders.iter().any(|(f, _)| f == rel) {
                    folders.push((rel.clone(), false));
                }
            }
            other => files.push(other.clone()),
        }
    }
    let whole = folders.iter().any(|(f, _)| f.is_empty());
    if !files.is_empty() && !whole {
        let view = workspace.state_dir().join("views").join(&rights.plugin);
        build_view(workspace.root(), &view, &files, &folders)?;
        grants.dirs.push(DirGrant {
            host: view,
            relative: String::new(),
            writable: false,
        });
    }
    for (rel, writable) in folders {
        let host = workspace.root().join(&rel);
        if host.is_dir() {
            grants.dirs.push(DirGrant {
                host,
                relative: rel,
                writable,
            });
        }
    }
    Ok(grants)
}

/// Fills `view` with hard links (copies where linking fails) of the workspace files matching
/// `files`, and empty folders where folder grants will be mounted.
fn build_view(
    root: &Path,
    view: &Path,
    files: &[PathGrant],
    folders: &[(String, bool)],
) -> std::io::Result<()> {
    if view.exists() {
        std::fs::remove_dir_all(view)?;
    }
    std::fs::create_dir_all(view)?;
    for (rel, _) in folders {
        std::fs::create_dir_all(view.join(rel))?;
    }
    let mut count = 0;
    for grant in files {
        let start = root.join(grant.base());
        let mut stack: Vec<PathBuf> = vec![start];
        while let Some(path) = stack.pop() {
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let rel_text = rel.to_string_lossy().replace('\\', "/");
            if meta.is_dir() {
                if rel_text == ".corral" || rel_text.ends_with("/.git") || rel_text == ".git" {
                    continue;
                }
                if let Ok(entries) = std::fs::read_dir(&path) {
                    stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
                }
            } else if meta.is_file() {
                let matches = match grant {
                    PathGrant::File { rel } => *rel == rel_text,
                    PathGrant::Glob { matcher, .. } => matcher.is_match(&rel_text),
                    PathGrant::Folder { .. } => false,
                };
                if matches && count < MAX_VIEW_FILES {
                    let target = view.join(rel);
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    if !target.exists() && std::fs::hard_link(&path, &target).is_err() {
                        std::fs::copy(&path, &target)?;
                    }
                    count += 1;
                }
            }
        }
    }
    Ok(())
}
