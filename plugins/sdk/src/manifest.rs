//! What a plugin says about itself: [`Capabilities`] and the manifest the macros build.

use crate::__private::bindings::corral::plugin::types;
use crate::dispatch::Entry;

/// What a plugin asks to reach. Every list is empty by default; the workspace grants
/// a subset of what is asked, never more.
///
/// ```
/// use corral_plugin::Capabilities;
/// let caps = Capabilities { read: vec!["**".into()], ..Default::default() };
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Workspace-relative paths or globs to read, e.g. `src/**`, or `**` for all.
    /// Granted paths appear under `/workspace`.
    pub read: Vec<String>,
    /// Workspace-relative paths or globs to create, change or remove.
    pub write: Vec<String>,
    /// Hosts for outgoing HTTP: `host`, `host:port`, `*.example.com` or `*`.
    pub network: Vec<String>,
    /// Environment variable names to read; `*` for whichever the workspace grants.
    pub env: Vec<String>,
}

/// The plugin-level facts [`export_plugin!`](crate::export_plugin) collects.
#[doc(hidden)]
pub struct PluginInfo {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    pub capabilities: Capabilities,
}

/// Builds the manifest the host reads once at load time.
#[doc(hidden)]
pub fn manifest(info: PluginInfo, tools: &[Entry]) -> types::Manifest {
    let Capabilities {
        read,
        write,
        network,
        env,
    } = info.capabilities;
    types::Manifest {
        name: info.name.into(),
        version: info.version.into(),
        description: info.description.into(),
        tools: tools
            .iter()
            .map(|tool| types::ToolInfo {
                name: tool.name.into(),
                description: tool.description.into(),
                input_schema: (tool.schema)().to_string(),
            })
            .collect(),
        capabilities: types::Capabilities {
            read,
            write,
            network,
            env,
        },
    }
}
