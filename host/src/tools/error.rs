//! Errors of tool calls. Every one of them is shown to the model as an `is_error` tool result,
//! so it can correct itself; none ends the run.

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The input does not fit the tool (schema mismatch, a bad value). The model should fix its
    /// call.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tool ran and failed (a file missing, a command exiting non-zero, a plugin's error).
    #[error("{0}")]
    Failed(String),
    /// The call asked for something the workspace does not allow (a path outside it, a host not
    /// granted). Names what was refused.
    #[error("denied: {0}")]
    Denied(String),
    /// The call ran out of time; what was running was stopped.
    #[error("{0}")]
    Timeout(String),
    /// No tool has this name.
    #[error("unknown tool `{name}`; the tools are: {available}")]
    UnknownTool { name: String, available: String },
}

impl From<crate::workspace::PathError> for ToolError {
    /// A path that leaves the workspace or reaches a protected entry is a denial; an empty
    /// path is bad input; a path that cannot be walked (a missing folder, a loop) a failure.
    fn from(error: crate::workspace::PathError) -> Self {
        use crate::workspace::PathError;
        match error {
            PathError::Outside(_) | PathError::SymlinkOut { .. } | PathError::Protected { .. } => {
                ToolError::Denied(error.to_string())
            }
            PathError::Empty => ToolError::InvalidInput(error.to_string()),
            PathError::NotFound(_)
            | PathError::NotADirectory { .. }
            | PathError::Loop(_)
            | PathError::Io { .. } => ToolError::Failed(error.to_string()),
        }
    }
}
