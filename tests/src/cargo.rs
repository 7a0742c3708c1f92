//! Running cargo on crates a test makes (a scaffolded plugin, the docs' commands), reusing the
//! plugins' build so the SDK's dependencies are not compiled again for each run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The longest a cargo build or test of a small crate may take in a test (a first build on a
/// fresh target folder compiles the SDK's dependencies).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

/// The target folder shared with the plugins the test crate's `build.rs` builds: a crate that
/// depends on the SDK by path reuses their compiled dependencies (same versions, same profile).
pub fn shared_target_dir() -> PathBuf {
    repo_root().join("target").join("plugins")
}

/// The toolchain the repository pins (`rust-toolchain.toml`), so a crate outside the repository
/// builds with the same compiler as the plugins (and reuses their artifacts).
pub fn pinned_toolchain() -> Option<String> {
    let text = std::fs::read_to_string(repo_root().join("rust-toolchain.toml")).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .map(|rest| {
            rest.trim_start_matches([' ', '='])
                .trim()
                .trim_matches('"')
                .to_string()
        })
}

/// `cargo ARGS` in `dir`, with the machine's environment (cargo needs its home and registry)
/// minus what the outer cargo set for this test, on the pinned toolchain, offline: the
/// dependencies resolve from the registry cache the workspace's own build filled, so no test
/// reaches the network.
pub fn cargo(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("CARGO_PKG_NAME")
        .env("CARGO_NET_OFFLINE", "true");
    if std::env::var_os("RUSTUP_TOOLCHAIN").is_none()
        && let Some(channel) = pinned_toolchain()
    {
        cmd.env("RUSTUP_TOOLCHAIN", channel);
    }
    cmd
}
