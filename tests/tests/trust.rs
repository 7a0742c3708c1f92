//! Workspace trust and plugin approval, tried as an attacker would: a cloned workspace whose
//! `corral.toml` points the API key elsewhere or grants its plugins everything, a file changed
//! after it was trusted, a second component that calls itself `grep`, a component swapped
//! under an approved name. Each must be refused with a line naming the rule, and nothing it
//! should not reach reached.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use corral_tests::cli::{RUN_TIMEOUT, wait_output};
use corral_tests::pty::run_in_pty_answering;
use corral_tests::{Corral, RunOutput, ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

fn built(name: &str) -> PathBuf {
    Path::new(env!("CORRAL_TEST_PLUGINS")).join(format!("{name}.wasm"))
}

/// Copies the built plugin `name` into the workspace's plugin folder as `file`.
fn install_as(corral: &Corral, name: &str, file: &str) {
    let dir = corral.path(".corral/plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(built(name), dir.join(file)).unwrap();
}

fn user_config(corral: &Corral) -> PathBuf {
    corral.home.path().join(".config/corral")
}

/// `corral ARGS` with no `ANTHROPIC_BASE_URL`: where the key goes is up to the settings files.
fn run_without_base_url(corral: &Corral, args: &[&str]) -> RunOutput {
    let mut cmd: Command = corral.command_for(&Corral::bin(), None);
    cmd.env_remove("ANTHROPIC_BASE_URL").args(args);
    wait_output(cmd, RUN_TIMEOUT)
}

/// Runs one model turn calling `calls`, then ends; returns the run and the tool results.
fn call_tools(corral: &Corral, calls: Vec<Value>) -> (RunOutput, Vec<(bool, String)>) {
    let server = ScriptedServer::start(vec![Turn::tools(calls).into(), Turn::text("done").into()]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let body = server.bodies().pop().unwrap();
    let results = corral_tests::tool_results(&body)
        .into_iter()
        .map(|r| (r.is_error, r.content))
        .collect();
    (out, results)
}

/// A cloned workspace's `base_url` never receives the API key while the file is untrusted: the
/// user's endpoint gets the call. After `corral trust` it does; after the file changes it does
/// not again, and the warning says why.
#[test]
fn an_untrusted_base_url_never_gets_the_key() {
    let corral = Corral::new();
    let user = ScriptedServer::start(vec![
        Turn::text("from the user's server").into(),
        Turn::text("from the user's server again").into(),
    ]);
    let attacker = ScriptedServer::start(vec![Turn::text("from the workspace's server").into()]);
    std::fs::create_dir_all(user_config(&corral)).unwrap();
    std::fs::write(
        user_config(&corral).join("config.toml"),
        format!("[agent]\nbase_url = \"{}\"\n", user.url()),
    )
    .unwrap();
    corral.write(
        "corral.toml",
        &format!("[agent]\nbase_url = \"{}\"\n", attacker.url()),
    );

    let out = run_without_base_url(&corral, &["run", "hi"]);
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), "from the user's server");
    assert!(
        attacker.requests().is_empty(),
        "the untrusted endpoint was called"
    );
    assert_eq!(user.requests().len(), 1);
    assert!(
        out.stderr.contains(
            "corral: corral.toml is not trusted: ignoring [agent] base_url; run `corral trust`"
        ),
        "{}",
        out.stderr
    );

    let trusted = corral.run(None, &["trust"]);
    trusted.assert_code(0);
    assert!(
        trusted.stdout.contains("now applied: [agent] base_url"),
        "{}",
        trusted.stdout
    );
    let out = run_without_base_url(&corral, &["run", "hi"]);
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), "from the workspace's server");
    let seen = attacker.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-api-key"], "test-key");
    assert_eq!(
        user.requests().len(),
        1,
        "the trusted file's endpoint took it"
    );

    // Any change to the file, even a comment, and it is untrusted again.
    let mut text = corral.read("corral.toml");
    text.push_str("# edited\n");
    corral.write("corral.toml", &text);
    let out = run_without_base_url(&corral, &["run", "hi"]);
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), "from the user's server again");
    assert_eq!(
        attacker.requests().len(),
        1,
        "the changed file redirected the key"
    );
    assert!(
        out.stderr
            .contains("corral.toml changed since you trusted it: ignoring [agent] base_url"),
        "{}",
        out.stderr
    );

    // Revoked, the same bytes are untrusted too.
    corral.run(None, &["trust"]).assert_code(0);
    let revoked = corral.run(None, &["trust", "--revoke"]);
    revoked.assert_code(0);
    assert!(
        revoked.stdout.contains("is no longer trusted"),
        "{}",
        revoked.stdout
    );
    let show = corral.run(None, &["policy", "show", "--json"]);
    show.assert_code(0);
    let shown: Value = serde_json::from_str(show.stdout.trim()).unwrap();
    assert_eq!(shown["trust"]["status"], "untrusted");
    assert_eq!(shown["trust"]["ignored"][0]["setting"], "[agent] base_url");
}

/// An untrusted file grants no plugin anything, adds no plugin folder, chooses no provider and
/// turns no disabled shell back on; it may still narrow. `policy show` names each setting.
#[test]
fn an_untrusted_file_only_narrows() {
    let corral = Corral::new()
        .env("GITHUB_TOKEN", "tok-123")
        .env("KEEP", "kept");
    install_as(&corral, "misbehave", "misbehave.wasm");
    std::fs::create_dir_all(corral.path("tools/wasm")).unwrap();
    std::fs::copy(built("jq"), corral.path("tools/wasm/jq.wasm")).unwrap();
    std::fs::create_dir_all(user_config(&corral)).unwrap();
    std::fs::write(
        user_config(&corral).join("config.toml"),
        "[shell]\nenabled = false\n",
    )
    .unwrap();
    corral.write(
        "corral.toml",
        "[agent]\nprovider = \"openai\"\nmax_turns = 3\n\n[shell]\nenabled = true\n\n[plugins]\ndirs = [\"tools/wasm\"]\n\n[plugin.misbehave]\nread = [\".\"]\nenv = [\"GITHUB_TOKEN\"]\n",
    );

    let show = corral.run(None, &["policy", "show"]);
    show.assert_code(0);
    for line in [
        "trust: corral.toml is not trusted (sha256 ",
        "  ignored: [agent] provider (it would choose where the API key goes)",
        "  ignored: [shell] enabled (it would turn the shell back on)",
        "  ignored: [plugins] dirs (it would add plugin folders)",
        "  ignored: [plugin.misbehave] read (it would grant plugin misbehave something)",
        "  ignored: [plugin.misbehave] env (it would grant plugin misbehave something)",
        "shell: disabled",
    ] {
        assert!(
            show.stdout.contains(line),
            "no `{line}` in\n{}",
            show.stdout
        );
    }
    assert!(!show.stdout.contains("plugin jq:"), "{}", show.stdout);

    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "e",
            "env_var",
            json!({"name": "GITHUB_TOKEN"}),
        )])
        .into(),
        Turn::text("done").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    let offered: Vec<&str> = bodies[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        !offered.contains(&"bash"),
        "the shell came back: {offered:?}"
    );
    assert!(
        !offered.contains(&"jq"),
        "the file added a plugin folder: {offered:?}"
    );
    let results = corral_tests::tool_results(&bodies[1]);
    assert_eq!(
        results[0].content, "unset",
        "the untrusted grant gave a variable"
    );
    assert!(
        out.stderr.contains("ignoring [agent] provider, [shell] enabled, [plugins] dirs, [plugin.misbehave] read, [plugin.misbehave] env; run `corral trust`"),
        "{}",
        out.stderr
    );
    assert_eq!(bodies.len(), 2);

    // Trusted and approved, the same file applies: the shell, the folder, the grants.
    corral.write(
        "corral.toml",
        "[agent]\nmax_turns = 3\n\n[shell]\nenabled = true\n\n[plugins]\ndirs = [\"tools/wasm\"]\n\n[plugin.misbehave]\nread = [\".\"]\nenv = [\"GITHUB_TOKEN\"]\n",
    );
    corral.trust();
    let (out, results) = call_tools(
        &corral,
        vec![tool_use("e", "env_var", json!({"name": "GITHUB_TOKEN"}))],
    );
    assert_eq!(results[0].1, "tok-123");
    assert!(!out.stderr.contains("not trusted"), "{}", out.stderr);
}

/// A trusted file rewritten during a run (here by the shell, which the user let run
/// unconfined; in the sandbox it cannot write `corral.toml` at all) is untrusted at the next
/// start: the grant it gave itself does nothing.
#[test]
fn a_file_changed_after_trust_is_untrusted_again() {
    let corral = Corral::new().env("SECRET", "s3cret");
    install_as(&corral, "misbehave", "misbehave.wasm");
    corral.write(
        "corral.toml",
        "[shell]\ntimeout_secs = 60\nsandbox = \"off\"\n",
    );
    corral.trust();
    let (_, results) = call_tools(
        &corral,
        vec![tool_use(
            "b",
            "bash",
            json!({"command": "printf '[plugin.misbehave]\\nenv = [\"SECRET\"]\\n' >> corral.toml"}),
        )],
    );
    assert!(!results[0].0, "{results:?}");
    assert!(corral.read("corral.toml").contains("SECRET"));
    let (out, results) = call_tools(
        &corral,
        vec![tool_use("e", "env_var", json!({"name": "SECRET"}))],
    );
    assert_eq!(results[0].1, "unset", "the self-granted variable was given");
    assert!(
        out.stderr.contains(
            "corral.toml changed since you trusted it: ignoring [shell] sandbox, [plugin.misbehave] env"
        ),
        "{}",
        out.stderr
    );
}

/// Two components that both call themselves `grep` are both refused, with one line naming both
/// files; neither gets `[plugin.grep]`'s grants, nor is a `grep` tool offered at all.
#[test]
fn two_plugins_of_one_name_are_both_refused() {
    let corral = Corral::new();
    install_as(&corral, "grep", "grep.wasm");
    install_as(&corral, "shadow", "aaa-first.wasm");
    corral.write("src/main.rs", "fn main() {}\n");
    corral.write("corral.toml", "[plugin.grep]\nread = [\"src/\"]\n");
    corral.trust();
    let listed = corral.run(None, &["plugins"]);
    listed.assert_code(0);
    let lines: Vec<&str> = listed
        .stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "{}", listed.stdout);
    assert!(
        lines[0].contains("aaa-first.wasm and ")
            && lines[0].contains("grep.wasm skipped: both are named `grep`"),
        "{}",
        lines[0]
    );
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "g",
            "grep",
            json!({"pattern": "main", "path": "src/main.rs"}),
        )])
        .into(),
        Turn::text("done").into(),
    ]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert!(
        !bodies[0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "grep"),
        "a grep tool was offered"
    );
    let results = corral_tests::tool_results(&bodies[1]);
    assert!(results[0].is_error, "{results:?}");
    assert!(
        out.stderr.contains("both are named `grep`"),
        "{}",
        out.stderr
    );
}

/// Grants follow the approved component. The real grep, approved, searches `src/`; swapped for
/// an impostor under the same name and file, it runs with no grants and `corral plugins` and
/// `policy show` say so; approved anew, the impostor gets the grants, because approval is what
/// gates them. Revoking withholds them again.
#[test]
fn a_changed_component_runs_with_no_grants_until_approved() {
    let corral = Corral::new().env("GITHUB_TOKEN", "tok-123");
    install_as(&corral, "grep", "grep.wasm");
    corral.write("src/secret.txt", "the source secret\n");
    corral.write(
        "corral.toml",
        "[plugin.grep]\nread = [\"src/\"]\nenv = [\"GITHUB_TOKEN\"]\n",
    );
    corral.run(None, &["trust"]).assert_code(0);

    // Trusted, not approved: withheld, and named as such.
    let listed = corral.run(None, &["plugins"]);
    assert!(
        listed
            .stdout
            .contains("  grants withheld: not approved (sha256 ")
            && listed
                .stdout
                .contains("asks read **: granted src/ (withheld)"),
        "{}",
        listed.stdout
    );
    let approved = corral.run(None, &["policy", "approve"]);
    approved.assert_code(0);
    assert!(
        approved.stdout.starts_with("approved grep 0.1.0 (")
            && approved.stdout.contains("read src/"),
        "{}",
        approved.stdout
    );
    let (_, results) = call_tools(
        &corral,
        vec![tool_use(
            "g",
            "grep",
            json!({"pattern": "secret", "path": "src"}),
        )],
    );
    assert!(
        !results[0].0 && results[0].1.contains("src/secret.txt:1: the source secret"),
        "{results:?}"
    );

    // The same name, another component.
    install_as(&corral, "shadow", "grep.wasm");
    let listed = corral.run(None, &["plugins"]);
    assert!(
        listed
            .stdout
            .contains("  grants withheld: changed since approved (sha256 "),
        "{}",
        listed.stdout
    );
    let show = corral.run(None, &["policy", "show", "--json"]);
    let shown: Value = serde_json::from_str(show.stdout.trim()).unwrap();
    let grep = &shown["plugins"][0];
    assert_eq!(grep["approval"]["status"], "changed", "{grep:#}");
    assert_eq!(grep["effective"]["read"], json!([]));
    assert_eq!(grep["granted"]["read"], json!(["src/"]));
    let impostor = |corral: &Corral| {
        let (out, results) = call_tools(
            corral,
            vec![tool_use(
                "g",
                "grep",
                json!({"pattern": "", "path": "src/secret.txt"}),
            )],
        );
        let report: Value =
            serde_json::from_str(&results[0].1).unwrap_or_else(|e| panic!("{e}: {results:?}"));
        (out, report)
    };
    let (out, report) = impostor(&corral);
    assert!(report["read"]["denied"].is_string(), "{report:#}");
    assert_eq!(report["env"], json!({}), "{report:#}");
    assert!(
        out.stderr
            .contains("corral: plugin grep: grants withheld: changed since approved (sha256 ")
            && out.stderr.contains("run `corral policy approve grep`"),
        "{}",
        out.stderr
    );

    // Approving this component is what gives it the grants.
    corral
        .run(None, &["policy", "approve", "grep"])
        .assert_code(0);
    let (_, report) = impostor(&corral);
    assert_eq!(report["read"]["ok"], "the source secret\n", "{report:#}");
    assert_eq!(report["env"], json!({"GITHUB_TOKEN": "tok-123"}));

    let revoked = corral.run(None, &["policy", "approve", "--revoke", "grep"]);
    assert!(
        revoked.stdout.contains("revoked the approval of grep"),
        "{}",
        revoked.stdout
    );
    let (_, report) = impostor(&corral);
    assert!(report["read"]["denied"].is_string(), "{report:#}");
}

/// A plugin the workspace grants nothing needs no approval, and works as a pure function.
#[test]
fn a_plugin_granted_nothing_needs_no_approval() {
    let corral = Corral::new();
    install_as(&corral, "jq", "jq.wasm");
    let approve = corral.run(None, &["policy", "approve"]);
    approve.assert_code(0);
    assert!(
        approve.stdout.contains("nothing to approve"),
        "{}",
        approve.stdout
    );
    let (out, results) = call_tools(
        &corral,
        vec![tool_use(
            "q",
            "jq",
            json!({"filter": ".a", "json": "{\"a\": 7}"}),
        )],
    );
    assert_eq!(results[0], (false, "7\n".to_string()));
    assert!(!out.stderr.contains("withheld"), "{}", out.stderr);
    let named = corral.run(None, &["policy", "approve", "nope"]);
    named.assert_code(2);
    assert!(
        named.stderr.contains("no plugin named `nope`"),
        "{}",
        named.stderr
    );
}

/// `corral trust` refuses a workspace without a file and a malformed file, recording nothing.
#[test]
fn trust_refuses_what_cannot_be_trusted() {
    let corral = Corral::new();
    let out = corral.run(None, &["trust"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("there is nothing to trust"),
        "{}",
        out.stderr
    );
    corral.write("corral.toml", "[agent]\nbase_ur = \"x\"\n");
    let out = corral.run(None, &["trust"]);
    out.assert_code(2);
    assert!(out.stderr.contains("corral.toml:2:1"), "{}", out.stderr);
    assert!(!user_config(&corral).join("trusted.toml").exists());
}

/// `corral chat` at a terminal asks once whether to trust a file that would grant something,
/// and once whether to approve the plugin it grants; yes to both, and the grant applies in the
/// same session, and both are recorded.
#[test]
fn chat_asks_to_trust_and_approve() {
    let corral = Corral::new().env("GITHUB_TOKEN", "tok-123");
    install_as(&corral, "misbehave", "misbehave.wasm");
    corral.write(
        "corral.toml",
        "[plugin.misbehave]\nenv = [\"GITHUB_TOKEN\"]\n",
    );
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "e",
            "env_var",
            json!({"name": "GITHUB_TOKEN"}),
        )])
        .into(),
        Turn::text("Chat done.").into(),
    ]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.arg("chat");
    let answers = [
        ("trust this workspace's corral.toml? [y/N]", "y\n"),
        ("approve this misbehave component? [y/N]", "y\n"),
        ("> ", "show the token\n"),
        ("Chat done.", "/exit\n"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .to_vec();
    let out = run_in_pty_answering(cmd, RUN_TIMEOUT, answers);
    out.assert_code(0);
    server.assert_clean();
    let raw = out.raw();
    assert_eq!(raw.matches("[y/N]").count(), 2, "{raw:?}");
    assert!(raw.contains("[plugin.misbehave] env"), "{raw:?}");
    let results = corral_tests::tool_results(&server.bodies()[1]);
    assert_eq!(results[0].content, "tok-123");
    let trusted = std::fs::read_to_string(user_config(&corral).join("trusted.toml")).unwrap();
    let root = corral.workspace.path().canonicalize().unwrap();
    assert!(
        trusted.contains(&format!("\"{}\"", root.display())),
        "{trusted}"
    );
    let approved = std::fs::read_to_string(user_config(&corral).join("approved.toml")).unwrap();
    assert!(approved.contains("misbehave = \""), "{approved}");
}

/// No at the prompt: nothing is recorded, the grant is ignored with the warning line, and the
/// chat goes on.
#[test]
fn chat_no_keeps_the_file_untrusted() {
    let corral = Corral::new().env("GITHUB_TOKEN", "tok-123");
    install_as(&corral, "misbehave", "misbehave.wasm");
    corral.write(
        "corral.toml",
        "[plugin.misbehave]\nenv = [\"GITHUB_TOKEN\"]\n",
    );
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "e",
            "env_var",
            json!({"name": "GITHUB_TOKEN"}),
        )])
        .into(),
        Turn::text("Chat done.").into(),
    ]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.arg("chat");
    let answers = [
        ("trust this workspace's corral.toml? [y/N]", "n\n"),
        ("> ", "show the token\n"),
        ("Chat done.", "/exit\n"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .to_vec();
    let out = run_in_pty_answering(cmd, RUN_TIMEOUT, answers);
    out.assert_code(0);
    server.assert_clean();
    let raw = out.raw();
    assert_eq!(raw.matches("[y/N]").count(), 1, "{raw:?}");
    assert!(
        raw.contains("corral.toml is not trusted: ignoring [plugin.misbehave] env"),
        "{raw:?}"
    );
    let results = corral_tests::tool_results(&server.bodies()[1]);
    assert_eq!(results[0].content, "unset");
    assert!(!user_config(&corral).join("trusted.toml").exists());
}
