//! Settings of an agent: the model, the loop's limits, the shell.
//!
//! Built by the CLI from flags and the environment, or by an embedding program directly. Every
//! field has a default that works for a person at a terminal.

use std::time::Duration;

use crate::background::BackgroundConfig;
use crate::llm::{Effort, RetryPolicy, Thinking};
use crate::process::CommandEnv;
use crate::sandbox::{SandboxSettings, rules::CommandRules};

/// The model used when neither `--model` nor `CORRAL_MODEL` names one.
pub use crate::llm::models::DEFAULT_MODEL;

/// How the agent loop runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub model: String,
    /// `max_tokens` of each model call; `None`, the model's default, and never more than a
    /// known model takes ([`crate::llm::models::max_tokens`]).
    pub max_tokens: Option<u32>,
    /// Whether the model may think ([`Thinking::Adaptive`] by default), sent as the model takes
    /// it or not at all.
    pub thinking: Thinking,
    /// `None`: the model's own default effort.
    pub effort: Option<Effort>,
    /// Prompt caching (on by default): breakpoints on the stable prefix and the newest turn
    /// ([`crate::llm::cache`]).
    pub cache: bool,
    /// The model's context window in tokens (`[agent] context_window`); `None`, the models
    /// table's, or [`crate::llm::models::UNKNOWN_CONTEXT_WINDOW`] for a model it does not know.
    /// The conversation is compacted when a request would pass
    /// [`crate::agent::compaction::THRESHOLD_PERCENT`] of it.
    pub context_window: Option<u32>,
    /// Model calls allowed for one prompt before the run stops with [`crate::AgentError::MaxTurns`].
    pub max_turns: u32,
    /// Extra instructions appended to corral's system prompt (`[agent] system`, `--system`).
    pub instructions: Option<String>,
    /// Whether the project's `AGENTS.md` (or `CLAUDE.md`) files, at the workspace root and
    /// above, go into the system prompt ([`crate::agent::instructions`]). On by default.
    pub project_instructions: bool,
    pub retry: RetryPolicy,
    pub shell: ShellConfig,
    /// The background tasks (offered when the shell is enabled).
    pub background: BackgroundConfig,
    /// When the model ends its turn while background tasks it started (with a timeout) are still
    /// running, wait for the next one to end and call the model again with its result, instead
    /// of returning. `corral run` does; `corral chat` does not (results go into the next turn).
    pub wait_for_background: bool,
    /// The longest one prompt waits for background tasks in all (60 min).
    pub wait_timeout: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.to_string(),
            max_tokens: None,
            thinking: Thinking::default(),
            effort: None,
            cache: true,
            context_window: None,
            max_turns: 50,
            instructions: None,
            project_instructions: true,
            retry: RetryPolicy::default(),
            shell: ShellConfig::default(),
            background: BackgroundConfig::default(),
            wait_for_background: true,
            wait_timeout: Duration::from_secs(60 * 60),
        }
    }
}

/// The longest timeout `bash` may be given, by the model or by `[shell] timeout_secs` (600 s).
pub const BASH_MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// The built-in shell tools: `bash` and the background tools.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// Whether the shell tools are offered to the model at all.
    pub enabled: bool,
    /// `bash`'s timeout when the model gives none (120 s).
    pub timeout: Duration,
    /// The longest timeout the model may ask `bash` for (600 s).
    pub max_timeout: Duration,
    /// The environment commands see.
    pub env: CommandEnv,
    /// Secret-looking variables kept in an inherited environment (`[shell] env_keep`).
    pub env_keep: Vec<String>,
    /// The kernel sandbox commands run in ([`crate::sandbox`]).
    pub sandbox: SandboxSettings,
    /// `[shell] allow` and `deny`: commands refused before they run.
    pub rules: CommandRules,
    /// What a command the sandbox blocked may do: run again outside it, after asking.
    pub escalation: Escalation,
}

/// Whether a command the sandbox blocked may run again outside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Escalation {
    /// Never: the model is told the sandbox blocked it (`corral run`'s default).
    #[default]
    Refuse,
    /// Ask the program's [`crate::AgentBuilder::on_escalation`] handler (`corral chat`).
    Ask,
    /// Always (`corral run --allow-escalation`).
    Allow,
}

impl Default for ShellConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout: Duration::from_secs(120),
            max_timeout: BASH_MAX_TIMEOUT,
            env: CommandEnv::Inherit,
            env_keep: Vec::new(),
            sandbox: SandboxSettings::default(),
            rules: CommandRules::default(),
            escalation: Escalation::default(),
        }
    }
}
