//! A plugin's tool as the model sees it: one [`Tool`] per tool of the manifest.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::plugin::{CallError, LoadedPlugin};
use crate::llm::{BoxFuture, ToolSpec};
use crate::policy::{Grants, Limits};
use crate::tools::{Tool, ToolError};

/// Extra time allowed past a call's deadline before corral stops waiting for it (time spent in
/// host calls, which epochs do not interrupt).
const HOST_CALL_SLACK: Duration = Duration::from_secs(2);

/// One tool of one plugin, with the plugin's grants and limits in this workspace.
pub struct PluginTool {
    spec: ToolSpec,
    plugin: LoadedPlugin,
    grants: Arc<Grants>,
    limits: Limits,
}

impl PluginTool {
    /// The tools of `plugin`, each with `grants` and `limits`.
    pub fn for_plugin(plugin: &LoadedPlugin, grants: Grants, limits: Limits) -> Vec<Arc<dyn Tool>> {
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
                }) as Arc<dyn Tool>
            })
            .collect()
    }
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
            let (plugin, grants, limits) = (self.plugin.clone(), self.grants.clone(), self.limits);
            let tool = self.spec.name.clone();
            let name = plugin.manifest.name.clone();
            let input = input.to_string();
            let call = tokio::task::spawn_blocking(move || {
                plugin.call_blocking(&tool, &input, &grants, limits)
            });
            match tokio::time::timeout(limits.timeout + HOST_CALL_SLACK, call).await {
                Err(_) => Err(ToolError::Timeout(format!(
                    "plugin {name}: exceeded its {} s deadline (waiting on the host)",
                    limits.timeout.as_secs_f64()
                ))),
                Ok(Err(join)) => Err(ToolError::Failed(format!(
                    "plugin {name}: the call's thread failed: {join}"
                ))),
                Ok(Ok(Ok(text))) => Ok(text),
                Ok(Ok(Err(CallError::InvalidInput(m)))) => Err(ToolError::InvalidInput(m)),
                Ok(Ok(Err(CallError::Failed(m)))) => {
                    Err(ToolError::Failed(format!("plugin {name}: {m}")))
                }
                Ok(Ok(Err(contained @ CallError::Contained { .. }))) => {
                    Err(ToolError::Failed(contained.to_string()))
                }
            }
        })
    }
}
