//! A plugin's tool as the model sees it: one [`Tool`] per tool of the manifest.

use std::sync::Arc;

use serde_json::Value;

use super::plugin::{CallError, CallOutput, LoadedPlugin};
use crate::llm::{BoxFuture, ToolSpec};
use crate::policy::{Grants, Limits};
use crate::tools::{Tool, ToolError};
use crate::workspace::Workspace;

/// Bytes of a plugin's result given to the model; a longer result is cut to its head and
/// tail, and kept whole in `.corral/results/<id>.txt`, which `read_file` can page.
pub const RESULT_BYTES_TO_MODEL: usize = 30_000;
/// Bytes of a result kept in its results file; past it the rest is dropped (hostcall data is
/// capped at 16 MiB anyway).
const RESULT_BYTES_KEPT: usize = 16 * 1024 * 1024;

/// One tool of one plugin, with the plugin's grants and limits in this workspace.
pub struct PluginTool {
    spec: ToolSpec,
    plugin: LoadedPlugin,
    grants: Arc<Grants>,
    limits: Limits,
    /// Where long results are kept whole: the workspace's `.corral/results`.
    results: Option<Workspace>,
}

impl PluginTool {
    /// The tools of `plugin`, each with `grants` and `limits`. Results longer than
    /// [`RESULT_BYTES_TO_MODEL`] are kept whole in `results`' `.corral/results/` (without a
    /// workspace they are only cut).
    pub fn for_plugin(
        plugin: &LoadedPlugin,
        grants: Grants,
        limits: Limits,
        results: Option<&Workspace>,
    ) -> Vec<Arc<dyn Tool>> {
        let grants = Arc::new(grants);
        plugin
            .manifest
            .tools
            .iter()
            .map(|info| {
                let spec = ToolSpec {
                    name: info.name.clone(),
                    description: info.description.clone(),
                    input_schema: serde_json::from_str(&info.input_schema).unwrap_or(Value::Null),
                };
                Arc::new(PluginTool {
                    spec,
                    plugin: plugin.clone(),
                    grants: grants.clone(),
                    limits,
                    results: results.cloned(),
                }) as Arc<dyn Tool>
            })
            .collect()
    }

    /// The text the model gets: the result (cut past [`RESULT_BYTES_TO_MODEL`]) and corral's
    /// notes.
    fn for_model(&self, output: CallOutput) -> String {
        let CallOutput { text, mut notes } = output;
        let text = if text.len() > RESULT_BYTES_TO_MODEL {
            let kept = self.keep_whole(&text);
            let (head, tail) = head_and_tail(&text, RESULT_BYTES_TO_MODEL);
            let cut = text.len() - head.len() - tail.len();
            let whole = match kept {
                Ok(path) => format!("the whole result is in `{path}`: read it with read_file"),
                Err(e) => format!("the whole result could not be kept: {e}"),
            };
            format!("{head}\n[... {cut} bytes cut; {whole}]\n{tail}")
        } else {
            text
        };
        if notes.is_empty() {
            return text;
        }
        let mut out = text;
        for note in notes.drain(..) {
            out.push_str(&format!("\n[{note}]"));
        }
        out
    }

    /// Writes `text` to `.corral/results/<id>.txt`; returns that path, workspace-relative.
    fn keep_whole(&self, text: &str) -> std::io::Result<String> {
        let workspace = self.results.as_ref().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "no workspace to keep it in",
            )
        })?;
        let results = crate::workspace::Results::open(workspace)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{}-{}.txt", self.spec.name, &id[..12]);
        let end = floor_char_boundary(text, RESULT_BYTES_KEPT.min(text.len()));
        results.write(&name, &text.as_bytes()[..end])
    }
}

/// The largest index `<= at` that is a char boundary of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The first and last parts of `text`, together about `budget` bytes, cut at char boundaries.
fn head_and_tail(text: &str, budget: usize) -> (&str, &str) {
    let head_end = floor_char_boundary(text, budget * 2 / 3);
    let mut tail_start = text.len().saturating_sub(budget / 3).max(head_end);
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    (&text[..head_end], &text[tail_start..])
}

impl Tool for PluginTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn origin(&self) -> String {
        format!(
            "plugin {} ({})",
            self.plugin.manifest.name,
            self.plugin.file.display()
        )
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let name = &self.plugin.manifest.name;
            let input = input.to_string();
            match self
                .plugin
                .call(&self.spec.name, &input, &self.grants, self.limits)
                .await
            {
                Ok(output) => Ok(self.for_model(output)),
                Err(CallError::InvalidInput(m)) => Err(ToolError::InvalidInput(m)),
                Err(CallError::Failed(m)) => Err(ToolError::Failed(format!("plugin {name}: {m}"))),
                Err(deadline @ CallError::Deadline { .. }) => {
                    Err(ToolError::Timeout(deadline.to_string()))
                }
                Err(contained @ CallError::Contained { .. }) => {
                    Err(ToolError::Failed(contained.to_string()))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn head_and_tail_cut_at_char_boundaries() {
        let text = "é".repeat(40_000);
        let (head, tail) = super::head_and_tail(&text, 30_000);
        assert!(head.len() + tail.len() <= 30_002);
        assert!(head.chars().all(|c| c == 'é') && tail.chars().all(|c| c == 'é'));
    }
}
