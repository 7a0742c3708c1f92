//! `corral chat`: a line a turn, the history kept, `/exit` to leave.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use corral::Agent;

use super::args::AgentArgs;
use super::render::{self, Mode};

pub async fn chat(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let provider = match args.provider() {
        Ok(p) => p,
        Err(e) => return Ok(super::fail(&e.into())),
    };
    let built = Agent::builder(&args.workspace)
        .config(args.config())
        .provider(provider)
        .session(args.session())
        .on_event(|event| render::render(Mode::Streaming, event))
        .build();
    let mut agent = match built {
        Ok(agent) => agent,
        Err(e) => return Ok(super::fail(&e)),
    };
    eprintln!(
        "corral chat in {} (session {}); /exit to leave",
        agent.workspace().root().display(),
        agent.session_id()
    );
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let Some(line) = lines.recv().await else {
            break;
        };
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            _ => {}
        }
        match agent.prompt(line).await {
            Ok(_) => println!(),
            Err(error) => eprintln!("corral: {error}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
