//! `corral.toml` parsing and layering (`corral::policy`): the user's `config.toml` and the
//! workspace's `corral.toml`, as bytes on disk in a scratch workspace, read and merged into a
//! `Policy` under a trust status.
//!
//! Input: one byte (bits 0-1: the trust status; bit 2: no user file; bit 3: no workspace file),
//! then the user file, a NUL byte, the workspace file. What must hold: no panic; every grant
//! shows as text that parses back to the same grant; and a workspace file that is not trusted
//! only narrows what the user's file alone gives: no grant, no plugin folder, no other provider,
//! URL or model, no higher limit, no shell or environment the user's file does not allow.
#![no_main]

use std::path::Path;

use corral::policy::{Approvals, HostPattern, Policy, SettingsFiles, TrustStatus, parse_path};
use corral::process::CommandEnv;
use corral::workspace::Workspace;
use corral::{AgentConfig, background::BackgroundConfig};
use corral_fuzz::{fields, scratch, workspace_root};
use libfuzzer_sys::fuzz_target;

fn put(path: &Path, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}")),
        None => {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn load(ws: &Workspace, user: &Path, status: TrustStatus) -> Option<Policy> {
    let files = SettingsFiles::read(ws, Some(user)).ok()?;
    Policy::from_files(ws, &files, status, Approvals::default()).ok()
}

/// Every grant shows as text that parses back to it.
fn round_trips(policy: &Policy, root: &Path) {
    for (name, plugin) in &policy.plugins {
        for grant in plugin.read.iter().chain(&plugin.write) {
            let shown = grant.to_string();
            assert_eq!(
                parse_path(&shown, root).as_ref(),
                Ok(grant),
                "{name}: {shown}"
            );
        }
        for host in &plugin.network {
            let shown = host.to_string();
            assert_eq!(
                HostPattern::parse(&shown).as_ref(),
                Ok(host),
                "{name}: {shown}"
            );
        }
    }
}

/// What an untrusted workspace file may do over the user's file alone (`user`): narrow.
fn only_narrows(p: &Policy, user: &Policy) {
    let agent = AgentConfig::default();
    let background = BackgroundConfig::default();
    assert_eq!(p.agent.provider, user.agent.provider);
    assert_eq!(p.agent.base_url, user.agent.base_url);
    assert_eq!(p.agent.model, user.agent.model);
    let turns = |p: &Policy| p.agent.max_turns.unwrap_or(agent.max_turns);
    assert!(turns(p) <= turns(user));
    let tokens = |p: &Policy| p.agent.max_tokens.unwrap_or(agent.max_tokens);
    assert!(tokens(p) <= tokens(user));
    assert!(!p.shell.enabled || user.shell.enabled);
    assert!(p.shell.timeout <= user.shell.timeout);
    let tasks = |p: &Policy| p.max_background.unwrap_or(background.max_tasks);
    assert!(tasks(p) <= tasks(user));
    let timeout = |p: &Policy| p.background_timeout.unwrap_or(background.default_timeout);
    let (mine, theirs) = (timeout(p), timeout(user));
    assert!(
        theirs.is_zero() || (!mine.is_zero() && mine <= theirs),
        "{mine:?} > {theirs:?}"
    );
    if let CommandEnv::Only(allowed) = &user.shell.env {
        match &p.shell.env {
            CommandEnv::Only(names) => assert!(names.iter().all(|n| allowed.contains(n))),
            CommandEnv::Inherit => panic!("an untrusted file gave commands the whole environment"),
        }
    }
    assert_eq!(p.plugin_dirs, user.plugin_dirs);
    assert!(user.disabled.iter().all(|d| p.disabled.contains(d)));
    assert!(p.default_limits.timeout <= user.default_limits.timeout);
    assert!(p.default_limits.memory <= user.default_limits.memory);
    for (name, plugin) in &p.plugins {
        assert!(
            plugin.read.is_empty()
                && plugin.write.is_empty()
                && plugin.network.is_empty()
                && plugin.env.is_empty(),
            "an untrusted file granted plugin {name} something"
        );
        assert!(
            plugin.limits.timeout <= user.default_limits.timeout,
            "{name}"
        );
        assert!(plugin.limits.memory <= user.default_limits.memory, "{name}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let f = fields(rest, 0, 2);
    let status = [
        TrustStatus::Untrusted,
        TrustStatus::Trusted,
        TrustStatus::Changed,
        TrustStatus::NoFile,
    ][usize::from(flags & 3)];
    let root = workspace_root();
    let user = scratch().join("config/config.toml");
    let workspace_file = root.join("corral.toml");
    put(&user, (flags & 4 == 0).then_some(f[0]));
    put(&workspace_file, (flags & 8 == 0).then_some(f[1]));
    let ws = Workspace::open(&root).unwrap_or_else(|e| panic!("{e}"));

    let Some(policy) = load(&ws, &user, status) else {
        return;
    };
    round_trips(&policy, ws.root());
    if status != TrustStatus::Trusted && flags & 8 == 0 {
        put(&workspace_file, None);
        let alone = load(&ws, &user, status).unwrap_or_else(|| {
            panic!("the user's file is refused alone but accepted under a workspace file")
        });
        only_narrows(&policy, &alone);
    }
});
