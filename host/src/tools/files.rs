//! `read_file`, `write_file` and `edit_file`: text files inside the workspace.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolError, parse_args, spec};
use crate::llm::{BoxFuture, ToolSpec};
use crate::workspace::Workspace;

/// Lines returned by one `read_file` call when no limit is given.
const DEFAULT_LINES: usize = 2000;
/// Characters kept of one line.
const MAX_LINE: usize = 2000;

fn io_error(display: &str, e: &std::io::Error) -> ToolError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::Failed(format!("`{display}` does not exist")),
        std::io::ErrorKind::IsADirectory => {
            ToolError::Failed(format!("`{display}` is a directory"))
        }
        _ => ToolError::Failed(format!("`{display}`: {e}")),
    }
}

/// `read_file {path, offset?, limit?}`: numbered lines of a text file.
pub struct ReadFileTool {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
struct ReadArgs {
    path: String,
    offset: Option<usize>,
    limit: Option<usize>,
}

impl ReadFileTool {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = spec(
            "read_file",
            "Read a text file of the workspace. Returns numbered lines (like cat -n), at most \
             2000 from `offset` (1-based line number, default 1) unless `limit` says otherwise. \
             Paths are relative to the workspace root.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "offset": {"type": "integer", "minimum": 1, "description": "First line to return, 1-based."},
                    "limit": {"type": "integer", "minimum": 1, "description": "How many lines to return."}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        );
        Self { spec, workspace }
    }

    async fn read(&self, args: ReadArgs) -> Result<String, ToolError> {
        let path = self.workspace.resolve(&args.path)?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_error(&args.path, &e))?;
        if bytes.contains(&0) {
            return Err(ToolError::Failed(format!(
                "`{}` is a binary file ({} bytes)",
                args.path,
                bytes.len()
            )));
        }
        let text = String::from_utf8_lossy(&bytes);
        let total = text.lines().count();
        let offset = args.offset.unwrap_or(1);
        let limit = args.limit.unwrap_or(DEFAULT_LINES);
        if total == 0 {
            return Ok(format!("[`{}` is empty]", args.path));
        }
        if offset > total {
            return Err(ToolError::InvalidInput(format!(
                "offset {offset} is past the end of `{}`, which has {total} lines",
                args.path
            )));
        }
        let mut out = String::new();
        let mut last = offset;
        for (i, line) in text.lines().enumerate().skip(offset - 1).take(limit) {
            last = i + 1;
            let shown: String = line.chars().take(MAX_LINE).collect();
            let more = if shown.len() < line.len() {
                " [line cut]"
            } else {
                ""
            };
            out.push_str(&format!("{:>6}\t{shown}{more}\n", i + 1));
        }
        if last < total || offset > 1 {
            out.push_str(&format!(
                "[lines {offset}-{last} of {total}; use offset to read more]\n"
            ));
        }
        Ok(out)
    }
}

impl Tool for ReadFileTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move { self.read(parse_args(input)?).await })
    }
}

/// `write_file {path, content}`: create or replace a file, making parent folders.
pub struct WriteFileTool {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

impl WriteFileTool {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = spec(
            "write_file",
            "Create or overwrite a file of the workspace with the given content, creating \
             parent folders as needed.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "content": {"type": "string"}
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
        );
        Self { spec, workspace }
    }

    async fn write(&self, args: WriteArgs) -> Result<String, ToolError> {
        let path = self.workspace.resolve(&args.path)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(&args.path, &e))?;
        }
        tokio::fs::write(&path, args.content.as_bytes())
            .await
            .map_err(|e| io_error(&args.path, &e))?;
        Ok(format!(
            "Wrote {} bytes to {}",
            args.content.len(),
            args.path
        ))
    }
}

impl Tool for WriteFileTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move { self.write(parse_args(input)?).await })
    }
}

/// `edit_file {path, old_text, new_text, replace_all?}`: replace exact text in a file.
pub struct EditFileTool {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
struct EditArgs {
    path: String,
    old_text: String,
    new_text: String,
    #[serde(default)]
    replace_all: bool,
}

impl EditFileTool {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = spec(
            "edit_file",
            "Replace `old_text` with `new_text` in a file of the workspace. `old_text` must \
             occur exactly once unless `replace_all` is true; include surrounding lines to make \
             it unique.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "old_text": {"type": "string", "minLength": 1},
                    "new_text": {"type": "string"},
                    "replace_all": {"type": "boolean"}
                },
                "required": ["path", "old_text", "new_text"],
                "additionalProperties": false
            }),
        );
        Self { spec, workspace }
    }

    async fn edit(&self, args: EditArgs) -> Result<String, ToolError> {
        let path = self.workspace.resolve(&args.path)?;
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| io_error(&args.path, &e))?;
        let count = text.matches(&args.old_text).count();
        let updated = match count {
            0 => {
                return Err(ToolError::Failed(format!(
                    "old_text was not found in `{}`; read the file and copy the text exactly",
                    args.path
                )));
            }
            1 => text.replacen(&args.old_text, &args.new_text, 1),
            _ if args.replace_all => text.replace(&args.old_text, &args.new_text),
            n => {
                return Err(ToolError::Failed(format!(
                    "old_text occurs {n} times in `{}`; add surrounding lines to make it unique, \
                     or set replace_all",
                    args.path
                )));
            }
        };
        tokio::fs::write(&path, updated)
            .await
            .map_err(|e| io_error(&args.path, &e))?;
        let noun = if count == 1 {
            "occurrence"
        } else {
            "occurrences"
        };
        Ok(format!("Replaced {count} {noun} in {}", args.path))
    }
}

impl Tool for EditFileTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move { self.edit(parse_args(input)?).await })
    }
}
