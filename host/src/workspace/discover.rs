//! Finding the project from any folder inside it, as git and cargo do.
//!
//! Without `--workspace`, corral walks up from the current folder to the nearest one holding
//! `corral.toml` or `.corral/`; failing that, to the nearest git root (a folder holding
//! `.git`); failing that, it works in the current folder. A git root is never the home folder
//! or `/` (a home folder kept in git is not a project, and making it the workspace would open
//! the whole home to the file tools); a `corral.toml` or `.corral/` there still counts, since
//! someone put it there for corral. The walk reads names only: nothing found is trusted by
//! being found ([`crate::policy`] decides what a workspace's `corral.toml` may do).

use std::path::{Path, PathBuf};

use super::{POLICY_FILE, STATE_DIR};

/// Why a folder was chosen as the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// It holds `corral.toml` or `.corral/`.
    Marker,
    /// It is the nearest git root.
    GitRoot,
    /// Nothing above marks a project: the starting folder itself.
    Start,
}

impl Found {
    /// How to say it: `the nearest folder with corral.toml or .corral/`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Marker => "the nearest folder with corral.toml or .corral/",
            Self::GitRoot => "the nearest git root",
            Self::Start => "the current folder",
        }
    }
}

/// The workspace for a run started in `start` (an absolute path), and why.
pub fn discover(start: &Path) -> (PathBuf, Found) {
    let home = dirs::home_dir();
    let is_marked = |dir: &Path| {
        [POLICY_FILE, STATE_DIR]
            .iter()
            .any(|name| dir.join(name).symlink_metadata().is_ok())
    };
    if let Some(dir) = start.ancestors().find(|dir| is_marked(dir)) {
        return (dir.to_path_buf(), Found::Marker);
    }
    let git_root = start.ancestors().find(|dir| {
        dir.parent().is_some()
            && home.as_deref() != Some(*dir)
            && dir.join(".git").symlink_metadata().is_ok()
    });
    match git_root {
        Some(dir) => (dir.to_path_buf(), Found::GitRoot),
        None => (start.to_path_buf(), Found::Start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_marker_wins_over_a_git_root_and_the_start() {
        let root = tempfile::tempdir().expect("tempdir");
        let project = root.path().join("project");
        let docs = project.join("docs/deep");
        std::fs::create_dir_all(&docs).expect("mkdir");
        std::fs::create_dir(project.join(".git")).expect("git");
        assert_eq!(discover(&docs), (project.clone(), Found::GitRoot));
        std::fs::write(project.join("docs/corral.toml"), "").expect("toml");
        assert_eq!(discover(&docs), (project.join("docs"), Found::Marker));
        let lone = root.path().join("lone");
        std::fs::create_dir(&lone).expect("mkdir");
        assert_eq!(discover(&lone).1, Found::Start);
    }
}
