//! The system prompt: who the model is, where it works, what it may use.

use crate::tools::ToolRegistry;
use crate::workspace::Workspace;

/// The system prompt: the workspace, the tools, what commands may touch (`shell`, when the
/// shell tools are offered), the project's instructions (`project`, from `AGENTS.md`), and
/// the user's or the program's extra instructions (`extra`), last.
pub fn system_prompt(
    workspace: &Workspace,
    tools: &ToolRegistry,
    shell: Option<&str>,
    project: Option<&str>,
    extra: Option<&str>,
) -> String {
    let mut prompt = format!(
        "You are corral, a coding agent working in the workspace folder {root}.\n\
         Use the tools to inspect and change files and to run commands; paths are relative to the \
         workspace root, and the file tools cannot reach outside it.\n\
         Tools available: {names}.\n",
        root = workspace.root().display(),
        names = tools.names().collect::<Vec<_>>().join(", "),
    );
    if let Some(shell) = shell {
        prompt.push_str(shell);
        prompt.push('\n');
    }
    if tools.get("background_run").is_some() {
        prompt.push_str(
            "For slow commands (installs, builds, test suites, servers) use background_run: it \
             returns at once, and when the command ends its result arrives in a \
             <background-results> block in a later message. Keep working on other things \
             meanwhile; do not poll with sleep.\n",
        );
    }
    prompt.push_str("When the task is done, answer with a short summary of what you did.\n");
    if let Some(project) = project {
        prompt.push('\n');
        prompt.push_str(project);
    }
    if let Some(extra) = extra.filter(|e| !e.trim().is_empty()) {
        prompt.push('\n');
        prompt.push_str(extra);
        prompt.push('\n');
    }
    prompt
}
