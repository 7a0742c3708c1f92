//! What every scripted model server shares, whatever wire protocol it speaks: real HTTP on
//! `127.0.0.1:0` in a thread of its own, a script of replies taken in order, a record of every
//! request, a refusal (and a recorded violation) for every request that breaks the protocol's
//! rules or comes past the end of the script, and the JSON and SSE answers.
//!
//! A protocol ([`crate::server`] for Anthropic, [`crate::openai_server`] for OpenAI) says where
//! it listens, what its rules are, and how a reply of its script becomes an answer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use serde_json::Value;

/// One wire protocol, as a scripted server speaks it.
pub trait Protocol: 'static {
    /// One entry of the script.
    type Reply: Send + 'static;
    /// The path of the base URL corral is given (`""` or `"/v1"`).
    const BASE: &'static str;
    /// The path, under [`BASE`](Self::BASE), that answers model calls.
    const ENDPOINT: &'static str;
    /// The path, under [`BASE`](Self::BASE), that counts a request's input tokens, where the
    /// protocol has one. It answers `{"input_tokens": N}` with N the body's bytes divided by
    /// [`Scripted::count_bytes_per_token`] (4 unless set).
    const COUNT_ENDPOINT: Option<&'static str> = None;

    /// Every rule the request breaks, as readable sentences; empty when it is valid.
    fn violations(headers: &HeaderMap, body: &Value) -> Vec<String>;

    /// Every rule the request breaks against the conversation so far: `earlier`, the requests
    /// before it, and `answers`, what the model said before ([`answer`](Self::answer)). None by
    /// default.
    fn history_violations(_earlier: &[Recorded], _answers: &[Value], _body: &Value) -> Vec<String> {
        Vec::new()
    }

    /// What the model says in `reply`, remembered for [`history_violations`]
    /// (Self::history_violations); `None` (the default) for an error, a cut stream, or a reply
    /// decided only when its request arrives.
    fn answer(_reply: &Self::Reply) -> Option<Value> {
        None
    }

    /// The API's error body for a refused request.
    fn error_body(kind: &str, message: &str) -> Value;

    /// The answer to a valid request `body`: JSON, or SSE when it asked to stream.
    fn respond(reply: Self::Reply, body: &Value) -> Response;
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub body: Value,
    pub headers: HeaderMap,
    /// When it arrived, counted from the server's start.
    pub at: Duration,
}

struct Shared<R> {
    script: Mutex<VecDeque<R>>,
    requests: Mutex<Vec<Recorded>>,
    answers: Mutex<Vec<Value>>,
    violations: Mutex<Vec<String>>,
    started: Instant,
    counted: Mutex<Vec<Value>>,
    count_bytes_per_token: Mutex<usize>,
}

/// A running scripted server for protocol `P`. Stops when dropped.
pub struct Scripted<P: Protocol> {
    pub addr: SocketAddr,
    shared: Arc<Shared<P::Reply>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<P: Protocol> Scripted<P> {
    /// Starts a server that answers with `script`, in order.
    pub fn start(script: Vec<P::Reply>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            requests: Mutex::new(Vec::new()),
            answers: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            started: Instant::now(),
            counted: Mutex::new(Vec::new()),
            count_bytes_per_token: Mutex::new(4),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let path = format!("{}{}", P::BASE, P::ENDPOINT);
                let mut app = axum::Router::new().route(&path, post(handle::<P>));
                if let Some(count) = P::COUNT_ENDPOINT {
                    app = app.route(&format!("{}{count}", P::BASE), post(count_tokens::<P>));
                }
                let app = app.with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await;
            });
        });
        Self {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The base URL to give corral (`ANTHROPIC_BASE_URL`, `OPENAI_BASE_URL`).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, P::BASE)
    }

    /// The bodies of every token-counting request so far ([`Protocol::COUNT_ENDPOINT`]).
    pub fn counted(&self) -> Vec<Value> {
        self.shared.counted.lock().expect("lock").clone()
    }

    /// Sets how many bytes of a request the token counter counts as one token.
    pub fn count_bytes_per_token(&self, bytes: usize) {
        *self.shared.count_bytes_per_token.lock().expect("lock") = bytes.max(1);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// The bodies of every request received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.requests().into_iter().map(|r| r.body).collect()
    }

    /// Rule violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.shared.violations.lock().expect("lock").clone()
    }

    /// Replies not yet used.
    pub fn remaining(&self) -> usize {
        self.shared.script.lock().expect("lock").len()
    }

    /// Fails the test if any request broke the API's rules or the script was not used up.
    pub fn assert_clean(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "requests broke the API's rules:\n{}",
            violations.join("\n")
        );
        assert_eq!(self.remaining(), 0, "the script was not used up");
    }
}

impl<P: Protocol> Drop for Scripted<P> {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A token-counting request: recorded, answered with its bytes over the divisor set. A body
/// that is not JSON or asks for an answer (`max_tokens`, `stream`) is refused, as the API does.
async fn count_tokens<P: Protocol>(
    State(shared): State<Arc<Shared<P::Reply>>>,
    body: Bytes,
) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse::<P>(&shared, format!("the count body is not JSON: {e}")),
    };
    if value.get("max_tokens").is_some() || value.get("stream").is_some() {
        return refuse::<P>(
            &shared,
            "a count request takes no max_tokens or stream".into(),
        );
    }
    let tokens = body.len() / *shared.count_bytes_per_token.lock().expect("lock");
    shared.counted.lock().expect("lock").push(value);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({"input_tokens": tokens}).to_string(),
        ))
        .expect("response")
}

async fn handle<P: Protocol>(
    State(shared): State<Arc<Shared<P::Reply>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = shared.started.elapsed();
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse::<P>(&shared, format!("the body is not JSON: {e}")),
    };
    let earlier = {
        let mut requests = shared.requests.lock().expect("lock");
        let earlier = requests.clone();
        requests.push(Recorded {
            body: body.clone(),
            headers: headers.clone(),
            at,
        });
        earlier
    };
    let mut broken = P::violations(&headers, &body);
    let answers = shared.answers.lock().expect("lock").clone();
    broken.extend(P::history_violations(&earlier, &answers, &body));
    if !broken.is_empty() {
        return refuse::<P>(&shared, broken.join("; "));
    }
    let next = shared.script.lock().expect("lock").pop_front();
    match next {
        Some(reply) => {
            if let Some(answer) = P::answer(&reply) {
                shared.answers.lock().expect("lock").push(answer);
            }
            P::respond(reply, &body)
        }
        None => refuse::<P>(&shared, "a request past the end of the script".into()),
    }
}

fn refuse<P: Protocol>(shared: &Shared<P::Reply>, why: String) -> Response {
    shared.violations.lock().expect("lock").push(why.clone());
    error_response(400, None, &P::error_body("invalid_request_error", &why))
}

/// Whether the request asked for a streamed answer.
pub fn wants_stream(body: &Value) -> bool {
    body.get("stream") == Some(&Value::Bool(true))
}

/// A 200 with a JSON body.
pub fn json_response(body: &Value) -> Response {
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

/// An error status with the API's error body, and a `retry-after` header when given.
pub fn error_response(status: u16, retry_after: Option<&str>, body: &Value) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json");
    if let Some(after) = retry_after {
        response = response.header("retry-after", after);
    }
    response
        .body(Body::from(body.to_string()))
        .expect("response")
}

/// A `text/event-stream` answer sending `events` (each already framed, blank line included),
/// one network write each. With `cut`, the connection then dies instead of ending cleanly.
pub fn sse_response(events: Vec<String>, cut: bool) -> Response {
    use futures_util::StreamExt;
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        events.into_iter().map(|e| Ok(Bytes::from(e))).collect();
    let body = futures_util::stream::iter(chunks);
    let body = if cut {
        // Let the head and the events reach the client, then kill the connection.
        body.chain(futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err(std::io::Error::other("connection cut by the script"))
        }))
        .boxed()
    } else {
        body.boxed()
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .expect("response")
}

/// A 200 whose body is `chunks`, each sent `gap` after the one before, the first `gap` after the
/// request: a slow model, thinking before it answers and then answering piece by piece. The
/// waits are timers of the server's runtime, so they hold up no other request.
pub fn paced_response(content_type: &str, chunks: Vec<String>, gap: Duration) -> Response {
    use futures_util::StreamExt;
    let body = futures_util::stream::iter(chunks).then(move |chunk| async move {
        tokio::time::sleep(gap).await;
        Ok::<_, std::io::Error>(Bytes::from(chunk))
    });
    Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .expect("response")
}

/// A random-looking id suffix, for message and completion ids.
pub fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    format!("{:016x}", h.finish())
}
