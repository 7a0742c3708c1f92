//! `escape`: tries every way out of the sandbox and reports what happened to each.
//!
//! The output is one JSON object:
//!
//! ```json
//! {"all_refused": true,
//!  "attempts": [{"attempt": "read /etc/passwd", "refused": true, "detail": "..."}, ...]}
//! ```
//!
//! `refused` is true when the attempt failed or found nothing (an error, an unset
//! variable, an empty listing, no variables beyond `allowed_env`); `detail` says what
//! happened (the error's text, a `wasi:http` error code such as `HttpRequestDenied`,
//! or the size of what was read, never the content). The tool itself always
//! succeeds; `all_refused` is the conjunction of every `refused`.

use std::io::{Read as _, Write as _};

use corral_plugin::{Tool, ToolError, schemars};
use serde::{Deserialize, Serialize};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingRequest, Scheme};

/// The input of `escape`: the targets the test set up. Every field is optional.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscapeArgs {
    /// Workspace-relative path of a symlink that points outside the workspace.
    #[serde(default)]
    pub symlink: Option<String>,
    /// Absolute host paths to try to read, e.g. the workspace's real path on the host.
    #[serde(default)]
    pub host_paths: Vec<String>,
    /// An environment variable that is set on the host but not granted.
    #[serde(default)]
    pub env: Option<String>,
    /// A URL on a host that is not granted, e.g. `http://127.0.0.1:8080/`.
    #[serde(default)]
    pub url: Option<String>,
    /// With `url`: a `Host` header naming a granted host, to try the Host-header trick (the
    /// host must judge the destination by the URL alone).
    #[serde(default)]
    pub host_header: Option<String>,
    /// A `host:port` to open a TCP connection to.
    #[serde(default)]
    pub tcp: Option<String>,
    /// Variables the test granted: seeing them is not an escape.
    #[serde(default)]
    pub allowed_env: Vec<String>,
}

/// What happened to one attempt.
#[derive(Serialize)]
struct Attempt {
    attempt: String,
    refused: bool,
    detail: String,
}

#[derive(Serialize)]
struct Report {
    all_refused: bool,
    attempts: Vec<Attempt>,
}

/// The `escape` tool.
pub struct Escape;

impl Tool for Escape {
    const NAME: &'static str = "escape";
    const DESCRIPTION: &'static str = "Try to escape the sandbox; report each attempt as JSON.";
    type Args = EscapeArgs;

    fn call(args: EscapeArgs) -> Result<String, ToolError> {
        let mut attempts = Vec::new();

        let mut paths = vec![
            "/etc/passwd".to_string(),
            "/workspace/../etc/passwd".to_string(),
            "/workspace/../../etc/passwd".to_string(),
            "../etc/passwd".to_string(),
            "/proc/self/environ".to_string(),
        ];
        paths.extend(args.host_paths.iter().cloned());
        if let Some(link) = &args.symlink {
            paths.push(format!("/workspace/{}", link.trim_start_matches('/')));
        }
        for path in &paths {
            attempts.push(read(path));
        }
        attempts.push(list("/"));
        attempts.push(list("/workspace/.."));
        attempts.push(write("/tmp/corral-escape"));
        attempts.push(write("/workspace/../corral-escape"));

        attempts.push(env_everything(&args.allowed_env));
        if let Some(name) = &args.env {
            attempts.push(match std::env::var(name) {
                Ok(value) => found(format!("env {name}"), format!("set, {} bytes", value.len())),
                Err(e) => refused(format!("env {name}"), e.to_string()),
            });
        }
        if let Some(url) = &args.url {
            attempts.push(http_get(url, args.host_header.as_deref()));
        }
        if let Some(addr) = &args.tcp {
            attempts.push(match std::net::TcpStream::connect(addr.as_str()) {
                Ok(_) => found(format!("tcp {addr}"), "connected".into()),
                Err(e) => refused(format!("tcp {addr}"), e.to_string()),
            });
        }

        let all_refused = attempts.iter().all(|a| a.refused);
        serde_json::to_string(&Report {
            all_refused,
            attempts,
        })
        .map_err(|e| ToolError::failed(format!("cannot write the report: {e}")))
    }
}

fn refused(attempt: String, detail: String) -> Attempt {
    Attempt {
        attempt,
        refused: true,
        detail,
    }
}

fn found(attempt: String, detail: String) -> Attempt {
    Attempt {
        attempt,
        refused: false,
        detail,
    }
}

fn read(path: &str) -> Attempt {
    let attempt = format!("read {path}");
    let mut bytes = Vec::new();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)) {
        Ok(n) => found(attempt, format!("read {n} bytes")),
        Err(e) => refused(attempt, e.to_string()),
    }
}

fn list(path: &str) -> Attempt {
    let attempt = format!("list {path}");
    match std::fs::read_dir(path) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            if names.is_empty() {
                refused(attempt, "empty".into())
            } else {
                found(
                    attempt,
                    format!("{} entries: {}", names.len(), names.join(", ")),
                )
            }
        }
        Err(e) => refused(attempt, e.to_string()),
    }
}

fn write(path: &str) -> Attempt {
    let attempt = format!("write {path}");
    match std::fs::File::create(path).and_then(|mut f| f.write_all(b"escaped")) {
        Ok(()) => found(attempt, "written".into()),
        Err(e) => refused(attempt, e.to_string()),
    }
}

/// Every variable the guest can see beyond `allowed`: none unless granted.
fn env_everything(allowed: &[String]) -> Attempt {
    let names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .filter(|k| !allowed.contains(k))
        .collect();
    if names.is_empty() {
        refused(
            "env (all variables)".into(),
            "none visible beyond allowed_env".into(),
        )
    } else {
        found("env (all variables)".into(), names.join(", "))
    }
}

/// The name of a `wasi:http` error code, e.g. `HttpRequestDenied`.
fn code_name(code: &wasip2::http::types::ErrorCode) -> String {
    let debug = format!("{code:?}");
    debug
        .strip_prefix("ErrorCode::")
        .unwrap_or(&debug)
        .to_string()
}

fn http_get(url: &str, host_header: Option<&str>) -> Attempt {
    let attempt = match host_header {
        Some(host) => format!("http GET {url} with Host: {host}"),
        None => format!("http GET {url}"),
    };
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((_, rest)) => (Scheme::Http, rest),
        None => (Scheme::Http, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    if let Some(host) = host_header
        && let Err(e) = headers.append("host", host.as_bytes())
    {
        return refused(attempt, format!("the Host header was refused: {e:?}"));
    }
    let request = OutgoingRequest::new(headers);
    let ok = request.set_method(&Method::Get).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !ok {
        return refused(attempt, "the guest could not build the request".into());
    }
    let pending = match outgoing_handler::handle(request, None) {
        Ok(pending) => pending,
        Err(code) => return refused(attempt, code_name(&code)),
    };
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => found(attempt, format!("status {}", response.status())),
        Some(Ok(Err(code))) => refused(attempt, code_name(&code)),
        Some(Err(())) | None => refused(attempt, "no response".into()),
    }
}
