//! The step of the confinement no other module owns: giving up every capability (the
//! zygote's commands do it first, [`super::zygote`]).

/// Empties the bounding set (so an `exec` as root gains no capability back), once, in the
/// zygote: every command it forks inherits the empty set, and the zygote keeps the
/// capabilities it has (the bounding set only limits what an `exec` may gain), which it needs
/// to make each command's PID namespace. Done per command, it was 41 `prctl`s that each
/// committed new credentials. Without `CAP_SETPCAP` (not root, no user namespace of its own)
/// the set is already out of reach of an `exec`, and this does nothing.
pub(super) fn drop_bounding_set() -> std::io::Result<()> {
    // The kernel's last capability; higher numbers are refused with EINVAL.
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(40);
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EPERM) {
                return Ok(());
            }
            return Err(error);
        }
    }
    Ok(())
}

/// Drops every capability a command could still use, for good: the ambient set, and the
/// effective, permitted and inheritable sets (the bounding set is already empty,
/// [`drop_bounding_set`]). Root keeps its uid (and so its files), not its powers (a clone of a
/// mount, raw devices, `CAP_DAC_OVERRIDE`).
pub(super) fn drop_all() -> std::io::Result<()> {
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
