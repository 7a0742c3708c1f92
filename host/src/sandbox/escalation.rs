//! Running a command outside the sandbox, when the sandbox blocked it and the user agrees.
//!
//! A confined command that fails and whose output says what a blocked command says
//! ([`BLOCKED_SIGNS`]: "Read-only file system", "Permission denied", a refused connection,
//! a name that cannot be resolved) may have been stopped by the sandbox rather than by its
//! own fault. What happens then is the user's choice ([`crate::config::Escalation`]): `corral
//! run` tells the model so (or, with `--allow-escalation`, runs it again outside); `corral
//! chat` asks `run this outside the sandbox? [y]es / [n]o / [a]lways for this command`. The
//! model cannot escalate by itself: no tool input asks for it.
//!
//! Background tasks are not escalated (nobody is there to ask when they end); their result
//! says the sandbox may have blocked them.

use std::sync::Arc;

use super::SandboxMode;

/// Output that marks a command the sandbox may have blocked.
pub const BLOCKED_SIGNS: &[&str] = &[
    "Read-only file system",
    "Permission denied",
    "Operation not permitted",
    "Network is unreachable",
    "Could not resolve host",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Address family not supported",
    "not granted to commands",
];

/// Whether `output` of a failed confined command looks like the sandbox blocked it.
pub fn looks_blocked(output: &str) -> bool {
    BLOCKED_SIGNS.iter().any(|sign| output.contains(sign))
}

/// What a handler is asked.
#[derive(Debug)]
pub struct Request<'a> {
    pub command: &'a str,
    pub mode: SandboxMode,
    /// The end of the confined run's output.
    pub output: &'a str,
}

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Run it outside the sandbox, this once.
    Yes,
    /// Keep the sandbox's result.
    No,
    /// Run it outside, and this same command again without asking, for the rest of the session.
    Always,
}

/// Asks the user about one command. Called on a blocking thread; may block on the terminal.
pub type Handler = Arc<dyn Fn(&Request<'_>) -> Answer + Send + Sync>;

/// The note added to a failed confined command's result when it is not run outside.
pub fn note(mode: SandboxMode) -> String {
    let writes = match mode {
        SandboxMode::ReadOnly => "no writes but the temp folders",
        _ => "writes only in the workspace (not corral.toml or .corral/) and the temp folders",
    };
    format!(
        "[this command ran in corral's shell sandbox ({} mode: {writes}; the network as \
         [shell] network allows) and may have been blocked by it. Do not try to get around \
         it; if the command is needed, say so: the user can allow it (corral chat asks, \
         `corral run --allow-escalation`, or [shell] in corral.toml)]",
        mode.as_str()
    )
}
