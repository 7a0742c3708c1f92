//! The `grep` plugin: search files under the workspace with a regular expression.
//!
//! Walks `/workspace/<path>` with `std::fs` (the workspace is a WASI preopen, so
//! only granted files are visible), skips files that are not UTF-8, and prints
//! matches like ripgrep: `path:line: text`, context lines as `path-line- text`, and
//! `--` between groups that are not adjacent. Paths are workspace-relative.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use corral_plugin::{Level, Tool, ToolError, log, schemars};
use globset::{Glob, GlobMatcher};
use regex::{Regex, RegexBuilder};

/// Where the workspace appears inside the sandbox.
const WORKSPACE: &str = "/workspace";

/// Files larger than this are skipped: they are rarely source and cost memory.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The input of the `grep` tool.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The regular expression to search for (Rust `regex` syntax, like ripgrep).
    pub pattern: String,
    /// A file or directory to search, relative to the workspace root.
    #[serde(default = "default_path")]
    pub path: String,
    /// Only search files whose workspace-relative path matches this glob, e.g. `**/*.rs`.
    #[serde(default)]
    pub glob: Option<String>,
    /// How many lines to show before and after each match.
    #[serde(default)]
    pub context: usize,
    /// Stop after this many matching lines.
    #[serde(default = "default_max_results")]
    pub max_results: usize,
    /// Match without regard to case.
    #[serde(default)]
    pub case_insensitive: bool,
}

fn default_path() -> String {
    ".".into()
}

fn default_max_results() -> usize {
    100
}

/// The `grep` tool.
pub struct Grep;

impl Tool for Grep {
    const NAME: &'static str = "grep";
    const DESCRIPTION: &'static str = "Search the workspace's files for a regular expression. \
        Returns matching lines as `path:line: text`, with optional context lines \
        (`path-line- text`) and a glob filter on paths. Paths are relative to the workspace.";
    type Args = Args;

    fn call(args: Args) -> Result<String, ToolError> {
        grep(Path::new(WORKSPACE), &args)
    }
}

corral_plugin::export_plugin! {
    description: "Search workspace files with a regular expression.",
    capabilities: Capabilities { read: vec!["**".into()], ..Default::default() },
    tools: [Grep],
}

/// Runs a search of `args` under `root`, the directory that stands for the workspace.
pub fn grep(root: &Path, args: &Args) -> Result<String, ToolError> {
    let regex = RegexBuilder::new(&args.pattern)
        .case_insensitive(args.case_insensitive)
        .build()
        .map_err(|e| ToolError::invalid_input(format!("bad pattern: {e}")))?;
    let glob = match &args.glob {
        Some(glob) => Some(
            Glob::new(glob)
                .map_err(|e| ToolError::invalid_input(format!("bad glob: {e}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    let relative = args.path.trim_start_matches('/');
    let start = root.join(relative);
    if fs::metadata(&start).is_err() {
        return Err(ToolError::failed(format!(
            "path `{}` does not exist in the workspace (or is not readable)",
            args.path
        )));
    }

    let mut search = Search {
        root,
        regex,
        glob,
        context: args.context,
        max_results: args.max_results,
        found: 0,
        files: 0,
        out: String::new(),
        truncated: false,
    };
    search.walk(&start);
    log(
        Level::Debug,
        format!(
            "searched {} files for `{}`: {} matches",
            search.files, args.pattern, search.found
        ),
    );

    if search.found == 0 {
        return Ok("no matches".into());
    }
    if search.truncated {
        let _ = writeln!(
            search.out,
            "[stopped after {} matches; narrow the pattern, path or glob, or raise max_results]",
            search.max_results
        );
    }
    Ok(search.out)
}

struct Search<'a> {
    root: &'a Path,
    regex: Regex,
    glob: Option<GlobMatcher>,
    context: usize,
    max_results: usize,
    found: usize,
    files: usize,
    out: String,
    truncated: bool,
}

impl Search<'_> {
    /// Visits `path`, a file or a directory, in a stable (sorted) order.
    fn walk(&mut self, path: &Path) {
        if self.truncated {
            return;
        }
        let Ok(meta) = fs::metadata(path) else { return };
        if meta.is_dir() {
            let Ok(entries) = fs::read_dir(path) else {
                return;
            };
            let mut children: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            children.sort();
            for child in children {
                let hidden_vcs = child
                    .file_name()
                    .is_some_and(|n| n == ".git" || n == "target" || n == "node_modules");
                if !hidden_vcs {
                    self.walk(&child);
                }
            }
        } else if meta.is_file() && meta.len() <= MAX_FILE_BYTES {
            self.search_file(path);
        }
    }

    fn search_file(&mut self, path: &Path) {
        let shown = path
            .strip_prefix(self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        if let Some(glob) = &self.glob
            && !glob.is_match(&shown)
        {
            return;
        }
        let Ok(text) = fs::read_to_string(path) else {
            return;
        };
        self.files += 1;
        let lines: Vec<&str> = text.lines().collect();
        // The last line printed for this file, so overlapping context joins.
        let mut printed: Option<usize> = None;
        for (i, line) in lines.iter().enumerate() {
            if !self.regex.is_match(line) {
                continue;
            }
            if self.found == self.max_results {
                self.truncated = true;
                return;
            }
            self.found += 1;
            let from = i.saturating_sub(self.context);
            let from = printed.map_or(from, |p| from.max(p + 1));
            // `--` between groups that are apart, within a file or across files.
            if self.context > 0 && !self.out.is_empty() && printed.is_none_or(|p| from > p + 1) {
                self.out.push_str("--\n");
            }
            for (j, before) in lines.iter().enumerate().take(i).skip(from) {
                let _ = writeln!(self.out, "{shown}-{}- {before}", j + 1);
            }
            let _ = writeln!(self.out, "{shown}:{}: {line}", i + 1);
            printed = Some(i);
            // Trailing context stops at the next match, which the loop prints as one.
            for (j, after) in lines.iter().enumerate().skip(i + 1).take(self.context) {
                if self.regex.is_match(after) {
                    break;
                }
                let _ = writeln!(self.out, "{shown}-{}- {after}", j + 1);
                printed = Some(j);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A throwaway workspace under the system temp dir, removed on drop.
    struct Workspace(PathBuf);

    impl Workspace {
        fn new(name: &str, files: &[(&str, &str)]) -> Self {
            let root =
                std::env::temp_dir().join(format!("corral-grep-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            for (path, text) in files {
                let path = root.join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, text).unwrap();
            }
            Self(root)
        }
    }

    impl Drop for Workspace {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn args(json: &str) -> Args {
        serde_json::from_str(json).unwrap()
    }

    /// Matches come out as `path:line: text`, paths workspace-relative, files sorted.
    #[test]
    fn finds_matches_in_sorted_files() {
        let ws = Workspace::new(
            "basic",
            &[
                ("src/b.rs", "fn b() {}\n"),
                ("src/a.rs", "// x\nfn a() {}\n"),
            ],
        );
        let out = grep(&ws.0, &args(r#"{"pattern": "fn \\w"}"#)).unwrap();
        assert_eq!(out, "src/a.rs:2: fn a() {}\nsrc/b.rs:1: fn b() {}\n");
    }

    /// Context lines use `-`, overlapping groups merge and apart groups get `--`.
    #[test]
    fn context_lines_like_ripgrep() {
        let text = "1\nhit\n3\n4\n5\n6\nhit\nhit\n9\n";
        let ws = Workspace::new("context", &[("f.txt", text)]);
        let out = grep(&ws.0, &args(r#"{"pattern": "hit", "context": 1}"#)).unwrap();
        assert_eq!(
            out,
            "f.txt-1- 1\nf.txt:2: hit\nf.txt-3- 3\n--\nf.txt-6- 6\nf.txt:7: hit\nf.txt:8: hit\nf.txt-9- 9\n"
        );
    }

    /// The glob, the case flag and the limit narrow the output, and the limit says so.
    #[test]
    fn glob_case_and_limit() {
        let ws = Workspace::new("filters", &[("a.rs", "Foo\nfoo\nfoo\n"), ("a.md", "foo\n")]);
        let out = grep(
            &ws.0,
            &args(
                r#"{"pattern": "foo", "glob": "*.rs", "case_insensitive": true, "max_results": 2}"#,
            ),
        )
        .unwrap();
        assert_eq!(
            out,
            "a.rs:1: Foo\na.rs:2: foo\n[stopped after 2 matches; narrow the pattern, path or glob, or raise max_results]\n"
        );
    }

    /// A bad regex is the model's to fix; a missing path is a failure naming it.
    #[test]
    fn errors_name_the_problem() {
        let ws = Workspace::new("errors", &[("a", "x\n")]);
        let bad = grep(&ws.0, &args(r#"{"pattern": "("}"#)).unwrap_err();
        assert!(matches!(bad, ToolError::InvalidInput(m) if m.starts_with("bad pattern")));
        let missing = grep(&ws.0, &args(r#"{"pattern": "x", "path": "nope"}"#)).unwrap_err();
        assert!(matches!(missing, ToolError::Failed(m) if m.contains("`nope`")));
        assert_eq!(
            grep(&ws.0, &args(r#"{"pattern": "y"}"#)).unwrap(),
            "no matches"
        );
    }
}
