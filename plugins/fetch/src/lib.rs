//! The `fetch` plugin: an HTTP(S) GET through `wasi:http/outgoing-handler`.
//!
//! The request goes out only if the workspace grants the URL's host; otherwise the
//! host answers `HttpRequestDenied` and the tool fails naming the host. The body is
//! read up to `max_bytes` and returned as text (invalid UTF-8 replaced).

use corral_plugin::{Tool, ToolError, schemars};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingRequest, RequestOptions, Scheme};
use wasip2::io::streams::StreamError;

/// The input of the `fetch` tool.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The `http://` or `https://` URL to get.
    pub url: String,
    /// Return at most this many bytes of the body.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
}

fn default_max_bytes() -> usize {
    100_000
}

/// The `fetch` tool.
pub struct Fetch;

impl Tool for Fetch {
    const NAME: &'static str = "fetch";
    const DESCRIPTION: &'static str = "Fetch a URL with an HTTP GET request. Returns the \
        status, the content type and the body as text, cut to max_bytes. Only hosts the \
        workspace allows can be reached.";
    type Args = Args;

    fn call(args: Args) -> Result<String, ToolError> {
        fetch(&args)
    }
}

corral_plugin::export_plugin! {
    description: "Fetch URLs over HTTP(S).",
    // The workspace narrows this to the hosts it allows.
    capabilities: Capabilities { network: vec!["*".into()], ..Default::default() },
    tools: [Fetch],
}

/// A URL split into what `wasi:http` asks for.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    https: bool,
    authority: &'a str,
    path_with_query: String,
}

/// Splits `url` into scheme, authority and path (`/` if empty); drops a fragment.
fn parse_url(url: &str) -> Result<Target<'_>, ToolError> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(ToolError::invalid_input(format!(
            "url `{url}` must start with http:// or https://"
        )));
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(ToolError::invalid_input(format!(
            "url `{url}` has no valid host"
        )));
    }
    let path_with_query = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok(Target {
        https,
        authority,
        path_with_query,
    })
}

/// The name of a `wasi:http` error code, e.g. `HttpRequestDenied`.
fn code_name(code: &ErrorCode) -> String {
    let debug = format!("{code:?}");
    debug
        .strip_prefix("ErrorCode::")
        .unwrap_or(&debug)
        .to_string()
}

fn request_failed(target: &Target<'_>, code: &ErrorCode) -> ToolError {
    let hint = match code {
        ErrorCode::HttpRequestDenied => " (the workspace does not allow this host)",
        _ => "",
    };
    ToolError::failed(format!(
        "GET to host `{}` failed: {}{hint}",
        target.authority,
        code_name(code)
    ))
}

fn fetch(args: &Args) -> Result<String, ToolError> {
    let target = parse_url(&args.url)?;
    let bad_part = |part: &str| {
        ToolError::invalid_input(format!("url `{}`: the {part} is not acceptable", args.url))
    };

    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| bad_part("method"))?;
    let scheme = if target.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad_part("scheme"))?;
    request
        .set_authority(Some(target.authority))
        .map_err(|()| bad_part("host"))?;
    request
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| bad_part("path"))?;

    // Bounded waits so a silent server fails the call instead of using up its deadline.
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(10_000_000_000));
    let _ = options.set_first_byte_timeout(Some(20_000_000_000));
    let _ = options.set_between_bytes_timeout(Some(20_000_000_000));

    let pending = outgoing_handler::handle(request, Some(options))
        .map_err(|code| request_failed(&target, &code))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(request_failed(&target, &code)),
        Some(Err(())) | None => {
            return Err(ToolError::failed(format!(
                "GET to host `{}` failed: no response",
                target.authority
            )));
        }
    };

    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_else(|| "unknown".into());

    let body = response
        .consume()
        .map_err(|()| ToolError::failed("the response body could not be read"))?;
    let stream = body
        .stream()
        .map_err(|()| ToolError::failed("the response body could not be read"))?;
    let mut bytes = Vec::new();
    let mut cut = false;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > args.max_bytes {
                    bytes.truncate(args.max_bytes);
                    cut = true;
                    break;
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(ToolError::failed(format!(
                    "reading the body from host `{}` failed: {}",
                    target.authority,
                    e.to_debug_string()
                )));
            }
        }
    }
    drop(stream);

    let mut out = format!(
        "status: {status}\ncontent-type: {content_type}\n\n{}",
        String::from_utf8_lossy(&bytes)
    );
    if cut {
        out.push_str(&format!(
            "\n[body cut at {} bytes; raise max_bytes to see more]",
            args.max_bytes
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// URLs split into scheme, authority and path, with `/` for an empty path.
    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("https://example.com:8443/a/b?q=1#frag").unwrap(),
            Target {
                https: true,
                authority: "example.com:8443",
                path_with_query: "/a/b?q=1".into()
            }
        );
        assert_eq!(
            parse_url("http://127.0.0.1").unwrap(),
            Target {
                https: false,
                authority: "127.0.0.1",
                path_with_query: "/".into()
            }
        );
        assert_eq!(parse_url("http://h?x").unwrap().path_with_query, "/?x");
    }

    /// Other schemes and hostless URLs are the model's to fix.
    #[test]
    fn rejects_bad_urls() {
        for url in ["ftp://x/", "example.com", "https:///path", "http://u@h/"] {
            assert!(
                matches!(parse_url(url), Err(ToolError::InvalidInput(_))),
                "{url}"
            );
        }
    }
}
