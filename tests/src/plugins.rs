//! The plugins built from source for the tests (`tests/build.rs` builds `plugins/` and passes
//! their folder as `CORRAL_TEST_PLUGINS`), and putting them where corral finds them.

use std::path::{Path, PathBuf};

/// The built component of the plugin crate `name` (`-` in a crate name is `_` here).
pub fn built(name: &str) -> PathBuf {
    Path::new(env!("CORRAL_TEST_PLUGINS")).join(format!("{name}.wasm"))
}

/// Copies the named plugins into `<workspace>/.corral/plugins`; returns that folder.
pub fn install(workspace: &Path, names: &[&str]) -> PathBuf {
    let dir = workspace.join(".corral").join("plugins");
    std::fs::create_dir_all(&dir).expect("create the plugin folder");
    for name in names {
        std::fs::copy(built(name), dir.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("install {name}: {e}"));
    }
    dir
}
