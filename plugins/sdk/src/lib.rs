//! Write corral plugins in plain Rust.
//!
//! A corral plugin is a WebAssembly component that offers tools to the model. This
//! crate hides the component side: implement [`Tool`] for each tool and register them
//! once with [`export_plugin!`] (or [`export_tool!`] for a plugin with one tool).
//!
//! ```ignore
//! use corral_plugin::{export_tool, Tool, ToolError};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Args {
//!     /// The text to count the words of.
//!     text: String,
//! }
//!
//! struct WordCount;
//!
//! impl Tool for WordCount {
//!     const NAME: &'static str = "word_count";
//!     const DESCRIPTION: &'static str = "Count the words in a text.";
//!     type Args = Args;
//!     fn call(args: Args) -> Result<String, ToolError> {
//!         Ok(args.text.split_whitespace().count().to_string())
//!     }
//! }
//!
//! export_tool!(WordCount);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`: the crate must be a
//! `cdylib`, and the `.wasm` it leaves is the plugin.
//!
//! # What a tool can reach
//!
//! Only what the plugin asks for in its [`Capabilities`] and the workspace grants:
//! files under `/workspace` through `std::fs`, environment variables through
//! `std::env`, outgoing HTTP through `wasi:http` (the `wasip2` crate). Each call runs
//! in a fresh instance, so statics do not survive from one call to the next.
//!
//! # Layout
//! - `tool`: the [`Tool`] trait and [`ToolError`].
//! - `manifest`: [`Capabilities`] and the plugin description behind the macros.
//! - `log`: [`log`] and [`Level`], diagnostics through the host.
//! - `dispatch`: turning the host's `call(tool, input)` into a typed [`Tool::call`].
//! - `export`: the registration macros [`export_plugin!`] and [`export_tool!`].

mod dispatch;
mod export;
mod log;
mod manifest;
mod tool;

pub use log::{Level, log};
pub use manifest::Capabilities;
pub use tool::{Tool, ToolError};

/// Re-exported so plugins can derive `JsonSchema` without naming the version.
pub use schemars;

/// The generated bindings and the glue the macros expand to. Not part of the API:
/// it changes without notice.
#[doc(hidden)]
pub mod __private {
    #[allow(missing_docs, unsafe_code, clippy::all)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "plugin",
            pub_export_macro: true,
            export_macro_name: "__export_bindings",
            default_bindings_module: "corral_plugin::__private::bindings",
        });
    }

    pub use crate::dispatch::{Entry, dispatch, entry};
    pub use crate::manifest::{PluginInfo, manifest};
    pub use bindings::corral::plugin::types::{Manifest, ToolError as WitToolError};
    pub use bindings::exports::corral::plugin::tools::Guest;
}
