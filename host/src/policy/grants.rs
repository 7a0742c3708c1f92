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
    pub network: Vec<String>,
    /// Environment variables the plugin sees, with corral's values.
    pub env: Vec<String>,
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
            if let Ok(value) = std::env::var(name) {
                builder.env(name, value);
            }
        }
        Ok(builder.build())
    }

    /// Whether an HTTP request to `host:port` over `scheme` is granted.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.network
            .iter()
            .any(|pattern| host_matches(pattern, &host, port))
    }
}

/// Matches `host`/`port` against one grant: `*`, `host`, `host:port`, `*.domain[:port]`.
fn host_matches(pattern: &str, host: &str, port: u16) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    if pattern == "*" {
        return true;
    }
    let (name, want_port) = match pattern.rsplit_once(':') {
        Some((name, p)) if !name.contains(':') || name.starts_with('[') => {
            (name.to_string(), p.parse::<u16>().ok())
        }
        _ => (pattern.clone(), None),
    };
    if want_port.is_some_and(|p| p != port) {
        return false;
    }
    match name.strip_prefix("*.") {
        Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
        None => name == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let g = Grants {
            network: vec![
                "api.github.com".into(),
                "*.example.com:443".into(),
                "127.0.0.1:8080".into(),
            ],
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
        assert!(!Grants::default().allows_host("api.github.com", 443));
    }
}
