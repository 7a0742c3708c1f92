//! `corral run PROMPT`.

use std::process::ExitCode;

use corral::Agent;

use super::args::RunArgs;
use super::render::Display;

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    super::signals::contain();
    // Read first: a prompt that is not there changes nothing (no session, no .corral/).
    let prompt = match super::args::read_prompt(&args.prompt) {
        Ok(prompt) => prompt,
        Err(e) => {
            eprintln!("corral: {e}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let display = Display::for_run(args.json, args.agent.quiet);
    let (workspace, mut policy) = match super::trust::open(
        &super::args::workspace_root(
            args.agent.workspace.as_deref(),
            args.agent.quiet || args.json,
        ),
        false,
    ) {
        Ok(opened) => opened,
        Err(code) => return Ok(code),
    };
    let provider = match args.agent.provider(&policy) {
        Ok(p) => p,
        Err(e) => return Ok(super::fail(&e.into())),
    };
    let mut config = args.agent.config(&policy);
    config.wait_for_background = !args.no_wait;
    if args.allow_escalation {
        config.shell.escalation = corral::config::Escalation::Allow;
    }
    config.wait_timeout = std::time::Duration::from_secs(args.wait_timeout);
    let mut builder = Agent::builder(workspace.root());
    let plugin_dirs = &args.agent.plugin_dirs;
    for tool in super::plugins::tools(&workspace, &mut policy, plugin_dirs, &display, false).await {
        builder = builder.tool(tool);
    }
    let built = builder
        .config(config)
        .provider(provider)
        .session(args.agent.session())
        .on_event({
            let display = display.clone();
            move |event| display.show(event)
        })
        .build();
    let mut agent = match built {
        Ok(agent) => agent,
        Err(e) => return Ok(super::fail(&e)),
    };

    let result = tokio::select! {
        result = agent.prompt(&prompt) => result,
        signal = super::signals::interrupted() => {
            // Everything stops before anything is printed: after SIGHUP the terminal is gone.
            let killed = corral::process::kill_all_groups();
            agent.shutdown();
            display.finish();
            super::signals::last_words(&format!(
                "corral: {signal}; stopped {killed} running command(s); session {} kept",
                agent.session_id()
            ));
            return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
        }
    };
    agent.shutdown();
    corral::process::kill_all_groups();
    display.finish();
    match result {
        Ok(outcome) => {
            display.answer(&outcome.text);
            if !args.agent.quiet && !args.json {
                eprintln!("session {}", agent.session_id());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            if args.json {
                let line = serde_json::json!({"type": "error", "message": error.to_string()});
                println!("{line}");
            }
            // What went wrong first, then where the work is.
            let code = super::fail(&error);
            eprintln!(
                "corral: session {} kept; `corral run --continue` resumes it",
                agent.session_id()
            );
            Ok(code)
        }
    }
}
