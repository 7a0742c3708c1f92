//! The command line: arguments, commands, and how events are shown.

mod args;
mod chat;
mod editor;
mod keys;
mod plugins;
mod policy;
mod render;
mod run;
mod scaffold;
mod sessions;
mod signals;
mod slash;
mod term;
mod trust;

use std::process::ExitCode;

pub use args::Cli;
use args::Command;

/// Exit code of a run that failed (API error, max turns).
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// `RUST_LOG` turns on tracing to stderr; without it, only warnings from corral.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Chat(args) => chat::chat(args).await,
        Command::Plugins(args) => plugins::list(args).await,
        Command::Policy(args) => policy::policy(args).await,
        Command::Trust(args) => Ok(trust::trust(args)),
        Command::Sessions(args) => Ok(sessions::list(args)),
        Command::Plugin(args) => match args.command {
            args::PluginCommand::New { name, dir, sdk } => {
                Ok(scaffold::new_plugin(&name, dir.as_deref(), sdk.as_deref()))
            }
        },
    }
}

/// Maps an agent error to the process's exit code, printing it.
pub fn fail(error: &corral::AgentError) -> ExitCode {
    eprintln!("corral: {error}");
    if error.is_usage() {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}
