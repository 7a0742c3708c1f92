//! `edit_file {path, old_text, new_text, replace_all?}`: replace exact text in a file.

use std::io::Read;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{blocking, check_writable, io_error, open_regular, path_key, replace};
use crate::llm::{BoxFuture, ToolSpec};
use crate::tools::{Tool, ToolError, parse_args, spec};
use crate::workspace::Workspace;

/// The largest file `edit_file` edits (it holds the file and the edited copy in memory).
pub const MAX_EDIT_BYTES: u64 = 16 * 1024 * 1024;

/// `edit_file`: the path is resolved beneath the workspace handle, the guard asked, the file
/// (a regular file, UTF-8, at most [`MAX_EDIT_BYTES`]) read through the same folder handle,
/// and replaced atomically with its permission bits kept ([`replace`]).
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
             it unique. Several edits of one file in one answer are applied in the order given. \
             `corral.toml` and `.corral/` cannot be edited.",
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
}

impl Tool for EditFileTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn resource_key(&self, input: &Value) -> Option<String> {
        path_key(&self.workspace, input)
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let args: EditArgs = parse_args(input)?;
            let workspace = self.workspace.clone();
            blocking("edit_file", move || edit(&workspace, &args)).await
        })
    }
}

fn edit(workspace: &Workspace, args: &EditArgs) -> Result<String, ToolError> {
    let shown = args.path.as_str();
    let at = workspace.locate(shown)?;
    check_writable(workspace, &at, shown)?;
    let (file, st) = open_regular(&at, shown, "edit_file")?;
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > MAX_EDIT_BYTES {
        return Err(too_big(shown, size));
    }
    let mut bytes = Vec::new();
    file.take(MAX_EDIT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(shown, &e))?;
    if bytes.len() as u64 > MAX_EDIT_BYTES {
        return Err(too_big(shown, bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        ToolError::Failed(format!(
            "`{shown}` is not UTF-8 text; edit_file edits text files only"
        ))
    })?;
    let count = text.matches(&args.old_text).count();
    let updated = match count {
        0 => {
            return Err(ToolError::Failed(format!(
                "old_text was not found in `{shown}`; read the file and copy the text exactly"
            )));
        }
        1 => text.replacen(&args.old_text, &args.new_text, 1),
        _ if args.replace_all => text.replace(&args.old_text, &args.new_text),
        n => {
            return Err(ToolError::Failed(format!(
                "old_text occurs {n} times in `{shown}`; add surrounding lines to make it unique, \
                 or set replace_all"
            )));
        }
    };
    replace(&at, updated.as_bytes(), Some(st.st_mode & 0o7777), shown)?;
    let noun = if count == 1 {
        "occurrence"
    } else {
        "occurrences"
    };
    Ok(format!("Replaced {count} {noun} in {shown}"))
}

fn too_big(shown: &str, size: u64) -> ToolError {
    ToolError::Failed(format!(
        "`{shown}` is {size} bytes; edit_file edits files of at most {} MiB (write_file \
         replaces a file whole)",
        MAX_EDIT_BYTES >> 20
    ))
}
