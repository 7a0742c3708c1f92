//! What the fuzz targets share: a scratch workspace folder laid out once per process, and
//! cutting one input into fields.
//!
//! Every target runs in one libFuzzer process for many inputs, so whatever is slow to make (a
//! folder, the built-in tools) is made once, in [`scratch`], and each input only writes the
//! files it is about. `scripts/fuzz.sh` points `TMPDIR` at a folder it removes afterwards.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A workspace folder made once per process: `src/` (with `src/lib.rs`), `docs/`, `out/`, and
/// `outside`, a symlink to `/` that no grant may follow. Its path is canonical.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("corral-fuzz-")
            .tempdir()
            .map(tempfile::TempDir::keep)
            .unwrap_or_else(|e| panic!("cannot make a scratch folder: {e}"));
        let ws = dir.join("ws");
        for sub in ["src", "docs", "out", "config"] {
            let path = if sub == "config" {
                dir.join(sub)
            } else {
                ws.join(sub)
            };
            std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        std::fs::write(ws.join("src/lib.rs"), "// fuzz\n").unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink("/", ws.join("outside"));
        dir.canonicalize().unwrap_or_else(|e| panic!("{e}"))
    })
}

/// The scratch workspace's root (`<scratch>/ws`).
pub fn workspace_root() -> PathBuf {
    scratch().join("ws")
}

/// Cuts `data` at each `sep` into at most `n` fields (the last keeps the rest, separators
/// and all); missing fields are empty.
pub fn fields(data: &[u8], sep: u8, n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |&b| b == sep).collect();
    out.resize(n, &[]);
    out
}
