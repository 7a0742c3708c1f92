//! The session file: every change to the history, appended as a JSON line as it happens.
//!
//! `<workspace>/.corral/sessions/<uuid>.jsonl`. The first line describes the session; each
//! further line is a [`Change`](super::history::Change) or a note beside the history (the
//! tokens of a call, a prompt that failed). A crash, or a fatal API error, loses nothing that
//! was said: `corral run --continue` replays the file.
//!
//! Nothing is ever rewritten: a compaction is one more line (`compact`, the summary and where
//! the kept part begins), and `/undo` or a failed prompt one more (`truncate`), so the whole
//! transcript stays in the file while replaying it gives the history as it is now.
//!
//! The folder is opened with `O_NOFOLLOW` and every file beneath its handle, so a symlink a
//! cloned repository put in place of `sessions` (or of a session file) is refused, never
//! followed: the transcript is never written, nor a session read, outside `.corral/sessions`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions};

use serde::{Deserialize, Serialize};

use super::history::{Change, Compaction, History, Mark};
use crate::llm::{ContentBlock, Message};

/// A session file that cannot be opened, written or read. Fatal: the run stops before
/// anything could be lost.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("session file {path}, line {line}: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("no session `{0}` in this workspace")]
    NotFound(String),
    #[error("this workspace has no session to continue")]
    NoneYet,
    #[error("`{prefix}` names more than one session: {}; give more of the id", ids.join(", "))]
    Ambiguous { prefix: String, ids: Vec<String> },
}

/// One line of a session file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Session {
        id: String,
        created_unix: u64,
        model: String,
    },
    Message {
        message: Message,
    },
    Append {
        content: Vec<ContentBlock>,
    },
    /// The tokens one model call used (for `corral sessions`; not part of the history).
    Usage {
        usage: crate::llm::Usage,
    },
    /// A user turn (a prompt) begins with the next change.
    Turn,
    /// Everything from `to` on was taken out of the history; `reason` is `undo` or `failed`.
    Truncate {
        to: Mark,
        reason: String,
    },
    /// The older part of the history was replaced by a summary.
    Compact {
        #[serde(flatten)]
        compaction: Compaction,
    },
    /// A prompt's model call failed with `error` (not part of the history: the change that
    /// follows says what became of the turn).
    Failed {
        error: String,
    },
}

/// An open session file, appended to as the history changes.
#[derive(Debug)]
pub struct SessionLog {
    id: String,
    path: PathBuf,
    file: File,
}

/// Which session to open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SessionChoice {
    /// A new session.
    #[default]
    New,
    /// The most recently written session of the workspace.
    Latest,
    /// The session with this id (or a unique prefix of it).
    Id(String),
}

impl SessionLog {
    /// Creates a new session file in `dir`.
    pub fn create(dir: &Path, model: &str) -> Result<Self, SessionError> {
        let id = uuid::Uuid::new_v4().to_string();
        let name = format!("{id}.jsonl");
        let path = dir.join(&name);
        let io = |source| SessionError::Io {
            path: path.clone(),
            source,
        };
        let folder = folder(dir, true)?.ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
        let file = folder
            .open_with(&name, OpenOptions::new().create_new(true).append(true))
            .map_err(io)?
            .into_std();
        let mut log = Self {
            id: id.clone(),
            path,
            file,
        };
        let created_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        log.write(&Line::Session {
            id,
            created_unix,
            model: model.to_string(),
        })?;
        Ok(log)
    }

    /// Opens an existing session of `dir` and replays it; also returns warnings for the user.
    ///
    /// Every line the writer writes is read back: tool inputs obey the depth rule
    /// ([`crate::tools::schema::MAX_INPUT_DEPTH`]) both when written and when read, so no line
    /// passes the JSON parser's own nesting limit. A last line cut short (corral killed while
    /// writing it) is dropped with a warning, and cut from the file so the next line appended
    /// starts clean; a bad line anywhere else is [`SessionError::Corrupt`].
    pub fn open(
        dir: &Path,
        choice: &SessionChoice,
    ) -> Result<(Self, History, Vec<String>), SessionError> {
        let folder = folder(dir, false)?.ok_or(SessionError::NoneYet)?;
        let name = match choice {
            SessionChoice::New => return Err(SessionError::NoneYet),
            SessionChoice::Latest => latest(&folder, dir)?,
            SessionChoice::Id(id) => find(&folder, dir, id)?,
        };
        let path = dir.join(&name);
        let io = |source| SessionError::Io {
            path: path.clone(),
            source,
        };
        let bytes = folder.read(&name).map_err(io)?;
        let mut history = History::new();
        let mut id = None;
        let (warnings, good_end) = parse(&bytes, &path, |line| match line {
            Line::Session { id: sid, .. } => id = Some(sid),
            Line::Message { message } => history.apply(Change::Push(message)),
            Line::Append { content } => history.apply(Change::Append(content)),
            Line::Turn => history.apply(Change::Turn),
            Line::Truncate { to, .. } => history.apply(Change::Truncate { to }),
            Line::Compact { compaction } => history.apply(Change::Compact(compaction)),
            Line::Usage { .. } | Line::Failed { .. } => {}
        })?;
        let id = id.ok_or_else(|| SessionError::Corrupt {
            path: path.clone(),
            line: 1,
            message: "no session header".into(),
        })?;
        let mut file = folder
            .open_with(&name, OpenOptions::new().append(true))
            .map_err(io)?
            .into_std();
        if good_end < bytes.len() {
            file.set_len(good_end as u64).map_err(io)?;
        }
        if good_end > 0 && bytes[good_end - 1] != b'\n' {
            file.write_all(b"\n").map_err(io)?;
        }
        Ok((Self { id, path, file }, history, warnings))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the tokens one model call used.
    pub fn record_usage(&mut self, usage: crate::llm::Usage) -> Result<(), SessionError> {
        self.write(&Line::Usage { usage })
    }

    /// Records that a prompt's model call failed with `error`.
    pub fn record_failure(&mut self, error: &str) -> Result<(), SessionError> {
        self.write(&Line::Failed {
            error: error.to_string(),
        })
    }

    /// Appends one change of the history. A truncation is recorded as an undo; use
    /// [`record_truncate`](Self::record_truncate) to give another reason.
    pub fn record(&mut self, change: &Change) -> Result<(), SessionError> {
        match change {
            Change::Push(message) => self.write(&Line::Message {
                message: message.clone(),
            }),
            Change::Append(content) => self.write(&Line::Append {
                content: content.clone(),
            }),
            Change::Turn => self.write(&Line::Turn),
            Change::Truncate { to } => self.record_truncate(*to, "undo"),
            Change::Compact(compaction) => self.write(&Line::Compact {
                compaction: compaction.clone(),
            }),
        }
    }

    /// Records a truncation of the history to `to`, for `reason` (`undo`, `failed`).
    pub fn record_truncate(&mut self, to: Mark, reason: &str) -> Result<(), SessionError> {
        self.write(&Line::Truncate {
            to,
            reason: reason.to_string(),
        })
    }

    fn write(&mut self, line: &Line) -> Result<(), SessionError> {
        let mut text = serde_json::to_string(line).map_err(|e| SessionError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .map_err(|source| SessionError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// Reads the lines of a session file's `bytes` in order, giving each to `each`. A last line
/// cut off is skipped with a warning; any other line that does not parse is an error. Returns
/// the warnings and where the last whole line ends.
fn parse(
    bytes: &[u8],
    path: &Path,
    mut each: impl FnMut(Line),
) -> Result<(Vec<String>, usize), SessionError> {
    let mut warnings = Vec::new();
    // The end of the last line read whole, and whether that line has its newline.
    let mut good_end = 0;
    let mut start = 0;
    let mut n = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| start + i + 1);
        let raw = &bytes[start..end];
        n += 1;
        let text = std::str::from_utf8(raw).map_err(|e| e.to_string());
        let parsed = text.and_then(|t| {
            if t.trim().is_empty() {
                Ok(None)
            } else {
                serde_json::from_str::<Line>(t)
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
        });
        match parsed {
            Ok(None) => {}
            Ok(Some(line)) => each(line),
            Err(_) if is_torn(&bytes[end..]) => {
                warnings.push(format!(
                    "session file {}: its last line ({} bytes) was cut off, likely when \
                         corral was stopped while writing it; resuming without it",
                    path.display(),
                    raw.len()
                ));
                break;
            }
            Err(message) => {
                return Err(SessionError::Corrupt {
                    path: path.to_path_buf(),
                    line: n,
                    message,
                });
            }
        }
        good_end = end;
        start = end;
    }
    Ok((warnings, good_end))
}

/// What `corral sessions` shows of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub id: String,
    pub created_unix: u64,
    /// The last text the user sent (a prompt, not a tool result or a background note).
    pub last_prompt: Option<String>,
    /// Model answers in the history.
    pub turns: usize,
    /// The tokens its model calls used, as recorded (sessions from before corral recorded
    /// them show none).
    pub usage: crate::llm::Usage,
}

/// The sessions in `dir`, newest (last written) first. A file that cannot be read or parsed is
/// left out, with its reason in the second list.
pub fn list(dir: &Path) -> Result<(Vec<SessionSummary>, Vec<String>), SessionError> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let Some(folder) = folder(dir, false)? else {
        return Ok((Vec::new(), problems));
    };
    for name in sessions(&folder, dir)? {
        let modified = folder
            .metadata(&name)
            .and_then(|m| m.modified())
            .ok()
            .map(|m| m.into_std());
        match summarize(&folder, &dir.join(&name), &name) {
            Ok(summary) => found.push((modified, summary)),
            Err(error) => problems.push(error.to_string()),
        }
    }
    found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    Ok((found.into_iter().map(|(_, s)| s).collect(), problems))
}

fn summarize(folder: &Dir, path: &Path, name: &str) -> Result<SessionSummary, SessionError> {
    let bytes = folder.read(name).map_err(|source| SessionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut summary = SessionSummary {
        id: String::new(),
        created_unix: 0,
        last_prompt: None,
        turns: 0,
        usage: crate::llm::Usage::default(),
    };
    parse(&bytes, path, |line| match line {
        Line::Session {
            id, created_unix, ..
        } => {
            summary.id = id;
            summary.created_unix = created_unix;
        }
        Line::Message { message } => match message.role {
            crate::llm::Role::Assistant => summary.turns += 1,
            crate::llm::Role::User => {
                if let Some(prompt) = prompt_text(&message.content) {
                    summary.last_prompt = Some(prompt);
                }
            }
        },
        Line::Append { content } => {
            if let Some(prompt) = prompt_text(&content) {
                summary.last_prompt = Some(prompt);
            }
        }
        Line::Usage { usage } => summary.usage += usage,
        Line::Turn | Line::Truncate { .. } | Line::Compact { .. } | Line::Failed { .. } => {}
    })?;
    if summary.id.is_empty() {
        return Err(SessionError::Corrupt {
            path: path.to_path_buf(),
            line: 1,
            message: "no session header".into(),
        });
    }
    Ok(summary)
}

/// The user's own words in `content`: its text blocks but background notes.
fn prompt_text(content: &[ContentBlock]) -> Option<String> {
    content.iter().rev().find_map(|block| match block {
        ContentBlock::Text { text } if !text.starts_with('<') => Some(text.clone()),
        _ => None,
    })
}

/// Whether what follows a line that does not parse is empty: the line was the last one
/// written, and was cut off.
fn is_torn(rest: &[u8]) -> bool {
    rest.iter().all(u8::is_ascii_whitespace)
}

/// The session folder `dir` as a handle, never through a symlink (made when `create`);
/// `None` when it does not exist and `create` is false.
fn folder(dir: &Path, create: bool) -> Result<Option<Dir>, SessionError> {
    crate::workspace::open_state_folder(dir, create).map_err(|source| SessionError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// The names of the session files in `folder` (whose path is `dir`).
fn sessions(folder: &Dir, dir: &Path) -> Result<Vec<String>, SessionError> {
    let entries = folder.entries().map_err(|source| SessionError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| Path::new(n).extension().is_some_and(|e| e == "jsonl"))
        .collect())
}

fn latest(folder: &Dir, dir: &Path) -> Result<String, SessionError> {
    sessions(folder, dir)?
        .into_iter()
        .filter_map(|n| Some((folder.metadata(&n).ok()?.modified().ok()?.into_std(), n)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, n)| n)
        .ok_or(SessionError::NoneYet)
}

fn find(folder: &Dir, dir: &Path, id: &str) -> Result<String, SessionError> {
    let stem = |n: &str| n.strip_suffix(".jsonl").unwrap_or(n).to_string();
    let matches: Vec<String> = sessions(folder, dir)?
        .into_iter()
        .filter(|n| stem(n).starts_with(id))
        .collect();
    match matches.as_slice() {
        [one] if !id.is_empty() => Ok(one.clone()),
        [] => Err(SessionError::NotFound(id.to_string())),
        _ if id.is_empty() => Err(SessionError::NotFound(id.to_string())),
        many => {
            let mut ids: Vec<String> = many.iter().map(|n| stem(n)).collect();
            ids.sort();
            Err(SessionError::Ambiguous {
                prefix: id.to_string(),
                ids,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A history with `input` as the input of one tool call, written to a session file and read
    /// back.
    fn round_trip(input: Value) -> (Vec<Message>, Vec<Message>) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SessionLog::create(dir.path(), "m").unwrap();
        let mut history = History::new();
        log.record(&history.add_user(vec![ContentBlock::text("go")]))
            .unwrap();
        let call = ContentBlock::ToolUse {
            id: "t1".into(),
            name: "x".into(),
            input,
        };
        log.record(&history.add_assistant(vec![call]).unwrap())
            .unwrap();
        let id = log.id().to_string();
        drop(log);
        let (_, read, warnings) = SessionLog::open(dir.path(), &SessionChoice::Id(id)).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        (read.messages().to_vec(), history.messages().to_vec())
    }

    /// Every number in a tool input reads back as the same f64. Found by the `session` fuzz
    /// target: 2.1000000000000002e301 was written as such and read back as 2.1e301.
    #[test]
    fn numbers_read_back_exactly() {
        let (read, written) = round_trip(json!([2.1000000000000002e301_f64, 0.1 + 0.2]));
        assert_eq!(read, written);
        // A spread of bit patterns over the whole range of finite doubles.
        let mut bits: u64 = 0x9e37_79b9_7f4a_7c15;
        let numbers: Vec<Value> = (0..2000)
            .filter_map(|_| {
                bits = bits
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let x = f64::from_bits(bits);
                x.is_finite().then(|| json!(x))
            })
            .collect();
        let (read, written) = round_trip(Value::Array(numbers));
        assert_eq!(read, written);
    }
}
