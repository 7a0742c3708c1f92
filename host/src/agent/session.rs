//! The session file: every change to the history, appended as a JSON line as it happens.
//!
//! `<workspace>/.corral/sessions/<uuid>.jsonl`. The first line describes the session; each
//! further line is a [`Change`](super::history::Change). A crash, or a fatal API error, loses
//! nothing that was said: `corral run --continue` replays the file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::history::{Change, History};
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
        let path = dir.join(format!("{id}.jsonl"));
        let io = |source| SessionError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
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

    /// Opens an existing session of `dir` and replays it.
    pub fn open(dir: &Path, choice: &SessionChoice) -> Result<(Self, History), SessionError> {
        let path = match choice {
            SessionChoice::New => return Err(SessionError::NoneYet),
            SessionChoice::Latest => latest(dir)?,
            SessionChoice::Id(id) => find(dir, id)?,
        };
        let io = |source| SessionError::Io {
            path: path.clone(),
            source,
        };
        let reader = BufReader::new(File::open(&path).map_err(io)?);
        let mut history = History::new();
        let mut id = None;
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line = match serde_json::from_str(&line) {
                Ok(parsed) => parsed,
                // A last line cut by a crash is dropped; anything else is corruption.
                Err(_) if line_is_last(&path, n) => break,
                Err(e) => {
                    return Err(SessionError::Corrupt {
                        path,
                        line: n + 1,
                        message: e.to_string(),
                    });
                }
            };
            match parsed {
                Line::Session { id: sid, .. } => id = Some(sid),
                Line::Message { message } => history.apply(Change::Push(message)),
                Line::Append { content } => history.apply(Change::Append(content)),
            }
        }
        let id = id.ok_or_else(|| SessionError::Corrupt {
            path: path.clone(),
            line: 1,
            message: "no session header".into(),
        })?;
        let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
        Ok((Self { id, path, file }, history))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one change of the history.
    pub fn record(&mut self, change: &Change) -> Result<(), SessionError> {
        match change {
            Change::Push(message) => self.write(&Line::Message {
                message: message.clone(),
            }),
            Change::Append(content) => self.write(&Line::Append {
                content: content.clone(),
            }),
        }
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

fn line_is_last(path: &Path, index: usize) -> bool {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count() == index + 1)
        .unwrap_or(false)
}

fn sessions(dir: &Path) -> Result<Vec<PathBuf>, SessionError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SessionError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect())
}

fn latest(dir: &Path) -> Result<PathBuf, SessionError> {
    sessions(dir)?
        .into_iter()
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p)
        .ok_or(SessionError::NoneYet)
}

fn find(dir: &Path, id: &str) -> Result<PathBuf, SessionError> {
    let matches: Vec<PathBuf> = sessions(dir)?
        .into_iter()
        .filter(|p| {
            p.file_stem()
                .is_some_and(|s| s.to_string_lossy().starts_with(id))
        })
        .collect();
    match matches.as_slice() {
        [one] if !id.is_empty() => Ok(one.clone()),
        _ => Err(SessionError::NotFound(id.to_string())),
    }
}
