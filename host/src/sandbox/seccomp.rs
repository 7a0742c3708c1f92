//! Step 3 of the helper: a seccomp filter, with the `seccompiler` crate, for what Landlock
//! cannot say. Denied calls fail with `EPERM`; everything else is allowed. A call of another
//! architecture (32-bit `int 0x80`, where `socketcall` lives) kills the process; the x32 numbers
//! of the denied calls are denied too.
//!
//! - Always: `io_uring` (its socket and file operations would bypass this filter), loading or
//!   removing kernel modules, `kexec`, `bpf`, `perf_event_open`, swap changes, `reboot`,
//!   port I/O (`iopl`, `ioperm`), the clock, `acct`, keyrings of others (`add_key`,
//!   `request_key`, `keyctl`), `userfaultfd`, the new mount API (`open_tree`, `fsopen`, ...),
//!   file handles (`open_by_handle_at`), and the terminal ioctls that type into the user's
//!   terminal (`TIOCSTI`, `TIOCLINUX`). Most need root; corral may be run as root.
//! - Network through the proxy, also: TCP Fast Open (`MSG_FASTOPEN`, `TCP_FASTOPEN_CONNECT`),
//!   whose implicit connect Landlock's connect rule does not see.
//! - Network off: `socket` of any family but `AF_UNIX`.
//! - Network through the proxy: `socket` of any family but `AF_UNIX`, `AF_INET` and
//!   `AF_INET6`; for the last two, any type but `SOCK_STREAM` and any protocol but TCP (so no
//!   UDP, raw sockets, SCTP or MPTCP, which Landlock's TCP rules do not cover).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::NetPlan;

/// Calls no confined command needs.
const ALWAYS_DENIED: &[libc::c_long] = &[
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
    libc::SYS_userfaultfd,
    // The new mount API and file handles: a clone of a mount carries none of the read-only
    // binds and covers, and a handle opens a file by inode, past every path rule.
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

/// Socket types other than a stream, for the proxy case.
const NOT_STREAM: &[i32] = &[
    libc::SOCK_DGRAM,
    libc::SOCK_RAW,
    libc::SOCK_RDM,
    libc::SOCK_SEQPACKET,
    libc::SOCK_DCCP,
    // SOCK_PACKET, obsolete but still accepted by the kernel.
    10,
];

/// The bit that marks an x32 system call number on x86_64.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// `ioctl(TIOCLINUX)`: among others, pastes into the console.
const TIOCLINUX: libc::c_ulong = 0x541C;
/// `MSG_FASTOPEN`: a `sendto` that connects.
const MSG_FASTOPEN: u64 = 0x2000_0000;
/// `TCP_FASTOPEN_CONNECT`: a socket option that makes the next write connect.
const TCP_FASTOPEN_CONNECT: u64 = 30;

/// The type bits of `socket`'s second argument (the rest are `SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
const SOCK_TYPE_MASK: u64 = 0xf;

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string())
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

/// The filter for `network`, compiled. Without `unix_sockets`, `socket(AF_UNIX, ...)` is
/// denied too (unless the whole network is granted): the Landlock-only way, which cannot cover
/// a hidden folder, has no other means to keep commands from connecting to the sockets in it
/// (an SSH agent, Docker, tmux) — Landlock does not govern connecting to a Unix socket by its
/// path. `socketpair` stays, so pipes between a command's own processes still work.
pub fn program(network: NetPlan, unix_sockets: bool) -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALWAYS_DENIED
        .iter()
        .map(|&call| (call, Vec::new()))
        .collect();
    let family = |f: i32| f as u64;
    rules.insert(
        libc::SYS_ioctl,
        [libc::TIOCSTI, TIOCLINUX]
            .into_iter()
            .map(|request| rule(vec![cond(1, SeccompCmpOp::Eq, request)?]))
            .collect::<Result<_, _>>()?,
    );
    if let NetPlan::Proxy { .. } = network {
        let fastopen = |arg: u8| -> Result<SeccompRule, String> {
            rule(vec![cond(
                arg,
                SeccompCmpOp::MaskedEq(MSG_FASTOPEN),
                MSG_FASTOPEN,
            )?])
        };
        rules.insert(libc::SYS_sendto, vec![fastopen(3)?]);
        rules.insert(libc::SYS_sendmsg, vec![fastopen(2)?]);
        rules.insert(libc::SYS_sendmmsg, vec![fastopen(3)?]);
        rules.insert(
            libc::SYS_setsockopt,
            vec![rule(vec![
                cond(1, SeccompCmpOp::Eq, libc::IPPROTO_TCP as u64)?,
                cond(2, SeccompCmpOp::Eq, TCP_FASTOPEN_CONNECT)?,
            ])?],
        );
    }
    let mut socket_rules = match network {
        NetPlan::On => Vec::new(),
        NetPlan::Off => vec![rule(vec![cond(
            0,
            SeccompCmpOp::Ne,
            family(libc::AF_UNIX),
        )?])?],
        NetPlan::Proxy { .. } => {
            let mut socket = vec![rule(vec![
                cond(0, SeccompCmpOp::Ne, family(libc::AF_UNIX))?,
                cond(0, SeccompCmpOp::Ne, family(libc::AF_INET))?,
                cond(0, SeccompCmpOp::Ne, family(libc::AF_INET6))?,
            ])?];
            for inet in [libc::AF_INET, libc::AF_INET6] {
                for &kind in NOT_STREAM {
                    socket.push(rule(vec![
                        cond(0, SeccompCmpOp::Eq, family(inet))?,
                        cond(1, SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK), kind as u64)?,
                    ])?);
                }
                socket.push(rule(vec![
                    cond(0, SeccompCmpOp::Eq, family(inet))?,
                    cond(2, SeccompCmpOp::Ne, 0)?,
                    cond(2, SeccompCmpOp::Ne, libc::IPPROTO_TCP as u64)?,
                ])?);
            }
            socket
        }
    };
    if !unix_sockets && network != NetPlan::On {
        socket_rules.push(rule(vec![cond(
            0,
            SeccompCmpOp::Eq,
            family(libc::AF_UNIX),
        )?])?);
    }
    if !socket_rules.is_empty() {
        rules.insert(libc::SYS_socket, socket_rules);
    }
    // The x32 ABI reaches the same calls under other numbers (the arch check passes them).
    #[cfg(target_arch = "x86_64")]
    {
        let x32: Vec<(i64, Vec<SeccompRule>)> = rules
            .iter()
            .map(|(&call, rules)| (call | X32_SYSCALL_BIT, rules.clone()))
            .collect();
        rules.extend(x32);
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}
