//! Tools the model can call: the [`Tool`] trait, the registry, input checking, and the built-in
//! tools (one file each).
//!
//! A tool gets its input already checked against its JSON Schema, and answers with text or a
//! [`ToolError`]. Both go back to the model; neither ends the run.

mod background;
mod bash;
mod error;
mod files;
mod registry;
pub mod schema;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use background::{BackgroundRunTool, CheckBackgroundTool, KillBackgroundTool};
pub use bash::{BashTool, CANCELLED};
pub use error::ToolError;
pub use files::{
    DEFAULT_LINES, EditFileTool, MAX_EDIT_BYTES, MAX_LINE_CHARS, MAX_READ_BYTES, MAX_SCAN_BYTES,
    ReadFileTool, TEMP_PREFIX, WriteFileTool,
};
pub use registry::{DuplicateTool, ToolRegistry};

use crate::llm::{BoxFuture, ToolSpec};

/// The names of the built-in tools, in the order they are offered (the shell tools only when
/// the shell is enabled). Plugins cannot take these names.
pub const BUILT_IN_TOOLS: &[&str] = &[
    "bash",
    "read_file",
    "write_file",
    "edit_file",
    "background_run",
    "check_background",
    "kill_background",
];

/// Something the model can call.
///
/// Implementations hold what they need (the workspace, the background manager, a plugin) and
/// must be cheap to call concurrently: the agent runs the independent calls of one answer at
/// once. Calls that touch the same resource (say which with [`Tool::resource_key`]) run one
/// after another instead, in the order the model gave them.
pub trait Tool: Send + Sync {
    /// Name, description and input schema, as offered to the model.
    fn spec(&self) -> &ToolSpec;

    /// Where the tool comes from, for messages: `built-in`, `plugin grep (path/to/grep.wasm)`.
    fn origin(&self) -> String {
        "built-in".to_string()
    }

    /// What a call with `input` touches, as a key: the calls of one answer with the same key
    /// (from this tool or any other) run one after another in the model's order, the others
    /// at once. `None` (the default): the call depends on no other. Called by the agent loop
    /// before the call, on input *not yet* checked against the schema (return `None` for
    /// input you cannot read); it must be quick and must not block. The file tools return the
    /// identity of the file ([`crate::workspace::Workspace::file_key`]).
    fn resource_key(&self, input: &Value) -> Option<String> {
        let _ = input;
        None
    }

    /// Runs the tool. `input` already matches the schema.
    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>>;
}

/// Deserialises a tool's input (already schema-checked) into its argument struct.
pub(crate) fn parse_args<T: DeserializeOwned>(input: Value) -> Result<T, ToolError> {
    serde_json::from_value(input).map_err(|e| ToolError::InvalidInput(e.to_string()))
}

/// Builds a [`ToolSpec`] from a name, a description and a schema.
pub(crate) fn spec(name: &str, description: &str, input_schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        input_schema,
    }
}
