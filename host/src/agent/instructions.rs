//! Project instructions for the system prompt: `AGENTS.md` (or, where a folder has none,
//! `CLAUDE.md`) at the workspace root and in every folder above it up to `/`, as Codex and
//! Claude Code read them. The outermost comes first, so the nearest (the project's own) has the
//! last word.
//!
//! They are instructions, not settings: they grant nothing, and are read whether the workspace's
//! `corral.toml` is trusted or not, as the peers do. Still, a cloned repository must not make
//! corral send one of the user's files to the model: the root's file is opened beneath the
//! workspace's handle (a symlink out of the workspace is not followed), a folder above's with
//! `O_NOFOLLOW`, and only regular files count. All of them together are cut at
//! [`MAX_PROJECT_DOC_BYTES`].

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::workspace::Workspace;

/// The file names read, in order of preference: the first one a folder has counts.
pub const PROJECT_DOC_NAMES: &[&str] = &["AGENTS.md", "CLAUDE.md"];
/// The most the project instructions add to the system prompt (32 KiB, Codex's default).
pub const MAX_PROJECT_DOC_BYTES: usize = 32 * 1024;

/// One project file read: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectDoc {
    pub path: PathBuf,
    pub text: String,
}

/// The project instructions for `workspace`, outermost first, within
/// [`MAX_PROJECT_DOC_BYTES`] in all (the last one read is cut, with a note, and those beyond
/// are left out). A file that cannot be read is skipped.
pub fn project_docs(workspace: &Workspace) -> Vec<ProjectDoc> {
    let root = workspace.root();
    let mut docs: Vec<ProjectDoc> = root
        .ancestors()
        .skip(1)
        .filter_map(|dir| PROJECT_DOC_NAMES.iter().find_map(|n| outside(dir, n)))
        .collect();
    docs.reverse();
    if let Some(doc) = PROJECT_DOC_NAMES.iter().find_map(|n| inside(workspace, n)) {
        docs.push(doc);
    }
    let mut left = MAX_PROJECT_DOC_BYTES;
    let mut kept = Vec::new();
    for mut doc in docs {
        if left == 0 {
            break;
        }
        if doc.text.len() > left {
            let mut cut = left;
            while !doc.text.is_char_boundary(cut) {
                cut -= 1;
            }
            doc.text.truncate(cut);
            doc.text
                .push_str("\n[cut: the project instructions are limited to 32 KiB]");
            left = 0;
        } else {
            left -= doc.text.len();
        }
        kept.push(doc);
    }
    kept
}

/// The instructions as the system prompt carries them, or `None` without any.
pub fn project_section(docs: &[ProjectDoc]) -> Option<String> {
    if docs.is_empty() {
        return None;
    }
    let mut out = String::from(
        "Project instructions (from the files below; follow them unless the user says \
         otherwise):\n",
    );
    for doc in docs {
        out.push_str(&format!(
            "\n--- {} ---\n{}\n",
            doc.path.display(),
            doc.text.trim_end()
        ));
    }
    Some(out)
}

/// `name` at the workspace root, opened beneath the root's handle.
fn inside(workspace: &Workspace, name: &str) -> Option<ProjectDoc> {
    let mut file = workspace.dir().open(name).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let text = read_capped(&mut file)?;
    Some(ProjectDoc {
        path: workspace.root().join(name),
        text,
    })
}

/// `name` in a folder above the workspace, never through a symlink.
fn outside(dir: &Path, name: &str) -> Option<ProjectDoc> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let text = read_capped(&mut file)?;
    Some(ProjectDoc { path, text })
}

/// At most [`MAX_PROJECT_DOC_BYTES`] of a file, as text (invalid UTF-8 replaced).
fn read_capped(file: &mut impl Read) -> Option<String> {
    let mut bytes = Vec::new();
    file.take(MAX_PROJECT_DOC_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_md_wins_over_claude_md_and_a_symlink_out_is_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("project");
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::write(dir.path().join("secret.txt"), "PRIVATE").expect("secret");
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("AGENTS.md"))
            .expect("link");
        std::fs::write(root.join("CLAUDE.md"), "use tabs").expect("claude");
        let ws = Workspace::open(&root).expect("workspace");
        let docs = project_docs(&ws);
        assert!(docs.iter().all(|d| !d.text.contains("PRIVATE")), "{docs:?}");
        // The symlinked AGENTS.md does not count, so CLAUDE.md is the project's file.
        assert_eq!(docs.last().map(|d| d.text.as_str()), Some("use tabs"));
        std::fs::remove_file(root.join("AGENTS.md")).expect("rm");
        std::fs::write(
            root.join("AGENTS.md"),
            "x".repeat(MAX_PROJECT_DOC_BYTES + 10),
        )
        .expect("big");
        let docs = project_docs(&ws);
        let last = docs.last().expect("a doc");
        assert!(last.text.starts_with("xxx") && last.text.ends_with("32 KiB]"));
    }
}
