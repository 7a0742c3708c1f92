//! The `corral` command: parses arguments, builds an agent through the library, renders its
//! events. Everything it does, a Rust program can do through the `corral` crate.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Started as the shell sandbox's helper, this confines itself and becomes the command.
    corral::sandbox::exec_if_helper();
    let args = cli::Cli::parse();
    cli::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("corral: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let code = match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("corral: {error:#}");
            ExitCode::from(1)
        }
    };
    // A plugin call abandoned at its deadline may still be blocked in a host call: do not wait
    // for it (everything corral started has been stopped by now).
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}
