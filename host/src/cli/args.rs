//! Command-line arguments.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use corral::{AgentConfig, SessionChoice};

/// corral: an LLM agent that keeps thinking while slow work runs, with WebAssembly tool plugins.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one prompt to the end and print the model's final answer.
    Run(RunArgs),
    /// An interactive session: one line, one turn; `/exit` to leave.
    Chat(AgentArgs),
    /// List the plugins found: name, version, file, tools, capabilities asked for (granted or
    /// not), load errors.
    Plugins(PluginsArgs),
    /// What corral.toml grants: `show` the rights of every plugin and the shell, `check` the file,
    /// `approve` the plugin components that get grants.
    Policy(PolicyArgs),
    /// Trust this workspace's corral.toml as it is now (its sha256 is recorded in your config
    /// folder); untrusted, it may only narrow your settings. A later change to the file makes it
    /// untrusted again.
    Trust(TrustArgs),
    /// The sessions of the workspace, newest first: id, start, turns, tokens, last prompt.
    /// `--resume ID` (any unique prefix) continues one.
    Sessions(SessionsArgs),
    /// Writing plugins: `new` creates a plugin crate that builds and loads as it is.
    Plugin(PluginArgs),
}

/// Settings shared by every command that runs an agent.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The workspace folder the agent works in [default: the project found from the current
    /// folder: the nearest one above with corral.toml or .corral/, else the git root, else the
    /// current folder].
    #[arg(long, short = 'w', env = "CORRAL_WORKSPACE")]
    pub workspace: Option<PathBuf>,
    /// The wire protocol: the Anthropic Messages API (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL) or
    /// OpenAI Chat Completions, which local servers speak too (OPENAI_API_KEY, OPENAI_BASE_URL;
    /// a local server needs no key). The default model is an Anthropic one: with openai, give
    /// --model.
    /// [default: anthropic, or corral.toml's `agent.provider`]
    #[arg(long, env = "CORRAL_PROVIDER", value_enum)]
    pub provider: Option<ProviderKind>,
    /// The model to use [default: claude-opus-5, or corral.toml's `agent.model`].
    #[arg(long, env = "CORRAL_MODEL")]
    pub model: Option<String>,
    /// Model calls allowed for one prompt [default: 50].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_turns: Option<u32>,
    /// `max_tokens` of each model call, at most the model's output limit [default: 32000 for a
    /// model corral knows, 8192 for another].
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Whether the model may think before it answers; sent only to models that take it
    /// [default: adaptive, or corral.toml's `agent.thinking`].
    #[arg(long, value_parser = ["adaptive", "off"])]
    pub thinking: Option<String>,
    /// How much the model spends on an answer, thinking included; sent only to models that
    /// take it [default: the model's own (high), or corral.toml's `agent.effort`].
    #[arg(long, value_parser = ["low", "medium", "high", "max"])]
    pub effort: Option<String>,
    /// Do not mark the prompt for caching (corral.toml's `agent.cache = false`).
    #[arg(long)]
    pub no_cache: bool,
    /// Retries of a model call that failed with 429, 529, 5xx or a lost connection.
    #[arg(long, env = "CORRAL_MAX_RETRIES", default_value_t = 4)]
    pub max_retries: u32,
    /// Ask for whole answers instead of streamed ones.
    #[arg(long)]
    pub no_stream: bool,
    /// A folder of plugins (`*.wasm`) to load, besides `<workspace>/.corral/plugins` and
    /// `~/.config/corral/plugins`. Repeatable.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Continue the latest session of the workspace.
    #[arg(long = "continue", short = 'c', conflicts_with = "resume")]
    pub continue_latest: bool,
    /// Continue the session with this id.
    #[arg(long, value_name = "ID")]
    pub resume: Option<String>,
    /// More instructions for the model, added to the system prompt after the project's
    /// AGENTS.md and `[agent] system`.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Leave the project's AGENTS.md / CLAUDE.md files out of the system prompt.
    #[arg(long)]
    pub no_project_instructions: bool,
    /// For scripts: only the final answer on stdout and errors on stderr; no tool lines, no
    /// status line, no token count.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The providers `--provider` chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// The Anthropic Messages API.
    Anthropic,
    /// OpenAI Chat Completions, as OpenAI, llama-server, vLLM, Ollama and others speak it.
    #[value(name = "openai")]
    OpenAi,
}

#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// The workspace whose plugin folder is scanned.
    #[arg(long, short = 'w', env = "CORRAL_WORKSPACE")]
    pub workspace: Option<PathBuf>,
    /// More plugin folders. Repeatable.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
    /// The workspace whose corral.toml is read.
    #[arg(long, short = 'w', env = "CORRAL_WORKSPACE", global = true)]
    pub workspace: Option<PathBuf>,
    /// More plugin folders. Repeatable.
    #[arg(long = "plugins", value_name = "DIR", global = true)]
    pub plugin_dirs: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Per plugin: what it asks for, what is granted, the effective rights; the shell settings.
    Show {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate the settings files and warn about grants nobody asked for.
    Check,
    /// Approve the plugin components that corral.toml grants something: the sha256 of each
    /// `.wasm` is recorded for this workspace in your config folder, and a plugin whose
    /// component differs from the approved one runs with no grants.
    Approve {
        /// The plugins to approve [default: every plugin whose grants are withheld].
        names: Vec<String>,
        /// Forget the approvals of the plugins named (of every plugin, without names).
        #[arg(long)]
        revoke: bool,
    },
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// The workspace whose sessions are listed.
    #[arg(long, short = 'w', env = "CORRAL_WORKSPACE")]
    pub workspace: Option<PathBuf>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The workspace whose corral.toml is trusted.
    #[arg(long, short = 'w', env = "CORRAL_WORKSPACE")]
    pub workspace: Option<PathBuf>,
    /// Stop trusting it.
    #[arg(long)]
    pub revoke: bool,
}

#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate: Cargo.toml, a tool written with the corral-plugin SDK, a test, a
    /// README. It builds as it is with `cargo build --target wasm32-wasip2 --release`.
    New {
        /// The plugin's name, also its tool's: lowercase letters, digits, `_` and `-`.
        name: String,
        /// The folder to create (it must not exist) [default: ./NAME].
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// The SDK's folder (`plugins/sdk` of corral's source) [default: the one of the source
        /// tree this corral was built from].
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Print the event stream as JSON lines on stdout instead of the final text.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Exit as soon as the model ends its turn, killing background tasks still running,
    /// instead of waiting for them and giving the model their results.
    #[arg(long)]
    pub no_wait: bool,
    /// When a command fails in the shell sandbox looking blocked by it (a read-only file, a
    /// refused connection), run it again outside the sandbox instead of telling the model.
    #[arg(long)]
    pub allow_escalation: bool,
    /// The longest to wait for background tasks, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub wait_timeout: u64,
    /// The prompt; `-` reads it from stdin.
    #[arg(required = true)]
    pub prompt: Vec<String>,
}

impl AgentArgs {
    /// The agent's settings: the defaults, then the settings files, then the environment and
    /// these flags.
    pub fn config(&self, policy: &corral::policy::Policy) -> AgentConfig {
        let mut config = AgentConfig::default();
        policy.apply_to(&mut config);
        if let Some(model) = &self.model {
            config.model = model.clone();
        }
        if let Some(n) = self.max_turns {
            config.max_turns = n;
        }
        if let Some(n) = self.max_tokens {
            config.max_tokens = Some(n);
        }
        // clap allowed only the values these parse.
        if let Some(thinking) = self.thinking.as_deref().and_then(|t| t.parse().ok()) {
            config.thinking = thinking;
        }
        if let Some(effort) = self.effort.as_deref().and_then(|e| e.parse().ok()) {
            config.effort = Some(effort);
        }
        if self.no_cache {
            config.cache = false;
        }
        config.retry.max_retries = self.max_retries;
        if let Some(system) = self.system.as_deref().filter(|s| !s.trim().is_empty()) {
            config.instructions = Some(match config.instructions.take() {
                Some(files) => format!("{files}\n\n{system}"),
                None => system.to_string(),
            });
        }
        if self.no_project_instructions {
            config.project_instructions = false;
        }
        config
    }

    pub fn session(&self) -> SessionChoice {
        match (&self.resume, self.continue_latest) {
            (Some(id), _) => SessionChoice::Id(id.clone()),
            (None, true) => SessionChoice::Latest,
            (None, false) => SessionChoice::New,
        }
    }

    /// The provider: `--provider` (or `CORRAL_PROVIDER`), else the settings files', else
    /// Anthropic. Its base URL: the provider's environment variable, else the settings files'
    /// `agent.base_url`, else the provider's default.
    pub fn provider(
        &self,
        policy: &corral::policy::Policy,
    ) -> Result<std::sync::Arc<dyn corral::llm::Provider>, corral::llm::LlmError> {
        use corral::llm::{Anthropic, AnthropicConfig, OpenAi, OpenAiConfig};
        let kind = self
            .provider
            .unwrap_or(match policy.agent.provider.as_deref() {
                Some("openai") => ProviderKind::OpenAi,
                _ => ProviderKind::Anthropic,
            });
        let file_url = |var: &str| {
            let from_env = std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
            policy.agent.base_url.clone().filter(|_| !from_env)
        };
        Ok(match kind {
            ProviderKind::Anthropic => {
                let mut config = AnthropicConfig::from_env();
                config.stream = !self.no_stream;
                if let Some(url) = file_url("ANTHROPIC_BASE_URL") {
                    config.base_url = url;
                }
                if let Some(missing) = config.missing_key() {
                    return Err(missing);
                }
                std::sync::Arc::new(Anthropic::new(config)?)
            }
            ProviderKind::OpenAi => {
                if self.model.is_none() && policy.agent.model.is_none() {
                    return Err(corral::llm::LlmError::Config(
                        "--provider openai needs a model: give --model NAME (the id the server \
                         serves, e.g. `gpt-5` or a local model's name), CORRAL_MODEL, or [agent] \
                         model"
                            .into(),
                    ));
                }
                let mut config = OpenAiConfig::from_env();
                config.stream = !self.no_stream;
                if let Some(url) = file_url("OPENAI_BASE_URL") {
                    config.base_url = url;
                }
                if let Some(missing) = config.missing_key() {
                    return Err(missing);
                }
                std::sync::Arc::new(OpenAi::new(config)?)
            }
        })
    }
}

/// The workspace a command works in: `--workspace` as given; else the project found from the
/// current folder ([`corral::workspace::discover`]), named on stderr (unless `quiet`) when it is
/// not the current folder itself.
pub fn workspace_root(given: Option<&Path>, quiet: bool) -> PathBuf {
    if let Some(given) = given {
        return given.to_path_buf();
    }
    let Ok(start) = std::env::current_dir() else {
        return PathBuf::from(".");
    };
    let (root, found) = corral::workspace::discover(&start);
    if root != start && !quiet {
        eprintln!(
            "corral: workspace {} ({})",
            root.display(),
            found.describe()
        );
    }
    root
}

/// The most `corral run -` reads from stdin (1 MiB).
pub const MAX_STDIN_PROMPT_BYTES: u64 = 1 << 20;

/// The prompt of `corral run`: its words joined, or stdin for `-`. An empty prompt (or one
/// past [`MAX_STDIN_PROMPT_BYTES`]) is an error to show the user.
pub fn read_prompt(words: &[String]) -> Result<String, String> {
    let prompt = if words == ["-"] {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_STDIN_PROMPT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading the prompt from stdin: {e}"))?;
        if bytes.len() as u64 > MAX_STDIN_PROMPT_BYTES {
            return Err("the prompt on stdin is over 1 MiB".into());
        }
        String::from_utf8(bytes).map_err(|_| "the prompt on stdin is not UTF-8".to_string())?
    } else {
        words.join(" ")
    };
    if prompt.trim().is_empty() {
        return Err("the prompt is empty".into());
    }
    Ok(prompt)
}
