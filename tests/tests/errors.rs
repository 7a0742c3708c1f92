//! Errors a user can act on: each says what went wrong and what to change, with the right exit
//! code, and before the line that says the session was kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::cli::Corral;
use corral_tests::server::{ScriptedServer, Turn, tool_use};
use serde_json::json;

#[test]
fn a_base_url_ending_in_v1_still_reaches_the_messages_endpoint() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![Turn::text("reached").into()]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.env("ANTHROPIC_BASE_URL", format!("{}/v1/", server.url()))
        .args(["run", "hi"]);
    let out = corral_tests::cli::wait_output(cmd, corral_tests::cli::RUN_TIMEOUT);
    out.assert_code(0);
    assert_eq!(out.stdout, "reached\n");
}

#[test]
fn a_server_that_is_down_gets_one_short_line_per_retry() {
    let corral = Corral::new();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = corral.command_for(&Corral::bin(), None);
    cmd.env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{port}"))
        .args(["run", "--max-retries", "2", "hi"]);
    let out = corral_tests::cli::wait_output(cmd, corral_tests::cli::RUN_TIMEOUT);
    out.assert_code(1);
    let retries: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("retrying in"))
        .collect();
    assert_eq!(retries.len(), 2, "{}", out.stderr);
    assert!(
        retries[0].contains("(1/2)") && retries[1].contains("(2/2)"),
        "{}",
        out.stderr
    );
    for line in &retries {
        assert!(line.contains("refused"), "{line}");
        assert!(line.len() < 80, "a retry line is not short: {line}");
    }
    let error = out
        .stderr
        .find("gave up after 3 attempts")
        .expect("the error");
    let kept = out.stderr.find("session").expect("the session line");
    assert!(error < kept, "{}", out.stderr);
}

#[test]
fn a_missing_key_or_model_is_a_configuration_error_before_anything_starts() {
    let corral = Corral::new();
    let mut cmd = corral.command_for(&Corral::bin(), None);
    cmd.env_remove("ANTHROPIC_API_KEY").args(["run", "hi"]);
    let out = corral_tests::cli::wait_output(cmd, corral_tests::cli::RUN_TIMEOUT);
    out.assert_code(2);
    assert!(
        out.stderr.contains("ANTHROPIC_API_KEY is not set"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("session"), "{}", out.stderr);

    let out = corral.run(None, &["run", "--provider", "openai", "hi"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("needs a model: give --model"),
        "{}",
        out.stderr
    );
    assert!(corral.sessions().is_empty(), "a session was started");
}

#[test]
fn max_turns_zero_is_refused_with_its_place() {
    let corral = Corral::new();
    corral.write("corral.toml", "[agent]\nmax_turns = 0\n");
    let out = corral.run(None, &["policy", "check"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("corral.toml:2:") && out.stderr.contains("max_turns must be from 1"),
        "{}",
        out.stderr
    );
}

#[test]
fn running_out_of_wait_timeout_says_so_and_fails() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "bg",
            "background_run",
            json!({"command": "sleep 30", "timeout_secs": 60}),
        )])
        .into(),
        Turn::text("I will wait for it.").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "--wait-timeout", "1", "build"]);
    out.assert_code(1);
    server.assert_clean();
    assert!(
        out.stderr.contains(
            "gave up waiting for 1 background task(s) after 1 s (raise it with --wait-timeout)"
        ),
        "{}",
        out.stderr
    );
}
