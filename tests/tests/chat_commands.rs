//! `corral chat`'s slash commands are corral's, never the model's: each does its work locally,
//! an unknown one is an error, and only real prompts reach the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::cli::Corral;
use corral_tests::server::{ScriptedServer, Turn};

#[test]
fn slash_commands_are_handled_locally_and_unknown_ones_are_refused() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![
        Turn::text("first answer").into(),
        Turn::text("second answer").into(),
    ]);
    let input = "/help\n/frobnicate\n/model\n/model claude-sonnet-5\nhello\n/usage\n/clear\n//etc holds the config\n/tasks\n/exit\nnever sent\n";
    let out = corral.run_with_input(Some(&server), &["chat"], input);
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2, "only the two prompts reach the model");
    assert_eq!(bodies[0]["model"], "claude-sonnet-5", "/model switched it");
    // /clear started a new conversation: the second request holds only its own prompt.
    let second = bodies[1]["messages"].as_array().unwrap();
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(
        second[0]["content"]
            .to_string()
            .contains("/etc holds the config")
    );
    let err = &out.stderr;
    for expected in [
        "/kill ID",
        "unknown command /frobnicate",
        "model: claude-opus-5",
        "model: claude-sonnet-5 from the next call on",
        "this chat: 10 tokens in (0 cached), 5 out",
        "new session ",
        "no background tasks",
    ] {
        assert!(err.contains(expected), "{expected:?} not in: {err}");
    }
    assert_eq!(corral.sessions().len(), 2, "/clear made a second session");
}

/// Without a terminal too, a line ending in `\` goes on on the next: the two lines are one
/// prompt, without the `\`.
#[test]
fn a_trailing_backslash_joins_piped_lines() {
    let corral = Corral::new();
    let server = ScriptedServer::start(vec![Turn::text("one answer").into()]);
    let out = corral.run_with_input(
        Some(&server),
        &["chat"],
        "first line \\\nsecond line\n/exit\n",
    );
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 1, "{}", out.stderr);
    let messages = bodies[0]["messages"].as_array().unwrap();
    assert_eq!(
        messages[0]["content"][0]["text"], "first line \nsecond line",
        "{messages:?}"
    );
}
