//! The helper's side: `corral __sandbox-exec PLAN PROGRAM ARGS...`, run by
//! [`super::exec_if_helper`]. It confines itself by PLAN ([`super::Plan`], JSON) in the order
//! the [module doc](super) gives, then `exec`s PROGRAM with its own environment.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use super::{Plan, landlock, mounts, seccomp};

/// Confines this process and execs the command. Returns only on failure, with the reason.
pub fn run(mut args: impl Iterator<Item = OsString>) -> String {
    let Some(plan) = args.next() else {
        return "no plan given".into();
    };
    let plan: Plan = match plan.to_str().map(serde_json::from_str) {
        Some(Ok(plan)) => plan,
        Some(Err(e)) => return format!("the plan does not parse: {e}"),
        None => return "the plan is not UTF-8".into(),
    };
    let Some(program) = args.next() else {
        return "no command given".into();
    };
    // A descriptor opened before the confinement keeps the rights it was opened with (a folder
    // of the real, writable mount): none but stdin, stdout and stderr may reach the command.
    // SAFETY: close_range takes plain integers; closing descriptors this process does not use
    // (std opens everything close-on-exec, so there should be none) is harmless.
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } != 0 {
        return format!("close_range: {}", std::io::Error::last_os_error());
    }
    let isolation = match mounts::isolate(&plan) {
        Ok(isolation) => isolation,
        Err(e) => return format!("mount namespace: {e}"),
    };
    if let Err(e) = landlock::restrict(&plan, isolation) {
        return format!("Landlock: {e}");
    }
    if let Err(e) = seccomp::apply(plan.network) {
        return format!("seccomp: {e}");
    }
    let error = std::process::Command::new(&program).args(args).exec();
    format!("{}: {error}", program.to_string_lossy())
}
