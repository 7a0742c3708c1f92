//! corral's own folder, `.corral/`, as a cloned repository (or an unpacked archive) may bring
//! it: symlinks in place of `tasks` and `sessions`, or of the task journal, its lock and its
//! temporary file, pointing outside the workspace. corral never writes through them: the
//! transcript, the journal and the task logs stay beneath `.corral`, or corral says why it
//! cannot keep them. A canary folder outside stands for everything the links point at.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use corral_tests::{Corral, ScriptedServer, Turn, tool_use};
use serde_json::json;

/// A folder outside the workspace, with one file that must stay as it is.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file.txt"), "untouched").unwrap();
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
        assert_eq!(names, ["file.txt"], "corral wrote outside the workspace");
        assert_eq!(
            std::fs::read_to_string(self.path().join("file.txt")).unwrap(),
            "untouched"
        );
    }
}

/// One turn that runs a `bash` call and a background task, then the answer.
fn run_commands(corral: &Corral) -> corral_tests::RunOutput {
    let server = ScriptedServer::start(vec![
        Turn::tools(vec![
            tool_use("b", "bash", json!({"command": "echo from-bash"})),
            tool_use(
                "t",
                "background_run",
                json!({"command": "sleep 5 && echo from-task"}),
            ),
        ])
        .into(),
        Turn::text("done").into(),
    ]);
    corral.run(Some(&server), &["run", "--no-wait", "go"])
}

/// `.corral/tasks` and `.corral/sessions` that are symlinks to a folder outside, absolute or
/// relative: nothing is written through them (no journal, no task log, no transcript), and
/// the run says which folder it refused.
#[test]
fn symlinked_state_subfolders_are_never_written_through() {
    for name in ["tasks", "sessions"] {
        for relative in [false, true] {
            let corral = Corral::new();
            let outside = Outside::new();
            std::fs::create_dir_all(corral.path(".corral")).unwrap();
            let target: PathBuf = if relative {
                PathBuf::from(format!("../../..{}", outside.path().display()))
            } else {
                outside.path().to_path_buf()
            };
            std::os::unix::fs::symlink(&target, corral.path(&format!(".corral/{name}"))).unwrap();
            let out = run_commands(&corral);
            outside.assert_untouched();
            assert!(
                out.stderr.contains(&format!(".corral/{name}")),
                "{name} (relative: {relative}): the refusal names the folder\n{}",
                out.stderr
            );
        }
    }
}

/// The journal's own files planted as symlinks to files outside, existing or not (a login
/// script the journal's command text would run in): the commands still run, and none of the
/// files outside is created, appended to or replaced.
#[test]
fn symlinked_journal_files_are_never_written_through() {
    let corral = Corral::new();
    let outside = Outside::new();
    let tasks = corral.path(".corral/tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    for (link, target) in [
        ("journal.jsonl", "profile"),
        ("journal.lock", "lock"),
        ("journal.jsonl.tmp", "file.txt"),
    ] {
        std::os::unix::fs::symlink(outside.path().join(target), tasks.join(link)).unwrap();
    }
    let out = run_commands(&corral);
    out.assert_code(0);
    outside.assert_untouched();
    let server = ScriptedServer::start(vec![Turn::text("done").into()]);
    corral.run(Some(&server), &["run", "again"]).assert_code(0);
    outside.assert_untouched();
}
