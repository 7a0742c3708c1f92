//! `write_file {path, content}`: create or replace a file, making parent folders.

use std::sync::Arc;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{blocking, check_writable, errno, not_regular, path_key, replace};
use crate::llm::{BoxFuture, ToolSpec};
use crate::tools::{Tool, ToolError, parse_args, spec};
use crate::workspace::Workspace;

/// `write_file`: the path is resolved beneath the workspace handle, missing folders created
/// (never inside `.corral/`), the guard asked, and the file replaced atomically
/// ([`replace`]). A folder, a FIFO, a socket or a device at the path is refused, not replaced.
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
             parent folders as needed. The file is replaced whole, atomically. `corral.toml` \
             and `.corral/` cannot be written.",
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
}

impl Tool for WriteFileTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn resource_key(&self, input: &Value) -> Option<String> {
        path_key(&self.workspace, input)
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let args: WriteArgs = parse_args(input)?;
            let workspace = self.workspace.clone();
            blocking("write_file", move || write(&workspace, &args)).await
        })
    }
}

fn write(workspace: &Workspace, args: &WriteArgs) -> Result<String, ToolError> {
    let shown = args.path.as_str();
    let at = workspace.locate_creating(shown)?;
    check_writable(workspace, &at, shown)?;
    let mode = match rustix::fs::statat(&at.parent, &at.name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Some(st.st_mode & 0o7777),
            // Put there after the path was resolved: the rename replaces the link itself.
            FileType::Symlink => None,
            other => return Err(not_regular(shown, other, "write_file")),
        },
        Err(Errno::NOENT) => None,
        Err(e) => return Err(errno(shown, e)),
    };
    replace(&at, args.content.as_bytes(), mode, shown)?;
    Ok(format!("Wrote {} bytes to {shown}", args.content.len()))
}
