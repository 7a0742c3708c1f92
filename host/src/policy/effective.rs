//! Effective rights: what a plugin asks for (its manifest) and what the workspace grants, both.
//! A grant nobody asked for gives nothing; a request nobody granted is reported as such. The
//! rights hold the parsed grants ([`PathGrant`], [`HostPattern`], [`EnvName`]), never their
//! text: what `corral plugins` and `corral policy show` print is their `Display`.

use std::fmt;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::approval::Approval;
use super::grants::{Capabilities, DirGrant, Files, Grants};
use super::patterns::{self, EnvName, HostPattern, PathGrant};
use super::settings::PluginPolicy;
use crate::workspace::{PROTECTED, Workspace};

/// Files copied into one view at most.
const MAX_VIEW_FILES: usize = 100_000;

/// The kinds of capability a plugin asks for and a workspace grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Read,
    Write,
    Network,
    Env,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Network => "network",
            Kind::Env => "env",
        })
    }
}

/// Parsed grants, by kind: what a workspace grants a plugin, or what of it the plugin gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GrantSet {
    pub read: Vec<PathGrant>,
    pub write: Vec<PathGrant>,
    pub network: Vec<HostPattern>,
    pub env: Vec<EnvName>,
}

impl GrantSet {
    pub fn is_empty(&self) -> bool {
        self.read.is_empty()
            && self.write.is_empty()
            && self.network.is_empty()
            && self.env.is_empty()
    }
}

/// One request of a plugin's manifest and what the workspace grants for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub kind: Kind,
    /// As the manifest says it: `**`, `*.github.com`, `GITHUB_TOKEN`.
    pub asked: String,
    /// The grants that meet it (for the network: what both allow), shown as text. Empty: not
    /// granted. Withheld along with everything else when the plugin is not approved.
    pub granted: Vec<String>,
    /// Why the request can never be granted (it is not a valid pattern), if so.
    pub invalid: Option<String>,
}

/// The rights of one plugin, for `corral policy show` and `corral plugins`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rights {
    pub plugin: String,
    pub asked: Capabilities,
    pub granted: GrantSet,
    /// What the plugin gets: asked for and granted, and approved ([`Rights::approval`]).
    pub effective: GrantSet,
    /// Each request of the manifest, in order, and what meets it.
    pub requests: Vec<Request>,
    /// Requests the workspace does not grant, e.g. `read **`.
    pub asked_not_granted: Vec<String>,
    /// Grants the plugin did not ask for (they give nothing), e.g. `network api.github.com`.
    pub granted_not_asked: Vec<String>,
    /// Whether the user approved this component's grants; when they are withheld, `effective`
    /// is empty.
    pub approval: Approval,
}

impl Rights {
    /// Applies the user's approval: when it withholds the grants, the plugin gets nothing.
    pub fn with_approval(mut self, approval: Approval) -> Self {
        if approval.withholds() {
            self.effective = GrantSet::default();
        }
        self.approval = approval;
        self
    }
}

/// Computes the effective rights of a plugin that asks for `asked` under `policy` (before any
/// approval: see [`Rights::with_approval`]).
pub fn rights(plugin: &str, asked: &Capabilities, policy: &PluginPolicy) -> Rights {
    let mut rights = Rights {
        plugin: plugin.to_string(),
        asked: asked.clone(),
        granted: GrantSet {
            read: policy.read.clone(),
            write: policy.write.clone(),
            network: policy.network.clone(),
            env: policy.env.clone(),
        },
        ..Default::default()
    };
    let readers: Vec<&String> = asked.read.iter().chain(&asked.write).collect();
    for grant in &policy.read {
        if readers
            .iter()
            .any(|r| patterns::path_request_covers(r, grant))
        {
            rights.effective.read.push(grant.clone());
        } else {
            rights.granted_not_asked.push(format!("read {grant}"));
        }
    }
    for grant in &policy.write {
        if asked
            .write
            .iter()
            .any(|r| patterns::path_request_covers(r, grant))
        {
            rights.effective.write.push(grant.clone());
        } else {
            rights.granted_not_asked.push(format!("write {grant}"));
        }
    }
    let host_requests: Vec<Result<HostPattern, String>> = asked
        .network
        .iter()
        .map(|r| HostPattern::parse(r))
        .collect();
    for grant in &policy.network {
        let mut met = false;
        for request in host_requests.iter().flatten() {
            if let Some(both) = request.intersect(grant) {
                met = true;
                if !rights.effective.network.contains(&both) {
                    rights.effective.network.push(both);
                }
            }
        }
        if !met {
            rights.granted_not_asked.push(format!("network {grant}"));
        }
    }
    let env_requests: Vec<Option<Option<EnvName>>> =
        asked.env.iter().map(|r| patterns::env_request(r)).collect();
    let env_covers = |request: &Option<Option<EnvName>>, grant: &EnvName| match request {
        Some(None) => true,
        Some(Some(name)) => name == grant,
        None => false,
    };
    for grant in &policy.env {
        if env_requests.iter().any(|r| env_covers(r, grant)) {
            rights.effective.env.push(grant.clone());
        } else {
            rights.granted_not_asked.push(format!("env {grant}"));
        }
    }

    fn covered(r: &str, list: &[PathGrant]) -> Vec<String> {
        list.iter()
            .filter(|g| patterns::path_request_covers(r, g))
            .map(|g| g.to_string())
            .collect()
    }
    for r in &asked.read {
        let mut meets = covered(r, &policy.read);
        meets.extend(covered(r, &policy.write));
        rights.requests.push(request(Kind::Read, r, meets, None));
    }
    for r in &asked.write {
        let meets = covered(r, &policy.write);
        rights.requests.push(request(Kind::Write, r, meets, None));
    }
    for (r, parsed) in asked.network.iter().zip(&host_requests) {
        let (meets, invalid) = match parsed {
            Ok(request) => (
                policy
                    .network
                    .iter()
                    .filter_map(|g| request.intersect(g))
                    .map(|p| p.to_string())
                    .collect(),
                None,
            ),
            Err(why) => (Vec::new(), Some(why.clone())),
        };
        rights
            .requests
            .push(request(Kind::Network, r, meets, invalid));
    }
    for (r, parsed) in asked.env.iter().zip(&env_requests) {
        let meets = policy
            .env
            .iter()
            .filter(|g| env_covers(parsed, g))
            .map(|g| g.to_string())
            .collect();
        let invalid = parsed
            .is_none()
            .then(|| format!("bad variable name `{r}`: it is neither `*` nor a name"));
        rights.requests.push(request(Kind::Env, r, meets, invalid));
    }
    rights.asked_not_granted = rights
        .requests
        .iter()
        .filter(|r| r.granted.is_empty())
        .map(|r| format!("{} {}", r.kind, r.asked))
        .collect();
    rights
}

fn request(kind: Kind, asked: &str, granted: Vec<String>, invalid: Option<String>) -> Request {
    Request {
        kind,
        asked: asked.to_string(),
        granted,
        invalid,
    }
}

/// Turns effective rights into the runtime's [`Grants`]: folder grants become preopens under
/// `/workspace` (read-write where writing is granted), each opened once, beneath the
/// workspace's handle; file and glob grants are gathered into a read-only view folder
/// (`.corral/views/<plugin>`, hard links of the matching files, made anew at each start through
/// the `.corral` handle) mounted at `/workspace`. Symlinks, `corral.toml` and `.corral/` are
/// never put in a view, and a folder grant that lies in `.corral/` is refused.
pub fn grants(workspace: &Workspace, rights: &Rights) -> std::io::Result<Grants> {
    let effective_read = &rights.effective.read;
    let effective_write = &rights.effective.write;
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
                    if text == ".git" || (rel.as_os_str().is_empty() && PROTECTED.contains(&&*text))
                    {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(network: &[&str], env: &[&str]) -> PluginPolicy {
        PluginPolicy {
            network: network
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            env: env.iter().map(|n| EnvName::parse(n).unwrap()).collect(),
            ..Default::default()
        }
    }

    fn asks(network: &[&str], env: &[&str]) -> Capabilities {
        Capabilities {
            network: network.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn shown<T: std::fmt::Display>(list: &[T]) -> Vec<String> {
        list.iter().map(T::to_string).collect()
    }

    /// The network a plugin gets is what its request and the grant both allow.
    #[test]
    fn effective_network_is_the_intersection() {
        let r = rights(
            "p",
            &asks(&["*.github.com", "[::1]"], &[]),
            &policy(&["api.github.com:443", "[::1]:8080", "example.org"], &[]),
        );
        assert_eq!(
            shown(&r.effective.network),
            ["api.github.com:443", "[::1]:8080"]
        );
        assert_eq!(r.granted_not_asked, ["network example.org"]);
        assert!(r.asked_not_granted.is_empty());

        let r = rights(
            "p",
            &asks(&["api.github.com"], &[]),
            &policy(&["*.github.com"], &[]),
        );
        assert_eq!(shown(&r.effective.network), ["api.github.com"]);
        assert_eq!(r.requests[0].granted, ["api.github.com"]);
    }

    /// A request that is not a pattern is granted nothing, and says why.
    #[test]
    fn invalid_requests_cover_nothing() {
        let r = rights(
            "p",
            &asks(&["https://x.org/"], &["not a name"]),
            &policy(&["*"], &["TOKEN"]),
        );
        assert!(r.effective.is_empty());
        assert_eq!(
            r.asked_not_granted,
            ["network https://x.org/", "env not a name"]
        );
        assert!(r.requests.iter().all(|q| q.invalid.is_some()));
    }

    /// Env: `*` covers every granted name, a name only itself.
    #[test]
    fn env_requests() {
        let r = rights("p", &asks(&[], &["A"]), &policy(&[], &["A", "B"]));
        assert_eq!(shown(&r.effective.env), ["A"]);
        assert_eq!(r.granted_not_asked, ["env B"]);
        let r = rights("p", &asks(&[], &["*"]), &policy(&[], &["A", "B"]));
        assert_eq!(shown(&r.effective.env), ["A", "B"]);
    }

    /// Withheld grants leave the plugin nothing, while the rights still say what was granted.
    #[test]
    fn withheld_approval_empties_the_effective_rights() {
        let r = rights("p", &asks(&["*"], &[]), &policy(&["x.org"], &[]));
        let sha = "c".repeat(64);
        let r = r.with_approval(Approval::decide(true, &sha, None));
        assert!(r.effective.is_empty());
        assert_eq!(shown(&r.granted.network), ["x.org"]);
        assert!(r.approval.withholds());
    }
}
