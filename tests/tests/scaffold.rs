//! `corral plugin new`: the crate it writes builds as it is for wasm32-wasip2, loads in corral,
//! its tool answers the model through the real binary, and its own test passes natively.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use corral_tests::cargo::{BUILD_TIMEOUT, cargo, shared_target_dir};
use corral_tests::cli::wait_output;
use corral_tests::{Corral, ScriptedServer, Turn, tool_use};
use serde_json::json;

/// A scaffolded plugin builds, is listed, and is called by the model; `cargo test` passes.
#[test]
fn a_scaffolded_plugin_builds_loads_and_answers() {
    let corral = Corral::new();
    let src = tempfile::tempdir().unwrap();
    let dir = src.path().join("text-stats");
    let out = corral.run(
        None,
        &[
            "plugin",
            "new",
            "text-stats",
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    out.assert_code(0);
    assert!(
        out.stdout.contains("created plugin `text-stats`"),
        "{}",
        out.stdout
    );
    for file in ["Cargo.toml", "src/lib.rs", "README.md", ".gitignore"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }

    let target = shared_target_dir();
    let mut build = cargo(&dir, &["build", "--target", "wasm32-wasip2", "--release"]);
    build.arg("--target-dir").arg(&target);
    let started = Instant::now();
    let built = wait_output(build, BUILD_TIMEOUT);
    eprintln!(
        "scaffolded plugin built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    built.assert_code(0);

    let plugins = corral.path(".corral/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        target.join("wasm32-wasip2/release/text_stats.wasm"),
        plugins.join("text_stats.wasm"),
    )
    .unwrap();
    let listed = corral.run(None, &["plugins"]);
    listed.assert_code(0);
    assert!(
        listed.stdout.contains("text-stats 0.1.0") && listed.stdout.contains("tools: text-stats"),
        "{}",
        listed.stdout
    );

    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use(
                "ok",
                "text-stats",
                json!({"text": "the cat\nthe end", "top": 1}),
            ),
            tool_use("bad", "text-stats", json!({"text": "x", "top": 0})),
        ])
        .into(),
        Turn::text("counted").into(),
    ]);
    let run = corral.run(Some(&server), &["run", "count the words"]);
    run.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    let offered = bodies[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "text-stats")
        .expect("the plugin's tool is offered");
    assert_eq!(offered["input_schema"]["required"], json!(["text"]));
    let last = bodies[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let results: Vec<_> = last["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| {
            (
                b["is_error"].as_bool().unwrap_or(false),
                b["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        results[0],
        (
            false,
            "2 lines, 4 words, 15 characters\nmost frequent: the (2)".to_string()
        )
    );
    assert!(
        results[1].0 && results[1].1.contains("`top` must be from 1 to 100"),
        "{:?}",
        results[1]
    );

    let mut test = cargo(&dir, &["test"]);
    test.arg("--target-dir").arg(&target);
    let tested = wait_output(test, BUILD_TIMEOUT);
    tested.assert_code(0);
    assert!(tested.stdout.contains("2 passed"), "{}", tested.stdout);
}

/// A bad name, an existing folder and a missing SDK are usage errors that write nothing.
#[test]
fn bad_requests_are_refused_with_exit_code_2() {
    let corral = Corral::new();
    let src = tempfile::tempdir().unwrap();
    let dir = src.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let dir = dir.to_str().unwrap();

    let out = corral.run(None, &["plugin", "new", "fine", "--dir", dir]);
    out.assert_code(2);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        1,
        "nothing written"
    );

    for bad in ["Upper", "9lives", "has space", "bash"] {
        let out = corral.run(None, &["plugin", "new", bad]);
        out.assert_code(2);
        assert!(
            out.stderr.contains("bad plugin name"),
            "{bad}: {}",
            out.stderr
        );
        assert!(!corral.path(bad).exists());
    }

    let nowhere = src.path().join("no-sdk");
    let out = corral.run(
        None,
        &["plugin", "new", "fine", "--sdk", nowhere.to_str().unwrap()],
    );
    out.assert_code(2);
    assert!(out.stderr.contains("no plugin SDK"), "{}", out.stderr);
    assert!(!corral.path("fine").exists());
}
