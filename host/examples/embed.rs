//! Embedding corral in a Rust program: an agent in a workspace, fed one prompt, observed
//! through its events.
//!
//! ```text
//! ANTHROPIC_API_KEY=... cargo run -p corral --example embed -- <workspace> "<prompt>"
//! ```

use corral::{Agent, AgentConfig, Event};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First, before any thread starts: when corral runs this program as its shell sandbox's
    // helper, this confines the process and becomes the command.
    corral::sandbox::exec_if_helper();
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let workspace = args.next().unwrap_or_else(|| ".".into());
    let prompt = args
        .next()
        .unwrap_or_else(|| "What is in this folder?".into());

    let mut agent = Agent::builder(workspace)
        .config(AgentConfig {
            max_turns: 10,
            ..AgentConfig::default()
        })
        .on_event(|event| match event {
            Event::ToolCallStarted { name, input, .. } => eprintln!("tool {name} {input}"),
            Event::ToolCallFinished {
                name,
                is_error,
                duration_ms,
                ..
            } => {
                eprintln!("tool {name} done (error: {is_error}, {duration_ms} ms)")
            }
            _ => {}
        })
        .build()?;

    let outcome = agent.prompt(&prompt).await?;
    println!("{}", outcome.text);
    eprintln!(
        "{} turns, {} tokens in, {} out; session {}",
        outcome.turns,
        outcome.usage.input_tokens,
        outcome.usage.output_tokens,
        agent.session_id()
    );
    Ok(())
}
