//! The tools offered to the model, by name.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::{Tool, ToolError, schema};
use crate::llm::ToolSpec;

/// A second tool with a name already taken.
#[derive(Debug, thiserror::Error)]
#[error("a tool named `{name}` is already registered (by {existing})")]
pub struct DuplicateTool {
    pub name: String,
    pub existing: String,
}

/// The tools of one agent, in the order they are offered.
#[derive(Default, Clone)]
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl ToolRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool. A name already taken is refused and the registry is unchanged.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), DuplicateTool> {
        let name = tool.spec().name.clone();
        if let Some(&i) = self.by_name.get(&name) {
            return Err(DuplicateTool {
                name,
                existing: self.tools[i].origin(),
            });
        }
        self.by_name.insert(name, self.tools.len());
        self.tools.push(tool);
        Ok(())
    }

    /// The specs offered to the model, in registration order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec().clone()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|t| t.spec().name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The resource key of a call ([`Tool::resource_key`]); `None` for an unknown tool.
    pub fn resource_key(&self, name: &str, input: &Value) -> Option<String> {
        self.get(name)?.resource_key(input)
    }

    /// Runs one call: finds the tool, checks the input against its schema, runs it.
    /// Every failure is a [`ToolError`] for the model.
    pub async fn call(&self, name: &str, input: Value) -> Result<String, ToolError> {
        let tool = self.get(name).ok_or_else(|| ToolError::UnknownTool {
            name: name.to_string(),
            available: self.names().collect::<Vec<_>>().join(", "),
        })?;
        if let Value::String(raw) = &input {
            return Err(ToolError::InvalidInput(format!(
                "the tool input is not valid JSON: {}",
                raw.chars().take(200).collect::<String>()
            )));
        }
        schema::validate(&input, &tool.spec().input_schema).map_err(ToolError::InvalidInput)?;
        tool.call(input).await
    }
}
