//! `read_file {path, offset?, limit?}`: numbered lines of a text file, streamed.
//!
//! Only the lines returned are kept in memory: the file is read through a buffer, line by line,
//! from its start to the last line shown (lines before `offset` are read and dropped, so are
//! the tails of lines longer than [`MAX_LINE_CHARS`]). One call returns at most
//! [`DEFAULT_LINES`] lines (or `limit`), at most [`MAX_READ_BYTES`] of text, and reads at most
//! [`MAX_SCAN_BYTES`] of the file; each cut is said in the result, with the `offset` that reads
//! on.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{blocking, io_error, open_regular, path_key};
use crate::llm::{BoxFuture, ToolSpec};
use crate::tools::{Tool, ToolError, parse_args, spec};
use crate::workspace::Workspace;

/// Lines returned by one call when no `limit` is given.
pub const DEFAULT_LINES: usize = 2000;
/// Characters kept of one line; the rest is dropped and the line marked `[line cut]`.
pub const MAX_LINE_CHARS: usize = 2000;
/// Bytes of text one call returns at most (the numbered lines and the notes); the call stops
/// before the line that would pass it.
pub const MAX_READ_BYTES: usize = 256 * 1024;
/// Bytes of the file one call reads at most, counting the lines skipped to reach `offset` and
/// the dropped tails of long lines: the bound on the time one call takes.
pub const MAX_SCAN_BYTES: u64 = 1 << 30;
/// Bytes at the start of a file looked at for a NUL byte: one there means a binary file,
/// refused whole (as git and grep decide).
const BINARY_SNIFF_BYTES: usize = 8 * 1024;
/// The read buffer.
const BUFFER_BYTES: usize = 64 * 1024;
/// Bytes kept of one line: enough for [`MAX_LINE_CHARS`] characters of any UTF-8.
const LINE_BYTES: usize = MAX_LINE_CHARS * 4;

/// `read_file`: see the module doc.
pub struct ReadFileTool {
    spec: ToolSpec,
    workspace: Arc<Workspace>,
}

#[derive(Deserialize)]
struct ReadArgs {
    path: String,
    offset: Option<usize>,
    limit: Option<usize>,
}

impl ReadFileTool {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        let spec = spec(
            "read_file",
            "Read a text file of the workspace. Returns numbered lines (like cat -n), at most \
             2000 from `offset` (1-based line number, default 1) unless `limit` says otherwise, \
             and at most 256 KiB of text per call (the result says where to go on). Lines \
             longer than 2000 characters are cut. Only regular files; binary files are \
             refused. Paths are relative to the workspace root.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "offset": {"type": "integer", "minimum": 1, "description": "First line to return, 1-based."},
                    "limit": {"type": "integer", "minimum": 1, "description": "How many lines to return."}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        );
        Self { spec, workspace }
    }
}

impl Tool for ReadFileTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn resource_key(&self, input: &Value) -> Option<String> {
        path_key(&self.workspace, input)
    }

    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let args: ReadArgs = parse_args(input)?;
            let workspace = self.workspace.clone();
            blocking("read_file", move || read(&workspace, &args)).await
        })
    }
}

/// Why the lines stopped before the `limit`.
enum Stop {
    /// The end of the file.
    End,
    /// `limit` lines shown, and more follow.
    Limit,
    /// The next line would pass [`MAX_READ_BYTES`].
    Bytes,
    /// [`MAX_SCAN_BYTES`] read.
    Scan,
    /// The line with this number holds a NUL byte: binary data from there on.
    Binary(usize),
}

fn read(workspace: &Workspace, args: &ReadArgs) -> Result<String, ToolError> {
    let shown = args.path.as_str();
    let at = workspace.locate(shown)?;
    let (file, st) = open_regular(&at, shown, "read_file")?;
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let mut head = vec![0; BINARY_SNIFF_BYTES];
    let n = read_at_full(&file, &mut head).map_err(|e| io_error(shown, &e))?;
    if n == 0 {
        return Ok(format!("[`{shown}` is empty]"));
    }
    if head[..n].contains(&0) {
        return Err(ToolError::Failed(format!(
            "`{shown}` is a binary file ({size} bytes)"
        )));
    }
    let offset = args.offset.unwrap_or(1).max(1);
    let limit = args.limit.unwrap_or(DEFAULT_LINES).max(1);
    let mut reader = BufReader::with_capacity(BUFFER_BYTES, file.take(MAX_SCAN_BYTES));
    let mut out = String::new();
    let mut line = Vec::with_capacity(LINE_BYTES);
    let mut number = 0;
    let mut returned = 0;
    let stop = loop {
        if returned == limit {
            let more = !fill(&mut reader)
                .map_err(|e| io_error(shown, &e))?
                .is_empty();
            break if more { Stop::Limit } else { Stop::End };
        }
        let wanted = number + 1 >= offset;
        let cap = if wanted { LINE_BYTES } else { 0 };
        let next =
            next_line(&mut reader, &mut line, cap, wanted).map_err(|e| io_error(shown, &e))?;
        let Some(cut) = next else {
            let scanned = reader.get_ref().limit() == 0;
            break if scanned { Stop::Scan } else { Stop::End };
        };
        number += 1;
        if !wanted {
            continue;
        }
        if line.contains(&0) {
            break Stop::Binary(number);
        }
        let text = numbered(number, &line, cut);
        if out.len() + text.len() + NOTE_ROOM > MAX_READ_BYTES {
            break Stop::Bytes;
        }
        out.push_str(&text);
        returned += 1;
    };
    if returned == 0 {
        return Err(match stop {
            Stop::Binary(n) => ToolError::Failed(format!(
                "`{shown}`: line {n} holds NUL bytes: binary data, not text"
            )),
            Stop::Scan => ToolError::Failed(format!(
                "offset {offset} lies beyond the first {} GiB of `{shown}` ({size} bytes), and \
                 read_file reads at most that much in one call",
                MAX_SCAN_BYTES >> 30
            )),
            Stop::End | Stop::Limit | Stop::Bytes => ToolError::InvalidInput(format!(
                "offset {offset} is past the end of `{shown}`, which has {number} lines"
            )),
        });
    }
    let last = offset + returned - 1;
    let next = last + 1;
    let note = match stop {
        Stop::End if offset == 1 => None,
        Stop::End => Some(format!("[lines {offset}-{last} of {number}]")),
        Stop::Limit => Some(format!(
            "[lines {offset}-{last} of a {size}-byte file; more follow: offset {next} reads on]"
        )),
        Stop::Bytes => Some(format!(
            "[lines {offset}-{last}; cut here: read_file returns at most {} KiB a call; offset \
             {next} reads on]",
            MAX_READ_BYTES / 1024
        )),
        Stop::Scan => Some(format!(
            "[lines {offset}-{last}; stopped after reading {} GiB, the most read_file reads in \
             one call]",
            MAX_SCAN_BYTES >> 30
        )),
        Stop::Binary(n) => Some(format!(
            "[lines {offset}-{last}; line {n} holds NUL bytes (binary data): stopped there]"
        )),
    };
    if let Some(note) = note {
        out.push_str(&note);
        out.push('\n');
    }
    Ok(out)
}

/// Room kept under [`MAX_READ_BYTES`] for the closing note.
const NOTE_ROOM: usize = 256;

/// One numbered line as `cat -n` prints it (a trailing `\r` dropped), cut at
/// [`MAX_LINE_CHARS`] characters.
fn numbered(number: usize, line: &[u8], cut: bool) -> String {
    let line = if cut {
        line
    } else {
        line.strip_suffix(b"\r").unwrap_or(line)
    };
    let text = String::from_utf8_lossy(line);
    let mut chars = text.chars();
    let shown: String = chars.by_ref().take(MAX_LINE_CHARS).collect();
    let more = if cut || chars.next().is_some() {
        " [line cut]"
    } else {
        ""
    };
    format!("{number:>6}\t{shown}{more}\n")
}

/// Reads the next line into `line`, keeping at most `cap` bytes of it (without the `\n`) and
/// consuming the rest up to and including the `\n`. `None` at the end of the input; else
/// whether bytes were dropped. When `stop_at_nul`, stops as soon as a kept byte is NUL (the
/// line is binary; its rest is left unread).
fn next_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
    stop_at_nul: bool,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut any = false;
    let mut cut = false;
    loop {
        let available = fill(reader)?;
        if available.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (end, used) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i, i + 1),
            None => (available.len(), available.len()),
        };
        let keep = end.min(cap.saturating_sub(line.len()));
        line.extend_from_slice(&available[..keep]);
        cut |= keep < end;
        let newline = used > end;
        reader.consume(used);
        if newline || (stop_at_nul && line.contains(&0)) {
            return Ok(Some(cut));
        }
    }
}

/// `fill_buf`, retried when interrupted.
fn fill(reader: &mut impl BufRead) -> std::io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    reader.fill_buf()
}

/// Reads from the start of `file` until `buf` is full or the file ends; the bytes read.
fn read_at_full(file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<(Vec<u8>, bool)> {
        let mut reader = BufReader::with_capacity(3, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        while let Some(cut) = next_line(&mut reader, &mut line, cap, false).expect("read") {
            out.push((line.clone(), cut));
        }
        out
    }

    #[test]
    fn lines_are_split_and_capped_across_buffer_edges() {
        assert_eq!(
            lines(b"ab\n\ncdefgh\nij", 4),
            vec![
                (b"ab".to_vec(), false),
                (b"".to_vec(), false),
                (b"cdef".to_vec(), true),
                (b"ij".to_vec(), false)
            ]
        );
        assert_eq!(lines(b"x\n", 4), vec![(b"x".to_vec(), false)]);
        assert!(lines(b"", 4).is_empty());
    }

    #[test]
    fn long_lines_are_cut_by_characters() {
        let long = "é".repeat(MAX_LINE_CHARS + 5);
        let text = numbered(7, long.as_bytes(), false);
        assert!(text.starts_with("     7\t"));
        assert!(text.ends_with(" [line cut]\n"));
        assert_eq!(text.chars().filter(|&c| c == 'é').count(), MAX_LINE_CHARS);
        assert_eq!(numbered(1, b"a\r", false), "     1\ta\n");
    }
}
