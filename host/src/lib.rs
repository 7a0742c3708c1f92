//! # corral
//!
//! An LLM agent host. A model works in a folder (the *workspace*) through tools: built-in file
//! and shell tools, background tasks that run while the model keeps thinking, and WebAssembly
//! plugins.
//!
//! ```no_run
//! # async fn demo() -> Result<(), corral::AgentError> {
//! let mut agent = corral::Agent::builder(".")
//!     .on_event(|event| eprintln!("{event:?}"))
//!     .build()?;
//! let outcome = agent.prompt("List the files here.").await?;
//! println!("{}", outcome.text);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`agent`]: the loop, its history and the API's rules, events, the session file.
//! - [`llm`]: the provider trait, one module per wire protocol, SSE framing, retries, the models
//!   corral knows ([`llm::models`]) and where the prompt cache's breakpoints go ([`llm::cache`]).
//! - [`background`]: the background manager: tasks, their output, the notification queue.
//! - [`tools`]: the tool trait, the registry, input checking, the built-in tools.
//! - [`plugins`]: wasmtime: the engine, loading and caching, async per-call stores, limits,
//!   the guarded filesystem (`fs_guard`), the host imports.
//! - [`policy`]: `corral.toml`: what the shell and each plugin may touch; deny by default; the
//!   user's records of trusted workspace files and approved plugin components.
//! - [`process`]: spawning a command in its own process group, bounded output, containment
//!   (nothing a command starts outlives it), the task journal, what `/proc` says.
//! - [`sandbox`]: the shell's kernel confinement (the re-executed helper: a mount namespace,
//!   Landlock, seccomp), the network proxy for commands, `[shell]` allow/deny rules, asking to
//!   run a blocked command outside.
//! - [`workspace`]: the workspace root as a handle, resolving paths beneath it, and the guard of
//!   the entries nothing corral runs may touch (`corral.toml`, `.corral/`).
//! - [`config`]: the agent's settings.
//!
//! With the `fuzzing` feature, a hidden `fuzzing` module gives the fuzz targets of `fuzz/` a way
//! into the parsers that are private (the providers' stream assemblers).

pub mod agent;
pub mod background;
pub mod config;
pub mod llm;
pub mod plugins;
pub mod policy;
pub mod process;
pub mod sandbox;
pub mod tools;
pub mod workspace;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use agent::{Agent, AgentBuilder, AgentError, Event, Outcome, SessionChoice};
pub use config::{AgentConfig, ShellConfig};
pub use workspace::Workspace;
