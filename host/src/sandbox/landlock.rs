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

use std::fs::File;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
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

    // Each rule holds the entry as opened at its path, with no symlink on the way.
    let mut rules: Vec<(File, BitFlags<AccessFs>)> = Vec::new();
    let mut top = Vec::new();
    let mut grant = |path: &Path, access| {
        // A path that does not exist (no $TMPDIR, no /dev/tty), or no longer leads where the
        // plan said, grants nothing.
        if let Some(entry) = open_as_planned(path) {
            rules.push((entry, access));
        }
    };
    match isolation {
        Isolation::Mounts => grant(Path::new("/"), read),
        Isolation::LandlockOnly => around(Path::new("/"), &plan.hidden, read, &mut grant),
    }
    grant(Path::new("/dev"), read | AccessFs::IoctlDev);
    if plan.workspace_writable {
        match isolation {
            Isolation::Mounts => grant(&plan.workspace, read | write),
            Isolation::LandlockOnly => {
                top = top_entries(plan);
            }
        }
    }
    for path in &plan.writable {
        grant(path, read | write);
    }
    rules.extend(top.into_iter().map(|entry| (entry, read | write)));
    for (entry, access) in rules {
        let access = if entry.metadata().is_ok_and(|m| m.is_dir()) {
            access
        } else {
            access & AccessFs::from_file(TARGET_ABI)
        };
        created = created
            .add_rule(PathBeneath::new(entry, access))
            .map_err(error)?;
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

/// `path` opened (`O_PATH`) with no symlink anywhere on the way (`RESOLVE_NO_SYMLINKS`), or
/// `None`. The plan's paths are canonical, so a symlink on the way is one put there since (in a
/// folder commands may write, such as `/tmp` or the workspace): followed, it would grant its
/// target, which may be a hidden path or anywhere else. Opened once, the rule holds that very
/// entry whatever is renamed after.
fn open_as_planned(path: &Path) -> Option<File> {
    use rustix::fs::{CWD, Mode, OFlags, ResolveFlags, openat2};
    openat2(
        CWD,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    )
    .ok()
    .map(File::from)
}

/// The workspace's top-level entries the Landlock-only way may grant: each opened with no
/// symlink on the way ([`open_as_planned`]: a link would grant its target, anywhere), and
/// neither a protected entry nor another name of one (a hard link of `corral.toml`).
fn top_entries(plan: &Plan) -> Vec<File> {
    use std::os::unix::fs::MetadataExt;
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
            let file = open_as_planned(&entry.path())?;
            let meta = file.metadata().ok()?;
            (!protected.contains(&identity(&meta))).then_some(file)
        })
        .collect()
}

/// Read rules for everything beneath `dir` but the `hidden` paths: entries that hold no hidden
/// path are granted whole; those that hold one are walked into; a hidden entry is skipped, and
/// so is a symlink (its target is granted, or not, at its own path).
fn around(
    dir: &Path,
    hidden: &[PathBuf],
    read: BitFlags<AccessFs>,
    grant: &mut impl FnMut(&Path, BitFlags<AccessFs>),
) {
    let inside: Vec<&PathBuf> = hidden.iter().filter(|h| h.starts_with(dir)).collect();
    if inside.is_empty() {
        grant(dir, read);
        return;
    }
    if inside.iter().any(|h| h.as_path() == dir) || open_as_planned(dir).is_none() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        around(&entry.path(), hidden, read, grant);
    }
}
