//! `corral.toml`: every capability denied, then granted, through real plugins; malformed files
//! refused with their line and column before any model call; the shell taken away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use corral_tests::{Corral, RunOutput, ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

/// A plain HTTP server on 127.0.0.1:0 answering `hello` and recording each request's head.
struct Web {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Web {
    fn start() -> Web {
        Web::start_on("127.0.0.1:0")
    }

    /// A server on `addr` (`127.0.0.1:0`, `[::1]:0`).
    fn start_on(addr: &str) -> Web {
        let listener = TcpListener::bind(addr).unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(20) {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello");
            }
        });
        Web { port, heads }
    }
}

/// Files: a read outside the grant fails and inside works; a write to a read-only grant fails
/// and to a write grant lands; `..`, absolute paths and a symlink that leads out stay refused
/// even with the whole workspace readable.
#[test]
fn files_denied_then_granted() {
    let corral = Corral::new();
    corral.install(&["jq", "misbehave"]);
    corral.write("data/a.json", r#"{"v": 1}"#);
    corral.write("secret/b.json", r#"{"v": 2}"#);
    corral.write("docs/guide.md", "# guide");
    std::fs::create_dir_all(corral.path("out")).unwrap();
    let read = |path: &str| tool_use(path, "jq", json!({"filter": ".v", "path": path}));

    // Nothing granted: nothing readable.
    let got = corral.call_tools(vec![read("data/a.json")]);
    assert!(got[0].0, "{:?}", got[0]);

    corral.write("corral.toml", "[plugin.jq]\nread = [\"data/\"]\n\n[plugin.misbehave]\nread = [\"data/\"]\nwrite = [\"out/\"]\n");
    corral.trust();
    let got = corral.call_tools(vec![
        read("data/a.json"),
        read("secret/b.json"),
        tool_use(
            "w1",
            "write_file_wasm",
            json!({"path": "data/new.txt", "content": "x"}),
        ),
        tool_use(
            "w2",
            "write_file_wasm",
            json!({"path": "out/new.txt", "content": "written"}),
        ),
    ]);
    assert_eq!(got[0], (false, "1\n".to_string()), "inside the grant");
    assert!(got[1].0, "outside the grant: {:?}", got[1]);
    assert!(got[2].0, "a read-only grant refuses writes: {:?}", got[2]);
    assert!(!corral.path("data/new.txt").exists());
    assert!(!got[3].0, "{:?}", got[3]);
    assert_eq!(corral.read("out/new.txt"), "written");

    // A glob grant shows only the matching files.
    corral.write(
        "corral.toml",
        "[plugin.jq]\nread = [\"docs/**/*.md\", \"data/*.json\"]\n",
    );
    corral.trust();
    let got = corral.call_tools(vec![read("data/a.json"), read("secret/b.json")]);
    assert_eq!(got[0], (false, "1\n".to_string()));
    assert!(got[1].0);

    // Escapes stay refused with the whole workspace granted.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x"), "outside").unwrap();
    std::os::unix::fs::symlink(outside.path(), corral.path("link")).unwrap();
    corral.write("corral.toml", "[plugin.misbehave]\nread = [\".\"]\n");
    corral.trust();
    let root = corral
        .workspace
        .path()
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    let got = corral.call_tools(vec![tool_use(
        "e",
        "escape",
        json!({"symlink": "link/x", "host_paths": [format!("{root}/data/a.json")]}),
    )]);
    let report: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(report["all_refused"], true, "{report:#}");
}

/// Network: a granted host answers; an ungranted one is refused naming the host; a Host header
/// naming a granted host does not open the way to another.
#[test]
fn network_denied_then_granted() {
    let corral = Corral::new();
    corral.install(&["fetch", "misbehave"]);
    let allowed = Web::start();
    let denied = Web::start();
    corral.write("corral.toml", &format!("[plugin.fetch]\nnetwork = [\"127.0.0.1:{}\"]\n\n[plugin.misbehave]\nnetwork = [\"127.0.0.1:{}\"]\n", allowed.port, allowed.port));
    corral.trust();
    let got = corral.call_tools(
        vec![
            tool_use(
                "ok",
                "fetch",
                json!({"url": format!("http://127.0.0.1:{}/hi", allowed.port)}),
            ),
            tool_use(
                "no",
                "fetch",
                json!({"url": format!("http://127.0.0.1:{}/hi", denied.port)}),
            ),
            tool_use(
                "trick",
                "escape",
                json!({"url": format!("http://127.0.0.1:{}/x", denied.port), "host_header": format!("127.0.0.1:{}", allowed.port)}),
            ),
        ],
    );
    assert!(
        !got[0].0 && got[0].1.starts_with("status: 200") && got[0].1.ends_with("hello"),
        "{:?}",
        got[0]
    );
    assert!(
        got[1].0
            && got[1].1.contains(&format!("127.0.0.1:{}", denied.port))
            && got[1].1.contains("HttpRequestDenied"),
        "{:?}",
        got[1]
    );
    let report: Value = serde_json::from_str(&got[2].1).unwrap();
    assert_eq!(report["all_refused"], true, "{report:#}");
    assert!(
        denied.heads.lock().unwrap().is_empty(),
        "the denied host was reached"
    );
    assert_eq!(
        allowed.heads.lock().unwrap().len(),
        1,
        "only fetch's request reached the allowed host"
    );
}

/// An IPv6 grant without a port, `[::1]`, allows that address on every port, compared as an
/// address (`[0:0:0:0:0:0:0:1]` is the same host); it allows no other address, and `policy
/// show` prints it normalised.
#[test]
fn an_ipv6_grant_without_a_port_works() {
    let corral = Corral::new();
    corral.install(&["fetch"]);
    let v6 = Web::start_on("[::1]:0");
    let v4 = Web::start();
    corral.write(
        "corral.toml",
        "[plugin.fetch]\nnetwork = [\"[0:0:0:0:0:0:0:1]\"]\n",
    );
    corral.trust();
    let show = corral.run(None, &["policy", "show"]);
    show.assert_code(0);
    assert!(
        show.stdout
            .contains("network  asks [*]  granted [[::1]]  effective [[::1]]"),
        "{}",
        show.stdout
    );
    let got = corral.call_tools(vec![
        tool_use(
            "v6",
            "fetch",
            json!({"url": format!("http://[::1]:{}/hi", v6.port)}),
        ),
        tool_use(
            "v4",
            "fetch",
            json!({"url": format!("http://127.0.0.1:{}/hi", v4.port)}),
        ),
    ]);
    assert!(
        !got[0].0 && got[0].1.starts_with("status: 200") && got[0].1.ends_with("hello"),
        "{:?}",
        got[0]
    );
    assert!(
        got[1].0 && got[1].1.contains("HttpRequestDenied"),
        "{:?}",
        got[1]
    );
    assert_eq!(v6.heads.lock().unwrap().len(), 1);
    assert!(v4.heads.lock().unwrap().is_empty(), "127.0.0.1 was reached");
}

/// Env: an ungranted variable is invisible, a granted one has corral's value.
#[test]
fn env_denied_then_granted() {
    let corral = Corral::new()
        .env("GITHUB_TOKEN", "tok-123")
        .env("OTHER_SECRET", "nope");
    corral.install(&["misbehave"]);
    let ask = |name: &str| tool_use(name, "env_var", json!({"name": name}));
    let got = corral.call_tools(vec![ask("GITHUB_TOKEN")]);
    assert_eq!(got[0].1, "unset");
    corral.write(
        "corral.toml",
        "[plugin.misbehave]\nenv = [\"GITHUB_TOKEN\"]\n",
    );
    corral.trust();
    let got = corral.call_tools(vec![ask("GITHUB_TOKEN"), ask("OTHER_SECRET")]);
    assert_eq!(got[0].1, "tok-123");
    assert_eq!(got[1].1, "unset");
}

fn refused(corral: &Corral, toml: &str) -> RunOutput {
    corral.write("corral.toml", toml);
    let server = ScriptedServer::start(vec![]);
    let out = corral.run(Some(&server), &["run", "hi"]);
    assert!(
        server.requests().is_empty(),
        "a model was called despite a broken corral.toml"
    );
    out
}

/// Each malformed corral.toml names the file, line and column, and exits with 2 before any
/// model call.
#[test]
fn malformed_files_are_refused_with_line_and_column() {
    let corral = Corral::new();
    let cases = [
        (
            "[agent]\nmodel = \"m\"\nmodle = \"x\"\n",
            ":3:1:",
            "unknown field `modle`",
        ),
        (
            "[shell]\ntimeout_secs = \"ten\"\n",
            ":2:16:",
            "invalid type",
        ),
        (
            "[plugin.grep]\nread = [\"src/[oops\"]\n",
            ":2:9:",
            "bad glob",
        ),
        (
            "[plugin.fetch]\nnetwork = [\"https://api.github.com/x\"]\n",
            ":2:12:",
            "bad host pattern",
        ),
        (
            "[plugin.grep]\nread = [\"../elsewhere\"]\n",
            ":2:9:",
            "leaves the workspace",
        ),
        (
            "[plugin.grep]\nread = [\"/etc\"]\n",
            ":2:9:",
            "outside the workspace",
        ),
        (
            "[plugins]\nmemory_mb = 99999\n",
            ":2:13:",
            "memory_mb must be from 1 to 1024",
        ),
    ];
    for (toml, at, what) in cases {
        let out = refused(&corral, toml);
        out.assert_code(2);
        assert!(
            out.stderr.contains(&format!("corral.toml{at}")) && out.stderr.contains(what),
            "{toml:?} gave: {}",
            out.stderr
        );
    }
    let check = corral.run(None, &["policy", "check"]);
    check.assert_code(2);
}

/// With the shell disabled the model is not offered bash or the background tools.
#[test]
fn a_disabled_shell_is_not_offered() {
    let corral = Corral::new();
    corral.write("corral.toml", "[shell]\nenabled = false\n");
    let server = ScriptedServer::start(vec![Turn::text("ok").into()]);
    corral.run(Some(&server), &["run", "hi"]).assert_code(0);
    let tools: Vec<String> = server.bodies()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tools, ["read_file", "write_file", "edit_file"]);
}

/// The shell's environment follows the file: only the listed variables (and PATH, HOME).
#[test]
fn the_shell_environment_follows_the_file() {
    let corral = Corral::new()
        .env("KEEP_ME", "kept")
        .env("DROP_ME", "dropped");
    corral.write("corral.toml", "[shell]\nenv = [\"KEEP_ME\"]\n");
    let got = corral.call_tools(vec![tool_use(
        "b",
        "bash",
        json!({"command": "echo \"[$KEEP_ME][$DROP_ME]\""}),
    )]);
    assert!(got[0].1.starts_with("[kept][]"), "{:?}", got[0]);
}

/// `policy show` prints asks, grants and effective rights; `policy check` warns about grants
/// nobody asked for; `plugins` marks each request granted or not.
#[test]
fn policy_show_check_and_plugins() {
    let corral = Corral::new();
    corral.install(&["jq", "fetch"]);
    corral.write("corral.toml", "[plugin.jq]\nread = [\"src/\"]\nnetwork = [\"api.github.com\"]\n\n[plugin.ghost]\nenv = [\"X\"]\n");
    corral.trust();
    let show = corral.run(None, &["policy", "show"]);
    show.assert_code(0);
    assert!(
        show.stdout.contains("plugin jq:")
            && show
                .stdout
                .contains("read     asks [**]  granted [src/]  effective [src/]"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .contains("granted, not asked (gives nothing): network api.github.com"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("asked, not granted: network *"),
        "{}",
        show.stdout
    );
    let check = corral.run(None, &["policy", "check"]);
    check.assert_code(0);
    assert!(
        check.stdout.contains(
            "warning: plugin jq: grants network api.github.com, which it did not ask for"
        ),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains("warning: [plugin.ghost]: no plugin of that name is installed"),
        "{}",
        check.stdout
    );
    let plugins = corral.run(None, &["plugins"]);
    assert!(
        plugins.stdout.contains("asks read **: granted")
            && plugins.stdout.contains("asks network *: NOT granted"),
        "{}",
        plugins.stdout
    );
}

/// User-level defaults sit under the workspace file: the workspace wins where both speak, and
/// the flag wins over both.
#[test]
fn user_defaults_sit_under_the_workspace_file() {
    let corral = Corral::new();
    let user = corral.home.path().join(".config/corral/config.toml");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    std::fs::write(
        &user,
        "[agent]\nmodel = \"user-model\"\nmax_tokens = 1234\n",
    )
    .unwrap();
    corral.write("corral.toml", "[agent]\nmodel = \"workspace-model\"\n");
    corral.trust();
    let server = ScriptedServer::start(vec![Turn::text("a").into(), Turn::text("b").into()]);
    corral.run(Some(&server), &["run", "hi"]).assert_code(0);
    corral
        .run(Some(&server), &["run", "--model", "flag-model", "hi"])
        .assert_code(0);
    let bodies = server.bodies();
    assert_eq!(
        (
            bodies[0]["model"].as_str(),
            bodies[0]["max_tokens"].as_u64()
        ),
        (Some("workspace-model"), Some(1234))
    );
    assert_eq!(bodies[1]["model"], "flag-model");
    std::fs::write(&user, "[plugin.x]\nread = [\".\"]\n").unwrap();
    let out = corral.run(Some(&server), &["run", "hi"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("config.toml:1:1") && out.stderr.contains("belong in a workspace"),
        "{}",
        out.stderr
    );
}

/// `[agent] provider` and `base_url` choose the provider and its endpoint; the environment's
/// base URL wins over the file's.
#[test]
fn the_file_chooses_the_provider_and_endpoint() {
    use corral_tests::{Completion, OpenAiServer};
    let server = OpenAiServer::start(vec![Completion::text("from openai").into()]);
    let corral = Corral::new();
    corral.write(
        "corral.toml",
        &format!(
            "[agent]\nprovider = \"openai\"\nmodel = \"local\"\nbase_url = \"{}\"\n",
            server.url()
        ),
    );
    corral.trust();
    let out = corral.run(None, &["run", "hi"]);
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(out.stdout.trim(), "from openai");
    assert_eq!(server.bodies()[0]["model"], "local");

    let anthropic = ScriptedServer::start(vec![Turn::text("from anthropic").into()]);
    corral.write(
        "corral.toml",
        "[agent]\nbase_url = \"http://127.0.0.1:9\"\n",
    );
    corral.trust();
    let out = corral.run(Some(&anthropic), &["run", "hi"]);
    out.assert_code(0);
    assert_eq!(
        out.stdout.trim(),
        "from anthropic",
        "ANTHROPIC_BASE_URL wins over the file"
    );

    corral.write("corral.toml", "[agent]\nprovider = \"gemini\"\n");
    let out = corral.run(None, &["run", "hi"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("corral.toml:2:12") && out.stderr.contains("unknown provider `gemini`"),
        "{}",
        out.stderr
    );
}

/// A cloned workspace's `corral.toml` whose keys and strings hold terminal escapes (a plugin
/// section named with an OSC title sequence, a model that erases the line, a backspace in a
/// rule): none of it reaches the user's terminal, from `run`, `policy show`, `policy check` or
/// `plugins`; the file is refused as malformed, naming its line, before any model call.
#[test]
fn escapes_in_a_settings_file_never_reach_the_terminal() {
    for file in [
        "[plugin.\"\\u001b]0;pwned\\u0007x\"]\nread = [\"src/\"]\n",
        "[agent]\nmax_turns = 3\nmodel = \"\\u001b[2K\\rall fine\"\n",
        "[shell]\ndeny = [\"git push\\b\\b\\b\\b\"]\n",
        "[plugins]\ndisabled = [\"\\U0000009b2J\"]\n",
    ] {
        let corral = Corral::new();
        corral.write("corral.toml", file);
        for args in [
            &["run", "go"][..],
            &["policy", "show"],
            &["policy", "check"],
            &["plugins"],
        ] {
            let out = corral.run(None, args);
            for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
                assert!(
                    !text
                        .chars()
                        .any(|c| c.is_control() && c != '\n' && c != '\t'),
                    "{file:?}: `corral {}` wrote a control character on {stream}: {text:?}",
                    args.join(" ")
                );
            }
            if args[0] != "plugins" {
                out.assert_code(2);
                assert!(out.stderr.contains("corral.toml:"), "{}", out.stderr);
            }
        }
    }
}
