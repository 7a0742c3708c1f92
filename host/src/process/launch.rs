//! How a command is started: the environment it sees and the sandbox it runs in. One
//! [`Launch`] is built per agent from the shell settings and shared by `bash` and the
//! background manager, so both start commands the same way.
//!
//! **No secrets by default**, as Codex's shell environment policy does: with `env =
//! "inherit"`, variables whose names contain one of [`SECRET_WORDS`] (any case), and the
//! provider variables corral itself reads ([`PROVIDER_VARS`]), are dropped unless `[shell]
//! env_keep` names them; so are the addresses of agents that act for the user
//! ([`AGENT_VARS`]: `SSH_AUTH_SOCK`, the session bus, `DOCKER_HOST`). A list (`env = [...]`) is the user's own choice and is kept whole.

use std::io;
use std::process::Command;
use std::sync::Arc;

use crate::sandbox::{Confinement, SandboxError};

/// Parts of a variable name that mark it as a secret.
pub const SECRET_WORDS: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"];
/// The variables corral reads to reach its model: where the key goes is not a command's
/// business either.
pub const PROVIDER_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "CORRAL_PROVIDER",
    "CORRAL_MODEL",
    "CORRAL_BASE_URL",
];

/// Which environment variables a command sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CommandEnv {
    /// corral's environment, without secrets (see the module doc).
    #[default]
    Inherit,
    /// Only these variables, with corral's values (plus `PATH` and `HOME` so `sh` works).
    Only(Vec<String>),
}

/// The addresses of agents and buses that act for the user outside the sandbox (an SSH agent
/// signs, a session bus starts programs, a Docker daemon runs containers as root).
pub const AGENT_VARS: &[&str] = &[
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "GPG_AGENT_INFO",
    "DBUS_SESSION_BUS_ADDRESS",
    "DOCKER_HOST",
];

/// Whether `name` is dropped from an inherited environment.
pub fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    PROVIDER_VARS.contains(&upper.as_str())
        || AGENT_VARS.contains(&upper.as_str())
        || SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// Whether commands are confined.
#[derive(Debug, Clone, Default)]
pub enum Sandboxing {
    /// Commands run unconfined (`[shell] sandbox = "off"`).
    #[default]
    Off,
    /// Commands run under this confinement.
    On(Arc<Confinement>),
    /// The sandbox is on but cannot be applied here: commands are refused with this.
    Refused(Arc<SandboxError>),
}

/// How commands start. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub env: CommandEnv,
    /// Secret-looking names kept in an inherited environment (`[shell] env_keep`).
    pub keep: Vec<String>,
    pub sandbox: Sandboxing,
}

impl Launch {
    /// No sandbox, corral's environment without secrets.
    pub fn unconfined() -> Self {
        Self::default()
    }

    /// This launch without its sandbox (a command the user let run outside it).
    pub fn outside_sandbox(&self) -> Self {
        Self {
            sandbox: Sandboxing::Off,
            ..self.clone()
        }
    }

    /// One sentence for the system prompt: what commands may touch.
    pub fn describe(&self) -> String {
        match &self.sandbox {
            Sandboxing::On(c) => format!(
                "Commands (bash, background_run) run in a kernel sandbox ({} mode): {}. A \
                 command it blocks fails with a permission or network error.",
                c.mode().as_str(),
                c.describe()
            ),
            Sandboxing::Off => "Commands (bash, background_run) run unconfined, with the user's \
                 rights (the shell sandbox is off in this workspace)."
                .into(),
            Sandboxing::Refused(e) => format!("Commands are refused here: {e}."),
        }
    }

    /// `sh -c command`, through the sandbox helper when confined, with the environment set.
    /// Fails when the sandbox is on and cannot be applied.
    pub fn command(&self, command: &str) -> io::Result<Command> {
        let mut cmd = match &self.sandbox {
            Sandboxing::Off => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(command);
                cmd
            }
            Sandboxing::On(confinement) => confinement.shell_command(&["-c", command]),
            Sandboxing::Refused(error) => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    error.to_string(),
                ));
            }
        };
        match &self.env {
            CommandEnv::Inherit => {
                for (name, _) in std::env::vars_os() {
                    let Some(name) = name.to_str() else { continue };
                    if is_secret(name) && !self.keep.iter().any(|k| k == name) {
                        cmd.env_remove(name);
                    }
                }
            }
            CommandEnv::Only(names) => {
                // The sandbox's own variables (the proxy's address) stay.
                let set: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> = cmd
                    .get_envs()
                    .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
                    .collect();
                cmd.env_clear();
                for name in names.iter().map(String::as_str).chain(["PATH", "HOME"]) {
                    if let Some(value) = std::env::var_os(name) {
                        cmd.env(name, value);
                    }
                }
                for (name, value) in set {
                    if let Some(value) = value {
                        cmd.env(name, value);
                    }
                }
            }
        }
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_named_by_their_words() {
        for name in [
            "ANTHROPIC_API_KEY",
            "github_token",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
            "OPENAI_BASE_URL",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in ["PATH", "HOME", "CARGO_HOME", "CORRAL_TASK", "LANG"] {
            assert!(!is_secret(name), "{name}");
        }
    }
}
