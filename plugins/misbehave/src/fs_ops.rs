//! `fs`: a script of file operations under `/workspace`, each reported as it went, so a test
//! can play an attacker step by step (swap a folder for a symlink, link to the policy, rename
//! corral's state away) and check what the host allowed. `hold`: opens files and keeps them
//! open while it sleeps (descriptors held by an abandoned call).

use std::io::Write as _;

use corral_plugin::schemars::{self, JsonSchema};
use corral_plugin::{Tool, ToolError};
use serde::{Deserialize, Serialize};

/// One operation; paths are relative to `/workspace`.
#[derive(Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Create or replace a file with `text`.
    Write { path: String, text: String },
    /// Read a file.
    Read { path: String },
    /// List a folder's entry names.
    List { path: String },
    /// Create a folder.
    Mkdir { path: String },
    /// Remove a file or symlink.
    Remove { path: String },
    /// Remove a folder and everything in it.
    RemoveAll { path: String },
    /// Rename `from` to `to`.
    Rename { from: String, to: String },
    /// Create the symlink `link` pointing at `target` (taken as written).
    Symlink { target: String, link: String },
    /// Create the hard link `link` of `from`.
    Hardlink { from: String, link: String },
}

/// The input of `fs`.
#[derive(Deserialize, JsonSchema)]
pub struct FsArgs {
    /// The operations, run in order; a failed one does not stop the rest.
    pub ops: Vec<Op>,
}

#[derive(Serialize)]
struct Outcome {
    op: String,
    ok: bool,
    detail: String,
}

fn at(path: &str) -> String {
    format!("/workspace/{}", path.trim_start_matches('/'))
}

fn run(op: &Op) -> (String, std::io::Result<String>) {
    match op {
        Op::Write { path, text } => (
            format!("write {path}"),
            std::fs::write(at(path), text).map(|()| format!("{} bytes", text.len())),
        ),
        Op::Read { path } => (format!("read {path}"), std::fs::read_to_string(at(path))),
        Op::List { path } => (
            format!("list {path}"),
            std::fs::read_dir(at(path)).and_then(|entries| {
                let mut names = entries
                    .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect::<std::io::Result<Vec<_>>>()?;
                names.sort();
                Ok(names.join(","))
            }),
        ),
        Op::Mkdir { path } => (
            format!("mkdir {path}"),
            std::fs::create_dir_all(at(path)).map(|()| String::new()),
        ),
        Op::Remove { path } => (
            format!("remove {path}"),
            std::fs::remove_file(at(path)).map(|()| String::new()),
        ),
        Op::RemoveAll { path } => (
            format!("remove_all {path}"),
            std::fs::remove_dir_all(at(path)).map(|()| String::new()),
        ),
        Op::Rename { from, to } => (
            format!("rename {from} {to}"),
            std::fs::rename(at(from), at(to)).map(|()| String::new()),
        ),
        Op::Symlink { target, link } => (
            format!("symlink {link} -> {target}"),
            symlink(target, link).map(|()| String::new()),
        ),
        Op::Hardlink { from, link } => (
            format!("hardlink {link} = {from}"),
            std::fs::hard_link(at(from), at(link)).map(|()| String::new()),
        ),
    }
}

/// Creates a symlink through the raw WASI call (std has no stable one for wasip2), at the
/// preopen with the longest guest path that holds `link`.
fn symlink(target: &str, link: &str) -> std::io::Result<()> {
    let full = at(link);
    let mut best: Option<(wasip2::filesystem::types::Descriptor, String)> = None;
    for (dir, guest) in wasip2::filesystem::preopens::get_directories() {
        let prefix = format!("{}/", guest.trim_end_matches('/'));
        if let Some(rest) = full.strip_prefix(&prefix)
            && best.as_ref().is_none_or(|(_, r)| rest.len() < r.len())
        {
            best = Some((dir, rest.to_string()));
        }
    }
    let (dir, rel) = best.ok_or_else(|| std::io::Error::other("no preopen holds the link"))?;
    dir.symlink_at(target, &rel)
        .map_err(|code| std::io::Error::other(format!("{code:?}")))
}

/// `fs`: runs the operations and returns a JSON list of `{op, ok, detail}`.
pub struct Fs;

impl Tool for Fs {
    const NAME: &'static str = "fs";
    const DESCRIPTION: &'static str = "Run a script of file operations under /workspace.";
    type Args = FsArgs;

    fn call(args: FsArgs) -> Result<String, ToolError> {
        let outcomes: Vec<Outcome> = args
            .ops
            .iter()
            .map(|op| {
                let (name, result) = run(op);
                match result {
                    Ok(detail) => Outcome {
                        op: name,
                        ok: true,
                        detail,
                    },
                    Err(e) => Outcome {
                        op: name,
                        ok: false,
                        detail: e.to_string(),
                    },
                }
            })
            .collect();
        serde_json::to_string(&outcomes)
            .map_err(|e| ToolError::failed(format!("cannot write the report: {e}")))
    }
}

/// The input of `hold`.
#[derive(Deserialize, JsonSchema)]
pub struct HoldArgs {
    /// A file under /workspace to open again and again.
    pub path: String,
    /// How many times to open it (the handles are kept).
    pub count: usize,
    /// How long to sleep afterwards, holding them, in milliseconds.
    pub ms: u64,
}

/// `hold`: opens `path` `count` times, keeps every handle, then sleeps `ms`.
pub struct Hold;

impl Tool for Hold {
    const NAME: &'static str = "hold";
    const DESCRIPTION: &'static str = "Open a file many times and sleep holding the handles.";
    type Args = HoldArgs;

    fn call(args: HoldArgs) -> Result<String, ToolError> {
        let mut held = Vec::new();
        for _ in 0..args.count {
            match std::fs::File::open(at(&args.path)) {
                Ok(file) => held.push(file),
                Err(_) => break,
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(args.ms));
        let _ = std::io::stdout().flush();
        Ok(format!("held {} handles", held.len()))
    }
}

/// The input of `flood`.
#[derive(Deserialize, JsonSchema)]
pub struct FloodArgs {
    /// Bytes to send through `host.log`, in lines of 1 KiB.
    #[serde(default)]
    pub log_bytes: usize,
    /// Bytes of result text to return.
    #[serde(default)]
    pub result_bytes: usize,
    /// A line to log first, as given (control characters and all).
    #[serde(default)]
    pub line: String,
}

/// `flood`: logs `log_bytes` and returns `result_bytes` of text.
pub struct Flood;

impl Tool for Flood {
    const NAME: &'static str = "flood";
    const DESCRIPTION: &'static str = "Log a lot, return a lot.";
    type Args = FloodArgs;

    fn call(args: FloodArgs) -> Result<String, ToolError> {
        if !args.line.is_empty() {
            corral_plugin::log(corral_plugin::Level::Warn, args.line.clone());
        }
        let line = "x".repeat(1023);
        let mut sent = 0;
        while sent < args.log_bytes {
            corral_plugin::log(corral_plugin::Level::Info, line.clone());
            sent += line.len();
        }
        let mut out = String::with_capacity(args.result_bytes + 16);
        out.push_str("BEGIN");
        while out.len() + 3 < args.result_bytes {
            out.push('r');
        }
        out.push_str("END");
        Ok(out)
    }
}
