//! The shell's confinement: what `bash` calls and background tasks may touch.
//!
//! Plugins are confined by wasmtime ([`crate::plugins`]); commands are native processes, so
//! they are confined by the kernel. When the shell sandbox is on (`[shell] sandbox =
//! "workspace"`, the default, or `"read-only"`), corral does not run `sh -c COMMAND` itself.
//! With the agent's first command it starts its own executable as a long-lived helper, the
//! **zygote** (`corral __sandbox-zygote PLAN`, [`zygote`], driven by [`spawner`]), which sets
//! up step 1 below once and builds the rules of steps 2 and 3 once; every command is then a
//! `clone` of the zygote that puts those rules in force on itself and runs `sh` (about as
//! cheap as an unconfined `posix_spawn`; corral itself never forks). Each command has a PID
//! namespace of its own where one can be made, so nothing it starts outlives it. In order:
//!
//! 1. **A mount namespace** (inside a user namespace when corral is not root), where
//!    `corral.toml` and `.corral/` are bind-mounted read-only over themselves and each hidden
//!    path (`~/.ssh`, ...) is covered by an empty read-only tmpfs (a hidden file by
//!    `/dev/null`) ([`mounts`]). Where no namespace can be made (a kernel or distribution that
//!    forbids unprivileged user namespaces), Landlock alone does the same, more coarsely: see
//!    [`landlock`].
//!    With a network host list, a network namespace with only loopback, bridged to corral's
//!    proxy by a relay ([`netns`]).
//! 2. **`no_new_privs` and Landlock** ([`landlock`]): reads everywhere (tools and compilers need
//!    the system), writes only beneath the workspace (`"workspace"` mode), the temp folders and
//!    `[shell] writable`; TCP only to corral's proxy when the network is a host list; no
//!    signals to, and no abstract Unix sockets of, processes outside the sandbox.
//! 3. **A seccomp filter** ([`seccomp`]) for what Landlock cannot say: no sockets but Unix ones
//!    with the network off (only TCP ones beside them with a host list), no `io_uring` (which
//!    would bypass the socket filter), no module loading, `kexec`, `bpf` or swap changes.
//!
//! A zygote that cannot apply one of these says why, and the command fails with that reason
//! (a command whose own confinement fails exits [`HELPER_FAILED`] with it): a command never
//! runs unconfined. A kernel without Landlock is found out when the
//! agent is built ([`Confinement::new`]): corral says so once and refuses commands until the
//! user sets `sandbox = "off"`.
//!
//! Who decides: only the user's settings ([`crate::policy`] gates every widening of an
//! untrusted workspace file). The model cannot change any of it.

pub mod capabilities;
pub mod escalation;
pub mod landlock;
pub mod mounts;
pub mod netns;
pub mod plan;
pub mod proxy;
pub mod rules;
pub mod seccomp;
pub mod spawner;
pub mod zygote;

use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub use plan::{NetPlan, Plan};
pub use spawner::Spawned;

use crate::policy::HostPattern;

/// The first argument that makes a corral executable the sandbox helper.
pub const HELPER_ARG: &str = zygote::ZYGOTE_ARG;
/// The exit code of a helper that could not confine itself (the command did not run).
pub const HELPER_FAILED: i32 = 125;
/// An environment variable naming the helper executable, for programs that embed corral and
/// cannot call [`exec_if_helper`] in their own `main`.
pub const HELPER_ENV: &str = "CORRAL_SANDBOX_HELPER";

/// Whether [`exec_if_helper`] was called in this process (so this executable is a helper).
static HOOKED: AtomicBool = AtomicBool::new(false);

/// `[shell] sandbox`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum SandboxMode {
    /// No confinement at all.
    Off,
    /// Writes beneath the workspace (but `corral.toml`, `.corral/`), the temp folders and
    /// `[shell] writable`.
    #[default]
    Workspace,
    /// Writes only to the temp folders and `[shell] writable`.
    ReadOnly,
}

impl SandboxMode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "off" => Ok(Self::Off),
            "workspace" => Ok(Self::Workspace),
            "read-only" => Ok(Self::ReadOnly),
            other => Err(format!(
                "`{other}`: sandbox is \"workspace\", \"read-only\" or \"off\""
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Workspace => "workspace",
            Self::ReadOnly => "read-only",
        }
    }
}

/// `[shell] network`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ShellNetwork {
    /// No sockets but Unix ones.
    #[default]
    Off,
    /// Any network.
    On,
    /// HTTP(S) to these hosts only, through corral's proxy ([`proxy`]).
    Hosts(Vec<HostPattern>),
}

/// `off`, `on`, or the hosts.
impl std::fmt::Display for ShellNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::On => f.write_str("on"),
            Self::Hosts(hosts) => {
                let hosts: Vec<String> = hosts.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "HTTP(S) through corral's proxy to {} only",
                    hosts.join(", ")
                )
            }
        }
    }
}

/// The shell sandbox's settings, as the user's files give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    /// More folders commands may write (absolute; `~/` expanded when read).
    pub writable: Vec<PathBuf>,
    /// Paths commands may not read (absolute).
    pub hidden: Vec<PathBuf>,
    pub network: ShellNetwork,
    /// The helper executable; `None`: this executable when it called [`exec_if_helper`], else
    /// [`HELPER_ENV`].
    pub helper: Option<PathBuf>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            mode: SandboxMode::Workspace,
            writable: Vec::new(),
            hidden: default_hidden(),
            network: ShellNetwork::Off,
            helper: None,
        }
    }
}

/// What commands may not read unless the user says otherwise: SSH and cloud keys, GnuPG,
/// corral's own config (trust records, approvals, the user's settings), state and compile
/// cache (`~/.cache/corral`: native code corral loads without a second look), and the
/// sockets of agents and daemons that would act for the user outside the sandbox.
pub fn default_hidden() -> Vec<PathBuf> {
    let mut hidden = Vec::new();
    if let Some(home) = dirs::home_dir() {
        for rel in [
            ".ssh",
            ".aws",
            ".gnupg",
            ".config/gcloud",
            ".docker/config.json",
        ] {
            hidden.push(home.join(rel));
        }
    }
    if let Some(config) = crate::policy::config_dir() {
        hidden.push(config);
    }
    // The Unix sockets of what acts for the user outside: the session bus and agents in the
    // runtime folder, Docker, X11, tmux, an SSH agent.
    // SAFETY: a getter.
    let uid = unsafe { libc::getuid() };
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => hidden.push(PathBuf::from(dir)),
        None => hidden.push(PathBuf::from(format!("/run/user/{uid}"))),
    }
    for path in ["/run/docker.sock", "/var/run/docker.sock", "/tmp/.X11-unix"] {
        hidden.push(PathBuf::from(path));
    }
    hidden.push(PathBuf::from(format!("/tmp/tmux-{uid}")));
    if let Some(agent) = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from)
        && let Some(dir) = agent.parent().filter(|d| d.starts_with("/tmp/"))
    {
        hidden.push(dir.to_path_buf());
    }
    if let Some(data) = dirs::data_dir() {
        hidden.push(data.join("corral"));
    }
    // The compile cache holds native code corral loads as it is, and the manifests beside it:
    // a command that could write there would run its own code as an approved plugin, with its
    // grants, or as corral itself. Hidden (so never written) even inside a writable folder
    // such as `~/.cache`.
    if let Some(cache) = dirs::cache_dir() {
        hidden.push(cache.join("corral"));
    }
    hidden.sort();
    hidden.dedup();
    hidden
}

/// Expands a leading `~/` to the home folder.
pub fn expand_home(raw: &str) -> Result<PathBuf, String> {
    let path = match raw.strip_prefix("~/") {
        Some(rest) => dirs::home_dir()
            .ok_or_else(|| format!("`{raw}`: there is no home folder to expand `~` to"))?
            .join(rest),
        None if raw == "~" => {
            dirs::home_dir().ok_or_else(|| format!("`{raw}`: there is no home folder"))?
        }
        None => PathBuf::from(raw),
    };
    if !path.is_absolute() {
        return Err(format!(
            "`{raw}`: give an absolute path or one starting with `~/`"
        ));
    }
    Ok(path)
}

/// Makes this executable the sandbox helper when it was started as one: call it first thing
/// in `main`, before any thread starts. When the first argument is [`HELPER_ARG`], it serves
/// as the zygote ([`zygote::serve`]) and never returns (exit [`HELPER_FAILED`] when the
/// confinement cannot be applied). Otherwise it returns at once, noting that this executable
/// can serve as the helper.
pub fn exec_if_helper() {
    HOOKED.store(true, Ordering::Relaxed);
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() != Some(std::ffi::OsStr::new(HELPER_ARG)) {
        return;
    }
    let Some(plan) = args.next().and_then(|p| p.into_string().ok()) else {
        eprintln!("corral: the sandbox helper needs its plan");
        std::process::exit(HELPER_FAILED);
    };
    let error = zygote::serve(&plan);
    eprintln!("corral: the shell sandbox could not be applied, the command did not run: {error}");
    std::process::exit(HELPER_FAILED);
}

/// The Landlock ABI version of the running kernel, `None` without Landlock.
pub fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute, size 0 and the VERSION flag the call only returns a number.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(abi).ok().filter(|&v| v > 0)
}

/// The first Landlock ABI with TCP rules: needed for a network host list.
pub const NET_ABI: u32 = 4;

/// Why commands cannot be confined here (and so are refused).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "this kernel has no Landlock, so commands cannot be confined; they are refused. Set \
         `[shell] sandbox = \"off\"` in your settings to run them unconfined"
    )]
    NoLandlock,
    #[error(
        "this kernel's Landlock (ABI {0}) has no TCP rules (ABI {NET_ABI}, Linux 6.7), so a \
         `[shell] network` host list cannot be enforced; commands are refused. Set `network = \
         false` or `true`"
    )]
    NoNetworkRules(u32),
    #[error(
        "no sandbox helper: a program embedding corral calls `corral::sandbox::exec_if_helper()` \
         first in its `main`, or names the `corral` executable in {HELPER_ENV}"
    )]
    NoHelper,
    #[error("the network proxy for commands could not start: {0}")]
    Proxy(String),
    #[error("the sandbox plan cannot be given to the helper (a path that is not UTF-8?): {0}")]
    Plan(String),
}

/// Confinement ready for commands: the zygote that starts them ([`spawner`]), and the proxy
/// (while this lives, the proxy does). Built once per agent.
#[derive(Debug)]
pub struct Confinement {
    spawner: spawner::Spawner,
    /// Variables set on every confined command (the proxy's address).
    env: Vec<(String, String)>,
    mode: SandboxMode,
    description: String,
    /// `sh`'s full path.
    shell: PathBuf,
    _proxy: Option<proxy::Proxy>,
}

impl Confinement {
    /// Checks that the kernel can confine commands as `settings` say, starts the proxy for a
    /// host list, and fixes the plan for `workspace` (its canonical root). `Ok(None)` when the
    /// sandbox is off.
    pub fn new(settings: &SandboxSettings, workspace: &Path) -> Result<Option<Self>, SandboxError> {
        if settings.mode == SandboxMode::Off {
            return Ok(None);
        }
        let abi = landlock_abi().ok_or(SandboxError::NoLandlock)?;
        let helper = match &settings.helper {
            Some(helper) => helper.clone(),
            None => default_helper().ok_or(SandboxError::NoHelper)?,
        };
        let (network, proxy) = match &settings.network {
            ShellNetwork::Off => (NetPlan::Off, None),
            ShellNetwork::On => (NetPlan::On, None),
            ShellNetwork::Hosts(hosts) => {
                if abi < NET_ABI {
                    return Err(SandboxError::NoNetworkRules(abi));
                }
                let proxy = proxy::Proxy::start(hosts.clone())
                    .map_err(|e| SandboxError::Proxy(e.to_string()))?;
                (NetPlan::Proxy { port: proxy.port() }, Some(proxy))
            }
        };
        let env = match &proxy {
            Some(proxy) => [
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "http_proxy",
                "https_proxy",
                "ALL_PROXY",
            ]
            .into_iter()
            .map(|name| (name.to_string(), proxy.url()))
            .chain(["NO_PROXY", "no_proxy"].map(|n| (n.to_string(), String::new())))
            .collect(),
            None => Vec::new(),
        };
        let plan = Plan::new(settings, workspace, network);
        let description = describe(settings, &plan);
        // A plan that cannot be given to the helper is found out here, not at the first command.
        serde_json::to_string(&plan).map_err(|e| SandboxError::Plan(e.to_string()))?;
        Ok(Some(Self {
            spawner: spawner::Spawner::new(helper, plan),
            env,
            mode: settings.mode,
            description,
            shell: crate::process::shell_path().to_path_buf(),
            _proxy: proxy,
        }))
    }

    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// What confined commands may do, in one sentence for the model and the user.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The variables every confined command gets on top of its own (the proxy's address).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Starts `sh args...` confined, in `cwd`, with exactly `env`, stdin on `/dev/null` and
    /// its output on `output`; see [`spawner::Spawner::spawn`].
    pub fn spawn_shell(
        &self,
        args: &[&OsStr],
        env: &[(OsString, OsString)],
        cwd: &Path,
        output: BorrowedFd<'_>,
    ) -> std::io::Result<Spawned> {
        let mut argv = vec![self.shell.as_os_str()];
        argv.extend_from_slice(args);
        self.spawner.spawn(&argv, env, cwd, output)
    }
}

fn describe(settings: &SandboxSettings, plan: &Plan) -> String {
    let mut writes = Vec::new();
    if plan.workspace_writable {
        writes.push("the workspace (but corral.toml and .corral/)".to_string());
    }
    writes.push("/tmp and $TMPDIR".into());
    writes.extend(settings.writable.iter().map(|p| p.display().to_string()));
    let network = match &settings.network {
        ShellNetwork::Off => "no network".to_string(),
        ShellNetwork::On => "the network".to_string(),
        hosts => hosts.to_string(),
    };
    let hidden = if plan.hidden.is_empty() {
        String::new()
    } else {
        format!(
            "; these cannot be read: {}",
            plan.hidden
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "they read everywhere, write only to {}, and have {network}{hidden}",
        writes.join(", ")
    )
}

fn default_helper() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(HELPER_ENV) {
        return Some(PathBuf::from(path));
    }
    if HOOKED.load(Ordering::Relaxed) {
        let exe = std::env::current_exe().ok()?;
        // The small helper beside corral's binary starts faster than corral itself.
        let small = exe.with_file_name(SMALL_HELPER);
        return Some(if small.is_file() { small } else { exe });
    }
    None
}

/// The helper-only executable installed beside `corral` (`host/src/bin/corral-sandbox.rs`).
pub const SMALL_HELPER: &str = "corral-sandbox";
