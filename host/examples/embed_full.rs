//! Embedding corral with what the `corral` binary itself uses: a provider chosen by the program,
//! a tool of its own, the workspace's plugins under its `corral.toml`, background tasks, and
//! the event stream. `docs/embedding.md` walks through it.
//!
//! ```text
//! ANTHROPIC_API_KEY=... cargo run -p corral --example embed_full -- <workspace> "<prompt>"
//! OPENAI_BASE_URL=http://127.0.0.1:8080/v1 CORRAL_PROVIDER=openai CORRAL_MODEL=qwen2.5-coder \
//!     cargo run -p corral --example embed_full -- <workspace> "<prompt>"
//! ```

use std::sync::{Arc, Mutex};

use corral::llm::{
    Anthropic, AnthropicConfig, BoxFuture, OpenAi, OpenAiConfig, Provider, ToolSpec,
};
use corral::plugins::{self, Runtime, WorkspacePlugins};
use corral::policy::{self, Policy};
use corral::tools::{Tool, ToolError};
use corral::{Agent, AgentConfig, Event, Workspace};
use serde_json::{Value, json};

/// A tool of the program's own: the model hands it notes, the program keeps them.
struct TakeNote {
    spec: ToolSpec,
    notes: Arc<Mutex<Vec<String>>>,
}

impl TakeNote {
    fn new(notes: Arc<Mutex<Vec<String>>>) -> Self {
        let spec = ToolSpec {
            name: "take_note".into(),
            description: "Hand a short note to the program that runs you.".into(),
            input_schema: json!({
                "type": "object",
                "properties": { "text": { "type": "string", "description": "The note." } },
                "required": ["text"],
            }),
        };
        Self { spec, notes }
    }
}

impl Tool for TakeNote {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    // `input` already matches the schema; an error goes back to the model, which may retry.
    fn call(&self, input: Value) -> BoxFuture<'_, Result<String, ToolError>> {
        Box::pin(async move {
            let text = input["text"].as_str().unwrap_or_default().trim();
            if text.is_empty() {
                return Err(ToolError::InvalidInput("the note is empty".into()));
            }
            let mut notes = self
                .notes
                .lock()
                .map_err(|_| ToolError::Failed("poisoned".into()))?;
            notes.push(text.to_string());
            Ok(format!("noted ({} so far)", notes.len()))
        })
    }
}

/// The provider: OpenAI Chat Completions when `CORRAL_PROVIDER=openai`, else Anthropic; each
/// reads its key and base URL from the environment, as the official SDKs do.
fn provider() -> Result<Arc<dyn Provider>, corral::llm::LlmError> {
    Ok(match std::env::var("CORRAL_PROVIDER").as_deref() {
        Ok("openai") => Arc::new(OpenAi::new(OpenAiConfig::from_env())?),
        _ => Arc::new(Anthropic::new(AnthropicConfig::from_env())?),
    })
}

/// The tools of the workspace's plugins (`.corral/plugins/*.wasm`), each with the rights its
/// `corral.toml` grants: what the plugin asked for *and* the workspace granted.
async fn plugin_tools(
    workspace: &Workspace,
    policy: &Policy,
) -> Result<Vec<Arc<dyn Tool>>, Box<dyn std::error::Error>> {
    let runtime = Runtime::with_max_concurrent(
        policy
            .max_concurrent
            .unwrap_or(plugins::DEFAULT_MAX_CONCURRENT),
    )?;
    let log: plugins::LogSink =
        Arc::new(|plugin, level, message| eprintln!("[{plugin} {level:?}] {message}"));
    let found = WorkspacePlugins::load(&runtime, workspace, policy, &[], log).await;
    for error in &found.errors {
        eprintln!("{error}");
    }
    for plugin in &found.plugins {
        let rights = WorkspacePlugins::rights(plugin, policy);
        for refused in &rights.asked_not_granted {
            eprintln!("plugin {}: {refused} is not granted", plugin.manifest.name);
        }
    }
    let (tools, problems) = found.tools(workspace, policy);
    for problem in problems {
        eprintln!("{problem}");
    }
    Ok(tools)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First, before any thread starts: when corral runs this program as its shell sandbox's
    // helper, this confines the process and becomes the command.
    corral::sandbox::exec_if_helper();
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".into());
    let prompt = args
        .next()
        .unwrap_or_else(|| "What is in this folder?".into());

    // The workspace and its settings: ~/.config/corral/config.toml, then corral.toml.
    let workspace = Workspace::open(&dir)?;
    let policy = Policy::load(&workspace, policy::user_file().as_deref())?;
    let mut config = AgentConfig {
        max_turns: 20,
        ..AgentConfig::default()
    };
    policy.apply_to(&mut config);
    if let Ok(model) = std::env::var("CORRAL_MODEL") {
        config.model = model;
    }

    let notes = Arc::new(Mutex::new(Vec::new()));
    let mut builder = Agent::builder(workspace.root())
        .config(config)
        .provider(provider()?)
        .tool(Arc::new(TakeNote::new(notes.clone())));
    for tool in plugin_tools(&workspace, &policy).await? {
        builder = builder.tool(tool);
    }
    let mut agent = builder
        .on_event(|event| match event {
            Event::ToolCallStarted { name, input, .. } => eprintln!("> {name} {input}"),
            Event::ToolCallFinished {
                name,
                is_error,
                duration_ms,
                ..
            } => eprintln!(
                "< {name} {} ({duration_ms} ms)",
                if *is_error { "error" } else { "ok" }
            ),
            Event::BackgroundFinished {
                task_id, status, ..
            } => {
                eprintln!("background {task_id}: {status}")
            }
            _ => {}
        })
        .build()?;

    let outcome = agent.prompt(&prompt).await;
    // The background manager: what the model started, and how it ended.
    if let Some(background) = agent.background() {
        for task in background.tasks() {
            println!("task {}: {} ({})", task.id, task.command, task.status());
        }
    }
    // Ends every background task still running, and their process groups.
    agent.shutdown();
    let outcome = outcome?;
    println!("{}", outcome.text);
    for note in notes.lock().map_err(|_| "poisoned")?.iter() {
        println!("note: {note}");
    }
    eprintln!(
        "{} turns, {} tokens out; session {}",
        outcome.turns,
        outcome.usage.output_tokens,
        agent.session_id()
    );
    Ok(())
}
