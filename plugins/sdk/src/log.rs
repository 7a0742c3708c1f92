//! Diagnostics through the host's log.

use crate::__private::bindings::corral::plugin::{host, types};

/// How much a log line matters; the host filters by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Step-by-step detail, usually hidden.
    Trace,
    /// Detail useful when debugging the plugin.
    Debug,
    /// Normal progress worth recording.
    Info,
    /// Something unexpected that the plugin worked around.
    Warn,
    /// Something went wrong.
    Error,
}

/// Writes `message` to corral's log at `level`, tagged with the plugin's name.
///
/// Never fails. The model does not see it: return what the model should read from
/// [`Tool::call`](crate::Tool::call). Output to stdout or stderr is captured by the
/// host too, but this is the line that keeps its level.
pub fn log(level: Level, message: impl AsRef<str>) {
    let level = match level {
        Level::Trace => types::Level::Trace,
        Level::Debug => types::Level::Debug,
        Level::Info => types::Level::Info,
        Level::Warn => types::Level::Warn,
        Level::Error => types::Level::Error,
    };
    host::log(level, message.as_ref());
}
