//! The helper's side: `corral __sandbox-exec PLAN PROGRAM ARGS...`, run by
//! [`super::exec_if_helper`]. It confines itself by PLAN ([`super::Plan`], JSON) in the order
//! the [module doc](super) gives, then `exec`s PROGRAM with its own environment.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use super::{Plan, landlock, mounts, seccomp};

/// Drops every capability, for good: the bounding set (so an `exec` as root gains none back),
/// the ambient set, and the effective, permitted and inheritable sets. Root keeps its uid (and
/// so its files), not its powers (a clone of a mount, raw devices, `CAP_DAC_OVERRIDE`).
fn drop_capabilities() -> std::io::Result<()> {
    // The kernel's last capability; higher numbers are refused with EINVAL.
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(40);
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let error = std::io::Error::last_os_error();
            // Without CAP_SETPCAP (not root) the set is already out of reach of an exec.
            if error.raw_os_error() != Some(libc::EPERM) {
                return Err(error);
            }
        }
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data::default(); 2];
    // SAFETY: capset reads a valid header and two data structs (version 3).
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

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
    if let (mounts::Isolation::Mounts, super::NetPlan::Proxy { port }) = (isolation, plan.network)
        && let Err(e) = super::netns::bridge(port)
    {
        return format!("network namespace: {e}");
    }
    if let Err(e) = drop_capabilities() {
        return format!("dropping capabilities: {e}");
    }
    if let Err(e) = landlock::restrict(&plan, isolation) {
        return format!("Landlock: {e}");
    }
    if let Err(e) = seccomp::apply(plan.network) {
        return format!("seccomp: {e}");
    }
    let error = std::process::Command::new(&program).args(args).exec();
    format!("{}: {error}", program.to_string_lossy())
}
