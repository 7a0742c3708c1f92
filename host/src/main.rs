//! The `corral` command: parses arguments, builds an agent through the library, renders its
//! events. Everything it does, a Rust program can do through the `corral` crate.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing();
    match cli::run(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("corral: {error:#}");
            ExitCode::from(1)
        }
    }
}
