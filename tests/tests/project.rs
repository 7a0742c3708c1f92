//! Finding the project and its instructions, as git, cargo, Codex and Claude Code users expect:
//! corral run from a subfolder uses the project's `corral.toml` and `.corral/`; the project's
//! `AGENTS.md`, `[agent] system` and `--system` reach the system prompt, in that order; `corral
//! run -` reads the prompt from stdin, and an empty prompt changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::cli::Corral;
use corral_tests::server::{ScriptedServer, Turn};
use serde_json::Value;

fn tool_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The system prompt as text, however the request carries it (a string or blocks).
fn system(body: &Value) -> String {
    match &body["system"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[test]
fn a_subfolder_uses_the_projects_settings_and_state() {
    let corral = Corral::new().from_subfolder("docs/guide");
    // A narrowing: it applies untrusted.
    corral.write("corral.toml", "[shell]\nenabled = false\n");
    let server = ScriptedServer::start(vec![Turn::text("done").into()]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let tools = tool_names(&server.bodies()[0]);
    assert!(!tools.iter().any(|t| t == "bash"), "the shell is back on: {tools:?}");
    assert!(
        out.stderr.contains("the nearest folder with corral.toml"),
        "{}",
        out.stderr
    );
    assert!(corral.path(".corral/sessions").is_dir());
    assert!(!corral.path("docs/guide/.corral").exists());
    assert!(!corral.path("docs/.corral").exists());
    assert_eq!(corral.read(".corral/.gitignore"), "*\n");
}

#[test]
fn without_settings_the_git_root_is_the_workspace() {
    let corral = Corral::new().from_subfolder("src/deep");
    std::fs::create_dir(corral.path(".git")).expect("git");
    let server = ScriptedServer::start(vec![Turn::text("done").into()]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    assert!(out.stderr.contains("the nearest git root"), "{}", out.stderr);
    let system = system(&server.bodies()[0]);
    let root = corral.workspace.path().canonicalize().expect("root");
    assert!(
        system.contains(&format!("workspace folder {}", root.display()))
            || system.contains(&format!("workspace folder {}", corral.workspace.path().display())),
        "{system}"
    );
    assert!(corral.path(".corral").is_dir());
    assert!(!corral.path("src/deep/.corral").exists());
}

#[test]
fn agents_md_the_settings_and_the_flag_reach_the_system_prompt_in_order() {
    let corral = Corral::new();
    corral.write("AGENTS.md", "Run cargo fmt before every commit.\n");
    corral.write("CLAUDE.md", "This file is not read when AGENTS.md exists.\n");
    corral.write("corral.toml", "[agent]\nsystem = \"Prefer small commits.\"\n");
    let server = ScriptedServer::start(vec![
        Turn::text("done").into(),
        Turn::text("done").into(),
    ]);
    corral
        .run(Some(&server), &["run", "--system", "Answer in French.", "go"])
        .assert_code(0);
    corral
        .run(Some(&server), &["run", "--no-project-instructions", "go"])
        .assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    let first = system(&bodies[0]);
    let at = |needle: &str| {
        first
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in the system prompt: {first}"))
    };
    assert!(at("Run cargo fmt") < at("Prefer small commits.") && at("Prefer small") < at("Answer in French."));
    assert!(!first.contains("not read when AGENTS.md exists"), "{first}");
    let second = system(&bodies[1]);
    assert!(!second.contains("Run cargo fmt"), "{second}");
    assert!(second.contains("Prefer small commits."), "{second}");
}

#[test]
fn a_prompt_comes_from_stdin_and_an_empty_one_is_refused() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![Turn::text("done").into()]);
    corral
        .run_with_input(Some(&server), &["run", "-"], "fix the failing test\nin src/lib.rs\n")
        .assert_code(0);
    let body = &server.bodies()[0];
    let text = body["messages"][0]["content"].to_string();
    assert!(text.contains("fix the failing test\\nin src/lib.rs"), "{text}");

    let empty = Corral::new();
    let out = empty.run(Some(&server), &["run", "  "]);
    out.assert_code(2);
    assert!(out.stderr.contains("the prompt is empty"), "{}", out.stderr);
    let out = empty.run_with_input(Some(&server), &["run", "-"], "");
    out.assert_code(2);
    assert!(!empty.path(".corral").exists(), "an empty prompt made the state folder");
    assert_eq!(server.bodies().len(), 1, "an empty prompt reached the model");
}
