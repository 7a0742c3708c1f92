//! Building an [`Agent`]: the workspace, the provider, the tools, the session.

use std::path::PathBuf;
use std::sync::Arc;

use super::history::History;
use super::prompt::system_prompt;
use super::restart::Restart;
use super::session::{SessionChoice, SessionLog};
use super::{Agent, AgentError, Event, EventSink, ignore_events};
use crate::background::BackgroundManager;
use crate::config::AgentConfig;
use crate::llm::{Anthropic, AnthropicConfig, Provider};
use crate::process::{Launch, Sandboxing};
use crate::sandbox::{Confinement, escalation};
use crate::tools::{
    BackgroundRunTool, BashTool, CheckBackgroundTool, EditFileTool, KillBackgroundTool,
    ReadFileTool, Tool, ToolRegistry, WriteFileTool,
};
use crate::workspace::Workspace;

/// Builds an [`Agent`]. Defaults: [`AgentConfig::default`], the Anthropic provider configured
/// from the environment, the built-in tools, a new session.
pub struct AgentBuilder {
    workspace: PathBuf,
    config: AgentConfig,
    provider: Option<Arc<dyn Provider>>,
    extra_tools: Vec<Arc<dyn Tool>>,
    session: SessionChoice,
    events: EventSink,
    escalation: Option<escalation::Handler>,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("workspace", &self.workspace)
            .field("config", &self.config)
            .field("session", &self.session)
            .finish()
    }
}

impl AgentBuilder {
    pub(super) fn new(workspace: PathBuf) -> Self {
        Self {
            workspace,
            config: AgentConfig::default(),
            provider: None,
            extra_tools: Vec::new(),
            session: SessionChoice::New,
            events: ignore_events(),
            escalation: None,
        }
    }

    pub fn config(mut self, config: AgentConfig) -> Self {
        self.config = config;
        self
    }

    /// The model provider; without one, Anthropic from `ANTHROPIC_API_KEY` and
    /// `ANTHROPIC_BASE_URL`.
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// A tool offered beside the built-ins. A name already taken fails [`build`](Self::build).
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.extra_tools.push(tool);
        self
    }

    /// Continue an earlier session instead of starting one.
    pub fn session(mut self, choice: SessionChoice) -> Self {
        self.session = choice;
        self
    }

    /// Who is asked, when [`crate::config::Escalation::Ask`] is set, whether a command the
    /// shell sandbox blocked may run again outside it. Called on a blocking thread; without a
    /// handler the answer is no.
    pub fn on_escalation(
        mut self,
        ask: impl Fn(&escalation::Request<'_>) -> escalation::Answer + Send + Sync + 'static,
    ) -> Self {
        self.escalation = Some(Arc::new(ask));
        self
    }

    /// Where events go.
    pub fn on_event(mut self, sink: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// How commands start here (the state folder exists by now, so the sandbox keeps it
    /// read-only to commands from the first one on). A sandbox that cannot be applied is said
    /// once, as a warning, and every command is refused with the reason.
    fn launch(&self, workspace: &Workspace) -> Result<Launch, AgentError> {
        let shell = &self.config.shell;
        let sandbox = match Confinement::new(&shell.sandbox, workspace.root()) {
            Ok(Some(confinement)) => Sandboxing::On(Arc::new(confinement)),
            Ok(None) => Sandboxing::Off,
            Err(error) => {
                (self.events)(&Event::Warning {
                    message: format!("shell sandbox: {error}"),
                });
                Sandboxing::Refused(Arc::new(error))
            }
        };
        Ok(Launch {
            env: shell.env.clone(),
            keep: shell.env_keep.clone(),
            sandbox,
        })
    }

    /// Opens the workspace and the session, and registers the tools.
    pub fn build(self) -> Result<Agent, AgentError> {
        let workspace = Arc::new(Workspace::open(&self.workspace).map_err(|e| {
            AgentError::Config(format!("workspace {}: {e}", self.workspace.display()))
        })?);
        // The state folder first, made with its `.gitignore` (transcripts and task logs never
        // land in git), before the session, the journal or the sandbox touch it.
        workspace
            .state()
            .map_err(|e| AgentError::Config(format!("{}: {e}", workspace.state_dir().display())))?;
        let launch = match self.config.shell.enabled {
            true => Some(self.launch(&workspace)?),
            false => None,
        };
        let provider = match self.provider {
            Some(provider) => provider,
            None => Arc::new(Anthropic::new(AnthropicConfig::from_env())?),
        };

        let mut tools = ToolRegistry::new();
        let mut builtins: Vec<Arc<dyn Tool>> = vec![
            Arc::new(ReadFileTool::new(workspace.clone())),
            Arc::new(WriteFileTool::new(workspace.clone())),
            Arc::new(EditFileTool::new(workspace.clone())),
        ];
        let mut background = None;
        let mut shell_note = None;
        if let Some(launch) = launch {
            shell_note = Some(launch.describe());
            builtins.insert(
                0,
                Arc::new(BashTool::new(
                    workspace.clone(),
                    self.config.shell.clone(),
                    launch.clone(),
                    self.escalation.clone(),
                )),
            );
            let events = self.events.clone();
            let mut background_config = self.config.background.clone();
            background_config.launch = launch;
            background_config.rules = self.config.shell.rules.clone();
            let manager = Arc::new(BackgroundManager::new(
                workspace.clone(),
                background_config,
                move |event| events(&event.into()),
            ));
            builtins.push(Arc::new(BackgroundRunTool::new(manager.clone())));
            builtins.push(Arc::new(CheckBackgroundTool::new(manager.clone())));
            builtins.push(Arc::new(KillBackgroundTool::new(manager.clone())));
            background = Some(manager);
        }
        for tool in builtins.into_iter().chain(self.extra_tools) {
            tools
                .register(tool)
                .map_err(|e| AgentError::Config(e.to_string()))?;
        }

        // Before anything starts: end what a corral that was killed left running here.
        let mut restart = Restart::recover(&workspace, |message| {
            (self.events)(&Event::Warning { message })
        });

        let sessions = workspace.state_dir().join(crate::workspace::SESSIONS_DIR);
        let (mut session, history, resumed) = match &self.session {
            SessionChoice::New => (
                SessionLog::create(&sessions, &self.config.model)?,
                History::new(),
                false,
            ),
            choice => {
                let (log, history, warnings) = SessionLog::open(&sessions, choice)?;
                for message in warnings {
                    (self.events)(&Event::Warning { message });
                }
                (log, history, true)
            }
        };
        let mut history = history;
        let owed = history.unanswered_tool_uses(|call| restart.owed_result(call));
        if !owed.is_empty() {
            let change = history.add_user(owed);
            session.record(&change)?;
        }
        if resumed && let Some(note) = restart.background_note(history.messages()) {
            let change = history.add_user(vec![crate::llm::ContentBlock::text(note)]);
            session.record(&change)?;
        }
        (self.events)(&Event::SessionStarted {
            session_id: session.id().to_string(),
            path: session.path().display().to_string(),
            resumed,
        });

        let project = if self.config.project_instructions {
            super::instructions::project_section(&super::instructions::project_docs(&workspace))
        } else {
            None
        };
        let system = system_prompt(
            &workspace,
            &tools,
            shell_note.as_deref(),
            project.as_deref(),
            self.config.instructions.as_deref(),
        );
        let specs = tools.specs();
        Ok(Agent {
            config: self.config,
            workspace,
            provider,
            tools,
            specs,
            system,
            history,
            session,
            events: self.events,
            background,
            last_sent: None,
            undelivered: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    /// The registry offers exactly the names `BUILT_IN_TOOLS` lists, which the plugin loader
    /// keeps plugins from taking.
    #[test]
    fn built_in_names_are_the_registered_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let agent = super::super::Agent::builder(dir.path())
            .build()
            .expect("agent");
        let names: Vec<&str> = agent.tools().names().collect();
        assert_eq!(names, crate::tools::BUILT_IN_TOOLS);
    }
}
