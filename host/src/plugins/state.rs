//! The store state of one plugin call: WASI (its filesystem behind corral's guard), wasi:http
//! with the network choke point, memory limits, and the log import with its byte budget.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::bindings::corral::plugin::{host, types};
use super::fs_guard::{FsGuardState, GuardedFs};
use super::output::sanitize;
use crate::policy::Grants;

/// Where plugin log lines go: (plugin name, level, message).
pub type LogSink = Arc<dyn Fn(&str, LogLevel, &str) + Send + Sync>;

/// The level of a plugin's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Bytes of `host.log` messages one call may write; past it, messages are dropped and counted,
/// and the call's result says how many bytes were dropped.
pub const LOG_BYTES_PER_CALL: usize = 256 * 1024;

pub struct CallState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub hooks: NetworkGate,
    pub fs: FsGuardState,
    pub limits: super::limits::CallLimiter,
    pub plugin: String,
    pub log: LogSink,
    pub logged_bytes: usize,
    pub dropped_bytes: u64,
}

impl CallState {
    /// The filesystem view the guarded `wasi:filesystem/types` bindings run on.
    pub fn guarded_fs(&mut self) -> GuardedFs<'_> {
        GuardedFs {
            inner: wasmtime_wasi::filesystem::WasiFilesystemCtxView {
                ctx: self.wasi.filesystem(),
                table: &mut self.table,
            },
            state: &mut self.fs,
        }
    }

    /// The note of log bytes dropped by the budget, if any.
    pub fn log_dropped(&self) -> Option<String> {
        (self.dropped_bytes > 0).then(|| {
            format!(
                "{} bytes of log dropped (the budget is {LOG_BYTES_PER_CALL} bytes per call)",
                self.dropped_bytes
            )
        })
    }
}

/// The network choke point: every outgoing HTTP request of a plugin passes here. The
/// destination is taken from the request's URL alone (scheme, host, port), never from a Host
/// header.
pub struct NetworkGate {
    pub grants: Arc<Grants>,
    pub plugin: String,
}

impl WasiHttpHooks for NetworkGate {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let uri = request.uri();
        let host = uri.host().unwrap_or("").to_string();
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("http") => 80,
            _ => 443,
        });
        if host.is_empty() || !self.grants.allows_host(&host, port) {
            tracing::warn!(plugin = %self.plugin, %host, port, "HTTP request denied");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl types::Host for CallState {}

impl host::Host for CallState {
    fn log(&mut self, level: types::Level, message: String) {
        if self.logged_bytes.saturating_add(message.len()) > LOG_BYTES_PER_CALL {
            self.dropped_bytes = self.dropped_bytes.saturating_add(message.len() as u64);
            return;
        }
        self.logged_bytes += message.len();
        let message = sanitize(&message);
        let level = match level {
            types::Level::Trace => LogLevel::Trace,
            types::Level::Debug => LogLevel::Debug,
            types::Level::Info => LogLevel::Info,
            types::Level::Warn => LogLevel::Warn,
            types::Level::Error => LogLevel::Error,
        };
        (self.log)(&self.plugin, level, &message);
    }
}
