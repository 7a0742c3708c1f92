//! Builds the guest plugins (`plugins/`, for wasm32-wasip2) once per test build, so every
//! plugin test runs real components built from source. Their folder is passed to the tests as
//! `CORRAL_TEST_PLUGINS`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("..");
    let plugins = root.join("plugins");
    for watched in [
        "plugins/sdk",
        "plugins/grep",
        "plugins/fetch",
        "plugins/jq",
        "plugins/misbehave",
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
