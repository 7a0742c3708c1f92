//! What a plugin asks for, what it is granted, its limits, and the one place that turns grants
//! into a WASI context.
//!
//! Deny by default: [`Grants::default`] gives nothing: no files, no hosts, no environment.
//! Files and environment are enforced by [`Grants::wasi_ctx`] (preopens made once from
//! directory handles, [`Files::prepare`], behind the plugins' filesystem guard), the network by
//! [`Grants::allows_host`] (called from the plugins' wasi:http hook), nowhere else.

use std::os::fd::AsRawFd;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime_wasi::cli::StdoutStream;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::patterns::{EnvName, HostPattern};
use crate::workspace::guard::{FileId, Guard};

/// The guest path at which granted workspace folders appear.
pub const GUEST_ROOT: &str = "/workspace";

/// What a plugin asks to reach (its manifest's `capabilities`). Nothing of it is granted
/// unless the workspace grants it too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub network: Vec<String>,
    pub env: Vec<String>,
}

/// The limits of every call of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline of one call (10 s).
    pub timeout: Duration,
    /// Linear memory of one call (64 MiB); a grow past it traps.
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory: 64 * 1024 * 1024,
        }
    }
}

/// A folder of the workspace made visible to a plugin: a directory *handle*, opened once
/// beneath the workspace's handle when the plugin's grants are prepared. It is never reopened
/// by path: a folder renamed, or replaced by a symlink, after that changes nothing.
#[derive(Debug)]
pub struct DirGrant {
    pub dir: cap_std::fs::Dir,
    /// Its path relative to the workspace root ("" for the root itself), as shown to the user
    /// and under `/workspace` to the plugin.
    pub relative: String,
    pub writable: bool,
}

/// The files of one plugin, prepared once: wasmtime-wasi's preopens made from the
/// [`DirGrant`] handles (each call gets a clone: the same handles, shared), the identities of
/// their roots, and the workspace guard that keeps `corral.toml` and `.corral/` out of reach.
#[derive(Clone, Default)]
pub struct Files {
    preopens: WasiFilesystemCtx,
    roots: Vec<FileId>,
    guard: Option<Guard>,
    /// `(guest path, writable)` per preopen, for messages.
    shown: Vec<(String, bool)>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("preopens", &self.shown)
            .finish()
    }
}

impl Files {
    /// Prepares the preopens of `dirs` in the workspace guarded by `guard`. The handles are
    /// passed to wasmtime-wasi through `/proc/self/fd`, which reopens the very folder a handle
    /// refers to (Linux); without `/proc` the grants cannot be prepared and the plugin is left
    /// out, never given a path instead.
    pub fn prepare(dirs: &[DirGrant], guard: Guard) -> wasmtime::Result<Self> {
        let mut builder = WasiCtxBuilder::new();
        let mut roots = Vec::new();
        let mut shown = Vec::new();
        for grant in dirs {
            let guest = if grant.relative.is_empty() {
                GUEST_ROOT.to_string()
            } else {
                format!("{GUEST_ROOT}/{}", grant.relative.trim_matches('/'))
            };
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            let handle = format!("/proc/self/fd/{}", grant.dir.as_raw_fd());
            builder.preopened_dir(&handle, &guest, perms)?;
            roots.push(FileId::of(&grant.dir)?);
            shown.push((guest, grant.writable));
        }
        let mut ctx = builder.build();
        Ok(Self {
            preopens: ctx.filesystem().clone(),
            roots,
            guard: Some(guard),
            shown,
        })
    }

    /// The identities of the preopened folders (the grant roots).
    pub fn roots(&self) -> &[FileId] {
        &self.roots
    }

    /// The guard of the workspace these folders belong to; `None` when nothing is granted.
    pub fn guard(&self) -> Option<&Guard> {
        self.guard.as_ref()
    }

    /// The guest paths granted, with whether each is writable.
    pub fn shown(&self) -> &[(String, bool)] {
        &self.shown
    }
}

/// The rights of one plugin in one workspace.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Granted folders (and the read-only view of granted files), opened once.
    pub files: Files,
    /// Hosts the plugin may send HTTP requests to: `host`, `host:port`, `*.domain`, `*`.
    pub network: Vec<HostPattern>,
    /// Environment variables the plugin sees, with corral's values.
    pub env: Vec<EnvName>,
}

impl Grants {
    /// Builds the WASI context of one call: the prepared preopens (clones of the handles, no
    /// path opened), the granted variables, stdout/stderr into `stdout`/`stderr`. Sockets and
    /// name lookups stay denied (the builder's defaults).
    pub fn wasi_ctx(
        &self,
        stdout: impl StdoutStream + 'static,
        stderr: impl StdoutStream + 'static,
    ) -> WasiCtx {
        let mut builder = WasiCtxBuilder::new();
        builder.stdout(stdout).stderr(stderr);
        for name in &self.env {
            if let Ok(value) = std::env::var(name.as_str()) {
                builder.env(name.as_str(), value);
            }
        }
        let mut ctx = builder.build();
        *ctx.filesystem() = self.files.preopens.clone();
        ctx
    }

    /// Whether an HTTP request to `host` (a URL's host: a name, an IPv4 address or a bracketed
    /// IPv6 address) on `port` is granted: some granted [`HostPattern`] allows it.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        self.network
            .iter()
            .any(|pattern| pattern.allows(host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let g = Grants {
            network: [
                "api.github.com",
                "*.example.com:443",
                "127.0.0.1:8080",
                "[::1]",
            ]
            .iter()
            .map(|p| HostPattern::parse(p).unwrap())
            .collect(),
            ..Default::default()
        };
        assert!(g.allows_host("api.github.com", 443));
        assert!(g.allows_host("API.GitHub.com", 80));
        assert!(!g.allows_host("github.com", 443));
        assert!(g.allows_host("a.example.com", 443));
        assert!(!g.allows_host("a.example.com", 80));
        assert!(!g.allows_host("example.com", 443));
        assert!(!g.allows_host("evilexample.com", 443));
        assert!(g.allows_host("127.0.0.1", 8080));
        assert!(!g.allows_host("127.0.0.1", 8081));
        assert!(
            g.allows_host("[::1]", 8081),
            "an IPv6 grant without a port allows every port"
        );
        assert!(!Grants::default().allows_host("api.github.com", 443));
    }
}
