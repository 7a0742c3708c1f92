//! The `jq` plugin: run a jq filter (the jaq implementation) over JSON given inline
//! or read from a workspace file under `/workspace`.
//!
//! Each output value is printed on its own line as compact JSON, or as plain text
//! for strings when `raw_output` is set (like `jq -c` and `jq -r`).

use std::fmt::Write as _;
use std::path::Path;

use corral_plugin::{Tool, ToolError, schemars};
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;

/// Where the workspace appears inside the sandbox.
const WORKSPACE: &str = "/workspace";

/// Output past this many bytes is cut, with a note.
const MAX_OUTPUT_BYTES: usize = 200_000;

/// The input of the `jq` tool. Exactly one of `json` and `path` is given.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The jq filter, e.g. `.items[] | select(.price > 10) | .name`.
    pub filter: String,
    /// The JSON input as text: one value, or several separated by whitespace.
    #[serde(default)]
    pub json: Option<String>,
    /// A workspace-relative path of a JSON file to use as input instead of `json`.
    #[serde(default)]
    pub path: Option<String>,
    /// Print string results without quotes, like `jq -r`.
    #[serde(default)]
    pub raw_output: bool,
}

/// The `jq` tool.
pub struct Jq;

impl Tool for Jq {
    const NAME: &'static str = "jq";
    const DESCRIPTION: &'static str = "Run a jq filter over JSON given as text (`json`) or \
        read from a workspace file (`path`). Prints each result on its own line as compact \
        JSON (strings unquoted with raw_output).";
    type Args = Args;

    fn call(args: Args) -> Result<String, ToolError> {
        jq(Path::new(WORKSPACE), &args)
    }
}

corral_plugin::export_plugin! {
    description: "Query JSON with jq filters, inline or from workspace files.",
    capabilities: Capabilities { read: vec!["**".into()], ..Default::default() },
    tools: [Jq],
}

/// Runs `args` with `root` standing for the workspace.
pub fn jq(root: &Path, args: &Args) -> Result<String, ToolError> {
    let text = match (&args.json, &args.path) {
        (Some(json), None) => json.clone(),
        (None, Some(path)) => std::fs::read_to_string(root.join(path.trim_start_matches('/')))
            .map_err(|e| ToolError::failed(format!("cannot read `{path}`: {e}")))?,
        _ => {
            return Err(ToolError::invalid_input(
                "give exactly one of `json` and `path`",
            ));
        }
    };

    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: args.filter.as_str(),
                path: (),
            },
        )
        .map_err(|errors| ToolError::invalid_input(load_errors(errors)))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let undefined: Vec<String> = errors
                .into_iter()
                .flat_map(|(_, errs)| errs)
                .map(|(name, what)| format!("undefined {} `{name}`", what.as_str()))
                .collect();
            ToolError::invalid_input(format!("bad filter: {}", undefined.join("; ")))
        })?;

    let mut out = String::new();
    for (n, input) in jaq_json::read::parse_many(text.as_bytes()).enumerate() {
        let input = input.map_err(|e| {
            let source = args
                .path
                .as_deref()
                .map_or("`json`".to_string(), |p| format!("`{p}`"));
            ToolError::invalid_input(format!("{source} is not valid JSON (value {}): {e}", n + 1))
        })?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
        for value in filter.id.run((ctx, input)).map(unwrap_valr) {
            let value = value.map_err(|e| ToolError::failed(format!("jq error: {e}")))?;
            match &value {
                Val::TStr(s) if args.raw_output => {
                    let _ = writeln!(out, "{}", String::from_utf8_lossy(s));
                }
                _ => {
                    let _ = writeln!(out, "{value}");
                }
            }
            if out.len() > MAX_OUTPUT_BYTES {
                let mut cut = MAX_OUTPUT_BYTES;
                while !out.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.truncate(cut);
                let _ = write!(
                    out,
                    "\n[output cut at {MAX_OUTPUT_BYTES} bytes; narrow the filter]"
                );
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// One line per lex, parse or import error of the filter.
fn load_errors(errors: load::Errors<&str, ()>) -> String {
    let mut lines = Vec::new();
    for (_, error) in errors {
        match error {
            load::Error::Io(errs) => lines.extend(
                errs.into_iter()
                    .map(|(path, e)| format!("cannot import `{path}`: {e}")),
            ),
            load::Error::Lex(errs) => {
                lines.extend(errs.into_iter().map(|(expect, at)| {
                    format!("expected {} at `{}`", expect.as_str(), snippet(at))
                }))
            }
            load::Error::Parse(errs) => {
                lines.extend(errs.into_iter().map(|(expect, at)| {
                    format!("expected {} at `{}`", expect.as_str(), snippet(at))
                }))
            }
        }
    }
    format!("bad filter: {}", lines.join("; "))
}

/// The start of the filter text where an error was found, or "end of filter".
fn snippet(at: &str) -> String {
    if at.is_empty() {
        return "end of filter".into();
    }
    at.chars().take(20).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn run(args: serde_json::Value) -> Result<String, ToolError> {
        jq(
            &std::env::temp_dir(),
            &serde_json::from_value(args).unwrap(),
        )
    }

    /// Each result is a compact JSON line; raw output drops the quotes of strings.
    #[test]
    fn prints_one_result_per_line() {
        let json = r#"{"items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}]}"#;
        let out =
            run(serde_json::json!({"filter": ".items[] | {name, m: (.n * 2)}", "json": json}))
                .unwrap();
        assert_eq!(out, "{\"name\":\"a\",\"m\":2}\n{\"name\":\"b\",\"m\":4}\n");
        let out =
            run(serde_json::json!({"filter": ".items[].name", "json": json, "raw_output": true}))
                .unwrap();
        assert_eq!(out, "a\nb\n");
        let out =
            run(serde_json::json!({"filter": "[.items[].n] | add, length", "json": json})).unwrap();
        assert_eq!(out, "3\n2\n");
    }

    /// Several input values each run through the filter, like jq.
    #[test]
    fn several_inputs() {
        let out = run(serde_json::json!({"filter": ". + 1", "json": "1 2 3"})).unwrap();
        assert_eq!(out, "2\n3\n4\n");
    }

    /// A file under the workspace root is read when `path` is given.
    #[test]
    fn reads_a_workspace_file() {
        let root = std::env::temp_dir().join(format!("corral-jq-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("data.json"), r#"{"version": "1.2"}"#).unwrap();
        let args =
            serde_json::from_value(serde_json::json!({"filter": ".version", "path": "data.json"}))
                .unwrap();
        let out = jq(&root, &args);
        let missing = jq(
            &root,
            &serde_json::from_value(serde_json::json!({"filter": ".", "path": "nope.json"}))
                .unwrap(),
        );
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(out.unwrap(), "\"1.2\"\n");
        assert!(
            matches!(missing, Err(ToolError::Failed(m)) if m.starts_with("cannot read `nope.json`"))
        );
    }

    /// Bad filters and bad JSON are the model's to fix; runtime errors are failures.
    #[test]
    fn errors() {
        let bad = run(serde_json::json!({"filter": ".a |", "json": "{}"})).unwrap_err();
        assert!(
            matches!(&bad, ToolError::InvalidInput(m) if m.starts_with("bad filter: expected")),
            "{bad}"
        );
        let undefined = run(serde_json::json!({"filter": "nosuch(1)", "json": "{}"})).unwrap_err();
        assert!(
            matches!(&undefined, ToolError::InvalidInput(m) if m == "bad filter: undefined filter `nosuch`"),
            "{undefined}"
        );
        let json = run(serde_json::json!({"filter": ".", "json": "{oops"})).unwrap_err();
        assert!(
            matches!(&json, ToolError::InvalidInput(m) if m.starts_with("`json` is not valid JSON")),
            "{json}"
        );
        let runtime =
            run(serde_json::json!({"filter": ".a + 1", "json": "{\"a\": \"x\"}"})).unwrap_err();
        assert!(
            matches!(&runtime, ToolError::Failed(m) if m.starts_with("jq error:")),
            "{runtime}"
        );
        let neither = run(serde_json::json!({"filter": "."})).unwrap_err();
        assert!(matches!(neither, ToolError::InvalidInput(_)));
    }
}
