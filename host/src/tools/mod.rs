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
pub use bash::BashTool;
pub use error::ToolError;
pub use files::{EditFileTool, ReadFileTool, WriteFileTool};
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
/// once.
pub trait Tool: Send + Sync {
    /// Name, description and input schema, as offered to the model.
    fn spec(&self) -> &ToolSpec;

    /// Where the tool comes from, for messages: `built-in`, `plugin grep (path/to/grep.wasm)`.
    fn origin(&self) -> String {
        "built-in".to_string()
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
