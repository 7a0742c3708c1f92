//! The merged settings of one workspace: the user's file under the workspace's, checked, with
//! every grant parsed. Precedence (lowest first): user file, workspace file, environment,
//! flags; the last two are applied by the caller.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::file::{self, EnvSetting, PluginSection, PolicyError, SettingsFile, Source};
use super::grants::Limits;
use super::patterns::{self, PathGrant};
use crate::background::MAX_TIMEOUT as MAX_BACKGROUND_TIMEOUT;
use crate::config::{AgentConfig, BASH_MAX_TIMEOUT, ShellConfig};
use crate::process::CommandEnv;
use crate::workspace::Workspace;

/// The file name of a workspace's settings.
pub const WORKSPACE_FILE: &str = "corral.toml";
/// The longest call deadline a workspace may give a plugin.
pub const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// The most memory a workspace may give a plugin.
pub const MAX_MEMORY_MB: u64 = 1024;

/// What one plugin is granted in this workspace, parsed.
#[derive(Debug, Clone, Default)]
pub struct PluginPolicy {
    pub read: Vec<PathGrant>,
    /// Folders only.
    pub write: Vec<PathGrant>,
    pub network: Vec<String>,
    pub env: Vec<String>,
    pub limits: Limits,
}

/// The agent settings a file may set; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSettings {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub base_url: Option<String>,
    pub max_turns: Option<u32>,
    pub max_tokens: Option<u32>,
}

/// The settings of one workspace.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The files read, user file first.
    pub files: Vec<PathBuf>,
    pub agent: AgentSettings,
    pub shell: ShellConfig,
    pub max_background: Option<usize>,
    pub background_timeout: Option<Duration>,
    /// Plugin folders named by the files (absolute).
    pub plugin_dirs: Vec<PathBuf>,
    pub disabled: Vec<String>,
    /// Limits of plugins the workspace says nothing particular about.
    pub default_limits: Limits,
    /// `[plugin.<name>]` sections.
    pub plugins: BTreeMap<String, PluginPolicy>,
}

/// The user's settings file: `$XDG_CONFIG_HOME/corral/config.toml` (or `~/.config/...`).
pub fn user_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("corral").join("config.toml"))
}

impl Policy {
    /// Reads the user's file (if given and present), then `<workspace>/corral.toml` (if
    /// present). Without either, the defaults: the shell on, plugins granted nothing. Any
    /// unknown key, wrong type, bad glob, bad host pattern, or path outside the workspace is an
    /// error naming the file, line and column.
    pub fn load(workspace: &Workspace, user: Option<&Path>) -> Result<Self, PolicyError> {
        let mut policy = Policy::default();
        if let Some(user) = user
            && let Some((file, source)) = file::read(user)?
        {
            if let Some((name, section)) = file.plugin.iter().next() {
                return Err(source.error(
                    section.span(),
                    format!("grants (`[plugin.{name}]`) belong in a workspace's {WORKSPACE_FILE}, not in the user's file"),
                ));
            }
            policy.apply(
                file,
                &source,
                workspace,
                user.parent().unwrap_or(Path::new(".")),
            )?;
        }
        let path = workspace.root().join(WORKSPACE_FILE);
        if let Some((file, source)) = file::read(&path)? {
            policy.apply(file, &source, workspace, workspace.root())?;
        }
        Ok(policy)
    }

    /// Layers one file over what is there.
    fn apply(
        &mut self,
        file: SettingsFile,
        source: &Source,
        workspace: &Workspace,
        base: &Path,
    ) -> Result<(), PolicyError> {
        self.files.push(source.path.clone());
        let agent = file.agent;
        if let Some(provider) = agent.provider {
            let name = provider.get_ref().as_str();
            if !matches!(name, "anthropic" | "openai") {
                return Err(source.error(
                    provider.span(),
                    format!("unknown provider `{name}`; use \"anthropic\" or \"openai\""),
                ));
            }
            self.agent.provider = Some(name.to_string());
        }
        override_with(&mut self.agent.model, agent.model);
        override_with(&mut self.agent.base_url, agent.base_url);
        override_with(&mut self.agent.max_turns, agent.max_turns);
        override_with(&mut self.agent.max_tokens, agent.max_tokens);

        let shell = file.shell;
        if let Some(enabled) = shell.enabled {
            self.shell.enabled = enabled;
        }
        // Every duration is bounded here, where the file's line and column are known, so none
        // can overflow a deadline later.
        if let Some(secs) = &shell.timeout_secs {
            let max = BASH_MAX_TIMEOUT.as_secs();
            self.shell.timeout =
                Duration::from_secs(bounded(secs, 1, max, "timeout_secs", source)?);
        }
        override_with(&mut self.max_background, shell.max_background);
        if let Some(secs) = &shell.background_timeout_secs {
            let max = MAX_BACKGROUND_TIMEOUT.as_secs();
            let secs = bounded(secs, 0, max, "background_timeout_secs", source)?;
            self.background_timeout = Some(Duration::from_secs(secs));
        }
        if let Some(env) = shell.env {
            self.shell.env = match env.get_ref() {
                EnvSetting::Keyword(k) if k == "inherit" => CommandEnv::Inherit,
                EnvSetting::Keyword(k) => {
                    return Err(source.error(
                        env.span(),
                        format!("`{k}`: env is \"inherit\" or a list of variable names"),
                    ));
                }
                EnvSetting::Names(names) => {
                    let checked: Result<Vec<String>, String> =
                        names.iter().map(|n| patterns::check_env_name(n)).collect();
                    CommandEnv::Only(checked.map_err(|e| source.error(env.span(), e))?)
                }
            };
        }

        for dir in &file.plugins.dirs {
            let path = base.join(dir.get_ref());
            self.plugin_dirs.push(path);
        }
        self.disabled.extend(file.plugins.disabled);
        if let Some(ms) = &file.plugins.timeout_ms {
            self.default_limits.timeout =
                Duration::from_millis(bounded(ms, 1, MAX_TIMEOUT_MS, "timeout_ms", source)?);
        }
        if let Some(mb) = &file.plugins.memory_mb {
            self.default_limits.memory = mib(bounded(mb, 1, MAX_MEMORY_MB, "memory_mb", source)?);
        }
        for (name, section) in file.plugin {
            let parsed = self.parse_plugin(section.get_ref(), source, workspace)?;
            self.plugins.insert(name, parsed);
        }
        Ok(())
    }

    fn parse_plugin(
        &self,
        section: &PluginSection,
        source: &Source,
        workspace: &Workspace,
    ) -> Result<PluginPolicy, PolicyError> {
        let paths =
            |list: &[Spanned<String>], write: bool| -> Result<Vec<PathGrant>, PolicyError> {
                list.iter()
                    .map(|raw| {
                        let grant = patterns::parse_path(raw.get_ref(), workspace.root())
                            .map_err(|e| source.error(raw.span(), e))?;
                        // The existing part must not lead outside through a symlink.
                        if !grant.base().is_empty() {
                            workspace
                                .resolve(grant.base())
                                .map_err(|e| source.error(raw.span(), e.to_string()))?;
                        }
                        if write && !matches!(grant, PathGrant::Folder { .. }) {
                            return Err(source.error(
                                raw.span(),
                                format!(
                                    "`{}`: write grants are folders, like \"out/\"",
                                    raw.get_ref()
                                ),
                            ));
                        }
                        Ok(grant)
                    })
                    .collect()
            };
        let mut limits = self.default_limits;
        if let Some(ms) = &section.timeout_ms {
            limits.timeout =
                Duration::from_millis(bounded(ms, 1, MAX_TIMEOUT_MS, "timeout_ms", source)?);
        }
        if let Some(mb) = &section.memory_mb {
            limits.memory = mib(bounded(mb, 1, MAX_MEMORY_MB, "memory_mb", source)?);
        }
        Ok(PluginPolicy {
            read: paths(&section.read, false)?,
            write: paths(&section.write, true)?,
            network: section
                .network
                .iter()
                .map(|h| patterns::check_host(h.get_ref()).map_err(|e| source.error(h.span(), e)))
                .collect::<Result<_, _>>()?,
            env: section
                .env
                .iter()
                .map(|n| {
                    patterns::check_env_name(n.get_ref()).map_err(|e| source.error(n.span(), e))
                })
                .collect::<Result<_, _>>()?,
            limits,
        })
    }

    /// Applies the files' settings onto `config` (whose values came from the defaults).
    /// Environment and flags are applied after this, by the caller.
    pub fn apply_to(&self, config: &mut AgentConfig) {
        if let Some(model) = &self.agent.model {
            config.model = model.clone();
        }
        if let Some(n) = self.agent.max_turns {
            config.max_turns = n;
        }
        if let Some(n) = self.agent.max_tokens {
            config.max_tokens = n;
        }
        config.shell = self.shell.clone();
        if let Some(n) = self.max_background {
            config.background.max_tasks = n;
        }
        if let Some(t) = self.background_timeout {
            config.background.default_timeout = t;
        }
    }

    /// The policy of plugin `name`: its section, or nothing granted with the default limits.
    pub fn plugin(&self, name: &str) -> PluginPolicy {
        self.plugins
            .get(name)
            .cloned()
            .unwrap_or_else(|| PluginPolicy {
                limits: self.default_limits,
                ..Default::default()
            })
    }
}

fn override_with<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

fn mib(mb: u64) -> usize {
    usize::try_from(mb * 1024 * 1024).unwrap_or(usize::MAX)
}

fn bounded(
    value: &Spanned<u64>,
    min: u64,
    max: u64,
    key: &str,
    source: &Source,
) -> Result<u64, PolicyError> {
    let v = *value.get_ref();
    if v < min || v > max {
        return Err(source.error(
            value.span(),
            format!("{key} must be from {min} to {max}, not {v}"),
        ));
    }
    Ok(v)
}
