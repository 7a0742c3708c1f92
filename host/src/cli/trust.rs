//! Trust and approval at the command line: `corral trust [--revoke]`, opening a workspace with
//! its file trusted or not (and `chat`'s one question when it is not), and the line or question
//! for each plugin whose grants are withheld.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use corral::plugins::{LoadedPlugin, WorkspacePlugins};
use corral::policy::{
    self, ApprovalStore, Approvals, Policy, PolicyError, SettingsFiles, TrustStatus, TrustStore,
};
use corral::workspace::Workspace;

use super::EXIT_USAGE;
use super::args::TrustArgs;

/// Whether corral may ask the person at the terminal: stdin and stderr are both terminals.
/// Never in `corral run`, which scripts use.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `question` on stderr and reads one line of stdin: yes for `y` or `yes`, no for anything
/// else, an empty line or the end of input.
fn ask(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The user's records, when there is a config folder.
fn stores() -> Option<(TrustStore, ApprovalStore)> {
    policy::config_dir().map(|dir| (TrustStore::in_dir(&dir), ApprovalStore::in_dir(&dir)))
}

fn usage(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("corral: {error}");
    ExitCode::from(EXIT_USAGE)
}

/// Opens the workspace and reads its settings once. An untrusted `corral.toml` applies only
/// what narrows; when it would set more and `ask` is true (`chat` at a terminal), the user is
/// asked once whether to trust it, and a yes records the trust and applies the same bytes
/// whole. What stays ignored is named in one line on stderr. A problem is printed and becomes
/// exit code 2.
pub fn open(workspace: &Path, ask_user: bool) -> Result<(Workspace, Policy), ExitCode> {
    let ws = Workspace::open(workspace).map_err(|e| {
        eprintln!("corral: workspace {}: {e}", workspace.display());
        ExitCode::from(EXIT_USAGE)
    })?;
    let load = || -> Result<Policy, PolicyError> {
        let files = SettingsFiles::read(&ws, policy::user_file().as_deref())?;
        let Some((trust, approvals)) = stores() else {
            let status = match files.workspace_sha256() {
                Some(_) => TrustStatus::Untrusted,
                None => TrustStatus::NoFile,
            };
            return Policy::from_files(&ws, &files, status, Approvals::default());
        };
        let status = trust.status(ws.root(), files.workspace_sha256())?;
        let approved = approvals.for_workspace(ws.root())?;
        let policy = Policy::from_files(&ws, &files, status, approved.clone())?;
        if !ask_user || policy.trust.ignored.is_empty() {
            return Ok(policy);
        }
        let (Some(file), Some(sha256)) = (files.workspace_file(), files.workspace_sha256()) else {
            return Ok(policy);
        };
        eprintln!(
            "corral: {} {}; it would set:",
            file.display(),
            match status {
                TrustStatus::Changed => "changed since you trusted it",
                _ => "is not trusted",
            }
        );
        for ignored in &policy.trust.ignored {
            eprintln!("  {} ({})", ignored.setting, ignored.reason);
        }
        if !ask("trust this workspace's corral.toml?") {
            return Ok(policy);
        }
        trust.trust(ws.root(), sha256)?;
        eprintln!("corral: trusted {} (sha256 {sha256})", file.display());
        Policy::from_files(&ws, &files, TrustStatus::Trusted, approved)
    };
    let policy = load().map_err(usage)?;
    if let Some(warning) = policy.trust.warning() {
        eprintln!("corral: {warning}");
    }
    Ok((ws, policy))
}

/// For each enabled plugin whose grants are withheld (its component is not the approved one):
/// with `ask_user`, asks whether to approve it, and a yes records the approval in `policy` and
/// the user's record; otherwise, or after a no, one line on stderr says so.
pub fn approve_withheld(
    workspace: &Workspace,
    found: &WorkspacePlugins,
    policy: &mut Policy,
    ask_user: bool,
) {
    for plugin in &found.plugins {
        let rights = WorkspacePlugins::rights(plugin, policy);
        if !rights.approval.withholds() {
            continue;
        }
        let name = &plugin.manifest.name;
        if ask_user {
            eprintln!(
                "corral: plugin {name} ({}): {}; {} grants it {}",
                plugin.file.display(),
                rights.approval,
                policy::WORKSPACE_FILE,
                granted_summary(plugin, policy)
            );
            if ask(&format!("approve this {name} component?")) {
                match record_approvals(workspace, policy, &[plugin]) {
                    Ok(()) => {
                        eprintln!("corral: approved {name} (sha256 {})", plugin.sha256);
                        continue;
                    }
                    Err(error) => eprintln!("corral: {error}"),
                }
            }
        }
        eprintln!(
            "corral: plugin {name}: {}; run `corral policy approve {name}`",
            rights.approval
        );
    }
}

/// What the workspace grants `plugin` and it asked for, before approval: `read src/, env TOKEN`.
pub fn granted_summary(plugin: &LoadedPlugin, policy: &Policy) -> String {
    let rights = policy::rights(
        &plugin.manifest.name,
        &plugin.manifest.capabilities,
        &policy.plugin(&plugin.manifest.name),
    );
    let e = &rights.effective;
    let mut parts: Vec<String> = Vec::new();
    parts.extend(e.read.iter().map(|g| format!("read {g}")));
    parts.extend(e.write.iter().map(|g| format!("write {g}")));
    parts.extend(e.network.iter().map(|g| format!("network {g}")));
    parts.extend(e.env.iter().map(|g| format!("env {g}")));
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// Records the approval of each of `plugins`' components in the user's record and in `policy`.
pub fn record_approvals(
    workspace: &Workspace,
    policy: &mut Policy,
    plugins: &[&LoadedPlugin],
) -> Result<(), PolicyError> {
    let Some((_, store)) = stores() else {
        return Err(PolicyError {
            file: "~/.config/corral".into(),
            line: 0,
            column: 0,
            message: "there is no config folder (is HOME set?) to record approvals in".into(),
        });
    };
    let entries: Vec<(String, String)> = plugins
        .iter()
        .map(|p| (p.manifest.name.clone(), p.sha256.clone()))
        .collect();
    store.approve(workspace.root(), &entries)?;
    for (name, sha256) in &entries {
        policy.approvals.insert(name, sha256);
    }
    Ok(())
}

/// `corral trust [-w DIR] [--revoke]`.
pub fn trust(args: TrustArgs) -> ExitCode {
    let root = super::args::workspace_root(args.workspace.as_deref(), false);
    let ws = match Workspace::open(&root) {
        Ok(ws) => ws,
        Err(e) => return usage(format!("workspace {}: {e}", root.display())),
    };
    let Some((store, _)) = stores() else {
        return usage("there is no config folder (is HOME set?) to record trust in");
    };
    let file = ws.root().join(policy::WORKSPACE_FILE);
    if args.revoke {
        return match store.revoke(ws.root()) {
            Ok(true) => {
                println!("{} is no longer trusted", file.display());
                ExitCode::SUCCESS
            }
            Ok(false) => {
                println!("{} was not trusted", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => usage(e),
        };
    }
    // The file is checked before it is trusted: a broken file is an error, not a trust.
    let files = match SettingsFiles::read(&ws, policy::user_file().as_deref()) {
        Ok(files) => files,
        Err(e) => return usage(e),
    };
    let Some(sha256) = files.workspace_sha256() else {
        return usage(format!(
            "{} has no {}: there is nothing to trust",
            ws.root().display(),
            policy::WORKSPACE_FILE
        ));
    };
    let untrusted =
        match Policy::from_files(&ws, &files, TrustStatus::Untrusted, Approvals::default()) {
            Ok(policy) => policy,
            Err(e) => return usage(e),
        };
    if let Err(e) = store.trust(ws.root(), sha256) {
        return usage(e);
    }
    println!("trusted {} (sha256 {sha256})", file.display());
    let ignored: Vec<&str> = untrusted
        .trust
        .ignored
        .iter()
        .map(|i| i.setting.as_str())
        .collect();
    if !ignored.is_empty() {
        println!("now applied: {}", ignored.join(", "));
    }
    if ignored.iter().any(|s| s.starts_with("[plugin.")) {
        println!(
            "a plugin gets its grants once its component is approved: `corral policy approve`"
        );
    }
    println!("a change to the file makes it untrusted again until `corral trust` is run anew");
    ExitCode::SUCCESS
}
