//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
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
    /// List the plugins found: name, version, file, tools, capabilities asked for, load errors.
    Plugins(PluginsArgs),
}

/// Settings shared by every command that runs an agent.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The workspace folder the agent works in.
    #[arg(long, short = 'w', default_value = ".")]
    pub workspace: PathBuf,
    /// The model to use.
    #[arg(long, env = "CORRAL_MODEL", default_value = corral::config::DEFAULT_MODEL)]
    pub model: String,
    /// Model calls allowed for one prompt.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_turns: u32,
    /// `max_tokens` of each model call.
    #[arg(long, default_value_t = 8192)]
    pub max_tokens: u32,
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
}

#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// The workspace whose plugin folder is scanned.
    #[arg(long, short = 'w', default_value = ".")]
    pub workspace: PathBuf,
    /// More plugin folders. Repeatable.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Print the event stream as JSON lines on stdout instead of the final text.
    #[arg(long)]
    pub json: bool,
    /// Exit as soon as the model ends its turn, killing background tasks still running,
    /// instead of waiting for them and giving the model their results.
    #[arg(long)]
    pub no_wait: bool,
    /// The longest to wait for background tasks, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub wait_timeout: u64,
    /// The prompt.
    #[arg(required = true)]
    pub prompt: Vec<String>,
}

impl AgentArgs {
    pub fn config(&self) -> AgentConfig {
        AgentConfig {
            model: self.model.clone(),
            max_turns: self.max_turns,
            max_tokens: self.max_tokens,
            retry: corral::llm::RetryPolicy {
                max_retries: self.max_retries,
                ..Default::default()
            },
            ..AgentConfig::default()
        }
    }

    pub fn session(&self) -> SessionChoice {
        match (&self.resume, self.continue_latest) {
            (Some(id), _) => SessionChoice::Id(id.clone()),
            (None, true) => SessionChoice::Latest,
            (None, false) => SessionChoice::New,
        }
    }

    /// The Anthropic provider from the environment and these flags.
    pub fn provider(
        &self,
    ) -> Result<std::sync::Arc<dyn corral::llm::Provider>, corral::llm::LlmError> {
        let mut config = corral::llm::AnthropicConfig::from_env();
        config.stream = !self.no_stream;
        Ok(std::sync::Arc::new(corral::llm::Anthropic::new(config)?))
    }
}
