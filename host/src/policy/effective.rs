//! Effective rights: what a plugin asks for (its manifest) and what the workspace grants, both.
//! A grant nobody asked for gives nothing; a request nobody granted is reported as such.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::grants::{Capabilities, DirGrant, Files, Grants};
use super::patterns::{self, PathGrant};
use super::settings::PluginPolicy;
use crate::workspace::{PROTECTED, Workspace};

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
/// `/workspace` (read-write where writing is granted), each opened once, beneath the
/// workspace's handle; file and glob grants are gathered into a read-only view folder
/// (`.corral/views/<plugin>`, hard links of the matching files, made anew at each start through
/// the `.corral` handle) mounted at `/workspace`. Symlinks, `corral.toml` and `.corral/` are
/// never put in a view, and a folder grant that lies in `.corral/` is refused.
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
    let mut dirs = Vec::new();
    let whole = folders.iter().any(|(f, _)| f.is_empty());
    if !files.is_empty() && !whole {
        let view = build_view(workspace, &rights.plugin, &files, &folders)?;
        dirs.push(DirGrant {
            dir: view,
            relative: String::new(),
            writable: false,
        });
    }
    for (rel, writable) in folders {
        let dir = if rel.is_empty() {
            workspace.dir().try_clone()?
        } else {
            match workspace.dir().open_dir(&rel) {
                Ok(dir) => dir,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        };
        if workspace.guard().dir_in_state(dir.as_fd(), &[])? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("the grant `{rel}` lies in `.corral/`, which no plugin may reach"),
            ));
        }
        dirs.push(DirGrant {
            dir,
            relative: rel,
            writable,
        });
    }
    let prepared = Files::prepare(&dirs, workspace.guard().clone())
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    Ok(Grants {
        files: prepared,
        network: rights.effective.network.clone(),
        env: rights.effective.env.clone(),
    })
}

/// Makes `.corral/views/<plugin>` anew and fills it with hard links of the workspace files
/// matching `files` (a copy where linking fails), and empty folders where folder grants will
/// be mounted. Everything goes through handles: the workspace's, `.corral`'s (never followed
/// if it is a symlink) and the view's; the walk never follows a symlink.
fn build_view(
    workspace: &Workspace,
    plugin: &str,
    files: &[PathGrant],
    folders: &[(String, bool)],
) -> std::io::Result<cap_std::fs::Dir> {
    let state = workspace.state()?;
    state.create_dir_all("views")?;
    let views = state.open_dir("views")?;
    match views.remove_dir_all(plugin) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    views.create_dir(plugin)?;
    let view = views.open_dir(plugin)?;
    for (rel, _) in folders {
        if !rel.is_empty() {
            view.create_dir_all(rel)?;
        }
    }
    let mut count = 0;
    for grant in files {
        // (folder handle, its path relative to the root)
        let mut stack: Vec<(cap_std::fs::Dir, PathBuf)> = Vec::new();
        let base = grant.base();
        let start = if base.is_empty() {
            Some(workspace.dir().try_clone()?)
        } else {
            match workspace.dir().symlink_metadata(base) {
                Ok(meta) if meta.is_dir() => Some(workspace.dir().open_dir(base)?),
                Ok(meta) if meta.is_file() => {
                    let rel = Path::new(base);
                    let parent = rel.parent().unwrap_or(Path::new(""));
                    let dir = if parent.as_os_str().is_empty() {
                        workspace.dir().try_clone()?
                    } else {
                        workspace.dir().open_dir(parent)?
                    };
                    if let Some(name) = rel.file_name() {
                        add_to_view(workspace, &dir, name, rel, grant, &view, &mut count)?;
                    }
                    None
                }
                _ => None,
            }
        };
        if let Some(start) = start {
            stack.push((start, PathBuf::from(base)));
        }
        while let Some((dir, rel)) = stack.pop() {
            for entry in dir.entries()? {
                let entry = entry?;
                let name = entry.file_name();
                let child = rel.join(&name);
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    let text = name.to_string_lossy();
                    if text == ".git" || (rel.as_os_str().is_empty() && PROTECTED.contains(&&*text)) {
                        continue;
                    }
                    if let Ok(sub) = dir.open_dir(&name) {
                        stack.push((sub, child));
                    }
                } else if kind.is_file() && count < MAX_VIEW_FILES {
                    add_to_view(workspace, &dir, &name, &child, grant, &view, &mut count)?;
                }
            }
        }
    }
    Ok(view)
}

/// Links the regular file `name` of `dir` (at `rel` in the workspace) into `view` if `grant`
/// matches it and the guard allows it.
fn add_to_view(
    workspace: &Workspace,
    dir: &cap_std::fs::Dir,
    name: &std::ffi::OsStr,
    rel: &Path,
    grant: &PathGrant,
    view: &cap_std::fs::Dir,
    count: &mut usize,
) -> std::io::Result<()> {
    let rel_text = rel.to_string_lossy().replace('\\', "/");
    let matches = match grant {
        PathGrant::File { rel } => *rel == rel_text,
        PathGrant::Glob { matcher, .. } => matcher.is_match(&rel_text),
        PathGrant::Folder { .. } => false,
    };
    if !matches || workspace.guard().entry(dir.as_fd(), name, &[])?.is_some() {
        return Ok(());
    }
    let parent = rel.parent().unwrap_or(Path::new(""));
    if !parent.as_os_str().is_empty() {
        view.create_dir_all(parent)?;
    }
    if view.symlink_metadata(rel).is_ok() {
        return Ok(());
    }
    // linkat without following: a file swapped for a symlink since the walk becomes a symlink
    // in the view, which the plugin's preopen confines to the view.
    if dir.hard_link(name, view, rel).is_err() {
        use std::io::Write as _;
        let source = rustix::fs::openat(
            dir,
            name,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::NONBLOCK
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let mut source = std::fs::File::from(source);
        if !source.metadata()?.is_file() {
            return Ok(());
        }
        let mut target = view.create(rel)?;
        std::io::copy(&mut source, &mut target)?;
        target.flush()?;
    }
    *count += 1;
    Ok(())
}
