//! A scripted Anthropic Messages server: real HTTP on `127.0.0.1:0`, JSON and SSE.
//!
//! Each `POST /v1/messages` takes the next [`Reply`] of the script. A request that breaks the
//! API's rules ([`crate::rules`]) is recorded as a violation and refused with a 400, as the real
//! API would; so is a request past the end of the script. Tests end with
//! [`ScriptedServer::assert_clean`].

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
use serde_json::{Value, json};

/// One answer of the model: content blocks and a stop reason.
#[derive(Debug, Clone)]
pub struct Turn {
    pub blocks: Vec<Value>,
    pub stop_reason: String,
}

impl Turn {
    /// A final answer: text, `end_turn`.
    pub fn text(text: &str) -> Self {
        Self {
            blocks: vec![json!({"type": "text", "text": text})],
            stop_reason: "end_turn".into(),
        }
    }

    /// An answer that calls tools (`stop_reason: tool_use`).
    pub fn tools(calls: Vec<Value>) -> Self {
        Self {
            blocks: calls,
            stop_reason: "tool_use".into(),
        }
    }

    /// Text followed by tool calls.
    pub fn text_and_tools(text: &str, calls: Vec<Value>) -> Self {
        let mut blocks = vec![json!({"type": "text", "text": text})];
        blocks.extend(calls);
        Self {
            blocks,
            stop_reason: "tool_use".into(),
        }
    }
}

/// A `tool_use` block.
pub fn tool_use(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

/// What the server answers to one request.
pub enum Reply {
    /// The turn as a JSON message, or as SSE events when the request asked to stream.
    Turn(Turn),
    /// An error status with the API's error body, and optionally a `retry-after` header.
    Error {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<String>,
    },
    /// The turn's SSE events, cut off after the first `events` of them (the connection dies).
    CutStream { turn: Turn, events: usize },
    /// Decided when the request arrives, from its body.
    Dynamic(Box<dyn Fn(&Value) -> Reply + Send + Sync>),
}

impl Reply {
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        Reply::Error {
            status,
            kind: kind.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn dynamic(f: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Self {
        Reply::Dynamic(Box::new(f))
    }
}

impl From<Turn> for Reply {
    fn from(turn: Turn) -> Self {
        Reply::Turn(turn)
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub body: Value,
    pub headers: HeaderMap,
    /// When it arrived, counted from the server's start.
    pub at: Duration,
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    violations: Mutex<Vec<String>>,
    started: Instant,
}

/// The running server. Stops when dropped.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts a server that answers with `script`, in order.
    pub fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            requests: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            started: Instant::now(),
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
                let app = axum::Router::new()
                    .route("/v1/messages", post(handle))
                    .with_state(state);
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

    /// The base URL to give corral as `ANTHROPIC_BASE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let at = shared.started.elapsed();
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse(&shared, format!("the body is not JSON: {e}")),
    };
    shared.requests.lock().expect("lock").push(Recorded {
        body: body.clone(),
        headers: headers.clone(),
        at,
    });
    if headers.get("x-api-key").is_none() {
        return refuse(&shared, "no x-api-key header".into());
    }
    if headers
        .get("anthropic-version")
        .and_then(|v| v.to_str().ok())
        != Some("2023-06-01")
    {
        return refuse(&shared, "anthropic-version is not 2023-06-01".into());
    }
    let broken = crate::rules::violations(&body);
    if !broken.is_empty() {
        return refuse(&shared, broken.join("; "));
    }
    let next = shared.script.lock().expect("lock").pop_front();
    let Some(mut reply) = next else {
        return refuse(&shared, "a request past the end of the script".into());
    };
    while let Reply::Dynamic(f) = reply {
        reply = f(&body);
    }
    let stream = body.get("stream") == Some(&Value::Bool(true));
    match reply {
        Reply::Turn(turn) if stream => sse_response(sse_events(&turn), None),
        Reply::Turn(turn) => json_response(&turn),
        Reply::CutStream { turn, events } => {
            let all = sse_events(&turn);
            sse_response(all.into_iter().take(events).collect(), Some(()))
        }
        Reply::Error {
            status,
            kind,
            message,
            retry_after,
        } => {
            let mut response = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header("content-type", "application/json");
            if let Some(after) = retry_after {
                response = response.header("retry-after", after);
            }
            let body = json!({"type": "error", "error": {"type": kind, "message": message}});
            response
                .body(Body::from(body.to_string()))
                .expect("response")
        }
        Reply::Dynamic(_) => unreachable!("resolved above"),
    }
}

fn refuse(shared: &Shared, why: String) -> Response {
    shared.violations.lock().expect("lock").push(why.clone());
    let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": why}});
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn message_id() -> String {
    format!("msg_{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

fn json_response(turn: &Turn) -> Response {
    let body = json!({
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": "scripted",
        "content": turn.blocks,
        "stop_reason": turn.stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

/// The SSE events of a turn, as the real API sends them: text in two deltas, tool input JSON
/// in three pieces, a ping in the middle.
pub fn sse_events(turn: &Turn) -> Vec<(String, Value)> {
    let mut events = vec![(
        "message_start".to_string(),
        json!({"type": "message_start", "message": {"id": message_id(), "type": "message", "role": "assistant",
            "model": "scripted", "content": [], "stop_reason": null, "usage": {"input_tokens": 10, "output_tokens": 1}}}),
    )];
    events.push(("ping".into(), json!({"type": "ping"})));
    for (index, block) in turn.blocks.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") => {
                let text = block["text"].as_str().unwrap_or("");
                let mid = text
                    .char_indices()
                    .nth(text.chars().count() / 2)
                    .map_or(0, |(i, _)| i);
                events.push(("content_block_start".into(), json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                for piece in [&text[..mid], &text[mid..]] {
                    events.push(("content_block_delta".into(), json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
                }
            }
            Some("tool_use") => {
                events.push(("content_block_start".into(), json!({"type": "content_block_start", "index": index,
                    "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})));
                let input = block["input"].to_string();
                let chars: Vec<char> = input.chars().collect();
                let third = chars.len().div_ceil(3).max(1);
                for piece in chars.chunks(third) {
                    let piece: String = piece.iter().collect();
                    events.push(("content_block_delta".into(), json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})));
                }
            }
            _ => continue,
        }
        events.push((
            "content_block_stop".into(),
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(("message_delta".into(), json!({"type": "message_delta", "delta": {"stop_reason": turn.stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 5}})));
    events.push(("message_stop".into(), json!({"type": "message_stop"})));
    events
}

fn sse_response(events: Vec<(String, Value)>, cut: Option<()>) -> Response {
    use futures_util::StreamExt;
    let chunks: Vec<Result<Bytes, std::io::Error>> = events
        .into_iter()
        .map(|(name, data)| Ok(Bytes::from(format!("event: {name}\ndata: {data}\n\n"))))
        .collect();
    let body = futures_util::stream::iter(chunks);
    let body = if cut.is_some() {
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
