//! The loopback proxy of `[shell] network = ["host", ...]`: the only address a confined command
//! may connect to, letting through only the granted hosts.
//!
//! When: corral starts one [`Proxy`] per agent whose shell network is a host list, before the
//! first command, and gives every command `HTTP_PROXY`, `HTTPS_PROXY`, `http_proxy` and
//! `https_proxy` = [`Proxy::url`]; the kernel confinement lets commands open TCP connections to
//! [`Proxy::port`] alone. Dropping the `Proxy` stops it: the listener closes (new connections
//! are refused by the kernel) and open tunnels are shut down.
//!
//! What it decides on, as the plugins' wasi:http gate does: the request's own destination,
//! parsed by the `http` crate's URI parser, never a `Host` header.
//! - `CONNECT host:port HTTP/1.1` (https and anything tunnelled): the authority. When granted,
//!   corral resolves the name itself (a command may have no DNS of its own), connects, answers
//!   `200` and copies bytes both ways until either side closes or the tunnel is idle for
//!   [`TUNNEL_IDLE_TIMEOUT`].
//! - `GET http://host:port/path HTTP/1.1` (any method; plain http): the absolute URI, port 80
//!   when not given. When granted, the request goes upstream in origin-form (`GET /path`), with
//!   `Host` set from the URI, the proxy's and hop-by-hop headers removed and `Connection: close`
//!   (one request per connection); the body and the answer pass through unchanged.
//! - Anything else is answered with an error and nothing is connected: a request in origin-form
//!   (`GET /x`) or with another scheme is `400`; a destination no pattern allows is `403` with
//!   the body `corral: HOST:PORT is not granted to commands ([shell] network in corral.toml)`,
//!   logged with `tracing::info`; a head larger than [`MAX_HEAD_BYTES`] is `431`, one not read
//!   within [`HEAD_DEADLINE`] is `408`; past [`MAX_CONNECTIONS`] open connections, `503`; an
//!   upstream that cannot be resolved or reached within [`CONNECT_DEADLINE`] is `502`/`504`.
//!
//! Std threads and blocking sockets with deadlines, not tokio, so the proxy works with or
//! without a runtime: one thread accepts, one serves each connection, and a tunnel has one more
//! for its second direction.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::policy::HostPattern;

/// The most connections open at once; one more is answered `503 Service Unavailable`.
pub const MAX_CONNECTIONS: usize = 64;

/// The longest request head (request line and headers) read; a longer one is answered
/// `431 Request Header Fields Too Large`.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long a client has, from connecting, to send the whole request head; then `408`.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// How long resolving and connecting to the upstream may take together; then `504`.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// A tunnel (or a forwarded request) through which no byte passed, either way, for this long
/// is closed. Also the deadline of each write, so a peer that stops reading cannot hold a
/// thread forever.
pub const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// After an error answer, how long the proxy keeps reading (and discarding) what the client
/// still sends, so that closing does not reset the connection before the answer is read.
const LINGER: Duration = Duration::from_secs(1);

/// The most bytes discarded while lingering.
const LINGER_BYTES: usize = 1024 * 1024;

/// The size of the buffer each direction of a tunnel copies through.
const COPY_BUFFER_BYTES: usize = 16 * 1024;

/// A running proxy on `127.0.0.1`. Dropping it stops it.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// What the accept thread and the connection threads share with the [`Proxy`].
struct Shared {
    allowed: Vec<HostPattern>,
    /// Set when the [`Proxy`] is dropped.
    stopping: AtomicBool,
    /// Connections being served.
    active: AtomicUsize,
    next_id: AtomicU64,
    /// The sockets of every connection being served (client and upstream), so that dropping
    /// the proxy can shut them down.
    open: Mutex<HashMap<u64, Vec<TcpStream>>>,
}

impl Proxy {
    /// Binds `127.0.0.1:0` and starts accepting. Only destinations some pattern of `allowed`
    /// allows (as [`HostPattern::allows`] says) are connected; with none, every request is
    /// refused. `Err`: the socket could not be bound or the thread not started.
    pub fn start(allowed: Vec<HostPattern>) -> io::Result<Proxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            allowed,
            stopping: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("corral-proxy".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Proxy {
            port,
            shared,
            accept: Some(accept),
        })
    }

    /// The port on `127.0.0.1` it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, the value of the proxy variables of commands.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("port", &self.port)
            .field("allowed", &self.shared.allowed)
            .finish()
    }
}

impl Drop for Proxy {
    /// Stops accepting (the listener is closed when this returns) and shuts down every open
    /// connection; their threads end on their own right after.
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept thread, which then sees `stopping` and ends, closing the listener.
        let woken =
            TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)), LINGER)
                .is_ok();
        if let Some(accept) = self.accept.take()
            && woken
        {
            let _ = accept.join();
        }
        for stream in lock(&self.shared.open).values().flatten() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // A connection reset before it was accepted, or out of descriptors: go on.
            continue;
        };
        if shared.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            // A fresh socket's send buffer takes the short answer at once: never block here.
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write_all(&answer(
                503,
                "Service Unavailable",
                &format!("corral: more than {MAX_CONNECTIONS} connections to the proxy at once"),
            ));
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let connection = Connection {
            id,
            shared: Arc::clone(shared),
        };
        let spawned = std::thread::Builder::new()
            .name("corral-proxy-conn".into())
            .spawn(move || connection.serve(stream));
        if spawned.is_err() {
            tracing::warn!("the shell proxy could not start a thread for a connection");
        }
    }
}

/// One accepted connection; dropping it forgets its sockets and frees its slot.
struct Connection {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        lock(&self.shared.open).remove(&self.id);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a request is answered by the proxy itself.
struct Failure {
    status: u16,
    reason: &'static str,
    body: String,
}

fn fail(status: u16, reason: &'static str, body: impl Into<String>) -> Failure {
    Failure {
        status,
        reason,
        body: body.into(),
    }
}

impl Connection {
    /// Remembers `stream` for shutdown on drop; `false` when the proxy is stopping (then the
    /// connection must end).
    fn register(&self, stream: &TcpStream) -> bool {
        let mut open = lock(&self.shared.open);
        if self.shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        if let Ok(clone) = stream.try_clone() {
            open.entry(self.id).or_default().push(clone);
        }
        true
    }

    fn serve(self, client: TcpStream) {
        if !self.register(&client) || client.set_write_timeout(Some(TUNNEL_IDLE_TIMEOUT)).is_err() {
            return;
        }
        if let Err(failure) = self.relay(&client) {
            let _ = (&client).write_all(&answer(failure.status, failure.reason, &failure.body));
            linger(&client);
        }
    }

    /// Reads the head, decides, connects and relays. `Err`: the answer to give instead.
    fn relay(&self, client: &TcpStream) -> Result<(), Failure> {
        let (head, rest) = read_head(client)?;
        let request = Request::parse(&head)?;
        if !self
            .shared
            .allowed
            .iter()
            .any(|pattern| pattern.allows(&request.host, request.port))
        {
            tracing::info!(
                host = %request.host,
                port = request.port,
                "the shell proxy refused a destination not granted to commands"
            );
            return Err(fail(
                403,
                "Forbidden",
                format!(
                    "corral: {}:{} is not granted to commands ([shell] network in corral.toml)",
                    request.host, request.port
                ),
            ));
        }
        let upstream = connect(&request.host, request.port)?;
        if !self.register(&upstream)
            || upstream
                .set_write_timeout(Some(TUNNEL_IDLE_TIMEOUT))
                .is_err()
        {
            return Ok(());
        }
        let mut first = match &request.forward {
            None => {
                (&*client)
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .map_err(|_| fail(502, "Bad Gateway", "corral: the client went away"))?;
                Vec::new()
            }
            Some(head) => head.clone().into_bytes(),
        };
        first.extend_from_slice(&rest);
        if (&upstream).write_all(&first).is_err() {
            return Err(fail(
                502,
                "Bad Gateway",
                format!(
                    "corral: {}:{} closed the connection",
                    request.host, request.port
                ),
            ));
        }
        tunnel(client, &upstream);
        Ok(())
    }
}

/// Reads the request head, up to and including the empty line; returns it and any bytes read
/// past it (the start of a body, or of a tunnel's traffic).
fn read_head(client: &TcpStream) -> Result<(String, Vec<u8>), Failure> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = head_end(&buffer) {
            let rest = buffer.split_off(end);
            let head = String::from_utf8(buffer)
                .map_err(|_| fail(400, "Bad Request", "corral: the request head is not UTF-8"))?;
            return Ok((head, rest));
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err(fail(
                431,
                "Request Header Fields Too Large",
                format!("corral: the request head is longer than {MAX_HEAD_BYTES} bytes"),
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let timed_out = || {
            fail(
                408,
                "Request Timeout",
                format!("corral: no whole request head within {HEAD_DEADLINE:?}"),
            )
        };
        if left.is_zero() || client.set_read_timeout(Some(left)).is_err() {
            return Err(timed_out());
        }
        let want = chunk.len().min(MAX_HEAD_BYTES + 1 - buffer.len());
        match (&*client).read(&mut chunk[..want]) {
            Ok(0) => {
                return Err(fail(
                    400,
                    "Bad Request",
                    "corral: the connection ended inside the request head",
                ));
            }
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                return Err(fail(400, "Bad Request", "corral: the connection failed"));
            }
        }
    }
}

/// The length of the head in `buffer` (through `\r\n\r\n`, or `\n\n`), once it is all there.
fn head_end(buffer: &[u8]) -> Option<usize> {
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A request the proxy may pass: its destination and, for plain http, the head to send
/// upstream (`None` for `CONNECT`).
struct Request {
    /// As the URI gives it: a name, an IPv4 address or a bracketed IPv6 address.
    host: String,
    port: u16,
    forward: Option<String>,
}

impl Request {
    fn parse(head: &str) -> Result<Request, Failure> {
        let bad = |why: &str| fail(400, "Bad Request", format!("corral: {why}"));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or("");
        let mut words = request_line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(bad("a request line is `METHOD TARGET HTTP/1.1`"));
        };
        if !version.starts_with("HTTP/1.") || method.is_empty() {
            return Err(bad("only HTTP/1.x requests are proxied"));
        }
        let uri: http::Uri = target
            .parse()
            .map_err(|_| bad("the request target is not a URI"))?;
        let host = uri.host().unwrap_or("").to_string();
        if method.eq_ignore_ascii_case("CONNECT") {
            if host.is_empty() || uri.scheme().is_some() || uri.path_and_query().is_some() {
                return Err(bad("CONNECT takes `host:port`"));
            }
            let port = uri.port_u16().unwrap_or(443);
            return Ok(Request {
                host,
                port,
                forward: None,
            });
        }
        if uri.scheme().is_none() {
            return Err(bad(
                "give the absolute URI (`GET http://host/path`): this is a proxy",
            ));
        }
        if uri.scheme_str() != Some("http") || host.is_empty() {
            return Err(bad("only http:// is forwarded; use CONNECT for https"));
        }
        let port = uri.port_u16().unwrap_or(80);
        let mut forward = format!(
            "{method} {} {version}\r\nHost: {host}",
            uri.path_and_query().map_or("/", |p| p.as_str())
        );
        if let Some(port) = uri.port() {
            forward.push_str(&format!(":{port}"));
        }
        forward.push_str("\r\n");
        let headers: Vec<(&str, &str)> = lines
            .take_while(|line| !line.is_empty())
            .map(|line| {
                if line.starts_with([' ', '\t']) {
                    return Err(bad("folded header lines are not accepted"));
                }
                if line.contains(|c: char| c.is_ascii_control() && c != '\t') {
                    return Err(bad("a header line with a control character"));
                }
                line.split_once(':')
                    .map(|(name, value)| (name.trim(), value.trim()))
                    .ok_or_else(|| bad("a header line without `:`"))
            })
            .collect::<Result<_, _>>()?;
        // Hop-by-hop headers, and those `Connection` names, stay here.
        let mut dropped: Vec<String> = [
            "host",
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "proxy-authenticate",
            "te",
            "trailer",
            "upgrade",
        ]
        .map(String::from)
        .to_vec();
        for (name, value) in &headers {
            if name.eq_ignore_ascii_case("connection") {
                dropped.extend(value.split(',').map(|n| n.trim().to_ascii_lowercase()));
            }
        }
        for (name, value) in headers {
            if !dropped.contains(&name.to_ascii_lowercase()) {
                forward.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        forward.push_str("Connection: close\r\n\r\n");
        Ok(Request {
            host,
            port,
            forward: Some(forward),
        })
    }
}

/// Resolves `host` (in corral: the command may have no DNS) and connects to the first address
/// that answers, all within [`CONNECT_DEADLINE`].
fn connect(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let deadline = Instant::now() + CONNECT_DEADLINE;
    let target = format!("{host}:{port}");
    let too_slow = || {
        fail(
            504,
            "Gateway Timeout",
            format!("corral: {target} did not answer within {CONNECT_DEADLINE:?}"),
        )
    };
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addresses: Vec<SocketAddr> = match unbracketed.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            // The system resolver has no deadline of its own: wait for it on a channel.
            let (send, receive) = mpsc::channel();
            let name = unbracketed.to_string();
            std::thread::Builder::new()
                .name("corral-proxy-dns".into())
                .spawn(move || {
                    let _ = send.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
                })
                .map_err(|_| fail(502, "Bad Gateway", "corral: no thread to resolve the name"))?;
            match receive.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Ok(addresses)) => addresses,
                Ok(Err(e)) => {
                    return Err(fail(
                        502,
                        "Bad Gateway",
                        format!("corral: cannot resolve {host}: {e}"),
                    ));
                }
                Err(_) => return Err(too_slow()),
            }
        }
    };
    let mut last = None;
    for address in addresses {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(too_slow());
        }
        match TcpStream::connect_timeout(&address, left) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(too_slow()),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(
        502,
        "Bad Gateway",
        match last {
            Some(e) => format!("corral: cannot connect to {target}: {e}"),
            None => format!("corral: {host} has no address"),
        },
    ))
}

/// Copies bytes both ways until both directions end, one fails, or nothing passed for
/// [`TUNNEL_IDLE_TIMEOUT`]. Client to upstream runs here, upstream to client on a second thread.
fn tunnel(client: &TcpStream, upstream: &TcpStream) {
    let base = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let back = {
        let last = Arc::clone(&last);
        std::thread::Builder::new()
            .name("corral-proxy-tunnel".into())
            .spawn(move || copy(&upstream2, &client2, base, &last))
    };
    copy(client, upstream, base, &last);
    match back {
        Ok(back) => {
            let _ = back.join();
        }
        Err(_) => {
            let _ = upstream.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
        }
    }
}

/// One direction of a tunnel: `from` to `to`, noting activity in `last` (milliseconds since
/// `base`). At the end of `from`, half-closes `to`; on an error or when idle, shuts both down.
fn copy(from: &TcpStream, to: &TcpStream, base: Instant, last: &AtomicU64) {
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    let idle_for = || {
        let since = Duration::from_millis(last.load(Ordering::Relaxed));
        base.elapsed().saturating_sub(since)
    };
    loop {
        let left = TUNNEL_IDLE_TIMEOUT.saturating_sub(idle_for());
        if left.is_zero() || from.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match (&*from).read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if (&*to).write_all(&buffer[..n]).is_err() {
                    break;
                }
                let now = u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX);
                last.store(now, Ordering::Relaxed);
            }
            // The other direction may have been busy: the loop measures again.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// An answer of the proxy itself, with a one-line text body.
fn answer(status: u16, reason: &str, body: &str) -> Vec<u8> {
    let body = format!("{body}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// After an error answer: stops sending, then discards what the client still sends for
/// [`LINGER`] (at most [`LINGER_BYTES`]), so the close does not reset the answer away.
fn linger(client: &TcpStream) {
    let _ = client.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut discarded = 0;
    let mut buffer = [0u8; 4096];
    while discarded < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || client.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&*client).read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => discarded += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest a test waits for anything.
    const WAIT: Duration = Duration::from_secs(5);

    fn proxy(allowed: &[String]) -> Proxy {
        let allowed = allowed
            .iter()
            .map(|p| HostPattern::parse(p).unwrap())
            .collect();
        Proxy::start(allowed).unwrap()
    }

    fn client(proxy: &Proxy) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream
    }

    /// Reads until the end of an HTTP head; the head as text.
    fn read_answer_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).unwrap(), 1, "EOF inside {head:?}");
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    /// Everything until the peer closes.
    fn read_all(stream: &mut TcpStream) -> String {
        let mut all = String::new();
        stream.read_to_string(&mut all).unwrap();
        all
    }

    /// A listener nobody should reach: `assert_untouched` fails if someone connected.
    fn untouched_listener() -> TcpListener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    }

    fn assert_untouched(listener: &TcpListener) {
        match listener.accept() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("the upstream was connected: {other:?}"),
        }
    }

    /// An HTTP server answering one request: it sends back the request head it received.
    fn echo_head_server() -> (u16, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let head = read_answer_head(&mut stream);
            let body = format!("got {}", head.lines().next().unwrap());
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            head
        });
        (port, server)
    }

    /// CONNECT to a granted address opens a tunnel that carries bytes both ways, and the
    /// bytes sent right after the head are not lost.
    #[test]
    fn connect_tunnel_carries_bytes_both_ways() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = upstream.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = upstream.accept().unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let mut got = [0u8; 10];
            stream.read_exact(&mut got).unwrap();
            stream.write_all(b"pong:").unwrap();
            stream.write_all(&got).unwrap();
        });
        let proxy = proxy(&[format!("127.0.0.1:{port}")]);
        let mut stream = client(&proxy);
        write!(
            stream,
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\nhello"
        )
        .unwrap();
        let head = read_answer_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        stream.write_all(b"world").unwrap();
        assert_eq!(read_all(&mut stream), "pong:helloworld");
        server.join().unwrap();
    }

    /// A plain `GET http://…` to a granted host is forwarded in origin-form, with `Host` from
    /// the URI and the proxy's headers removed, and the answer comes back.
    #[test]
    fn plain_http_is_forwarded_in_origin_form() {
        let (port, server) = echo_head_server();
        let proxy = proxy(&[format!("127.0.0.1:{port}")]);
        let mut stream = client(&proxy);
        write!(
            stream,
            "GET http://127.0.0.1:{port}/x?y=1 HTTP/1.1\r\nHost: elsewhere\r\n\
             Proxy-Connection: keep-alive\r\nProxy-Authorization: secret\r\nAccept: */*\r\n\r\n"
        )
        .unwrap();
        let answer = read_all(&mut stream);
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("got GET /x?y=1 HTTP/1.1"), "{answer}");
        let seen = server.join().unwrap();
        assert!(
            seen.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{seen}"
        );
        assert!(seen.contains("Accept: */*\r\n"), "{seen}");
        assert!(seen.contains("Connection: close\r\n"), "{seen}");
        assert!(
            !seen.contains("elsewhere") && !seen.contains("Proxy-"),
            "{seen}"
        );
    }

    /// A CONNECT and a GET to a port that is not granted are 403 with the message naming the
    /// destination, and that port's listener sees no connection.
    #[test]
    fn not_granted_is_403_and_never_connected() {
        let denied = untouched_listener();
        let denied_port = denied.local_addr().unwrap().port();
        let proxy = proxy(&["127.0.0.1:1".to_string()]);
        for request in [
            format!("CONNECT 127.0.0.1:{denied_port} HTTP/1.1\r\n\r\n"),
            format!("GET http://127.0.0.1:{denied_port}/ HTTP/1.1\r\n\r\n"),
        ] {
            let mut stream = client(&proxy);
            stream.write_all(request.as_bytes()).unwrap();
            let answer = read_all(&mut stream);
            assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
            assert!(
                answer.ends_with(&format!(
                    "\r\n\r\ncorral: 127.0.0.1:{denied_port} is not granted to commands \
                     ([shell] network in corral.toml)\n"
                )),
                "{answer}"
            );
        }
        assert_untouched(&denied);
    }

    /// The absolute URI decides, not `Host`: a GET to a denied host with the allowed one's
    /// `Host` header is refused, and neither upstream is connected.
    #[test]
    fn host_header_never_decides() {
        let allowed = untouched_listener();
        let allowed_port = allowed.local_addr().unwrap().port();
        let denied = untouched_listener();
        let denied_port = denied.local_addr().unwrap().port();
        let proxy = proxy(&[format!("127.0.0.1:{allowed_port}")]);
        let mut stream = client(&proxy);
        write!(
            stream,
            "GET http://127.0.0.1:{denied_port}/ HTTP/1.1\r\nHost: 127.0.0.1:{allowed_port}\r\n\r\n"
        )
        .unwrap();
        let answer = read_all(&mut stream);
        assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
        assert_untouched(&allowed);
        assert_untouched(&denied);
    }

    /// A head past the cap is 431; a request in origin-form, an https absolute URI or garbage
    /// is 400. None connects anywhere.
    #[test]
    fn bad_requests_are_answered_by_the_proxy() {
        let upstream = untouched_listener();
        let port = upstream.local_addr().unwrap().port();
        let proxy = proxy(&["*".to_string()]);

        let mut stream = client(&proxy);
        let big = format!(
            "GET http://127.0.0.1:{port}/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        stream.write_all(big.as_bytes()).unwrap();
        let answer = read_all(&mut stream);
        assert!(
            answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{answer}"
        );

        for (request, status) in [
            (
                "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_string(),
                "400",
            ),
            (
                format!("GET https://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n"),
                "400",
            ),
            (
                format!("CONNECT http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n"),
                "400",
            ),
            ("hello\r\n\r\n".to_string(), "400"),
            (
                format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nX: a\rb\r\n\r\n"),
                "400",
            ),
        ] {
            let mut stream = client(&proxy);
            stream.write_all(request.as_bytes()).unwrap();
            let answer = read_all(&mut stream);
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{request:?}: {answer}"
            );
        }
        assert_untouched(&upstream);
    }

    /// A granted destination that refuses connections is 502.
    #[test]
    fn unreachable_upstream_is_502() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let proxy = proxy(&[format!("127.0.0.1:{port}")]);
        let mut stream = client(&proxy);
        write!(stream, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").unwrap();
        let answer = read_all(&mut stream);
        assert!(
            answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
            "{answer}"
        );
    }

    /// Dropping the proxy closes its listener (new connects fail) and shuts open tunnels down.
    #[test]
    fn drop_stops_the_proxy_and_its_tunnels() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = upstream.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = upstream.accept().unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            // Holds the tunnel open until the proxy closes it.
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        });
        let proxy = proxy(&[format!("127.0.0.1:{port}")]);
        let proxy_port = proxy.port();
        assert_eq!(proxy.url(), format!("http://127.0.0.1:{proxy_port}"));
        let mut stream = client(&proxy);
        write!(stream, "CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").unwrap();
        assert!(read_answer_head(&mut stream).starts_with("HTTP/1.1 200 "));

        drop(proxy);
        assert!(
            TcpStream::connect(("127.0.0.1", proxy_port)).is_err(),
            "the listener is closed"
        );
        let mut rest = Vec::new();
        if let Err(e) = stream.read_to_end(&mut rest) {
            assert!(
                !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ),
                "the tunnel is still open: {e}"
            );
        }
        server.join().unwrap();
    }

    /// Past the connection cap, a new client gets 503 at once.
    #[test]
    fn past_the_cap_is_503() {
        let proxy = proxy(&[]);
        // Idle clients that never finish their head hold their slots.
        let held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| client(&proxy)).collect();
        let deadline = Instant::now() + WAIT;
        while proxy.shared.active.load(Ordering::SeqCst) < MAX_CONNECTIONS {
            assert!(
                Instant::now() < deadline,
                "the held clients were not accepted"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut extra = client(&proxy);
        let answer = read_all(&mut extra);
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        drop(held);
    }
}
