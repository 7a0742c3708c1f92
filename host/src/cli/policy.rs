//! `corral policy show`, `corral policy check` and `corral policy approve`.

use std::process::ExitCode;

use corral::plugins::{LoadedPlugin, WorkspacePlugins};
use corral::policy::{self, ApprovalStore, Policy, SettingsFiles, TrustStatus};
use corral::sandbox::{SandboxMode, ShellNetwork};
use corral::workspace::Workspace;

use super::args::{PolicyArgs, PolicyCommand};
use super::plugins::load;
use super::render::Display;
use super::trust::{granted_summary, open, record_approvals};

pub async fn policy(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    let (workspace, mut policy) = match open(
        &super::args::workspace_root(args.workspace.as_deref(), false),
        false,
    ) {
        Ok(opened) => opened,
        Err(code) => return Ok(code),
    };
    let set = load(&workspace, &policy, &args.plugin_dirs, &Display::plain()).await;
    let rights: Vec<_> = set
        .plugins
        .iter()
        .map(|p| WorkspacePlugins::rights(p, &policy))
        .collect();
    match args.command {
        PolicyCommand::Show { json } => {
            if json {
                let plugins: Vec<serde_json::Value> = set
                    .plugins
                    .iter()
                    .zip(&rights)
                    .map(|(p, r)| {
                        let mut value = serde_json::to_value(r).unwrap_or_default();
                        if let Some(object) = value.as_object_mut() {
                            object.insert("file".into(), serde_json::json!(p.file));
                            object.insert("sha256".into(), serde_json::json!(p.sha256));
                        }
                        value
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "files": policy.files,
                        "trust": policy.trust,
                        "shell": shell_json(&policy),
                        "plugins": plugins,
                    })
                );
            } else {
                show(&policy, &rights);
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Approve { names, revoke } => Ok(approve(
            &workspace,
            &mut policy,
            &set.plugins,
            &names,
            revoke,
        )),
        PolicyCommand::Check => {
            // The file is checked as written, trusted or not: what it would grant once trusted.
            let as_written = match as_written(&workspace, &policy) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("corral: {e}");
                    return Ok(ExitCode::from(super::EXIT_USAGE));
                }
            };
            let rights: Vec<_> = set
                .plugins
                .iter()
                .map(|p| WorkspacePlugins::rights(p, &as_written))
                .collect();
            let mut warnings = Vec::new();
            for r in &rights {
                for g in &r.granted_not_asked {
                    warnings.push(format!(
                        "plugin {}: grants {g}, which it did not ask for (it gives nothing)",
                        r.plugin
                    ));
                }
            }
            for name in as_written.plugins.keys() {
                if !set.plugins.iter().any(|p| &p.manifest.name == name) {
                    warnings.push(format!(
                        "[plugin.{name}]: no plugin of that name is installed"
                    ));
                }
            }
            for w in &warnings {
                println!("warning: {w}");
            }
            let files: Vec<String> = policy
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            let read = if files.is_empty() {
                "no settings files (the defaults apply)".to_string()
            } else {
                files.join(", ")
            };
            if let Some(note) = trust_note(&policy) {
                println!("note: {note}");
            }
            println!("ok: {read}; {} warning(s)", warnings.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn shell_json(policy: &Policy) -> serde_json::Value {
    serde_json::json!({
        "enabled": policy.shell.enabled,
        "timeout_secs": policy.shell.timeout.as_secs(),
        "env": match &policy.shell.env {
            corral::process::CommandEnv::Inherit => serde_json::json!("inherit"),
            corral::process::CommandEnv::Only(names) => serde_json::json!(names),
        },
        "max_background": policy.max_background,
        "env_keep": policy.shell.env_keep,
        "sandbox": {
            "mode": policy.shell.sandbox.mode.as_str(),
            "writable": policy.shell.sandbox.writable,
            "hidden": policy.shell.sandbox.hidden,
            "network": match &policy.shell.sandbox.network {
                ShellNetwork::Off => serde_json::json!(false),
                ShellNetwork::On => serde_json::json!(true),
                ShellNetwork::Hosts(hosts) => serde_json::json!(hosts),
            },
        },
        "allow": policy.shell.rules.allow.iter()
            .map(|list| list.iter().map(ToString::to_string).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        "deny": policy.shell.rules.deny.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn show_sandbox(policy: &Policy) {
    let sandbox = &policy.shell.sandbox;
    let paths = |list: &[std::path::PathBuf]| {
        list.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match sandbox.mode {
        SandboxMode::Off => println!("  sandbox: off (commands run unconfined, with your rights)"),
        mode => {
            println!("  sandbox: {}", mode.as_str());
            if !sandbox.writable.is_empty() {
                println!("    writable: {}", paths(&sandbox.writable));
            }
            println!("    hidden: {}", paths(&sandbox.hidden));
            println!("    network: {}", sandbox.network);
        }
    }
    if !policy.shell.env_keep.is_empty() {
        println!("  env_keep: {}", policy.shell.env_keep.join(", "));
    }
    for list in &policy.shell.rules.allow {
        let rules: Vec<String> = list.iter().map(|r| format!("\"{r}\"")).collect();
        println!("  allow: {}", rules.join(", "));
    }
    if !policy.shell.rules.deny.is_empty() {
        let rules: Vec<String> = policy
            .shell
            .rules
            .deny
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect();
        println!("  deny: {}", rules.join(", "));
    }
}

fn show(policy: &Policy, rights: &[policy::Rights]) {
    if policy.files.is_empty() {
        println!("settings: none (defaults)");
    }
    for file in &policy.files {
        println!("settings: {}", file.display());
    }
    let trust = &policy.trust;
    let sha256 = trust.sha256.as_deref().unwrap_or("");
    match trust.status {
        TrustStatus::NoFile => {}
        TrustStatus::Trusted => println!(
            "trust: {} is trusted (sha256 {sha256})",
            policy::WORKSPACE_FILE
        ),
        TrustStatus::Untrusted | TrustStatus::Changed => {
            let state = if trust.status == TrustStatus::Changed {
                "changed since you trusted it"
            } else {
                "is not trusted"
            };
            println!(
                "trust: {} {state} (sha256 {sha256}): it may only narrow your settings; `corral trust` applies it whole",
                policy::WORKSPACE_FILE
            );
            for ignored in &trust.ignored {
                println!("  ignored: {} ({})", ignored.setting, ignored.reason);
            }
        }
    }
    println!(
        "shell: {}",
        if policy.shell.enabled {
            "enabled"
        } else {
            "disabled (bash and background tools not offered)"
        }
    );
    println!("  timeout: {} s", policy.shell.timeout.as_secs());
    match &policy.shell.env {
        corral::process::CommandEnv::Inherit => println!("  env: inherit"),
        corral::process::CommandEnv::Only(names) => println!("  env: only {}", names.join(", ")),
    }
    if let Some(n) = policy.max_background {
        println!("  max background tasks: {n}");
    }
    if policy.shell.enabled {
        show_sandbox(policy);
    }
    for r in rights {
        println!("plugin {}:", r.plugin);
        let (g, e) = (&r.granted, &r.effective);
        let rows = [
            ("read", &r.asked.read, texts(&g.read), texts(&e.read)),
            ("write", &r.asked.write, texts(&g.write), texts(&e.write)),
            (
                "network",
                &r.asked.network,
                texts(&g.network),
                texts(&e.network),
            ),
            ("env", &r.asked.env, texts(&g.env), texts(&e.env)),
        ];
        for (kind, asked, granted, effective) in rows {
            if asked.is_empty() && granted.is_empty() {
                continue;
            }
            println!(
                "  {kind:8} asks [{}]  granted [{}]  effective [{}]",
                asked.join(", "),
                granted.join(", "),
                effective.join(", ")
            );
        }
        for a in &r.asked_not_granted {
            println!("  asked, not granted: {a}");
        }
        for g in &r.granted_not_asked {
            println!("  granted, not asked (gives nothing): {g}");
        }
        if r.approval.withholds() {
            println!(
                "  {}; `corral policy approve {}` gives them",
                r.approval, r.plugin
            );
        } else if r.approval != policy::Approval::NotNeeded {
            println!("  {}", r.approval);
        }
    }
}

/// The workspace's settings as written, as if its `corral.toml` were trusted: what `check`
/// lints and what `approve` approves. Nothing of it is applied.
fn as_written(workspace: &Workspace, policy: &Policy) -> Result<Policy, policy::PolicyError> {
    let files = SettingsFiles::read(workspace, policy::user_file().as_deref())?;
    Policy::from_files(
        workspace,
        &files,
        TrustStatus::Trusted,
        policy.approvals.clone(),
    )
}

/// The line `check` adds when the workspace file is not trusted, naming how much it ignores.
fn trust_note(policy: &Policy) -> Option<String> {
    let trust = &policy.trust;
    let state = match trust.status {
        TrustStatus::NoFile | TrustStatus::Trusted => return None,
        TrustStatus::Untrusted => "is not trusted",
        TrustStatus::Changed => "changed since you trusted it",
    };
    Some(format!(
        "{} {state}: {} setting(s) ignored until you run `corral trust` (`corral policy show` names them)",
        policy::WORKSPACE_FILE,
        trust.ignored.len()
    ))
}

/// Parsed grants as their text, for display only.
fn texts<T: std::fmt::Display>(list: &[T]) -> Vec<String> {
    list.iter().map(T::to_string).collect()
}

/// `corral policy approve [NAME...] [--revoke]`: records (or forgets) the approval of plugin
/// components in the user's config folder. Without names, approves every enabled plugin the
/// workspace file, as written, grants something and whose component is not approved. The file
/// need not be trusted yet; its grants apply once it is.
fn approve(
    workspace: &Workspace,
    policy: &mut Policy,
    plugins: &[LoadedPlugin],
    names: &[String],
    revoke: bool,
) -> ExitCode {
    let usage = |message: String| {
        eprintln!("corral: {message}");
        ExitCode::from(super::EXIT_USAGE)
    };
    if revoke {
        let Some(dir) = policy::config_dir() else {
            return usage("there is no config folder (is HOME set?)".into());
        };
        return match ApprovalStore::in_dir(&dir).revoke(workspace.root(), names) {
            Ok(removed) if removed.is_empty() => {
                println!("nothing to revoke: no such plugin was approved in this workspace");
                ExitCode::SUCCESS
            }
            Ok(removed) => {
                for name in removed {
                    println!("revoked the approval of {name}: its grants are withheld");
                }
                ExitCode::SUCCESS
            }
            Err(e) => usage(e.to_string()),
        };
    }
    // What the file grants as written, trusted or not: approving a component is independent
    // of trusting the file, and both are needed for a grant to apply.
    let as_written = match as_written(workspace, policy) {
        Ok(p) => p,
        Err(e) => return usage(e.to_string()),
    };
    let mut chosen: Vec<&LoadedPlugin> = Vec::new();
    for name in names {
        match plugins.iter().find(|p| &p.manifest.name == name) {
            Some(p) => chosen.push(p),
            None => {
                return usage(format!(
                    "no plugin named `{name}` is loaded in this workspace (see `corral plugins`)"
                ));
            }
        }
    }
    if names.is_empty() {
        chosen = plugins
            .iter()
            .filter(|p| {
                WorkspacePlugins::rights(p, &as_written)
                    .approval
                    .withholds()
            })
            .collect();
    }
    if chosen.is_empty() {
        println!("nothing to approve: no plugin's grants are withheld");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = record_approvals(workspace, policy, &chosen) {
        return usage(e.to_string());
    }
    for p in &chosen {
        println!(
            "approved {} {} ({}, sha256 {}): {}",
            p.manifest.name,
            p.manifest.version,
            p.file.display(),
            p.sha256,
            granted_summary(p, &as_written)
        );
    }
    if !policy.trust.status.is_trusted() && policy.trust.status != TrustStatus::NoFile {
        println!(
            "{} is not trusted: its grants apply once you run `corral trust`",
            policy::WORKSPACE_FILE
        );
    }
    ExitCode::SUCCESS
}
