//! From the host's untyped `call(tool, input)` to a typed [`Tool::call`].

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

use crate::__private::bindings::corral::plugin::types;
use crate::{Tool, ToolError};

/// One registered tool, type-erased so a plugin's tools fit in one slice.
#[doc(hidden)]
pub struct Entry {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn() -> serde_json::Value,
    pub run: fn(&str) -> Result<String, ToolError>,
}

/// The [`Entry`] for `T`.
#[doc(hidden)]
pub fn entry<T: Tool>() -> Entry {
    Entry {
        name: T::NAME,
        description: T::DESCRIPTION,
        schema: T::input_schema,
        run: run::<T>,
    }
}

/// Parses `input` as `T::Args` and calls the tool. A parse error is invalid input
/// naming serde's message (which names the field and position).
fn run<T: Tool>(input: &str) -> Result<String, ToolError> {
    let args: T::Args = serde_json::from_str(input)
        .map_err(|e| ToolError::invalid_input(format!("input for `{}`: {e}", T::NAME)))?;
    T::call(args)
}

/// Finds the tool named `tool` among `tools` and runs it on `input`. An unknown name
/// is invalid input listing the known ones.
#[doc(hidden)]
pub fn dispatch(tool: &str, input: &str, tools: &[Entry]) -> Result<String, types::ToolError> {
    let result = match tools.iter().find(|t| t.name == tool) {
        Some(entry) => (entry.run)(input),
        None => {
            let known: Vec<&str> = tools.iter().map(|t| t.name).collect();
            Err(ToolError::invalid_input(format!(
                "unknown tool `{tool}`; this plugin has: {}",
                known.join(", ")
            )))
        }
    };
    result.map_err(|e| match e {
        ToolError::InvalidInput(m) => types::ToolError::InvalidInput(m),
        ToolError::Failed(m) => types::ToolError::Failed(m),
    })
}

/// The JSON Schema of `A`, shaped for models: subschemas inlined (no `$defs`), no
/// `$schema`, `title` or top-level `description` (the tool's description says it).
pub(crate) fn schema_of<A: JsonSchema>() -> serde_json::Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let mut value = settings
        .into_generator()
        .into_root_schema_for::<A>()
        .to_value();
    if let Some(object) = value.as_object_mut() {
        object.remove("title");
        object.remove("$schema");
        object.remove("description");
    }
    value
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    /// Not shown to the model: the tool's description is.
    #[derive(Deserialize, JsonSchema)]
    struct Args {
        /// The text.
        text: String,
        /// How many times.
        #[serde(default)]
        times: Option<u32>,
    }

    struct Repeat;

    impl Tool for Repeat {
        const NAME: &'static str = "repeat";
        const DESCRIPTION: &'static str = "Repeat a text.";
        type Args = Args;
        fn call(args: Args) -> Result<String, ToolError> {
            match args.times {
                Some(0) => Err(ToolError::failed("zero times")),
                times => Ok(args.text.repeat(times.unwrap_or(1) as usize)),
            }
        }
    }

    fn tools() -> Vec<Entry> {
        vec![entry::<Repeat>()]
    }

    /// A well-formed input reaches the tool, typed.
    #[test]
    fn dispatches_by_name() {
        let out = dispatch("repeat", r#"{"text":"ab","times":2}"#, &tools());
        assert_eq!(out.unwrap(), "abab");
    }

    /// The tool's own error comes back with its kind.
    #[test]
    fn tool_error_keeps_its_kind() {
        let out = dispatch("repeat", r#"{"text":"ab","times":0}"#, &tools());
        assert!(matches!(out, Err(types::ToolError::Failed(m)) if m == "zero times"));
    }

    /// Malformed JSON and a missing field are invalid input naming serde's reason.
    #[test]
    fn bad_input_is_invalid_input() {
        let out = dispatch("repeat", "{not json", &tools());
        assert!(
            matches!(out, Err(types::ToolError::InvalidInput(m)) if m.starts_with("input for `repeat`: key must be a string"))
        );
        let out = dispatch("repeat", "{}", &tools());
        assert!(
            matches!(out, Err(types::ToolError::InvalidInput(m)) if m.contains("missing field `text`"))
        );
    }

    /// An unknown tool name is invalid input listing the tools there are.
    #[test]
    fn unknown_tool_is_invalid_input() {
        let out = dispatch("nope", "{}", &tools());
        assert!(
            matches!(out, Err(types::ToolError::InvalidInput(m)) if m == "unknown tool `nope`; this plugin has: repeat")
        );
    }

    /// The derived schema is a plain object schema with field docs and no noise.
    #[test]
    fn schema_is_model_friendly() {
        let schema = Repeat::input_schema();
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "The text." },
                    "times": { "type": ["integer", "null"], "default": null, "format": "uint32", "minimum": 0, "description": "How many times." },
                },
                "required": ["text"],
            })
        );
    }

    /// The manifest carries every tool with its schema as JSON text.
    #[test]
    fn manifest_lists_tools() {
        let info = crate::manifest::PluginInfo {
            name: "rep",
            version: "1.0.0",
            description: "Repeats.",
            capabilities: crate::Capabilities {
                env: vec!["HOME".into()],
                ..Default::default()
            },
        };
        let m = crate::manifest::manifest(info, &tools());
        assert_eq!(m.name, "rep");
        assert_eq!(m.tools.len(), 1);
        assert_eq!(m.tools[0].name, "repeat");
        let schema: serde_json::Value = serde_json::from_str(&m.tools[0].input_schema).unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(m.capabilities.env, vec!["HOME".to_string()]);
    }
}
