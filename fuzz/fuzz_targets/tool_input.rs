//! Tool-input checking (`corral::tools::schema`), as the registry does it before a tool runs:
//! the depth rule, then the tool's JSON Schema; and each tool's `resource_key`, which the agent
//! asks on input not yet checked.
//!
//! Input: one byte, then JSON text. Below 128 the byte picks a built-in tool and the text is
//! its input; from 128 on the text is a schema (as a plugin may declare), a NUL byte, and the
//! input. What must hold: no panic; input within the depth rule passes it and deeper input is
//! refused; `bound_depth` leaves a note the rule refuses with the same message, and leaves
//! input within the rule alone.
#![no_main]

use std::sync::{Arc, OnceLock};

use corral::ShellConfig;
use corral::background::{BackgroundConfig, BackgroundManager};
use corral::tools::schema::{self, MAX_INPUT_DEPTH};
use corral::tools::{
    BackgroundRunTool, BashTool, CheckBackgroundTool, EditFileTool, KillBackgroundTool,
    ReadFileTool, Tool, WriteFileTool,
};
use corral::workspace::Workspace;
use corral_fuzz::{fields, workspace_root};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The built-in tools, made once, on the scratch workspace.
fn tools() -> &'static [Arc<dyn Tool>] {
    static TOOLS: OnceLock<Vec<Arc<dyn Tool>>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let ws = Arc::new(Workspace::open(workspace_root()).unwrap_or_else(|e| panic!("{e}")));
        let manager = Arc::new(BackgroundManager::new(
            ws.clone(),
            BackgroundConfig::default(),
            |_| {},
        ));
        vec![
            Arc::new(BashTool::new(ws.clone(), ShellConfig::default())),
            Arc::new(ReadFileTool::new(ws.clone())),
            Arc::new(WriteFileTool::new(ws.clone())),
            Arc::new(EditFileTool::new(ws)),
            Arc::new(BackgroundRunTool::new(manager.clone())),
            Arc::new(CheckBackgroundTool::new(manager.clone())),
            Arc::new(KillBackgroundTool::new(manager)),
        ]
    })
}

fn depth_rule(input: &Value) {
    let depth = schema::depth(input);
    let verdict = schema::check_depth(input);
    if depth > MAX_INPUT_DEPTH {
        assert!(verdict.is_err(), "{depth} levels passed the rule");
    }
    let mut bounded = input.clone();
    if schema::bound_depth(&mut bounded) {
        assert!(depth > MAX_INPUT_DEPTH, "{depth} levels were replaced");
        assert_eq!(
            schema::check_depth(&bounded),
            verdict,
            "the note says something else"
        );
        assert!(schema::depth(&bounded) <= MAX_INPUT_DEPTH);
    } else {
        assert_eq!(&bounded, input, "an input within the rule was changed");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which < 128 {
        let Ok(input) = serde_json::from_slice::<Value>(rest) else {
            return;
        };
        let tools = tools();
        let tool = &tools[usize::from(which) % tools.len()];
        let _ = tool.resource_key(&input);
        depth_rule(&input);
        if schema::check_depth(&input).is_ok() {
            let _ = schema::validate(&input, &tool.spec().input_schema);
        }
    } else {
        let f = fields(rest, 0, 2);
        let (Ok(spec), Ok(input)) = (
            serde_json::from_slice::<Value>(f[0]),
            serde_json::from_slice::<Value>(f[1]),
        ) else {
            return;
        };
        depth_rule(&input);
        if schema::check_depth(&input).is_ok() {
            let _ = schema::validate(&input, &spec);
        }
    }
});
