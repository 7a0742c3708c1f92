//! The helper's side: `corral __sandbox-zygote PLAN`, one long-lived process per agent that
//! confines itself as far as it can once and then forks every confined command.
//!
//! Confining a process costs milliseconds (a namespace and its remounts, about 40 Landlock rules
//! each opened and checked, a seccomp program compiled): paid once per command, it made a
//! confined `true` cost 4.6 times a bare one. The zygote pays it once ([`Prepared`]) and each
//! command then costs a `clone` and a few cheap calls ([`Prepared::confine`]).
//!
//! **Protocol** (over the `SOCK_SEQPACKET` socket corral gives as descriptor [`SOCKET_FD`]):
//! the zygote first sends one message, [`READY`] or `error: REASON`. Then, per command, corral
//! sends one message: [`INLINE`] and the [`Request`], carrying two descriptors (the pipe the
//! output goes to, a pipe the exit status goes to), or, for a request larger than
//! [`INLINE_REQUEST_BYTES`], [`IN_MEMFD`] alone, carrying a memfd with the request first. The zygote answers with the pid
//! (4 bytes, native order) and a pidfd for it, or `error: REASON`. An empty read (corral
//! closed its end, or died) ends the zygote.
//!
//! **Each command** is a small init process ([`mini_init`]) in a PID namespace of its own
//! (when the zygote may make one: it is root, or in the user namespace it made): it leads the
//! command's process group, confines itself (capabilities, Landlock; the seccomp filter it has from
//! the zygote), forks `sh` and
//! waits for it. When `sh` exits, the init writes its raw wait status to the status pipe and
//! exits, and the kernel kills whatever else is in the namespace: no process a command starts,
//! in whatever session or group, outlives it. Killed itself (SIGKILL, the only signal that
//! reaches a namespace's init from outside), it takes the whole namespace with it; its status
//! pipe is then empty, which corral reads as "killed by signal 9". Without a PID namespace the
//! init is a plain process and corral's own containment ([`crate::process::reaper`]) finds what
//! the command left.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

use super::{Plan, capabilities, landlock, mounts, seccomp};

/// The first argument that makes a corral executable the zygote.
pub const ZYGOTE_ARG: &str = "__sandbox-zygote";
/// The descriptor the zygote's socket is given as.
pub const SOCKET_FD: RawFd = 3;
/// The zygote's first message once it is confined as far as it goes; followed by
/// [`LANDLOCK_ONLY`] when it could make no mount namespace.
pub const READY: &[u8] = b"ready";
pub const LANDLOCK_ONLY: &[u8] = b" landlock-only";
/// The most a request may hold (arguments, environment, working folder): above the kernel's
/// own limit for an `exec` (2 MiB on Linux with the default stack), so only a request no
/// `exec` could take is refused.
pub const MAX_REQUEST_BYTES: u64 = 8 << 20;
/// The largest message either side reads on the socket (a reply, the ready message).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Descriptors a request carries at most: the request (when it is not inline), the output
/// pipe, the status pipe.
const REQUEST_FDS: usize = 3;
/// The largest [`Request`] sent inline, in the message itself (`i` then the request; a larger
/// one goes in a memfd, `s`): most are a few KiB of environment, and a memfd made, written,
/// measured and read per command was a third of corral's side of the exchange. Far below the
/// socket's send buffer.
pub const INLINE_REQUEST_BYTES: usize = 64 * 1024;
/// The first byte of a request message: the request follows inline, or is in a memfd.
pub const INLINE: u8 = b'i';
pub const IN_MEMFD: u8 = b's';

/// One command for the zygote: where it runs, its `argv` and its whole environment. Written by
/// corral into a memfd as NUL-terminated fields: the working folder, the number of arguments,
/// the arguments, then each `NAME=VALUE` (none of which can hold a NUL: `exec` takes C strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cwd: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
}

impl Request {
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let argc = self.argv.len().to_string().into_bytes();
        let fields = std::iter::once(&self.cwd)
            .chain(std::iter::once(&argc))
            .chain(&self.argv)
            .chain(&self.env);
        let mut out = Vec::new();
        for field in fields {
            if field.contains(&0) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a command, argument or environment variable holds a NUL byte",
                ));
            }
            out.extend_from_slice(field);
            out.push(0);
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let body = bytes
            .strip_suffix(&[0])
            .ok_or("the request does not end with a NUL")?;
        let mut fields = body.split(|&b| b == 0).map(<[u8]>::to_vec);
        let cwd = fields.next().ok_or("no working folder")?;
        let argc: usize = fields
            .next()
            .and_then(|n| String::from_utf8(n).ok()?.parse().ok())
            .ok_or("no argument count")?;
        let argv: Vec<Vec<u8>> = fields.by_ref().take(argc).collect();
        if argv.len() != argc || argc == 0 {
            return Err("the arguments are cut short".into());
        }
        Ok(Self {
            cwd,
            argv,
            env: fields.collect(),
        })
    }
}

/// What the zygote built once and every command gets: the Landlock ruleset (not yet in force
/// on the zygote itself) and whether a command gets a PID namespace. The seccomp filter is in
/// force on the zygote itself, so every command inherits it as it is forked (installing it
/// per command compiled the program into the kernel's JIT each time); the zygote needs none
/// of what it denies.
pub struct Prepared {
    ruleset: Option<::landlock::RulesetCreated>,
    /// `/dev/null`, opened once, every command's stdin.
    null: OwnedFd,
    isolation: mounts::Isolation,
    pid_namespace: bool,
}

impl Prepared {
    /// Step 1 of the helper's order (the namespaces and mounts, done to the zygote itself, and
    /// inherited), and the makings of steps 2 and 3.
    fn new(plan: &Plan) -> Result<Self, String> {
        let isolation = mounts::isolate(plan).map_err(|e| format!("mount namespace: {e}"))?;
        if let (mounts::Isolation::Mounts, super::NetPlan::Proxy { port }) =
            (isolation, plan.network)
        {
            super::netns::bridge(port).map_err(|e| format!("network namespace: {e}"))?;
        }
        let ruleset = landlock::ruleset(plan, isolation).map_err(|e| format!("Landlock: {e}"))?;
        let filter = seccomp::program(plan.network, isolation == mounts::Isolation::Mounts)
            .map_err(|e| format!("seccomp: {e}"))?;
        capabilities::drop_bounding_set().map_err(|e| format!("dropping the bounding set: {e}"))?;
        // Last: it also sets no_new_privs, and denies the mount calls step 1 used.
        seccompiler::apply_filter(&filter).map_err(|e| format!("seccomp: {e}"))?;
        let null = std::fs::File::open("/dev/null")
            .map_err(|e| format!("/dev/null: {e}"))?
            .into();
        Ok(Self {
            ruleset: Some(ruleset),
            null,
            isolation,
            // Making a PID namespace takes CAP_SYS_ADMIN where the zygote is: as root, or in
            // the user namespace it made.
            pid_namespace: isolation == mounts::Isolation::Mounts,
        })
    }

    /// Step 2 in a freshly forked command (which has step 3, the seccomp filter, from the
    /// zygote): every capability dropped, the Landlock ruleset in force. Returns the reason on
    /// failure.
    fn confine(&mut self) -> Result<(), String> {
        capabilities::drop_all().map_err(|e| format!("dropping capabilities: {e}"))?;
        let ruleset = self.ruleset.take().ok_or("the Landlock ruleset was used")?;
        landlock::enforce(ruleset).map_err(|e| format!("Landlock: {e}"))?;
        Ok(())
    }
}

/// Runs the zygote by the JSON `plan`. Returns only on failure, with the reason (also sent to
/// corral); a clean end (corral closed the socket) exits the process.
pub fn serve(plan: &str) -> String {
    // SAFETY: corral gives the socket as this descriptor; nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(SOCKET_FD) };
    let fail = |reason: String| {
        let _ = send(socket.as_fd(), format!("error: {reason}").as_bytes(), &[]);
        reason
    };
    // No parent-death signal: it fires when the *thread* that started the zygote ends, which
    // is any of corral's task threads (the zygote died with the first command's thread, and
    // every command after had to start a new one). corral's end closes its end of the
    // socket (close-on-exec, held by no other process), which ends the zygote at its next read.
    // A descriptor opened before the confinement keeps the rights it was opened with (a folder
    // of the real, writable mount): none but the standard ones and the socket may stay.
    // SAFETY: close_range takes plain integers.
    if unsafe { libc::syscall(libc::SYS_close_range, SOCKET_FD as u32 + 1, u32::MAX, 0u32) } != 0 {
        return fail(format!("close_range: {}", io::Error::last_os_error()));
    }
    let plan: Plan = match serde_json::from_str(plan) {
        Ok(plan) => plan,
        Err(e) => return fail(format!("the plan does not parse: {e}")),
    };
    let mut prepared = match Prepared::new(&plan) {
        Ok(prepared) => prepared,
        Err(e) => return fail(e),
    };
    let ready = match prepared.isolation {
        mounts::Isolation::Mounts => READY.to_vec(),
        mounts::Isolation::LandlockOnly => [READY, LANDLOCK_ONLY].concat(),
    };
    if let Err(e) = send(socket.as_fd(), &ready, &[]) {
        return format!("telling corral the zygote is ready: {e}");
    }
    // An ignored signal stays ignored across `exec`: none of what corral's own parent ignored
    // (SIGHUP under `nohup`) reaches the commands, and the shell resets only the few the
    // zygote and the init ignore themselves ([`SHELL_RESETS`]). SIGPIPE stays ignored here, as
    // Rust's runtime set it.
    // SAFETY: queries and sets signal dispositions of this single-threaded process.
    unsafe {
        for signal in 1..=libc::SIGRTMAX() {
            let mut current: libc::sigaction = std::mem::zeroed();
            if signal != libc::SIGPIPE
                && libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_IGN
            {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
    }
    // Children are reaped by the kernel: corral learns their ends from the status pipe.
    // SAFETY: setting a signal's disposition to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
    // One more byte than the largest inline request: a message that fills it was cut.
    let mut message = vec![0u8; 1 + INLINE_REQUEST_BYTES + 1];
    loop {
        let (len, fds) = match receive(socket.as_fd(), &mut message, REQUEST_FDS) {
            Ok(received) => received,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return format!("reading a request: {e}"),
        };
        if len == 0 && fds.is_empty() {
            std::process::exit(0);
        }
        let reply = match start(&mut prepared, &message[..len], fds) {
            Ok((pid, pidfd)) => {
                let mut reply = pid.to_ne_bytes().to_vec();
                reply.push(u8::from(prepared.pid_namespace));
                send(socket.as_fd(), &reply, &[pidfd.as_fd()])
            }
            Err(reason) => send(socket.as_fd(), format!("error: {reason}").as_bytes(), &[]),
        };
        if let Err(e) = reply {
            return format!("answering a request: {e}");
        }
    }
}

/// Starts one command from a request's descriptors; returns its pid and a pidfd for it.
fn start(
    prepared: &mut Prepared,
    message: &[u8],
    mut fds: Vec<OwnedFd>,
) -> Result<(i32, OwnedFd), String> {
    let count = |fds: &[OwnedFd], want: usize| match fds.len() == want {
        true => Ok(()),
        false => Err(format!("{} descriptors instead of {want}", fds.len())),
    };
    let request = match message.split_first() {
        Some((&INLINE, inline)) => {
            count(&fds, 2)?;
            if inline.len() > INLINE_REQUEST_BYTES {
                return Err("the inline request was cut".into());
            }
            Request::decode(inline)?
        }
        Some((&IN_MEMFD, [])) => {
            count(&fds, 3)?;
            let request = File::from(fds.remove(0));
            let size = request.metadata().map_err(|e| e.to_string())?.len();
            if size > MAX_REQUEST_BYTES {
                return Err(format!(
                    "the request is {size} bytes, more than {MAX_REQUEST_BYTES}"
                ));
            }
            let mut bytes = vec![0u8; size as usize];
            request
                .read_exact_at(&mut bytes, 0)
                .map_err(|e| e.to_string())?;
            Request::decode(&bytes)?
        }
        _ => return Err("the request message does not parse".into()),
    };
    let [output, status]: [OwnedFd; 2] = fds
        .try_into()
        .map_err(|_| "the descriptors do not parse".to_string())?;
    let cstrings = |fields: &[Vec<u8>]| -> Result<Vec<CString>, String> {
        fields
            .iter()
            .map(|f| CString::new(f.clone()).map_err(|e| e.to_string()))
            .collect()
    };
    let argv = cstrings(&request.argv)?;
    let env = cstrings(&request.env)?;
    // Opened here, in the namespace, so the command's folder is the one beneath its mounts.
    let cwd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(std::ffi::OsStr::from_bytes(&request.cwd))
        .map_err(|e| {
            format!(
                "{}: {e}",
                String::from_utf8_lossy(&request.cwd).trim_end_matches('\0')
            )
        })?;
    let mut pidfd: libc::c_int = -1;
    let mut flags = libc::CLONE_PIDFD as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    if prepared.pid_namespace {
        flags |= libc::CLONE_NEWPID as libc::c_ulong;
    }
    // SAFETY: a raw clone without a new stack is a fork; the zygote is single-threaded, so the
    // child's copy of memory is consistent. The pidfd goes to `pidfd` (the third argument on
    // every architecture).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0usize,
            &mut pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
    };
    match pid {
        -1 => Err(format!("clone: {}", io::Error::last_os_error())),
        0 => mini_init(prepared, &argv, &env, &cwd, &output, &status),
        pid => {
            // SAFETY: CLONE_PIDFD stored a new descriptor that nobody else owns.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok((pid as i32, pidfd))
        }
    }
}

/// The signals a plain init (no PID namespace) ignores, so that what corral sends the group
/// reaches the command and the init stays to report its end.
const INIT_IGNORES: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// The command's init: see the module doc. Never returns.
fn mini_init(
    prepared: &mut Prepared,
    argv: &[CString],
    env: &[CString],
    cwd: &File,
    output: &OwnedFd,
    status: &OwnedFd,
) -> ! {
    let die = |what: &str| -> ! {
        let message = format!(
            "corral: the shell sandbox could not be applied, the command did not run: {what}\n"
        );
        // SAFETY: writes a buffer to the output descriptor, then ends the process.
        unsafe {
            libc::write(output.as_raw_fd(), message.as_ptr().cast(), message.len());
            libc::_exit(super::HELPER_FAILED)
        }
    };
    // Not dumpable: the command (same uid, same Landlock domain) can then neither ptrace the
    // init nor open its `/proc/PID/fd/3`, the status pipe, to write a status of its own or to
    // take the init's and hold the pipe open. The init never execs, so it stays so; the shell's
    // exec makes the shell dumpable again.
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        die(&format!("PR_SET_DUMPABLE: {}", io::Error::last_os_error()));
    }
    // SAFETY: single-threaded; plain calls on descriptors and signal state.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        for signal in INIT_IGNORES {
            libc::signal(signal, libc::SIG_IGN);
        }
        libc::setpgid(0, 0);
        if libc::dup2(prepared.null.as_raw_fd(), 0) < 0
            || libc::dup2(output.as_raw_fd(), 1) < 0
            || libc::dup2(output.as_raw_fd(), 2) < 0
            || libc::dup2(status.as_raw_fd(), 3) < 0
            || libc::fchdir(cwd.as_raw_fd()) != 0
        {
            die(&format!("setting up: {}", io::Error::last_os_error()));
        }
        // The status pipe stays with the init alone.
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // Enforcing the ruleset closes its descriptor (so it comes before the close_range).
    if let Err(reason) = prepared.confine() {
        die(&reason);
    }
    // Nothing else of the zygote's reaches the command (the socket, the request, the folder).
    // SAFETY: closes descriptors this process never uses again (it only execs or exits).
    unsafe {
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let mut exec = Exec {
        argv: argv_ptrs.as_ptr(),
        env: env_ptrs.as_ptr(),
        errno: 0,
    };
    // The shell is a vfork-style clone: it shares the init's memory until it `exec`s and the
    // init waits until then, so no second copy of the zygote's memory is made and torn down
    // again by the `exec` (`fork` here was a third of the zygote's time per command).
    // Not zeroed, never read as data: only the child's stack.
    let mut stack: Vec<u8> = Vec::with_capacity(SHELL_STACK_BYTES);
    // SAFETY: the stack is ours and outlives the child's use of it (CLONE_VFORK: this call
    // returns once the child has exec'd or exited); the top is 16-byte aligned as the ABI
    // wants; `exec` outlives the call too, and the child only writes its `errno`.
    let shell = unsafe {
        let top = stack.as_mut_ptr().add(SHELL_STACK_BYTES) as usize & !15;
        libc::clone(
            exec_shell,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut exec as *mut Exec).cast(),
        )
    };
    if shell < 0 {
        die(&format!("clone: {}", io::Error::last_os_error()));
    }
    // SAFETY: the child is gone from this memory; a volatile read, since it wrote behind the
    // compiler's back.
    let errno = unsafe { std::ptr::read_volatile(&exec.errno) };
    if errno != 0 {
        // The shell could not start: say why, as a shell would; its exit (127) is the status.
        let message = format!(
            "corral: {}: {}\n",
            argv[0].to_string_lossy(),
            io::Error::from_raw_os_error(errno)
        );
        // SAFETY: writes a buffer to the output.
        unsafe {
            libc::write(2, message.as_ptr().cast(), message.len());
        }
    }
    loop {
        let mut raw = 0;
        // SAFETY: waits for any child (orphans of the namespace come here too).
        let pid = unsafe { libc::waitpid(-1, &mut raw, 0) };
        if pid == shell {
            // SAFETY: a 4-byte write to the status pipe, then the end of the init.
            unsafe {
                libc::write(3, (&raw as *const libc::c_int).cast(), 4);
                libc::_exit(0);
            }
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // SAFETY: ends the process.
            unsafe { libc::_exit(0) }
        }
    }
}

/// The stack the shell runs on between its clone and its `exec` (it only resets a few signals).
const SHELL_STACK_BYTES: usize = 64 * 1024;

/// The signals whose disposition the shell resets before its `exec`: the ones ignored in the
/// init ([`INIT_IGNORES`], and SIGPIPE, which Rust's runtime ignores; the zygote let no other
/// ignored one through, see [`serve`]), since an ignored signal stays ignored across `exec`;
/// and the ones Rust's runtime handles, so no handler of the init's runs on the shell's stack.
const SHELL_RESETS: [libc::c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGPIPE,
    libc::SIGSEGV,
    libc::SIGBUS,
];

/// What the shell's clone needs: NUL-terminated `argv` and `env` pointer arrays, and where it
/// leaves the `errno` of an `exec` that failed (its memory is the init's).
struct Exec {
    argv: *const *const libc::c_char,
    env: *const *const libc::c_char,
    errno: libc::c_int,
}

/// The shell's side of the clone: signals back to their defaults, then `exec`. Only raw calls:
/// it runs in the init's memory, on its own small stack, while the init waits.
extern "C" fn exec_shell(exec: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `exec` points to the init's `Exec`, alive until this process execs or exits.
    unsafe {
        let exec = &mut *exec.cast::<Exec>();
        for signal in SHELL_RESETS {
            libc::signal(signal, libc::SIG_DFL);
        }
        libc::execve(*exec.argv, exec.argv, exec.env);
        exec.errno = *libc::__errno_location();
        libc::_exit(127)
    }
}

/// Sends `bytes` with `fds` as one message.
pub fn send(socket: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(REQUEST_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    sendmsg(
        socket,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// Receives one message into `buf` and at most `max_fds` descriptors (close-on-exec).
pub fn receive(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(REQUEST_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = recvmsg(
        socket,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if fds.len() > max_fds {
        return Err(io::Error::other("a message carried too many descriptors"));
    }
    Ok((received.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_and_a_nul_is_refused() {
        let request = Request {
            cwd: b"/home/user/project".to_vec(),
            argv: vec![b"/bin/sh".to_vec(), b"-c".to_vec(), b"echo 'a b'".to_vec()],
            env: vec![b"PATH=/bin".to_vec(), b"EMPTY=".to_vec()],
        };
        let bytes = request.encode().unwrap();
        assert_eq!(Request::decode(&bytes).unwrap(), request);
        let bad = Request {
            argv: vec![b"sh\0-c".to_vec()],
            ..request
        };
        assert!(bad.encode().is_err());
        assert!(Request::decode(b"/w\x003\x00sh\x00").is_err());
        assert!(Request::decode(b"/w\x001\x00sh").is_err());
    }
}
