//! The `corral` binary's usage errors. (The end-to-end suites live in the workspace's `tests/`
//! crate; this file also makes `cargo test` build the binary they run.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn corral() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

/// A missing prompt, an unknown flag and an unknown command are usage errors: exit code 2.
#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &["run"][..],
        &["run", "--bogus", "x"],
        &["frobnicate"],
        &["run", "--max-turns", "0", "x"],
    ] {
        let out = corral().args(args).output().expect("run corral");
        assert_eq!(
            out.status.code(),
            Some(2),
            "corral {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "corral {args:?} printed no error");
    }
}

/// `--help` lists the commands.
#[test]
fn help_lists_commands() {
    let out = corral().arg("--help").output().expect("run corral");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("chat"), "{text}");
}
