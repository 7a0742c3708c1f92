//! The settings files: `corral.toml` at the workspace root, and the user's
//! `~/.config/corral/config.toml` under it. Their shape, and reading them (once, at most
//! [`MAX_SETTINGS_BYTES`] each) with errors that name the file, line and column.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::store::StoreError;
use super::trust::sha256_hex;
use crate::workspace::Workspace;

/// The largest settings file read; a bigger one is an error.
pub const MAX_SETTINGS_BYTES: u64 = 1024 * 1024;

/// A settings file (or the user's trust and approval records) that cannot be used. Fatal before
/// any model is called: exit code 2. `line` is 0 when the problem is not at a place in the
/// file (it cannot be read, it is too large).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location(.file, .line, .column))]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn location(file: &Path, line: &usize, column: &usize) -> String {
    if *line == 0 {
        format!("{}: ", file.display())
    } else {
        format!("{}:{line}:{column}: ", file.display())
    }
}

impl From<StoreError> for PolicyError {
    fn from(error: StoreError) -> Self {
        let file = match &error {
            StoreError::Io { path, .. }
            | StoreError::TooLarge { path }
            | StoreError::Malformed { path, .. }
            | StoreError::Busy { path }
            | StoreError::NotUtf8 { path } => path.clone(),
        };
        let shown = error.to_string();
        let prefix = format!("{}: ", file.display());
        PolicyError {
            message: shown.strip_prefix(&prefix).unwrap_or(&shown).to_string(),
            file,
            line: 0,
            column: 0,
        }
    }
}

/// A settings file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    #[serde(default)]
    pub agent: AgentSection,
    #[serde(default)]
    pub shell: ShellSection,
    #[serde(default)]
    pub plugins: PluginsSection,
    /// Grants per plugin: `[plugin.grep]`. Only in the workspace file.
    #[serde(default)]
    pub plugin: BTreeMap<String, Spanned<PluginSection>>,
}

/// `[agent]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// `anthropic` or `openai`.
    pub provider: Option<Spanned<String>>,
    pub model: Option<String>,
    /// The provider's base URL (instead of `ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL`).
    pub base_url: Option<String>,
    /// 1 or more.
    pub max_turns: Option<Spanned<u64>>,
    pub max_tokens: Option<u32>,
    /// More instructions for the model, added to the system prompt.
    pub system: Option<String>,
    /// `"adaptive"` or `"off"`.
    pub thinking: Option<Spanned<String>>,
    /// `"low"`, `"medium"`, `"high"` or `"max"`.
    pub effort: Option<Spanned<String>>,
    /// Prompt caching; `false` turns it off.
    pub cache: Option<bool>,
    /// The model's context window in tokens, 1024 or more.
    pub context_window: Option<Spanned<u64>>,
}

/// `[shell]`: the bash and background tools.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellSection {
    pub enabled: Option<bool>,
    /// bash's default timeout, 1 to 600 s.
    pub timeout_secs: Option<Spanned<u64>>,
    pub max_background: Option<usize>,
    /// A background task's default timeout, 0 (none) to 7 days.
    pub background_timeout_secs: Option<Spanned<u64>>,
    /// `"inherit"` or a list of variable names.
    pub env: Option<Spanned<EnvSetting>>,
    /// Secret-looking variables an inherited environment keeps.
    pub env_keep: Option<Spanned<Vec<String>>>,
    /// `"workspace"`, `"read-only"` or `"off"`.
    pub sandbox: Option<Spanned<String>>,
    /// More folders commands may write (absolute or `~/...`).
    pub writable: Option<Spanned<Vec<String>>>,
    /// Paths commands may not read (absolute or `~/...`); added to the defaults.
    pub hidden: Option<Spanned<Vec<String>>>,
    /// `false`, `true` or a list of host patterns.
    pub network: Option<Spanned<NetworkSetting>>,
    /// Command prefixes that may run (when given, only those).
    pub allow: Option<Spanned<Vec<String>>>,
    /// Command prefixes that never run.
    pub deny: Option<Spanned<Vec<String>>>,
}

/// `network = false`, `true` or `["crates.io", "*.npmjs.org"]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum NetworkSetting {
    Switch(bool),
    Hosts(Vec<String>),
}

/// `env = "inherit"` or `env = ["PATH", "HOME"]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EnvSetting {
    Keyword(String),
    Names(Vec<String>),
}

/// `[plugins]`: where plugins come from and their default limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsSection {
    /// More plugin folders, relative to the file's folder.
    #[serde(default)]
    pub dirs: Vec<Spanned<String>>,
    /// Plugins not to load, by name.
    #[serde(default)]
    pub disabled: Vec<String>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub memory_mb: Option<Spanned<u64>>,
    /// Plugin calls in flight at once (each holds a store of up to its memory).
    pub max_concurrent: Option<Spanned<u64>>,
}

/// `[plugin.<name>]`: what one plugin is granted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// Workspace paths, folders or globs, the plugin may read.
    #[serde(default)]
    pub read: Vec<Spanned<String>>,
    /// Workspace folders the plugin may write (and read).
    #[serde(default)]
    pub write: Vec<Spanned<String>>,
    /// Hosts it may reach: `host`, `host:port`, `*.domain[:port]`.
    #[serde(default)]
    pub network: Vec<Spanned<String>>,
    /// Environment variables it may read, with corral's values.
    #[serde(default)]
    pub env: Vec<Spanned<String>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub memory_mb: Option<Spanned<u64>>,
}

/// The text of one file, for turning spans into line and column.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    text: String,
    /// The sha256 of the bytes read (hex): what trusting the file records.
    pub sha256: String,
}

impl Source {
    /// The error at byte range `span` of this file.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        PolicyError {
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Reads and parses `path`; `Ok(None)` when it does not exist. Reads at most
/// [`MAX_SETTINGS_BYTES`].
pub fn read(path: &Path) -> Result<Option<(SettingsFile, Source)>, PolicyError> {
    let fail = |message: String| PolicyError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_SETTINGS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_SETTINGS_BYTES {
        return Err(fail(format!(
            "larger than {MAX_SETTINGS_BYTES} bytes; a settings file is not that big"
        )));
    }
    let sha256 = sha256_hex(&bytes);
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
    let source = Source {
        path: path.to_path_buf(),
        text,
        sha256,
    };
    if let Some(error) = control_character(&source) {
        return Err(error);
    }
    match toml::from_str::<SettingsFile>(&source.text) {
        Ok(file) => Ok(Some((file, source))),
        Err(e) => {
            let message = e.message().trim().to_string();
            Err(source.error(e.span().unwrap_or(0..0), message))
        }
    }
}

/// Whether a settings file may not hold `c` in a key or a string: a control character other
/// than newline, tab and carriage return (`\u001b`, `\b`, C1 codes). Keys and values reach the
/// terminal (the trust warning, `corral policy show`), where an escape sequence from a cloned
/// repository's file could rewrite what the user reads; no setting needs one.
fn forbidden(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\t' | '\r')
}

/// The error for the first key or string of `source` that holds a [`forbidden`] character,
/// at the escape that wrote it (TOML allows none raw); `None` when there is none, or when the
/// text is not TOML (the parse then names its error).
fn control_character(source: &Source) -> Option<PolicyError> {
    let table: toml::Table = toml::from_str(&source.text).ok()?;
    let key = holding_control(&toml::Value::Table(table), &mut Vec::new())?;
    let at = control_escape(&source.text).unwrap_or(0);
    Some(source.error(
        at..at,
        format!(
            "`{key}` holds a control character (a terminal escape sequence?); no setting needs one"
        ),
    ))
}

/// The dotted key (control characters shown escaped) of the first key or string in `value`
/// that holds a [`forbidden`] character.
fn holding_control(value: &toml::Value, path: &mut Vec<String>) -> Option<String> {
    let shown = |path: &[String]| {
        path.iter()
            .map(|k| k.escape_debug().to_string())
            .collect::<Vec<_>>()
            .join(".")
    };
    match value {
        toml::Value::String(text) if text.chars().any(forbidden) => Some(shown(path)),
        toml::Value::Array(items) => items.iter().find_map(|v| holding_control(v, path)),
        toml::Value::Table(table) => table.iter().find_map(|(key, v)| {
            path.push(key.clone());
            let found = match key.chars().any(forbidden) {
                true => Some(shown(path)),
                false => holding_control(v, path),
            };
            path.pop();
            found
        }),
        _ => None,
    }
}

/// The byte offset of the first escape in `text` (`\u....`, `\U........`, `\x..`, `\b`, `\f`,
/// `\e`) that writes a [`forbidden`] character.
fn control_escape(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let hex = |from: usize, len: usize| {
        text.get(from..from + len)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32)
    };
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        let written = match bytes[i + 1] {
            b'u' => hex(i + 2, 4),
            b'U' => hex(i + 2, 8),
            b'x' => hex(i + 2, 2),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'e' => Some('\u{1b}'),
            _ => None,
        };
        if written.is_some_and(forbidden) {
            return Some(i);
        }
        i += 2;
    }
    None
}

/// The settings files of one workspace, read once: the user's file and the workspace's
/// `corral.toml`. Their bytes, read here, are what is parsed, hashed and trusted, so the file
/// trusted is the file applied, and a change made later (during the run) never takes effect.
#[derive(Debug, Clone, Default)]
pub struct SettingsFiles {
    pub(super) user: Option<(SettingsFile, Source)>,
    pub(super) workspace: Option<(SettingsFile, Source)>,
}

impl SettingsFiles {
    /// Reads the user's file (if given and present), then `<workspace>/corral.toml` (if
    /// present). A file that is not valid TOML of the right shape is an error naming its line
    /// and column.
    pub fn read(workspace: &Workspace, user: Option<&Path>) -> Result<Self, PolicyError> {
        let user = match user {
            Some(path) => read(path)?,
            None => None,
        };
        let workspace = read(&workspace.root().join(super::WORKSPACE_FILE))?;
        Ok(Self { user, workspace })
    }

    /// The workspace's `corral.toml`, when there is one.
    pub fn workspace_file(&self) -> Option<&Path> {
        self.workspace.as_ref().map(|(_, s)| s.path.as_path())
    }

    /// The sha256 of the workspace file's bytes, when there is one.
    pub fn workspace_sha256(&self) -> Option<&str> {
        self.workspace.as_ref().map(|(_, s)| s.sha256.as_str())
    }
}
