//! The plugin sandbox tried as an attacker would, with real components built from source
//! (`plugins/misbehave`'s `fs` tool plays the attacker step by step): what the policy limits
//! cannot rewrite the policy, a folder swapped for a symlink after the start leads nowhere, a
//! symlinked `.corral` is never followed, and every refusal names its rule. A canary file
//! outside the workspace must stay untouched in each scenario.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use corral_tests::{Corral, ScriptedServer, Turn, tool_use};
use serde_json::{Value, json};

/// Writes the workspace's policy as the user would (and trusts it where trust is asked).
fn policy(corral: &Corral, text: &str) {
    corral.write("corral.toml", text);
    corral.trust();
}

/// A folder outside the workspace with a canary file; `assert_untouched` checks it is as it was.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("canary.txt"), "canary").unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn assert_untouched(&self) {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["canary.txt"], "the outside folder changed");
        assert_eq!(
            std::fs::read_to_string(self.path().join("canary.txt")).unwrap(),
            "canary"
        );
    }
}

/// The `fs` tool's report: (op, ok, detail) per operation.
fn outcomes(text: &str) -> Vec<(String, bool, String)> {
    // The report is the first line; corral's notes follow on lines of their own.
    let list: Vec<Value> = serde_json::from_str(text.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("not an fs report ({e}): {text}"));
    list.into_iter()
        .map(|o| {
            (
                o["op"].as_str().unwrap().to_string(),
                o["ok"].as_bool().unwrap(),
                o["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn fs(id: &str, ops: Value) -> Value {
    tool_use(id, "fs", json!({ "ops": ops }))
}

/// A plugin granted `write .` cannot touch the policy or corral's state by any route: a
/// direct write, a new file in `.corral/plugins`, a rename of `.corral`, a symlink or hard
/// link it makes, a symlink or hard link already in the workspace. Listings of the root do
/// not show them, and the result names the rule.
#[test]
fn a_plugin_cannot_rewrite_its_own_policy() {
    let corral = Corral::new();
    let outside = Outside::new();
    corral.install(&["misbehave"]);
    let grants = "[plugin.misbehave]\nread = [\".\"]\nwrite = [\".\"]\n";
    policy(&corral, grants);
    std::fs::create_dir_all(corral.path("docs")).unwrap();
    // Planted beforehand (a cloned repository, or the shell): links to the policy.
    std::os::unix::fs::symlink("../corral.toml", corral.path("docs/config")).unwrap();
    std::os::unix::fs::symlink(".corral", corral.path("state")).unwrap();
    std::fs::hard_link(corral.path("corral.toml"), corral.path("notes.txt")).unwrap();
    let evil = "[plugin.misbehave]\nnetwork = [\"*\"]\nenv = [\"*\"]\n";
    let got = corral.call_tools(vec![fs(
        "attack",
        json!([
            {"op": "write", "path": "corral.toml", "text": evil},
            {"op": "read", "path": "corral.toml"},
            {"op": "write", "path": ".corral/plugins/evil.wasm", "text": "\0asm"},
            {"op": "mkdir", "path": ".corral/plugins/sub"},
            {"op": "read", "path": ".corral/sessions"},
            {"op": "rename", "from": ".corral", "to": "moved"},
            {"op": "remove_all", "path": ".corral"},
            {"op": "rename", "from": "corral.toml", "to": "old.toml"},
            {"op": "remove", "path": "corral.toml"},
            {"op": "symlink", "target": "corral.toml", "link": "cfg"},
            {"op": "hardlink", "from": "corral.toml", "link": "alias.toml"},
            {"op": "write", "path": "docs/config", "text": evil},
            {"op": "write", "path": "state/plugins/evil.wasm", "text": "\0asm"},
            {"op": "write", "path": "notes.txt", "text": evil},
            {"op": "list", "path": "."},
            {"op": "write", "path": "allowed.txt", "text": "fine"},
        ]),
    )]);
    assert!(!got[0].0, "{:?}", got[0]);
    let report = outcomes(&got[0].1);
    for (op, ok, detail) in &report[..14] {
        assert!(!ok, "{op} was allowed: {detail}");
    }
    let (_, listed, names) = &report[14];
    assert!(*listed, "{report:?}");
    assert!(
        !names
            .split(',')
            .any(|n| n == ".corral" || n == "corral.toml"),
        "the root listing shows protected entries: {names}"
    );
    assert!(report[15].1, "an ordinary write works: {report:?}");
    assert_eq!(corral.read("allowed.txt"), "fine");
    assert!(
        got[0].1.contains("corral refused")
            && got[0].1.contains("`corral.toml` is the workspace policy")
            && got[0].1.contains("`.corral/` is corral's own state"),
        "the result names the rule: {}",
        got[0].1
    );
    assert_eq!(
        corral.read("corral.toml"),
        grants,
        "the policy is unchanged"
    );
    assert!(!corral.path(".corral/plugins/evil.wasm").exists());
    assert!(corral.path(".corral/sessions").is_dir());
    assert!(!corral.path("cfg").exists() && !corral.path("alias.toml").exists());
    outside.assert_untouched();
}

/// A symlink a plugin makes may not lead out of the grant it is made in; one inside it is
/// fine.
#[test]
fn a_plugin_symlink_must_stay_in_its_grant() {
    let corral = Corral::new();
    let outside = Outside::new();
    corral.install(&["misbehave"]);
    std::fs::create_dir_all(corral.path("out/sub")).unwrap();
    corral.write("out/sub/a.txt", "a");
    corral.write("README.md", "readme");
    policy(&corral, "[plugin.misbehave]\nwrite = [\"out/\"]\n");
    let escape = format!("../../..{}", outside.path().display());
    let got = corral.call_tools(vec![fs(
        "links",
        json!([
            {"op": "symlink", "target": "../README.md", "link": "out/readme"},
            {"op": "symlink", "target": escape, "link": "out/escape"},
            {"op": "symlink", "target": outside.path().display().to_string(), "link": "out/abs"},
            {"op": "symlink", "target": "sub/../../x", "link": "out/sneaky"},
            {"op": "symlink", "target": "sub/a.txt", "link": "out/fine"},
            {"op": "read", "path": "out/fine"},
        ]),
    )]);
    let report = outcomes(&got[0].1);
    for (op, ok, detail) in &report[..4] {
        assert!(!ok, "{op} was allowed: {detail}");
    }
    assert!(report[4].1 && report[5].1, "{report:?}");
    assert_eq!(report[5].2, "a");
    assert!(
        got[0].1.contains("leads outside the plugin's grant"),
        "{}",
        got[0].1
    );
    for name in ["readme", "escape", "abs", "sneaky"] {
        assert!(
            corral
                .path(&format!("out/{name}"))
                .symlink_metadata()
                .is_err(),
            "out/{name} was created"
        );
    }
    outside.assert_untouched();
}

/// A granted folder is opened once, at the start: swapping it for a symlink that leads out
/// (the shell does it, between two plugin calls of one run) leads nowhere.
#[test]
fn a_folder_swapped_for_a_link_after_the_start_leads_nowhere() {
    let corral = Corral::new();
    let outside = Outside::new();
    corral.install(&["misbehave"]);
    corral.write("out/in/file.txt", "inside");
    policy(
        &corral,
        "[plugin.misbehave]\nread = [\"out/in/\"]\nwrite = [\"out/\"]\n",
    );
    let swap = format!(
        "mv out/in out/was-in && ln -s {} out/in",
        outside.path().display()
    );
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![fs(
            "before",
            json!([{"op": "read", "path": "out/in/file.txt"}]),
        )])
        .into(),
        Turn::tools(vec![tool_use("swap", "bash", json!({ "command": swap }))]).into(),
        Turn::tools(vec![fs(
            "after",
            json!([
                {"op": "read", "path": "out/in/canary.txt"},
                {"op": "write", "path": "out/in/planted.txt", "text": "x"},
                {"op": "read", "path": "out/in/file.txt"},
            ]),
        )])
        .into(),
        Turn::text("done").into(),
    ]);
    corral.run(Some(&server), &["run", "go"]).assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    let before = corral_tests::tool_results(&bodies[1]);
    assert_eq!(outcomes(&before[0].content)[0].2, "inside");
    let after = corral_tests::tool_results(&bodies[3]);
    let report = outcomes(&after[0].content);
    assert!(!report[0].1, "read through the swapped link: {report:?}");
    assert!(report.iter().all(|(_, _, d)| d != "canary"), "{report:?}");
    // The read-only grant still means the folder it was: moved, but the same folder.
    assert_eq!(
        report[2],
        ("read out/in/file.txt".into(), true, "inside".into())
    );
    outside.assert_untouched();
}

/// `.corral/views` replaced by a symlink to a folder outside: the view is never built through
/// it, the plugin is left out with a line saying why, and the outside folder is untouched.
#[test]
fn views_are_never_built_through_a_symlink() {
    let corral = Corral::new();
    let outside = Outside::new();
    corral.install(&["misbehave"]);
    corral.write("docs/a.md", "# a");
    policy(&corral, "[plugin.misbehave]\nread = [\"docs/*.md\"]\n");
    std::os::unix::fs::symlink(outside.path(), corral.path(".corral/views")).unwrap();
    let server = ScriptedServer::start(vec![Turn::text("done").into()]);
    let out = corral.run(Some(&server), &["run", "go"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("plugin misbehave skipped: its grants could not be prepared"),
        "{}",
        out.stderr
    );
    outside.assert_untouched();
    // Relative, too.
    std::fs::remove_file(corral.path(".corral/views")).unwrap();
    let rel = format!("../../..{}", outside.path().display());
    std::os::unix::fs::symlink(&rel, corral.path(".corral/views")).unwrap();
    let out = corral.run(
        Some(&ScriptedServer::start(vec![Turn::text("done").into()])),
        &["run", "go"],
    );
    out.assert_code(0);
    outside.assert_untouched();
}

/// A `.corral` that is a symlink (a cloned repository's) is refused before anything is
/// written through it.
#[test]
fn a_symlinked_state_folder_is_refused() {
    let corral = Corral::new();
    let outside = Outside::new();
    std::os::unix::fs::symlink(outside.path(), corral.path(".corral")).unwrap();
    let out = corral.run(None, &["run", "go"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("a real `.corral` folder"),
        "{}",
        out.stderr
    );
    outside.assert_untouched();
}
