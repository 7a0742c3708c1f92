//! Test support for corral's end-to-end tests, built once and shared by every suite:
//!
//! - [`scripted`]: what every scripted model server shares: real HTTP on `127.0.0.1:0` (JSON and
//!   SSE), a script of replies, a record of every request, a refusal for every broken rule.
//! - [`server`]: the Anthropic Messages protocol of it; [`rules`]: that API's rules, written
//!   against the raw JSON independently of corral's own code; [`cache`]: a request as the
//!   prompt cache sees it.
//! - [`openai_server`]: the OpenAI Chat Completions protocol of it; [`openai_rules`]: its rules.
//! - [`cargo`]: runs cargo on crates a test makes, sharing the plugins' target folder.
//! - [`cli`]: runs the real `corral` binary in a temp workspace against a server.
//! - [`long_session`]: a scripted model for sessions long enough to be compacted.
//! - [`pty`]: runs a command on a pseudo-terminal and replays what its screen shows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed setup is a failed test
pub mod cache;
pub mod cargo;
pub mod cli;
pub mod long_session;
pub mod openai_rules;
pub mod openai_server;
pub mod plugins;
pub mod pty;
pub mod rules;
pub mod scripted;
pub mod server;

pub use cli::{Corral, RunOutput};
pub use openai_server::{Completion, OpenAiServer};
pub use server::{
    Reply, ScriptedServer, ToolResult, Turn, redacted_thinking, sized, system_text, thinking,
    tool_results, tool_use, without_cache_marks,
};
