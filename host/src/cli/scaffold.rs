//! `corral plugin new NAME`: a plugin crate that builds as it is and loads in corral.
//!
//! The SDK, `corral-plugin`, is not on crates.io, so the new crate depends on it by path: by
//! default the `plugins/sdk` of the source tree this binary was built from (its location is
//! known at compile time), or the folder given with `--sdk`. The crate is its own workspace, so
//! it builds wherever it is created, and it has the release profile of corral's own plugins.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::EXIT_USAGE;

/// The SDK of the source tree this binary was built from.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// The files of a new plugin: its path in the crate, and its template.
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("templates/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("templates/lib.rs.tmpl")),
    ("README.md", include_str!("templates/README.md.tmpl")),
    (".gitignore", include_str!("templates/gitignore.tmpl")),
];

/// Names a plugin cannot take: Rust keywords and crates a plugin's code names (the crate's
/// own name would shadow them).
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "std",
    "core",
    "alloc",
    "test",
    "proc_macro",
    "serde",
    "schemars",
    "corral_plugin",
];

/// The longest tool name the model APIs accept.
const MAX_NAME: usize = 64;

/// `corral plugin new NAME [--dir PATH] [--sdk PATH]`: writes the crate, prints what to do
/// next. A bad name, an existing folder or an SDK that cannot be found is exit code 2, and
/// nothing is written.
pub fn new_plugin(name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> ExitCode {
    match scaffold(name, dir, sdk) {
        Ok(created) => {
            let crate_name = name.replace('-', "_");
            println!("created plugin `{name}` in {}", created.display());
            println!("next:");
            println!("  cd {}", created.display());
            println!("  cargo build --target wasm32-wasip2 --release");
            println!("  cargo test");
            println!(
                "  cp target/wasm32-wasip2/release/{crate_name}.wasm <workspace>/.corral/plugins/"
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("corral: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Creates the crate; returns its folder.
fn scaffold(name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> Result<PathBuf, String> {
    check_name(name)?;
    let sdk = find_sdk(sdk)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.symlink_metadata().is_ok() {
        return Err(format!(
            "{} already exists; nothing was written (give another --dir, or remove it)",
            dir.display()
        ));
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // `create_dir`, not `create_dir_all`: a folder that appeared meanwhile is refused too.
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (path, template) in TEMPLATES {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&file, render(template, name, &sdk))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    Ok(dir)
}

/// A plugin name: `[a-z][a-z0-9_-]*`, at most 64 characters (it is also the tool's name), not
/// a built-in tool's name, a Rust keyword or a crate the plugin uses.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !well_formed {
        return Err(format!(
            "bad plugin name `{name}`: use lowercase letters, digits, `_` and `-`, starting with a letter (like `word-count`)"
        ));
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "bad plugin name `{name}`: at most {MAX_NAME} characters"
        ));
    }
    if corral::tools::BUILT_IN_TOOLS.contains(&name) {
        return Err(format!(
            "bad plugin name `{name}`: corral has a built-in tool of that name"
        ));
    }
    if RESERVED.contains(&name.replace('-', "_").as_str()) {
        return Err(format!(
            "bad plugin name `{name}`: reserved in Rust or used by the plugin's dependencies"
        ));
    }
    Ok(())
}

/// The SDK folder, absolute: `--sdk`, or the one of the source tree this binary came from.
fn find_sdk(given: Option<&Path>) -> Result<PathBuf, String> {
    let path = given.map_or_else(|| PathBuf::from(BUILT_FROM_SDK), Path::to_path_buf);
    let manifest = std::fs::read_to_string(path.join("Cargo.toml")).unwrap_or_default();
    if !manifest.contains("name = \"corral-plugin\"") {
        let hint = if given.is_some() {
            "give the folder of corral's plugin SDK (`plugins/sdk` in corral's source)"
        } else {
            "corral's source tree has moved since this binary was built; give the SDK's folder with --sdk PATH (`plugins/sdk` in corral's source)"
        };
        return Err(format!(
            "no plugin SDK (the corral-plugin crate) at {}: {hint}",
            path.display()
        ));
    }
    path.canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", path.display()))
}

/// Fills a template: `{{name}}` the plugin's name, `{{crate}}` its crate name (`-` made `_`, as
/// in the `.wasm` file's name), `{{sdk}}` the SDK's path as a TOML string.
fn render(template: &str, name: &str, sdk: &Path) -> String {
    let sdk = toml::Value::String(sdk.display().to_string()).to_string();
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
        .replace("{{sdk}}", &sdk)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Good names pass; malformed, overlong, built-in and reserved ones are refused.
    #[test]
    fn names() {
        for good in ["word-count", "a", "x2_y-z"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Word", "2x", "-a", "a b", "a.b", "é", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("bash").unwrap_err().contains("built-in tool"));
        assert!(check_name("fn").unwrap_err().contains("reserved"));
        assert!(
            check_name("corral-plugin")
                .unwrap_err()
                .contains("reserved")
        );
    }

    /// Every placeholder is filled, and the SDK path is a TOML string even with quotes in it.
    #[test]
    fn templates_are_filled() {
        let sdk = Path::new("/src/co\"rral/plugins/sdk");
        for (path, template) in TEMPLATES {
            let text = render(template, "word-count", sdk);
            assert!(!text.contains("{{"), "{path}: {text}");
        }
        let manifest: toml::Value =
            toml::from_str(&render(TEMPLATES[0].1, "word-count", sdk)).unwrap();
        assert_eq!(
            manifest["dependencies"]["corral-plugin"]["path"].as_str(),
            Some("/src/co\"rral/plugins/sdk")
        );
        assert_eq!(manifest["package"]["name"].as_str(), Some("word-count"));
        assert!(manifest.get("workspace").is_some());
    }

    /// The SDK of the source tree is found; a folder without it is refused naming --sdk.
    #[test]
    fn sdk() {
        assert!(find_sdk(None).unwrap().join("src/lib.rs").exists());
        let err = find_sdk(Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(err.contains("no plugin SDK"), "{err}");
    }
}
