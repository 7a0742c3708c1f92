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
    assert!(
        !tools.iter().any(|t| t == "bash"),
        "the shell is back on: {tools:?}"
    );
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
    assert!(
        out.stderr.contains("the nearest git root"),
        "{}",
        out.stderr
    );
    let system = system(&server.bodies()[0]);
    let root = corral.workspace.path().canonicalize().expect("root");
    assert!(
        system.contains(&format!("workspace folder {}", root.display()))
            || system.contains(&format!(
                "workspace folder {}",
                corral.workspace.path().display()
            )),
        "{system}"
    );
    assert!(corral.path(".corral").is_dir());
    assert!(!corral.path("src/deep/.corral").exists());
}

#[test]
fn agents_md_the_settings_and_the_flag_reach_the_system_prompt_in_order() {
    let corral = Corral::new();
    corral.write("AGENTS.md", "Run cargo fmt before every commit.\n");
    corral.write(
        "CLAUDE.md",
        "This file is not read when AGENTS.md exists.\n",
    );
    corral.write(
        "corral.toml",
        "[agent]\nsystem = \"Prefer small commits.\"\n",
    );
    let server = ScriptedServer::start(vec![Turn::text("done").into(), Turn::text("done").into()]);
    corral
        .run(
            Some(&server),
            &["run", "--system", "Answer in French.", "go"],
        )
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
    assert!(
        at("Run cargo fmt") < at("Prefer small commits.")
            && at("Prefer small") < at("Answer in French.")
    );
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
        .run_with_input(
            Some(&server),
            &["run", "-"],
            "fix the failing test\nin src/lib.rs\n",
        )
        .assert_code(0);
    let body = &server.bodies()[0];
    let text = body["messages"][0]["content"].to_string();
    assert!(
        text.contains("fix the failing test\\nin src/lib.rs"),
        "{text}"
    );

    let empty = Corral::new();
    let out = empty.run(Some(&server), &["run", "  "]);
    out.assert_code(2);
    assert!(out.stderr.contains("the prompt is empty"), "{}", out.stderr);
    let out = empty.run_with_input(Some(&server), &["run", "-"], "");
    out.assert_code(2);
    assert!(
        !empty.path(".corral").exists(),
        "an empty prompt made the state folder"
    );
    assert_eq!(
        server.bodies().len(),
        1,
        "an empty prompt reached the model"
    );
}

#[test]
fn sessions_are_listed_newest_first_and_an_ambiguous_prefix_names_its_matches() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::text("first answer").into(),
        Turn::text("second answer").into(),
    ]);
    let first = corral.run(Some(&server), &["run", "the first prompt"]);
    first.assert_code(0);
    let first_id = first
        .stderr
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("session "))
        .unwrap_or_else(|| panic!("the last line names no session: {}", first.stderr))
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    corral
        .run(Some(&server), &["run", "the second prompt"])
        .assert_code(0);
    let list = corral.run(None, &["sessions"]);
    list.assert_code(0);
    let rows: Vec<&str> = list.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", list.stdout);
    assert!(rows[0].contains("the second prompt"), "{}", list.stdout);
    assert!(rows[1].contains("the first prompt") && rows[1].starts_with(&first_id));
    let json = corral.run(None, &["sessions", "--json"]);
    let newest: Value = serde_json::from_str(json.stdout.lines().next().expect("a line")).unwrap();
    assert_eq!(newest["turns"], 1);
    assert!(newest["input_tokens"].as_u64().unwrap() > 0, "{newest}");

    // Two ids that share a prefix: the prefix is refused with both named.
    for id in [
        "abcd0001-0000-4000-8000-000000000000",
        "abcd0002-0000-4000-8000-000000000000",
    ] {
        corral.write(
            &format!(".corral/sessions/{id}.jsonl"),
            &format!(
                "{{\"type\":\"session\",\"id\":\"{id}\",\"created_unix\":1,\"model\":\"m\"}}\n"
            ),
        );
    }
    let out = corral.run(Some(&server), &["run", "--resume", "abcd", "go"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("abcd0001-") && out.stderr.contains("abcd0002-"),
        "{}",
        out.stderr
    );
}
