//! Step 2 of the helper: `no_new_privs` and a Landlock ruleset, with the `landlock` crate.
//!
//! Handled (denied unless a rule allows it): every filesystem right of [`TARGET_ABI`] that the
//! kernel knows; TCP bind and connect when the network is off or a host list; signals and
//! abstract Unix sockets across the sandbox's edge (ABI 6). Allowed:
//!
//! - read, list and execute everywhere, and device ioctls beneath `/dev`;
//! - write (create, remove, rename, truncate; never make device nodes) beneath the workspace in
//!   `"workspace"` mode, beneath every path of [`Plan::writable`] (temp folders, devices,
//!   `[shell] writable`);
//! - TCP connect to the proxy's port only, with a host list.
//!
//! Without a mount namespace ([`super::mounts::Isolation::LandlockOnly`]) Landlock, which can
//! only add rights, says the rest by leaving things out: the workspace's entries are granted
//! one by one except `corral.toml` and `.corral`, and nothing new can be made at the top of the
//! workspace (Landlock cannot let a command make an entry in a folder without letting it
//! replace `corral.toml` there); reads are granted entry by entry around
//! each hidden path, so the folders that hold one (the home folder) cannot be listed.
//!
//! Best effort below [`TARGET_ABI`]: an older kernel enforces the rights it knows. A ruleset
//! the kernel does not enforce at all is an error; so is a network host list without TCP
//! rules, which [`super::Confinement::new`] also refuses up front.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};

use super::mounts::Isolation;
use super::{NetPlan, Plan};

/// The Landlock ABI corral's rules are written for (Linux 6.12): filesystem rights with
/// truncate and device ioctls, TCP, scopes.
pub const TARGET_ABI: ABI = ABI::V6;

/// The ruleset for `plan`, built (its paths opened) but not yet in force: the zygote builds it
/// once and each command [`enforce`]s its copy.
pub fn ruleset(plan: &Plan, isolation: Isolation) -> Result<RulesetCreated, String> {
    let error = |e: landlock::RulesetError| e.to_string();
    let read = AccessFs::from_read(TARGET_ABI);
    // Creating device nodes is never a command's business (root could reach raw disks).
    let write = AccessFs::from_write(TARGET_ABI) & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(TARGET_ABI))
        .map_err(error)?;
    if plan.network != NetPlan::On {
        // A host list is enforced here or not at all.
        let level = match plan.network {
            NetPlan::Proxy { .. } => CompatLevel::HardRequirement,
            _ => CompatLevel::BestEffort,
        };
        ruleset = ruleset
            .set_compatibility(level)
            .handle_access(AccessNet::from_all(TARGET_ABI))
            .map_err(error)?
            .set_compatibility(CompatLevel::BestEffort);
    }
    ruleset = ruleset.scope(Scope::from_all(TARGET_ABI)).map_err(error)?;
    let mut created = ruleset.create().map_err(error)?.no_new_privs(true);

    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = Vec::new();
    match isolation {
        Isolation::Mounts => rules.push(("/".into(), read)),
        Isolation::LandlockOnly => around(Path::new("/"), &plan.hidden, read, &mut rules),
    }
    rules.push(("/dev".into(), read | AccessFs::IoctlDev));
    if plan.workspace_writable {
        match isolation {
            Isolation::Mounts => rules.push((plan.workspace.clone(), read | write)),
            Isolation::LandlockOnly => {
                for entry in top_entries(plan) {
                    let access = if entry.metadata().is_ok_and(|m| m.is_dir()) {
                        read | write
                    } else {
                        (read | write) & AccessFs::from_file(TARGET_ABI)
                    };
                    created = created
                        .add_rule(PathBeneath::new(entry, access))
                        .map_err(error)?;
                }
            }
        }
    }
    for path in &plan.writable {
        rules.push((path.clone(), read | write));
    }
    for (path, access) in rules {
        // A path that does not exist (no $TMPDIR, no /dev/tty) grants nothing.
        let Ok(fd) = PathFd::new(&path) else { continue };
        let access = if is_dir(&path) {
            access
        } else {
            access & AccessFs::from_file(TARGET_ABI)
        };
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let NetPlan::Proxy { port } = plan.network {
        created = created
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(error)?;
    }
    Ok(created)
}

/// Puts `ruleset` (and `no_new_privs`) in force on this process and what it will exec.
pub fn enforce(ruleset: RulesetCreated) -> Result<(), String> {
    let status = ruleset.restrict_self().map_err(|e| e.to_string())?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("the kernel did not enforce the Landlock ruleset".into());
    }
    if !status.no_new_privs {
        return Err("no_new_privs could not be set".into());
    }
    Ok(())
}

/// The workspace's top-level entries the Landlock-only way may grant: each opened without
/// following a symlink (a link would grant its target, anywhere), symlinks skipped, and
/// neither a protected entry nor another name of one (a hard link of `corral.toml`).
fn top_entries(plan: &Plan) -> Vec<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let identity = |m: &std::fs::Metadata| (m.dev(), m.ino());
    let protected: Vec<(u64, u64)> = plan
        .protected
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .map(|m| identity(&m))
        .collect();
    let Ok(entries) = std::fs::read_dir(&plan.workspace) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(entry.path())
                .ok()?;
            let meta = file.metadata().ok()?;
            let keep = !meta.file_type().is_symlink() && !protected.contains(&identity(&meta));
            keep.then_some(file)
        })
        .collect()
}

fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// Read rules for everything beneath `dir` but the `hidden` paths: entries that hold no hidden
/// path are granted whole; those that hold one are walked into; a hidden entry is skipped.
fn around(
    dir: &Path,
    hidden: &[PathBuf],
    read: BitFlags<AccessFs>,
    rules: &mut Vec<(PathBuf, BitFlags<AccessFs>)>,
) {
    let inside: Vec<&PathBuf> = hidden.iter().filter(|h| h.starts_with(dir)).collect();
    if inside.is_empty() {
        rules.push((dir.to_path_buf(), read));
        return;
    }
    if inside.iter().any(|h| h.as_path() == dir) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        around(&entry.path(), hidden, read, rules);
    }
}
