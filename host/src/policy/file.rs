//! The settings files: `corral.toml` at the workspace root, and the user's
//! `~/.config/corral/config.toml` under it. Their shape, and reading them with errors that
//! name the file, line and column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// A settings file that cannot be used. Fatal before any model is called: exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
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
    pub max_turns: Option<u32>,
    pub max_tokens: Option<u32>,
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

/// Reads and parses `path`; `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<(SettingsFile, Source)>, PolicyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PolicyError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                message: e.to_string(),
            });
        }
    };
    let source = Source {
        path: path.to_path_buf(),
        text,
    };
    match toml::from_str::<SettingsFile>(&source.text) {
        Ok(file) => Ok(Some((file, source))),
        Err(e) => {
            let message = e.message().trim().to_string();
            Err(source.error(e.span().unwrap_or(0..0), message))
        }
    }
}
