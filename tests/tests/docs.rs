//! The docs cannot rot: every shell command in `README.md` and `docs/*.md` runs here, in order,
//! in a temp home, against the scripted model server, and every code excerpt is checked against
//! its source.
//!
//! The convention, written at the top of each doc for its readers too: the line before a fenced
//! block (blank lines aside) may be an HTML comment that says what the block is for.
//!
//! - `<!-- test -->` before a ```sh block: run it with `sh -e`; it must exit 0. `<!-- test: exit 2;
//!   expects "bad glob" -->`: it must exit 2 and print that text (stdout or stderr).
//! - `<!-- not run: REASON -->` before a ```sh block: not run, and REASON says why. A ```sh block
//!   with neither marker fails the test.
//! - `<!-- file: PATH -->` before any block: the block is that file's content; it is written
//!   (relative to the current folder) and later commands use it.
//! - `<!-- excerpt of: PATH -->` before any block: each of its lines (trimmed, blank ones and
//!   `...` aside) is a line of that file, in order.
//!
//! Blocks of one doc run in one shell session's way: each starts in the folder the previous
//! ended in, beginning at `~` (a temp home). `/path/to/corral` stands for corral's source;
//! in a command, `ANTHROPIC_BASE_URL=http://127.0.0.1:8080` stands for the scripted server.
//! `corral` is the binary of this build; `cargo run -p corral --example NAME -- ARGS` runs the
//! example of this build; other cargo commands run for real, offline (from the registry cache the
//! build filled), with a warm shared target folder (a crate without its own `target/` gets a link
//! to the plugins' one).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use corral_tests::cargo::{BUILD_TIMEOUT, pinned_toolchain, repo_root, shared_target_dir};
use corral_tests::cli::wait_output;
use corral_tests::{Corral, Reply, ScriptedServer, Turn, tool_use};
use serde_json::json;

/// What the marker before a block says.
#[derive(Debug, Clone, PartialEq)]
enum Marker {
    Test { exit: i32, expects: Vec<String> },
    NotRun(String),
    File(String),
    Excerpt(String),
    None,
}

/// One fenced block of a doc.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    body: String,
    marker: Marker,
}

fn parse_marker(comment: &str) -> Result<Marker, String> {
    let inner = comment
        .trim()
        .strip_prefix("<!--")
        .and_then(|c| c.strip_suffix("-->"))
        .map(str::trim)
        .ok_or("not a comment")?;
    if inner == "test" {
        return Ok(Marker::Test {
            exit: 0,
            expects: Vec::new(),
        });
    }
    if let Some(spec) = inner.strip_prefix("test:") {
        let mut exit = 0;
        let mut expects = Vec::new();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(code) = part.strip_prefix("exit ") {
                exit = code
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad exit code in `{part}`"))?;
            } else if let Some(text) = part.strip_prefix("expects ") {
                let text = text.trim();
                let text = text
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .ok_or_else(|| format!("quote the expected text: `{part}`"))?;
                expects.push(text.to_string());
            } else {
                return Err(format!("unknown test option `{part}`"));
            }
        }
        return Ok(Marker::Test { exit, expects });
    }
    if let Some(reason) = inner.strip_prefix("not run:") {
        let reason = reason.trim();
        if reason.len() < 10 {
            return Err("`not run:` needs a reason".into());
        }
        return Ok(Marker::NotRun(reason.to_string()));
    }
    if let Some(path) = inner.strip_prefix("file:") {
        return Ok(Marker::File(path.trim().to_string()));
    }
    if let Some(path) = inner.strip_prefix("excerpt of:") {
        return Ok(Marker::Excerpt(path.trim().to_string()));
    }
    Ok(Marker::None)
}

/// The fenced blocks of `text`, with their markers. Fences start at column 0.
fn blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut last_nonblank = "";
    while let Some((i, line)) = lines.next() {
        let Some(lang) = line.strip_prefix("```") else {
            if !line.trim().is_empty() {
                last_nonblank = line;
            }
            continue;
        };
        let marker = if last_nonblank.trim_start().starts_with("<!--") {
            parse_marker(last_nonblank).map_err(|e| format!("line {}: {e}", i + 1))?
        } else {
            Marker::None
        };
        let mut body = String::new();
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            if line.starts_with("```") {
                closed = true;
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        if !closed {
            return Err(format!("line {}: a fence that is never closed", i + 1));
        }
        out.push(Block {
            line: i + 1,
            lang: lang.trim().to_string(),
            body,
            marker,
        });
        last_nonblank = "";
    }
    Ok(out)
}

/// `/path/to/corral` is corral's source.
fn substitute(text: &str) -> String {
    let root = repo_root().canonicalize().unwrap_or_else(|_| repo_root());
    text.replace("/path/to/corral", &root.display().to_string())
}

/// A marker's path: `~/...` in the home, `/path/to/corral/...` in the source, else relative to
/// the current folder.
fn resolve(raw: &str, cwd: &Path, home: &Path) -> PathBuf {
    let raw = substitute(raw);
    match raw.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => cwd.join(raw),
    }
}

/// A folder with `corral` (this build's binary) and a `cargo` that runs this build's examples
/// and shares a warm target folder.
fn shims(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(Corral::bin(), bin.join("corral")).unwrap();
    let real_cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let examples = Corral::bin().parent().unwrap().join("examples");
    let script = format!(
        r#"#!/bin/sh
# cargo as the docs test runs it.
if [ "$1" = run ] && [ "$2" = -p ] && [ "$3" = corral ] && [ "$4" = --example ]; then
  name=$5; shift 5; [ "$1" = -- ] && shift
  exec "{examples}/$name" "$@"
fi
if [ -f Cargo.toml ] && [ ! -e target ]; then ln -s "{shared}" target; fi
exec "{real_cargo}" "$@"
"#,
        examples = examples.display(),
        shared = shared_target_dir().display(),
    );
    let cargo = bin.join("cargo");
    std::fs::write(&cargo, script).unwrap();
    let mut perms = std::fs::metadata(&cargo).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&cargo, perms).unwrap();
    bin
}

/// Checks that every line of `excerpt` is a line of `source`, in order.
fn check_excerpt(excerpt: &str, source: &str) -> Result<(), String> {
    let mut source_lines = source.lines().map(str::trim);
    for line in excerpt.lines().map(str::trim) {
        if line.is_empty() || line == "..." || line == "// ..." {
            continue;
        }
        if !source_lines.any(|s| s == line) {
            return Err(format!(
                "`{line}` is not in the source (or is out of order)"
            ));
        }
    }
    Ok(())
}

/// Runs the doc at `rel` (from the repository root) against a server answering with `script`.
fn run_doc(rel: &str, script: Vec<Reply>) {
    run_doc_with(rel, script, |_| {});
}

/// Like [`run_doc`], after `setup` prepared the temp home (passed to it).
fn run_doc_with(rel: &str, script: Vec<Reply>, setup: impl FnOnce(&Path)) {
    let path = repo_root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let blocks = blocks(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let corral = Corral::new();
    let server = ScriptedServer::start(script);
    let bin = shims(corral.workspace.path());
    let state = corral.workspace.path().join("cwd");
    let mut cwd = corral.home.path().to_path_buf();
    setup(corral.home.path());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME").map_or(home.join(".cargo"), PathBuf::from);
    let rustup_home = std::env::var_os("RUSTUP_HOME").map_or(home.join(".rustup"), PathBuf::from);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for block in &blocks {
        let at = format!("{rel}:{}", block.line);
        match (&block.marker, block.lang.as_str()) {
            (Marker::File(file), _) => {
                let file = resolve(file, &cwd, corral.home.path());
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, substitute(&block.body)).unwrap();
            }
            (Marker::Excerpt(file), _) => {
                let file = resolve(file, &cwd, corral.home.path());
                let source = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("{at}: {}: {e}", file.display()));
                if let Err(e) = check_excerpt(&substitute(&block.body), &source) {
                    panic!("{at}: the excerpt of {} is stale: {e}", file.display());
                }
            }
            (Marker::NotRun(_), "sh") => {}
            (Marker::Test { exit, expects }, "sh") => {
                let body = substitute(&block.body).replace(
                    "ANTHROPIC_BASE_URL=http://127.0.0.1:8080",
                    &format!("ANTHROPIC_BASE_URL={}", server.url()),
                );
                let script = format!("trap 'pwd > \"{}\"' EXIT\n{body}", state.display());
                let mut cmd = corral.command_for(Path::new("sh"), Some(&server));
                cmd.arg("-ec")
                    .arg(&script)
                    .current_dir(&cwd)
                    // The scripts `cd` as a user would: corral finds the workspace from there.
                    .env_remove("CORRAL_WORKSPACE")
                    .env("PATH", &path)
                    .env("CARGO_HOME", &cargo_home)
                    .env("RUSTUP_HOME", &rustup_home)
                    // Dependencies resolve from the registry cache the build filled: no network.
                    .env("CARGO_NET_OFFLINE", "true");
                if let Some(toolchain) = std::env::var("RUSTUP_TOOLCHAIN")
                    .ok()
                    .or_else(pinned_toolchain)
                {
                    cmd.env("RUSTUP_TOOLCHAIN", toolchain);
                }
                let out = wait_output(cmd, BUILD_TIMEOUT);
                let both = format!("{}{}", out.stdout, out.stderr);
                assert_eq!(
                    out.code,
                    Some(*exit),
                    "{at}: exit code of\n{}\n--- stdout\n{}\n--- stderr\n{}",
                    block.body,
                    out.stdout,
                    out.stderr
                );
                for want in expects {
                    assert!(
                        both.contains(want.as_str()),
                        "{at}: the output lacks `{want}`\n--- stdout\n{}\n--- stderr\n{}",
                        out.stdout,
                        out.stderr
                    );
                }
                if let Ok(next) = std::fs::read_to_string(&state) {
                    cwd = PathBuf::from(next.trim());
                }
                ran += 1;
            }
            (_, "sh") => panic!(
                "{at}: a ```sh block needs `<!-- test -->` or `<!-- not run: REASON -->` on the line before it"
            ),
            (Marker::Test { .. } | Marker::NotRun(_), lang) => {
                panic!("{at}: test markers are for ```sh blocks, not ```{lang}")
            }
            _ => {}
        }
    }
    assert!(ran > 0, "{rel}: no command ran");
    server.assert_clean();
}

/// The parser finds markers, refuses a `not run` without a reason, and excerpts are checked in
/// order.
#[test]
fn the_convention_is_enforced() {
    let text = "<!-- test: exit 2; expects \"x y\" -->\n```sh\nfalse\n```\n\n```sh\nls\n```\n<!-- not run: needs a real API key -->\n\n```sh\nrun\n```\n";
    let got = blocks(text).unwrap();
    assert_eq!(
        got[0].marker,
        Marker::Test {
            exit: 2,
            expects: vec!["x y".into()]
        }
    );
    assert_eq!(got[1].marker, Marker::None);
    assert_eq!(got[2].marker, Marker::NotRun("needs a real API key".into()));
    assert!(blocks("<!-- not run: -->\n```sh\nx\n```\n").is_err());
    assert!(blocks("<!-- test: frobnicate -->\n```sh\nx\n```\n").is_err());
    assert!(check_excerpt("a\n...\nc\n", "a\nb\n  c\n").is_ok());
    assert!(check_excerpt("c\na\n", "a\nb\nc\n").is_err());
}

/// README.md: `corral run` new, `--json`, `--continue`, `--resume ID` (a session with the
/// README's id is already on disk), `corral chat` (stdin closed: it starts and leaves), and a run
/// with `ANTHROPIC_BASE_URL` set.
#[test]
fn readme_commands_run() {
    run_doc_with(
        "README.md",
        vec![
            Turn::text("Added --verbose, with a test.").into(),
            Turn::text("As JSON.").into(),
            Turn::text("Docs updated.").into(),
            Turn::text("Resumed the given session.").into(),
            Turn::text("From the base URL.").into(),
        ],
        |home| {
            let sessions = home.join(".corral/sessions");
            std::fs::create_dir_all(&sessions).unwrap();
            let id = "3f2a9c1e-7d4b-4c1a-9e2f-5a6b7c8d9e0f";
            std::fs::write(
                sessions.join(format!("{id}.jsonl")),
                format!(
                    "{}\n",
                    json!({"type": "session", "id": id, "created_unix": 1_700_000_000, "model": "claude-sonnet-4-5"})
                ),
            )
            .unwrap();
        },
    );
}

/// docs/plugins.md: scaffold, build, test and install a plugin; write one from scratch that
/// reads files; the model calls both.
#[test]
fn plugins_doc_commands_run() {
    run_doc(
        "docs/plugins.md",
        vec![
            Turn::tools(vec![tool_use(
                "c",
                "word-count",
                json!({"text": "the quick brown fox", "top": 1}),
            )])
            .into(),
            Turn::text("4 words.").into(),
            Turn::tools(vec![
                tool_use("t1", "todos", json!({"path": "src/main.rs"})),
                tool_use("t2", "todos", json!({"path": "secrets/keys.txt"})),
            ])
            .into(),
            Turn::text("One TODO in src/main.rs.").into(),
        ],
    );
}

/// docs/workspace.md: corral.toml, grants, `corral policy show/check`, user defaults, errors.
#[test]
fn workspace_doc_commands_run() {
    run_doc(
        "docs/workspace.md",
        vec![
            Turn::tools(vec![
                tool_use(
                    "a",
                    "jq",
                    json!({"filter": ".name", "path": "data/app.json"}),
                ),
                tool_use(
                    "b",
                    "jq",
                    json!({"filter": ".", "path": "secrets/token.json"}),
                ),
            ])
            .into(),
            Turn::text("The app is called demo.").into(),
        ],
    );
}

/// docs/embedding.md: its code is the examples', which build; its commands run them.
#[test]
fn embedding_doc_commands_run() {
    run_doc(
        "docs/embedding.md",
        vec![
            Turn::text("Two files here.").into(),
            Turn::tools(vec![tool_use("n", "take_note", json!({"text": "hello"}))]).into(),
            Turn::text("Noted.").into(),
        ],
    );
}

/// The full embedding example: a tool of its own, a plugin under the workspace's grants, a
/// background task, all through the library, against the scripted server.
#[test]
fn the_full_embedding_example_runs() {
    let corral = Corral::new();
    let plugins = corral.path(".corral/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        Path::new(env!("CORRAL_TEST_PLUGINS")).join("jq.wasm"),
        plugins.join("jq.wasm"),
    )
    .unwrap();
    corral.write("corral.toml", "[plugin.jq]\nread = [\"data/\"]\n");
    corral.trust();
    corral.write("data/app.json", r#"{"name": "demo"}"#);
    corral.write("private/key.json", r#"{"k": 1}"#);
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![tool_use(
            "bg",
            "background_run",
            json!({"command": "echo built"}),
        )])
        .into(),
        Turn::tools(vec![
            tool_use("n", "take_note", json!({"text": "the app is demo"})),
            tool_use(
                "j",
                "jq",
                json!({"filter": ".name", "path": "data/app.json"}),
            ),
            tool_use(
                "k",
                "jq",
                json!({"filter": ".", "path": "private/key.json"}),
            ),
            // The task's result must reach the model with these results, not after its last
            // answer (corral would wait for it and ask once more): wait until it has printed,
            // with a margin for its end to be queued.
            tool_use(
                "w",
                "bash",
                json!({"command": "until grep -qs built .corral/tasks/*.log; do sleep 0.05; done; sleep 0.5", "timeout_secs": 60}),
            ),
        ])
        .into(),
        Turn::text("Done.").into(),
    ]);
    let mut cmd = corral.command_for(&Corral::example("embed_full"), Some(&server));
    cmd.arg(corral.workspace.path()).arg("look around");
    let out = wait_output(cmd, corral_tests::cli::RUN_TIMEOUT);
    out.assert_code(0);
    server.assert_clean();
    assert!(
        out.stdout.contains("Done.\nnote: the app is demo"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("task ") && out.stdout.contains("echo built (completed (exit code 0))"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("background ") && out.stderr.contains("> jq "),
        "{}",
        out.stderr
    );
    let last = server.bodies()[2]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let results: Vec<(bool, String)> = last["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| {
            (
                b["is_error"].as_bool().unwrap_or(false),
                b["content"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(results[0], (false, "noted (1 so far)".to_string()));
    assert_eq!(results[1], (false, "\"demo\"\n".to_string()));
    assert!(results[2].0, "outside the grant: {:?}", results[2]);
}
