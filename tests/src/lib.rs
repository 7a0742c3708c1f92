//! Test support for corral's end-to-end tests, built once and shared by every suite:
//!
//! - [`server`]: a scripted Anthropic Messages server on `127.0.0.1:0` (real HTTP, JSON and SSE)
//!   that answers from a script, records every request, and checks each against the API's rules.
//! - [`rules`]: those rules, written against the raw JSON independently of corral's own code.
//! - [`cli`]: runs the real `corral` binary in a temp workspace against a server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed setup is a failed test
pub mod cli;
pub mod rules;
pub mod server;

pub use cli::{Corral, RunOutput};
pub use server::{Reply, ScriptedServer, Turn, tool_use};
