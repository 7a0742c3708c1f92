//! For a network host list: a network namespace of the command's own, with only loopback,
//! bridged to corral's proxy.
//!
//! Landlock's TCP rule names a port, not an address: alone, it would let a command connect to
//! the proxy's port number on any host. So, in a mount namespace (never the Landlock-only way),
//! the helper forks a small **relay** first, which stays in corral's network namespace, then
//! moves itself into a new one where only `lo` exists, listens there on `127.0.0.1:PORT` (the
//! address the command's `HTTP_PROXY` names) and hands that listening socket to the relay over
//! a socket pair. The relay accepts on it and connects each connection to the proxy at
//! `127.0.0.1:PORT` of corral's namespace, copying bytes both ways. Everything else the command
//! might connect to is unreachable: there is no other interface.
//!
//! The relay runs only this file's code, with stdin, stdout and stderr on `/dev/null` (so the
//! command's output ends when the command does). It dies with the helper's process (parent
//! death signal), and with the command's process group.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

/// Connections the relay carries at once; past it, new ones are closed.
pub const MAX_RELAYED: usize = 64;

/// Forks the relay, then moves this process into a loopback-only network namespace listening
/// on `port`. Needs the privileges of the user (or root's) namespace the helper made.
pub fn bridge(port: u16) -> io::Result<()> {
    let (ours, theirs) = UnixStream::pair()?;
    // SAFETY: the helper is single-threaded here; the child runs only `relay`, which ends the
    // process with `_exit`.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(ours);
            relay(theirs, port)
        }
        _ => {
            drop(theirs);
            // SAFETY: unshare takes flags only.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            loopback_up()?;
            let listener = TcpListener::bind(("127.0.0.1", port))?;
            let fds = [listener.as_fd()];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(&fds));
            sendmsg(
                &ours,
                &[IoSlice::new(b"l")],
                &mut control,
                SendFlags::empty(),
            )?;
            Ok(())
        }
    }
}

/// Brings `lo` up in the new namespace.
fn loopback_up() -> io::Result<()> {
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    // SAFETY: a plain socket call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short,
        _pad: [0; 22],
    };
    for (slot, byte) in req.name.iter_mut().zip(b"lo") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCSIFFLAGS reads the ifreq we pass; fd is ours and closed after.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut req) };
    let error = io::Error::last_os_error();
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Err(error);
    }
    Ok(())
}

/// The relay process: never returns.
fn relay(socket: UnixStream, port: u16) -> ! {
    // SAFETY: prctl and dup2 with integer arguments; the relay owns its descriptors.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            for fd in 0..3 {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
    let code = match receive_listener(&socket) {
        Ok(listener) => {
            drop(socket);
            serve(TcpListener::from(listener), port);
            0
        }
        Err(_) => 1,
    };
    // SAFETY: ends the forked child without running the parent's exit handlers.
    unsafe { libc::_exit(code) }
}

fn receive_listener(socket: &UnixStream) -> io::Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(io::Error::other("no listener received"))
}

fn serve(listener: TcpListener, port: u16) {
    let active = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for inner in listener.incoming() {
        let Ok(inner) = inner else { return };
        if active.load(std::sync::atomic::Ordering::Relaxed) >= MAX_RELAYED {
            continue;
        }
        let Ok(outer) = TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let active = active.clone();
        std::thread::spawn(move || {
            splice(inner, outer);
            active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

/// Copies both ways until both directions end.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let (mut from, mut to) = (b2, a2);
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
    let (mut from, mut to) = (a, b);
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = back.join();
}
