//! `corral policy show` and `corral policy check`.

use std::process::ExitCode;

use corral::policy::{self, Policy};

use super::args::{PolicyArgs, PolicyCommand};
use corral::plugins::WorkspacePlugins;

use super::plugins::{load, open};
use super::render::Display;

pub async fn policy(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    let (workspace, policy) = match open(&args.workspace) {
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
                println!(
                    "{}",
                    serde_json::json!({
                        "files": policy.files,
                        "shell": shell_json(&policy),
                        "plugins": rights,
                    })
                );
            } else {
                show(&policy, &rights);
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check => {
            let mut warnings = Vec::new();
            for r in &rights {
                for g in &r.granted_not_asked {
                    warnings.push(format!(
                        "plugin {}: grants {g}, which it did not ask for (it gives nothing)",
                        r.plugin
                    ));
                }
            }
            for name in policy.plugins.keys() {
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
    })
}

fn show(policy: &Policy, rights: &[policy::Rights]) {
    if policy.files.is_empty() {
        println!("settings: none (defaults)");
    }
    for file in &policy.files {
        println!("settings: {}", file.display());
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
    for r in rights {
        println!("plugin {}:", r.plugin);
        let rows = [
            ("read", &r.asked.read, &r.granted.read, &r.effective.read),
            (
                "write",
                &r.asked.write,
                &r.granted.write,
                &r.effective.write,
            ),
            (
                "network",
                &r.asked.network,
                &r.granted.network,
                &r.effective.network,
            ),
            ("env", &r.asked.env, &r.granted.env, &r.effective.env),
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
    }
}
