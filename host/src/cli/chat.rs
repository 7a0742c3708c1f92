//! `corral chat`: a line a turn, the history kept, `/exit` to leave. The lines come from
//! [`super::editor`]: a line editor at a terminal, plain lines from a pipe. Background tasks keep
//! running between turns: a one-line notice shows when one ends, and its result goes to the
//! model with the next line. `/tasks` lists them, `/kill <id>` stops one.

use std::process::ExitCode;

use corral::Agent;
use corral::background::format_runtime;

use super::args::AgentArgs;
use super::editor::{Input, Read};
use super::render::Display;
use super::slash::Slash;

pub async fn chat(args: AgentArgs) -> anyhow::Result<ExitCode> {
    super::signals::contain();
    // At a terminal, an untrusted corral.toml that would grant or redirect something, and a
    // plugin whose grants await approval, are each asked about once.
    let interactive = super::trust::interactive();
    let (workspace, mut policy) = match super::trust::open(
        &super::args::workspace_root(args.workspace.as_deref(), args.quiet),
        interactive,
    ) {
        Ok(opened) => opened,
        Err(code) => return Ok(code),
    };
    let provider = match args.provider(&policy) {
        Ok(p) => p,
        Err(e) => return Ok(super::fail(&e.into())),
    };
    let mut config = args.config(&policy);
    config.wait_for_background = false;
    if interactive {
        config.shell.escalation = corral::config::Escalation::Ask;
    }
    let display = Display::for_chat(args.quiet);
    // One reader of stdin: the prompt loop between turns, the escalation question during one.
    let input = std::sync::Arc::new(Input::start(&display));
    let mut builder = Agent::builder(workspace.root());
    for tool in super::plugins::tools(
        &workspace,
        &mut policy,
        &args.plugin_dirs,
        &display,
        interactive,
    )
    .await
    {
        builder = builder.tool(tool);
    }
    let built = builder
        .config(config)
        .provider(provider)
        .session(args.session())
        .on_escalation({
            let input = input.clone();
            move |request| ask_escalation(request, &input)
        })
        .on_event({
            let display = display.clone();
            move |event| display.show(event)
        })
        .build();
    let mut agent = match built {
        Ok(agent) => agent,
        Err(e) => return Ok(super::fail(&e)),
    };
    display.note(&format!(
        "corral chat in {} (session {}); /help for the commands, /exit to leave",
        agent.workspace().root().display(),
        agent.session_id()
    ));
    // The tokens of the prompts that ended well, for /usage.
    let mut used = corral::llm::Usage::default();
    // When Ctrl-C was last pressed at the prompt: a second one within EXIT_PRESS leaves.
    let mut pressed: Option<std::time::Instant> = None;
    // One set of handlers for the whole chat: a Ctrl-C between two waits is not lost.
    let Some(mut signals) = super::signals::Signals::new() else {
        anyhow::bail!("the signal handlers could not be installed");
    };
    loop {
        // Ctrl-C at the prompt is SIGINT without the editor, a key the editor reads with it.
        let signal = tokio::select! {
            read = input.next(&display) => match read {
                Read::Line(line) => Ok(line),
                Read::End => break,
                Read::Interrupted => Err(super::signals::INTERRUPTED),
            },
            signal = signals.next() => Err(signal),
        };
        let line = match signal {
            Ok(line) => line,
            Err(signal) => {
                let again = pressed.is_some_and(|at| at.elapsed() < EXIT_PRESS);
                if signal == super::signals::INTERRUPTED && !again {
                    pressed = Some(std::time::Instant::now());
                    input.say("\n(Ctrl-C again to leave, or /exit)");
                    continue;
                }
                input.restore_terminal();
                corral::process::kill_all_groups();
                agent.shutdown();
                super::signals::last_words(&format!("corral: {signal}"));
                return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
            }
        };
        pressed = None;
        let prompt = match super::slash::parse(&line) {
            Ok(super::slash::Line::Prompt(prompt)) => prompt,
            Ok(super::slash::Line::Empty) => continue,
            Ok(super::slash::Line::Command(Slash::Exit)) => break,
            Ok(super::slash::Line::Command(Slash::Compact)) => {
                compact(&mut agent).await;
                continue;
            }
            Ok(super::slash::Line::Command(command)) => {
                run_command(&mut agent, command, &used);
                continue;
            }
            Err(message) => {
                eprintln!("corral: {message}");
                continue;
            }
        };
        input.turn_started();
        let result = tokio::select! {
            result = agent.prompt(&prompt) => Some(result),
            signal = signals.next() => {
                if signal != super::signals::INTERRUPTED {
                    input.restore_terminal();
                    corral::process::kill_all_groups();
                    agent.shutdown();
                    display.finish();
                    super::signals::last_words(&format!("corral: {signal}; session {} kept", agent.session_id()));
                    return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
                }
                // Ctrl-C (or Esc, at a terminal) stops the turn: the request and the tool calls were dropped with the
                // prompt's future (a command's group is ended), the calls get their answers.
                None
            }
        };
        display.finish();
        let Some(result) = result else {
            match agent.cancel_turn() {
                Ok(()) => eprintln!("corral: stopped; background tasks keep running"),
                Err(error) => eprintln!("corral: {error}"),
            }
            continue;
        };
        match result {
            Ok(outcome) => {
                used += outcome.usage;
                display.answer(&outcome.text);
            }
            Err(error) => eprintln!("corral: {error}"),
        }
    }
    agent.shutdown();
    corral::process::kill_all_groups();
    Ok(ExitCode::SUCCESS)
}

/// Two Ctrl-C at the prompt within this leave `chat`.
const EXIT_PRESS: std::time::Duration = std::time::Duration::from_secs(2);

/// Asks at the terminal whether a command the sandbox blocked may run outside it. Runs on the
/// command's blocking thread, while the prompt loop waits for the turn: the next line typed is
/// the answer.
fn ask_escalation(
    request: &corral::sandbox::escalation::Request<'_>,
    input: &Input,
) -> corral::sandbox::escalation::Answer {
    use corral::sandbox::escalation::Answer;
    let command = corral::plugins::sanitize(request.command);
    let answer = input.answer(&format!(
        "\nthe shell sandbox ({} mode) may have blocked: {command}\nrun this outside the sandbox? [y]es / [n]o / [a]lways for this command ",
        request.mode.as_str()
    ));
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Answer::Yes,
        "a" | "always" => Answer::Always,
        _ => Answer::No,
    }
}

/// Carries out a slash command other than `/exit`.
fn run_command(agent: &mut Agent, command: Slash, used: &corral::llm::Usage) {
    match command {
        Slash::Help => {
            for (name, what) in super::slash::HELP {
                eprintln!("  {name:<15} {what}");
            }
            eprintln!("  a line starting with // is sent as a prompt starting with /");
        }
        Slash::Tasks => tasks(agent),
        Slash::Kill(id) => kill(agent, &id),
        Slash::Clear => match agent.new_session() {
            Ok(()) => eprintln!("new session {}", agent.session_id()),
            Err(e) => eprintln!("corral: {e}"),
        },
        Slash::Model(None) => eprintln!("model: {}", agent.config().model),
        Slash::Model(Some(model)) => {
            agent.set_model(model);
            eprintln!("model: {} from the next call on", agent.config().model);
        }
        Slash::Usage => eprintln!(
            "this chat: {} tokens in ({} cached), {} out",
            used.input_tokens, used.cache_read_input_tokens, used.output_tokens
        ),
        Slash::Undo => match agent.undo() {
            Ok(Some(_)) => eprintln!("took the last turn back"),
            Ok(None) => {
                eprintln!("nothing to undo (no turn since the start or the last compaction)")
            }
            Err(e) => eprintln!("corral: {e}"),
        },
        Slash::Compact | Slash::Exit => {}
    }
}

/// `/compact`: the model summarises the older turns now (the display shows the event; this
/// says it in `--quiet` too).
async fn compact(agent: &mut Agent) {
    match agent.compact().await {
        Ok(Some(c)) => eprintln!(
            "compacted: {} messages summarised, {} kept; about {} tokens now (was {})",
            c.summarized, c.kept, c.tokens_after, c.tokens_before
        ),
        Ok(None) => eprintln!("nothing to compact yet"),
        Err(e) => eprintln!("corral: {e}"),
    }
}

fn tasks(agent: &Agent) {
    let Some(manager) = agent.background() else {
        eprintln!("the shell is disabled in this workspace");
        return;
    };
    let tasks = manager.tasks();
    if tasks.is_empty() {
        eprintln!("no background tasks");
    }
    for task in tasks {
        eprintln!(
            "{}  {}  {}  {}",
            task.id,
            task.status(),
            format_runtime(task.runtime()),
            task.command
        );
    }
}

fn kill(agent: &Agent, id: &str) {
    let Some(manager) = agent.background() else {
        eprintln!("the shell is disabled in this workspace");
        return;
    };
    match manager.kill(id, "by /kill") {
        Ok(status) => eprintln!("{id}: {status}"),
        Err(e) => eprintln!("{e}"),
    }
}
