//! The grammar of grants: workspace paths (folders, files, globs), host patterns, variable
//! names; and when a plugin's request covers a grant.

use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobMatcher};

/// A file grant: a path inside the workspace.
#[derive(Debug, Clone)]
pub enum PathGrant {
    /// A folder and everything below it (`src/`, `.`); `rel` is "" for the root.
    Folder { rel: String },
    /// One file.
    File { rel: String },
    /// Files matching a glob (`docs/**/*.md`); `base` is the folder before the first wildcard.
    Glob {
        pattern: String,
        base: String,
        matcher: GlobMatcher,
    },
}

impl PathGrant {
    /// The grant as written, normalised.
    pub fn display(&self) -> String {
        match self {
            PathGrant::Folder { rel } if rel.is_empty() => "./".into(),
            PathGrant::Folder { rel } => format!("{rel}/"),
            PathGrant::File { rel } => rel.clone(),
            PathGrant::Glob { pattern, .. } => pattern.clone(),
        }
    }

    /// The workspace-relative path whose prefix everything granted shares.
    pub fn base(&self) -> &str {
        match self {
            PathGrant::Folder { rel } | PathGrant::File { rel } => rel,
            PathGrant::Glob { base, .. } => base,
        }
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Parses a path grant of the workspace at `root`. Refuses paths that leave the workspace
/// (absolute outside it, `..` above it) and globs that do not parse.
pub fn parse_path(raw: &str, root: &Path) -> Result<PathGrant, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("an empty path; use \".\" for the whole workspace".into());
    }
    let folder_hint = trimmed.ends_with('/');
    let given = Path::new(trimmed);
    let relative: PathBuf = if given.is_absolute() {
        given
            .strip_prefix(root)
            .map(Path::to_path_buf)
            .map_err(|_| format!("`{trimmed}` is outside the workspace"))?
    } else {
        given.to_path_buf()
    };
    let mut parts: Vec<String> = Vec::new();
    for component in relative.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("`{trimmed}` leaves the workspace"));
                }
            }
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            _ => return Err(format!("`{trimmed}` is outside the workspace")),
        }
    }
    let rel = parts.join("/");
    if has_wildcard(&rel) {
        let glob = Glob::new(&rel).map_err(|e| format!("bad glob `{trimmed}`: {e}"))?;
        let base: Vec<&str> = parts
            .iter()
            .map(String::as_str)
            .take_while(|p| !has_wildcard(p))
            .collect();
        return Ok(PathGrant::Glob {
            pattern: rel.clone(),
            base: base.join("/"),
            matcher: glob.compile_matcher(),
        });
    }
    if folder_hint || rel.is_empty() || root.join(&rel).is_dir() {
        Ok(PathGrant::Folder { rel })
    } else {
        Ok(PathGrant::File { rel })
    }
}

/// Checks a host pattern: `*`, `host`, `host:port`, `*.domain`, `*.domain:port`, an IPv4
/// address, or `[IPv6]`, with an optional port. No scheme, no path.
pub fn check_host(raw: &str) -> Result<String, String> {
    let pattern = raw.trim().to_ascii_lowercase();
    let bad = |why: &str| Err(format!("bad host pattern `{raw}`: {why}"));
    if pattern == "*" {
        return Ok(pattern);
    }
    if pattern.contains("://") || pattern.contains('/') {
        return bad("give a host, not a URL (no scheme, no path)");
    }
    let (host, port) = if let Some(rest) = pattern.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, tail)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return bad("not an IPv6 address");
                }
                (format!("[{v6}]"), tail.strip_prefix(':'))
            }
            None => return bad("an unclosed `[`"),
        }
    } else {
        match pattern.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (pattern.clone(), None),
        }
    };
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return bad("the port is not a number from 1 to 65535");
    }
    if host.starts_with('[') {
        return Ok(pattern);
    }
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
    };
    if name.is_empty() || name.contains('*') || !name.split('.').all(label_ok) {
        return bad("a host is letters, digits, `-` and `.`, optionally starting with `*.`");
    }
    Ok(pattern)
}

/// Checks an environment variable name.
pub fn check_env_name(raw: &str) -> Result<String, String> {
    let ok = raw
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(format!("bad variable name `{raw}`"))
    }
}

/// Whether a plugin's path request (`**`, `src/**`, `src/`, `docs/*.md`) covers a grant.
pub fn path_request_covers(request: &str, grant: &PathGrant) -> bool {
    let request = request.trim().trim_start_matches("./");
    if matches!(request, "**" | "*" | "." | "./" | "**/*") {
        return true;
    }
    let request_base = request.trim_end_matches("/**").trim_end_matches('/');
    if !has_wildcard(request_base) {
        // A folder (or file) request covers grants at or below it.
        let base = grant.base();
        return base == request_base || base.starts_with(&format!("{request_base}/"));
    }
    match grant {
        PathGrant::Glob { pattern, .. } => pattern == request,
        PathGrant::File { rel } | PathGrant::Folder { rel } => {
            Glob::new(request).is_ok_and(|g| g.compile_matcher().is_match(rel))
        }
    }
}

/// Whether a plugin's network request (`*`, `*.example.com`, `api.example.com[:port]`) covers a
/// granted host pattern.
pub fn host_request_covers(request: &str, grant: &str) -> bool {
    let request = request.trim().to_ascii_lowercase();
    if request == "*" {
        return true;
    }
    let split = |p: &str| -> (String, Option<String>) {
        match p.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') || p.starts_with('[') => {
                (h.to_string(), Some(port.to_string()))
            }
            _ => (p.to_string(), None),
        }
    };
    let (rhost, rport) = split(&request);
    let (ghost, gport) = split(grant);
    if rport.is_some() && rport != gport {
        return false;
    }
    match rhost.strip_prefix("*.") {
        Some(domain) => ghost == format!("*.{domain}") || ghost.ends_with(&format!(".{domain}")),
        None => rhost == ghost,
    }
}

/// Whether a plugin's env request (`*` or a name) covers a granted name.
pub fn env_request_covers(request: &str, grant: &str) -> bool {
    request == "*" || request == grant
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_stay_inside() {
        let root = Path::new("/ws");
        assert!(matches!(parse_path("src/", root), Ok(PathGrant::Folder { rel }) if rel == "src"));
        assert!(matches!(parse_path(".", root), Ok(PathGrant::Folder { rel }) if rel.is_empty()));
        assert!(
            matches!(parse_path("/ws/a/b.txt", root), Ok(PathGrant::File { rel }) if rel == "a/b.txt")
        );
        assert!(
            matches!(parse_path("docs/**/*.md", root), Ok(PathGrant::Glob { base, .. }) if base == "docs")
        );
        assert_eq!(
            parse_path("../x", root).unwrap_err(),
            "`../x` leaves the workspace"
        );
        assert_eq!(
            parse_path("/etc", root).unwrap_err(),
            "`/etc` is outside the workspace"
        );
        assert!(
            parse_path("docs/[a", root)
                .unwrap_err()
                .starts_with("bad glob `docs/[a`")
        );
    }

    #[test]
    fn hosts_are_checked() {
        for ok in [
            "*",
            "api.github.com",
            "*.example.com:443",
            "127.0.0.1:8080",
            "[::1]:80",
            "localhost",
        ] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://x.com",
            "x.com/path",
            "*x.com",
            "a..b",
            "x.com:0",
            "x.com:99999",
            "ex ample.com",
            "",
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_cover_grants() {
        let root = Path::new("/ws");
        let g = |s| parse_path(s, root).unwrap();
        assert!(path_request_covers("**", &g("src/")));
        assert!(path_request_covers("src/**", &g("src/lib")));
        assert!(path_request_covers("src/", &g("src/a.rs")));
        assert!(!path_request_covers("src/", &g("docs/")));
        assert!(path_request_covers("docs/*.md", &g("docs/a.md")));
        assert!(!path_request_covers("docs/*.md", &g("docs/")));
        assert!(host_request_covers("*", "api.github.com"));
        assert!(host_request_covers("*.github.com", "api.github.com"));
        assert!(!host_request_covers("*.github.com", "github.com"));
        assert!(host_request_covers("api.github.com", "api.github.com:443"));
        assert!(!host_request_covers(
            "api.github.com:80",
            "api.github.com:443"
        ));
        assert!(env_request_covers("*", "TOKEN") && !env_request_covers("A", "B"));
    }
}
