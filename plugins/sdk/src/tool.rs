//! The [`Tool`] trait a plugin implements once per tool, and its error type.

use std::fmt;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// One tool the model can call.
///
/// The host calls [`Tool::call`] with the model's JSON input already parsed into
/// [`Tool::Args`]; a JSON error never reaches the tool (the SDK answers it with
/// [`ToolError::InvalidInput`] naming serde's message).
pub trait Tool {
    /// The tool's name as the model calls it: `[a-zA-Z0-9_-]{1,64}`, unique within
    /// the plugin.
    const NAME: &'static str;

    /// What the tool does and when to use it, written for the model.
    const DESCRIPTION: &'static str;

    /// The tool's input, parsed from the model's JSON object. Doc comments on its
    /// fields become descriptions in the schema the model sees.
    type Args: DeserializeOwned + JsonSchema;

    /// The JSON Schema of the input shown to the model. By default derived from
    /// [`Tool::Args`] with subschemas inlined; override it to hand-write one. Its
    /// root must be an object schema.
    fn input_schema() -> serde_json::Value {
        crate::dispatch::schema_of::<Self::Args>()
    }

    /// Runs the tool. The returned text goes back to the model as the result.
    fn call(args: Self::Args) -> Result<String, ToolError>;
}

/// Why a tool call failed. Both kinds are shown to the model, which may try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The input is not acceptable (a bad pattern, a value out of range): the model
    /// should change it. The message says what to change.
    InvalidInput(String),
    /// The input was fine but the work failed (a missing file, a refused request).
    /// The message says what happened, naming the path or host.
    Failed(String),
}

impl ToolError {
    /// A [`ToolError::InvalidInput`] with `message`.
    pub fn invalid_input(message: impl fmt::Display) -> Self {
        Self::InvalidInput(message.to_string())
    }

    /// A [`ToolError::Failed`] with `message`.
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }

    /// The message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidInput(m) | Self::Failed(m) => m,
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Self::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for ToolError {}
