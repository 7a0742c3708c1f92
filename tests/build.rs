//! Builds the guest plugins (`plugins/`, for wasm32-wasip2) once per test build, so every
//! plugin test runs real components built from source. Their folder is passed to the tests as
//! `CORRAL_TEST_PLUGINS`.
//!
//! It also starts building the local model server (`scripts/local-model.sh prebuild`) when it is
//! not cached yet: in the background, at the lowest priority, so that build overlaps this one and
//! the tests before `local_model`, which waits for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("..");
    prebuild_local_model(&root);
    let plugins = root.join("plugins");
    for watched in [
        "plugins/sdk",
        "plugins/grep",
        "plugins/fetch",
        "plugins/jq",
        "plugins/misbehave",
        "plugins/shadow",
        "plugins/badmanifest",
        "plugins/badmanifest-sleep",
        "plugins/badmanifest-print",
        "plugins/badmanifest-panic",
        "plugins/badmanifest-loop",
        "plugins/badmanifest-huge",
        "plugins/badmanifest-osc",
        "plugins/Cargo.toml",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = root.join("target").join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "building the plugins failed ({other:?}); is the target installed? run `rustup target add wasm32-wasip2`"
        ),
    }
    let out = target_dir.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=CORRAL_TEST_PLUGINS={}", out.display());
}

/// Starts `scripts/local-model.sh prebuild`, which returns at once. A failure here only means
/// the `local_model` tests build the server themselves.
fn prebuild_local_model(root: &Path) {
    let script = root.join("scripts").join("local-model.sh");
    println!("cargo:rerun-if-changed={}", script.display());
    let _ = Command::new("bash")
        .arg(&script)
        .arg("prebuild")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_remove("CARGO_MAKEFLAGS")
        .status();
}
