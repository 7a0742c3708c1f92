//! How a command is started: the environment it sees and the sandbox it runs in. One
//! [`Launch`] is built per agent from the shell settings and shared by `bash` and the
//! background manager, so both start commands the same way.
//!
//! **No secrets by default**, as Codex's shell environment policy does: with `env =
//! "inherit"`, variables whose names contain one of [`SECRET_WORDS`] (any case), and the
//! provider variables corral itself reads ([`PROVIDER_VARS`]), are dropped unless `[shell]
//! env_keep` names them; so are the addresses of agents that act for the user
//! ([`AGENT_VARS`]: `SSH_AUTH_SOCK`, the session bus, `DOCKER_HOST`). A list (`env = [...]`) is the user's own choice and is kept whole.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;

use crate::sandbox::{Confinement, SandboxError, Spawned};

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

/// `sh` as corral's `PATH` finds it, looked up once (`/bin/sh` if it finds none). A command is
/// started by this path: given a bare `sh` and an environment that sets `PATH` (every command's
/// does), std would search `PATH` itself between `fork` and `exec`, and so `fork` the whole of
/// corral instead of using `posix_spawn`.
pub fn shell_path() -> &'static Path {
    static SHELL: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    SHELL.get_or_init(|| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join("sh"))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| std::path::PathBuf::from("/bin/sh"))
    })
}

/// Whether `name` is dropped from an inherited environment.
pub fn is_secret(name: &str) -> bool {
    let contains = |word: &str| {
        name.as_bytes()
            .windows(word.len())
            .any(|part| part.eq_ignore_ascii_case(word.as_bytes()))
    };
    PROVIDER_VARS
        .iter()
        .chain(AGENT_VARS)
        .any(|var| var.eq_ignore_ascii_case(name))
        || SECRET_WORDS.iter().any(|word| contains(word))
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

    /// The whole environment a command gets, `extra` last: corral's own without its secrets
    /// (or the names an `env = [...]` list gives, with `PATH` and `HOME`), then the sandbox's
    /// variables (the proxy's address). One value per name, the last one given.
    pub fn environment(&self, extra: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = match &self.env {
            CommandEnv::Inherit => std::env::vars_os()
                .filter(|(name, _)| {
                    name.to_str()
                        .is_none_or(|name| !is_secret(name) || self.keep.iter().any(|k| k == name))
                })
                .collect(),
            CommandEnv::Only(names) => {
                let mut only: Vec<(OsString, OsString)> = Vec::new();
                for name in names.iter().map(String::as_str).chain(["PATH", "HOME"]) {
                    if let Some(value) = std::env::var_os(name)
                        && !only.iter().any(|(seen, _)| seen == name)
                    {
                        only.push((name.into(), value));
                    }
                }
                only
            }
        };
        // What goes on top, the last value of each name; an inherited variable it names is
        // left out. (Built per command: a few names, compared in place, no hashing.)
        let mut top: Vec<(OsString, OsString)> = Vec::new();
        let given = match &self.sandbox {
            Sandboxing::On(confinement) => confinement.env(),
            _ => &[],
        };
        for (name, value) in given
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
        {
            top.retain(|(seen, _)| seen != name);
            top.push((name.into(), value.into()));
        }
        env.retain(|(name, _)| !top.iter().any(|(over, _)| over == name));
        env.extend(top);
        env
    }

    /// Starts `sh -c command` in `cwd` as this launch says, in a process group of its own,
    /// stdin on `/dev/null`, stdout and stderr both on `output`, with `extra` variables on top
    /// of [`environment`](Self::environment). Unconfined it is a plain `posix_spawn`; confined,
    /// the sandbox's zygote forks it. Fails when the sandbox is on and cannot be applied, or
    /// the shell cannot start.
    pub(super) fn start(
        &self,
        command: &str,
        cwd: &Path,
        output: io::PipeWriter,
        extra: &[(&str, &str)],
    ) -> io::Result<Started> {
        let env = self.environment(extra);
        match &self.sandbox {
            Sandboxing::Off => {
                let mut cmd = Command::new(shell_path());
                // Its messages still say `sh: ...`.
                cmd.arg0("sh")
                    .arg("-c")
                    .arg(command)
                    .env_clear()
                    .envs(env)
                    .current_dir(cwd)
                    .stdin(Stdio::null())
                    .stdout(output.try_clone()?)
                    .stderr(output)
                    .process_group(0);
                Ok(Started::Direct(cmd.spawn()?))
            }
            Sandboxing::On(confinement) => {
                let args = [OsStr::new("-c"), OsStr::new(command)];
                let spawned = confinement.spawn_shell(&args, &env, cwd, output.as_fd())?;
                Ok(Started::Confined(Confined::new(spawned)))
            }
            Sandboxing::Refused(error) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                error.to_string(),
            )),
        }
    }
}

/// A started shell: a child of corral's, or a command the sandbox's zygote forked.
#[derive(Debug)]
pub(super) enum Started {
    Direct(Child),
    Confined(Confined),
}

/// A command the zygote started (see [`crate::sandbox::zygote`]): not corral's child, so its
/// end is learnt from its pidfd and its status from the status pipe.
#[derive(Debug)]
pub(super) struct Confined {
    spawned: Spawned,
    status: Option<ExitStatus>,
}

impl Confined {
    fn new(spawned: Spawned) -> Self {
        Self {
            spawned,
            status: None,
        }
    }
}

impl Started {
    pub fn id(&self) -> u32 {
        match self {
            Self::Direct(child) => child.id(),
            Self::Confined(c) => c.spawned.pid as u32,
        }
    }

    /// A pidfd for the command (when the shell is in a PID namespace of its own, its end is
    /// the end of everything it started).
    pub fn namespace_pidfd(&self) -> Option<&OwnedFd> {
        match self {
            Self::Confined(c) if c.spawned.pid_namespace => Some(&c.spawned.pidfd),
            _ => None,
        }
    }

    /// A descriptor readable once the shell has exited, where there is one.
    pub fn exit_fd(&self) -> Option<OwnedFd> {
        match self {
            Self::Direct(child) => super::group::pidfd(child.id()),
            Self::Confined(c) => c.spawned.pidfd.try_clone().ok(),
        }
    }

    /// The shell's status once it has exited; never blocks on a running shell.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        match self {
            Self::Direct(child) => child.try_wait(),
            Self::Confined(c) => {
                if c.status.is_none() && readable(c.spawned.pidfd.as_fd())? {
                    // The init wrote the shell's raw status before it exited; an empty pipe
                    // means it was killed (SIGKILL is the only signal that reaches it). The
                    // read never waits: the init is gone, and no one else may hold the pipe
                    // open to make corral wait (the init is not dumpable, but a pipe is one
                    // more descriptor a command should not be able to stall corral with).
                    let mut raw = [0u8; 4];
                    let status = match read_now(&c.spawned.status, &mut raw) {
                        Ok(4) => i32::from_ne_bytes(raw),
                        _ => libc::SIGKILL,
                    };
                    c.status = Some(ExitStatus::from_raw(status));
                }
                Ok(c.status)
            }
        }
    }
}

/// One read of `pipe` that does not wait: what it holds now (0 when empty, or at its end).
fn read_now(mut pipe: &io::PipeReader, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    unsafe {
        let flags = libc::fcntl(pipe.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(pipe.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    match pipe.read(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        other => other,
    }
}

/// Whether `fd` polls readable now.
fn readable(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    match unsafe { libc::poll(&mut pollfd, 1, 0) } {
        n if n < 0 => Err(io::Error::last_os_error()),
        n => Ok(n > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name given on top replaces the inherited one, the last of two values wins, and a
    /// name an `env` list repeats (`PATH`) comes once.
    #[test]
    fn one_value_per_name_the_last_one_given() {
        let launch = Launch {
            env: CommandEnv::Only(vec!["PATH".into()]),
            ..Launch::unconfined()
        };
        let env = launch.environment(&[("PATH", "/given"), ("A", "1"), ("A", "2")]);
        let values = |name: &str| -> Vec<&OsString> {
            env.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v)
                .collect()
        };
        assert_eq!(values("PATH"), [&OsString::from("/given")]);
        assert_eq!(values("A"), [&OsString::from("2")]);
        assert!(values("HOME").len() <= 1);
        assert_eq!(
            env.last().map(|(n, _)| n.as_os_str()),
            Some(OsStr::new("A"))
        );
    }

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
