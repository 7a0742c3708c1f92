//! What a plugin asks for, what it is granted, its limits, and the one place that turns grants
//! into a WASI context.
//!
//! Deny by default: [`Grants::default`] gives nothing: no files, no hosts, no environment.
//! Files and environment are enforced by [`Grants::wasi_ctx`], the network by
//! [`Grants::allows_host`] (called from the plugins' wasi:http hook), nowhere else.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime_wasi::cli::StdoutStream;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::patterns::{EnvName, HostPattern};

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

/// A folder of the workspace made visible to a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The host folder (inside the workspace).
    pub host: PathBuf,
    /// Its path relative to the workspace root ("" for the root itself).
    pub relative: String,
    pub writable: bool,
}

/// The rights of one plugin in one workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub dirs: Vec<DirGrant>,
    /// Hosts the plugin may send HTTP requests to: `host`, `host:port`, `*.domain`, `*`.
    pub network: Vec<HostPattern>,
    /// Environment variables the plugin sees, with corral's values.
    pub env: Vec<EnvName>,
}

impl Grants {
    /// Builds the WASI context of one call: preopens for the granted folders under
    /// `/workspace`, the granted variables, stdout/stderr into `stdout`/`stderr`. Sockets and
    /// name lookups stay denied (the builder's defaults).
    pub fn wasi_ctx(
        &self,
        stdout: impl StdoutStream + 'static,
        stderr: impl StdoutStream + 'static,
    ) -> wasmtime::Result<WasiCtx> {
        let mut builder = WasiCtxBuilder::new();
        builder.stdout(stdout).stderr(stderr);
        for dir in &self.dirs {
            let guest = if dir.relative.is_empty() {
                GUEST_ROOT.to_string()
            } else {
                format!("{GUEST_ROOT}/{}", dir.relative.trim_matches('/'))
            };
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder.preopened_dir(&dir.host, guest, perms)?;
        }
        for name in &self.env {
            if let Ok(value) = std::env::var(name.as_str()) {
                builder.env(name.as_str(), value);
            }
        }
        Ok(builder.build())
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
