//! The plugins of one workspace under its policy: where they are found, which are disabled,
//! and their tools with what the workspace grants each. What `corral run` and `corral plugins`
//! do, for any program.

use std::path::PathBuf;
use std::sync::Arc;

use super::loader::{LoadError, load_dirs};
use super::plugin::LoadedPlugin;
use super::state::LogSink;
use super::tool::PluginTool;
use super::{Runtime, default_cache_dir};
use crate::policy::{self, Policy, Rights};
use crate::tools::{BUILT_IN_TOOLS, Tool};
use crate::workspace::Workspace;

/// The plugins found for a workspace.
#[derive(Debug, Default)]
pub struct WorkspacePlugins {
    /// Loaded and not disabled.
    pub plugins: Vec<LoadedPlugin>,
    /// Loaded, but disabled by the settings files (`plugins.disabled`).
    pub disabled: Vec<LoadedPlugin>,
    /// Files that did not load, and why.
    pub errors: Vec<LoadError>,
}

/// The plugin folders of a workspace, in order: `<workspace>/.corral/plugins`, the user's
/// `~/.config/corral/plugins`, the settings files' `plugins.dirs`, then `extra`.
pub fn plugin_dirs(workspace: &Workspace, policy: &Policy, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = vec![workspace.state_dir().join("plugins")];
    if let Some(config) = dirs::config_dir() {
        dirs.push(config.join("corral").join("plugins"));
    }
    dirs.extend(policy.plugin_dirs.iter().cloned());
    dirs.extend(extra.iter().cloned());
    dirs
}

impl WorkspacePlugins {
    /// Loads the plugins of `workspace` (its folders and `extra`), using the compile cache.
    /// Tool names of the built-ins cannot be taken.
    pub async fn load(
        runtime: &Runtime,
        workspace: &Workspace,
        policy: &Policy,
        extra: &[PathBuf],
        log: LogSink,
    ) -> Self {
        let taken: Vec<String> = BUILT_IN_TOOLS.iter().map(|s| s.to_string()).collect();
        let cache = default_cache_dir();
        let set = load_dirs(
            runtime,
            &plugin_dirs(workspace, policy, extra),
            cache.as_deref(),
            &taken,
            log,
        )
        .await;
        let (disabled, plugins) = set
            .plugins
            .into_iter()
            .partition(|p| policy.disabled.contains(&p.manifest.name));
        Self {
            plugins,
            disabled,
            errors: set.errors,
        }
    }

    /// The rights of `plugin` under `policy`: asked, granted, effective, and whether the user
    /// approved this component ([`policy::Approval`]): a plugin the workspace grants something
    /// gets it only when its sha256 is the one approved; otherwise its effective rights are
    /// empty.
    pub fn rights(plugin: &LoadedPlugin, policy: &Policy) -> Rights {
        let name = &plugin.manifest.name;
        let rights = policy::rights(name, &plugin.manifest.capabilities, &policy.plugin(name));
        let approval = policy::Approval::decide(
            !rights.effective.is_empty(),
            &plugin.sha256,
            policy.approvals.get(name),
        );
        rights.with_approval(approval)
    }

    /// The tools of every enabled plugin, each with its effective grants and limits. A plugin
    /// whose grants are withheld (not approved) runs with none. A plugin whose grants cannot be
    /// prepared (its file view cannot be built) is left out and named in the second list.
    pub fn tools(
        &self,
        workspace: &Workspace,
        policy: &Policy,
    ) -> (Vec<Arc<dyn Tool>>, Vec<String>) {
        let mut tools = Vec::new();
        let mut problems = Vec::new();
        for plugin in &self.plugins {
            let plugin_policy = policy.plugin(&plugin.manifest.name);
            let rights = Self::rights(plugin, policy);
            if rights.approval.withholds() {
                let none = policy::Grants::default();
                tools.extend(PluginTool::for_plugin(
                    plugin,
                    none,
                    plugin_policy.limits,
                    Some(workspace),
                ));
                continue;
            }
            match policy::grants(workspace, &rights) {
                Ok(grants) => tools.extend(PluginTool::for_plugin(
                    plugin,
                    grants,
                    plugin_policy.limits,
                    Some(workspace),
                )),
                Err(error) => problems.push(format!(
                    "plugin {} skipped: its grants could not be prepared: {error}",
                    plugin.manifest.name
                )),
            }
        }
        (tools, problems)
    }
}
