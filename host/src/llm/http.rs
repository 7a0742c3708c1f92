//! The HTTP side every wire protocol shares: the client, posting a JSON body, turning an error
//! answer into [`LlmError::Api`], and reading a whole or a streamed answer.
//!
//! The protocols differ in their paths, headers, bodies and events; what is here is the same for
//! all of them, so how a refused request or a cut connection is reported is decided once.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use super::sse::{SseEvent, SseParser};
use super::{ContentBlock, Delta, DeltaSink, LlmError, Response, parse_retry_after};

/// One provider's endpoint: where requests go and the client that sends them.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    provider: &'static str,
    url: String,
    http: reqwest::Client,
}

impl Endpoint {
    /// A client that gives up connecting after 30 s and reading after `read_timeout` of silence.
    /// Fails only when the HTTP client cannot be built.
    pub(super) fn new(
        provider: &'static str,
        url: String,
        read_timeout: Duration,
    ) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(read_timeout)
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            provider,
            url,
            http,
        })
    }

    /// POSTs `body`, JSON already serialised, with `headers`. Returns the response when its status is a success;
    /// an error status is [`LlmError::Api`] with the API's own message and its `retry-after`;
    /// no answer at all is [`LlmError::Transport`].
    pub(super) async fn post(
        &self,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response, LlmError> {
        let mut request = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response.text().await.unwrap_or_default();
        let mut error = api_error(self.provider, status.as_u16(), &text, retry_after);
        if let LlmError::Api {
            status, message, ..
        } = &mut error
        {
            match status {
                401 => message.push_str(&format!(
                    " (the key comes from {}; check it is set and current)",
                    key_variable(self.provider)
                )),
                404 => message.push_str(&format!(" (POST {})", self.url)),
                _ => {}
            }
        }
        Err(error)
    }

    /// Reads a whole (non-streamed) answer as JSON.
    pub(super) async fn read_json(&self, response: reqwest::Response) -> Result<Value, LlmError> {
        let text = response.text().await.map_err(|e| self.transport(&e))?;
        serde_json::from_str(&text).map_err(|e| LlmError::Protocol {
            provider: self.provider,
            message: format!("the answer is not JSON ({e})"),
        })
    }

    /// Reads a server-sent-events body, giving each event to `apply` until it returns the
    /// finished response. `Ok(None)` means the body ended cleanly without one: the caller decides
    /// whether what it gathered is whole. A connection that breaks is
    /// [`LlmError::StreamIncomplete`].
    pub(super) async fn read_events(
        &self,
        response: reqwest::Response,
        mut apply: impl FnMut(&SseEvent) -> Result<Option<Response>, LlmError>,
    ) -> Result<Option<Response>, LlmError> {
        let mut parser = SseParser::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| LlmError::StreamIncomplete {
                provider: self.provider,
                message: error_chain(&e),
            })?;
            for event in parser.push(&chunk) {
                if let Some(done) = apply(&event)? {
                    return Ok(Some(done));
                }
            }
        }
        Ok(None)
    }

    /// No answer: the innermost cause says it best (`Connection refused (os error 111)`); the
    /// whole chain goes to the log.
    fn transport(&self, error: &reqwest::Error) -> LlmError {
        tracing::debug!("{}: {}", self.url, error_chain(error));
        let mut cause: &dyn std::error::Error = error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        let message = if error.is_timeout() {
            "timed out".to_string()
        } else {
            cause.to_string()
        };
        LlmError::Transport {
            provider: self.provider,
            url: self.url.clone(),
            message,
        }
    }
}

/// Gives a non-streamed answer's thinking, then its text, to `on_delta`, once each and whole,
/// as the streaming path would have in pieces.
pub(super) fn emit_whole(content: &[ContentBlock], on_delta: DeltaSink<'_>) {
    let mut thinking = None::<String>;
    let mut whole = String::new();
    for block in content {
        match block {
            ContentBlock::Text { text } => whole.push_str(text),
            ContentBlock::Thinking { thinking: t, .. } => {
                thinking.get_or_insert_with(String::new).push_str(t)
            }
            ContentBlock::RedactedThinking { .. } => {
                thinking.get_or_insert_with(String::new);
            }
            ContentBlock::ToolUse { .. } | ContentBlock::ToolResult { .. } => {}
        }
    }
    if let Some(thinking) = thinking {
        on_delta(Delta::Thinking(&thinking));
    }
    if !whole.is_empty() {
        on_delta(Delta::Text(&whole));
    }
}

/// An error and its sources, joined with `: ` (reqwest's own message rarely says why).
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The environment variable the provider's key comes from.
fn key_variable(provider: &str) -> &'static str {
    match provider {
        "openai" => "OPENAI_API_KEY",
        _ => "ANTHROPIC_API_KEY",
    }
}

/// Turns an error answer into [`LlmError::Api`], keeping the API's own message.
///
/// Understands `{"error": {"type", "message"}}` (Anthropic), `{"error": {"message", "type",
/// "code"}}` (OpenAI and the servers that copy it) and `{"error": "text"}` (Ollama); any other
/// body is shown as it came, cut at 500 characters.
pub(super) fn api_error(
    provider: &'static str,
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> LlmError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str);
    let kind = field("type")
        .or_else(|| field("code"))
        .unwrap_or("http_error")
        .to_string();
    let message = field("message")
        .or_else(|| error.and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| {
            let trimmed = body.trim();
            if trimmed.is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                trimmed.chars().take(500).collect()
            }
        });
    LlmError::Api {
        provider,
        status,
        kind,
        message,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each provider's error shape gives its own message and kind; anything else is shown raw.
    #[test]
    fn api_errors_keep_the_apis_message() {
        let anthropic = api_error(
            "anthropic",
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            None,
        );
        assert!(!anthropic.is_retryable());
        assert_eq!(
            anthropic.to_string(),
            "anthropic API error 401 (authentication_error): invalid x-api-key"
        );
        let openai = api_error(
            "openai",
            401,
            r#"{"error":{"message":"Incorrect API key provided","type":null,"param":null,"code":"invalid_api_key"}}"#,
            None,
        );
        assert_eq!(
            openai.to_string(),
            "openai API error 401 (invalid_api_key): Incorrect API key provided"
        );
        let ollama = api_error("openai", 404, r#"{"error":"model 'x' not found"}"#, None);
        assert_eq!(
            ollama.to_string(),
            "openai API error 404 (http_error): model 'x' not found"
        );
        let raw = api_error("openai", 502, "Bad Gateway", Some(Duration::from_secs(1)));
        assert!(raw.is_retryable());
        assert_eq!(raw.retry_after(), Some(Duration::from_secs(1)));
        assert!(raw.to_string().ends_with(": Bad Gateway"), "{raw}");
    }
}
