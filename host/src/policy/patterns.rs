//! The grammar of grants, parsed once into typed values: workspace paths ([`PathGrant`]: folders,
//! files, globs), host patterns ([`HostPattern`]), variable names ([`EnvName`]); and when a
//! plugin's request meets a grant.
//!
//! Each grant of a settings file is parsed here when the file is read, and the typed value is
//! what every later step holds: the effective rights, the runtime's [`super::Grants`], `corral
//! plugins` and `corral policy show` (through the `Display` impls). Nothing downstream parses a
//! grant again or compares grants by their text.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::{Serialize, Serializer};

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

impl PartialEq for PathGrant {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathGrant::Folder { rel: a }, PathGrant::Folder { rel: b })
            | (PathGrant::File { rel: a }, PathGrant::File { rel: b }) => a == b,
            (PathGrant::Glob { pattern: a, .. }, PathGrant::Glob { pattern: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for PathGrant {}

impl PathGrant {
    /// The workspace-relative path whose prefix everything granted shares.
    pub fn base(&self) -> &str {
        match self {
            PathGrant::Folder { rel } | PathGrant::File { rel } => rel,
            PathGrant::Glob { base, .. } => base,
        }
    }
}

/// The grant as written, normalised: `./`, `src/`, `a/b.txt`, `docs/**/*.md`.
impl fmt::Display for PathGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathGrant::Folder { rel } if rel.is_empty() => f.write_str("./"),
            PathGrant::Folder { rel } => write!(f, "{rel}/"),
            PathGrant::File { rel } => f.write_str(rel),
            PathGrant::Glob { pattern, .. } => f.write_str(pattern),
        }
    }
}

impl Serialize for PathGrant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Parses a path grant of the workspace at `root`. Refuses paths that leave the workspace
/// (absolute outside it, `..` above it) and globs that do not parse.
///
/// Whitespace around the grant is not part of it. A path that would still begin or end with
/// whitespace once normalised (`"src /"`, `"a/../ b"`) is refused: its text (the `Display`)
/// would not parse back to it.
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
    if rel.trim() != rel {
        return Err(format!(
            "`{trimmed}`: the path begins or ends with whitespace (before a `/`, or after `..`)"
        ));
    }
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

/// A host pattern of a network grant (or of a plugin's network request), parsed once:
/// `*`, `host`, `*.domain`, an IPv4 address or a bracketed IPv6 address (`[::1]`), each with an
/// optional `:port`. Names are compared without regard to case and without a trailing dot; IP
/// addresses are compared as addresses, never as names.
///
/// Without a port a pattern allows every port; `*` allows every host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

/// Which hosts a [`HostPattern`] allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostMatch {
    /// `*`: every host.
    Any,
    /// `api.github.com`: exactly this name (lowercase, no trailing dot).
    Name(String),
    /// `*.example.com`: every name below `example.com`, not `example.com` itself.
    Below(String),
    /// `127.0.0.1`, `[::1]`: exactly this address.
    Ip(IpAddr),
}

/// The host of one outgoing request, as the network check sees it.
enum RequestHost {
    Name(String),
    Ip(IpAddr),
}

impl RequestHost {
    /// A URL's host: `api.github.com`, `127.0.0.1`, `[::1]` (or `::1`).
    fn parse(host: &str) -> RequestHost {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let unbracketed = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        match unbracketed.parse::<IpAddr>() {
            Ok(ip) => RequestHost::Ip(ip),
            Err(_) => RequestHost::Name(host),
        }
    }
}

impl HostPattern {
    /// Parses a pattern. The error says what is wrong, naming the pattern.
    pub fn parse(raw: &str) -> Result<HostPattern, String> {
        let pattern = raw.trim().to_ascii_lowercase();
        let bad = |why: &str| Err(format!("bad host pattern `{raw}`: {why}"));
        if pattern.is_empty() {
            return bad("it is empty");
        }
        if pattern.contains("://") || pattern.contains('/') {
            return bad("give a host, not a URL (no scheme, no path)");
        }
        let (host, port) = if let Some(rest) = pattern.strip_prefix('[') {
            let Some((inside, tail)) = rest.split_once(']') else {
                return bad("an unclosed `[`");
            };
            let Ok(ip) = inside.parse::<Ipv6Addr>() else {
                return bad("not an IPv6 address between `[` and `]`");
            };
            let port = match tail {
                "" => None,
                _ => match tail.strip_prefix(':') {
                    Some(port) => Some(port),
                    None => return bad("only `:PORT` may follow `]`"),
                },
            };
            (HostMatch::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match pattern.split_once(':') {
                Some((host, port)) if !port.contains(':') => (host, Some(port)),
                Some(_) => return bad("an IPv6 address goes in brackets: `[::1]`, `[::1]:8080`"),
                None => (pattern.as_str(), None),
            };
            // One trailing dot is the root of the DNS: `example.com.` is `example.com`.
            let host = match host.strip_suffix('.') {
                Some(h) if !h.is_empty() && !h.ends_with('*') => h,
                Some(_) => {
                    return bad(
                        "a host is letters, digits, `-` and `.`, optionally starting with `*.`",
                    );
                }
                None => host,
            };
            let matched = if host == "*" {
                HostMatch::Any
            } else if let Some(domain) = host.strip_prefix("*.") {
                if !is_dns_name(domain) {
                    return bad(
                        "a host is letters, digits, `-` and `.`, optionally starting with `*.`",
                    );
                }
                HostMatch::Below(domain.to_string())
            } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
                HostMatch::Ip(IpAddr::V4(ip))
            } else if is_dns_name(host) {
                HostMatch::Name(host.to_string())
            } else {
                return bad(
                    "a host is letters, digits, `-` and `.`, optionally starting with `*.`",
                );
            };
            (matched, port)
        };
        let port = match port {
            None => None,
            Some(digits) => match parse_port(digits) {
                Some(port) => Some(port),
                None => return bad("the port is not a number from 1 to 65535"),
            },
        };
        Ok(HostPattern { host, port })
    }

    /// Whether a request to `host` (a URL's host: a name, an IPv4 address, or an IPv6 address
    /// with or without brackets) on `port` is allowed by this pattern.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.host, RequestHost::parse(host)) {
            (HostMatch::Any, _) => true,
            (HostMatch::Name(want), RequestHost::Name(got)) => *want == got,
            (HostMatch::Below(domain), RequestHost::Name(got)) => is_below(&got, domain),
            (HostMatch::Ip(want), RequestHost::Ip(got)) => *want == got,
            _ => false,
        }
    }

    /// What this pattern and `other` both allow, or `None` when no request passes both. A
    /// plugin that asks for `*.github.com` and is granted `api.github.com:443` may reach
    /// `api.github.com:443`; one that asks for `api.github.com` and is granted `*.github.com`
    /// may reach `api.github.com`.
    pub fn intersect(&self, other: &HostPattern) -> Option<HostPattern> {
        let port = match (self.port, other.port) {
            (None, p) | (p, None) => p,
            (Some(a), Some(b)) if a == b => Some(a),
            _ => return None,
        };
        let host = match (&self.host, &other.host) {
            (HostMatch::Any, h) | (h, HostMatch::Any) => h.clone(),
            (HostMatch::Name(a), HostMatch::Name(b)) if a == b => HostMatch::Name(a.clone()),
            (HostMatch::Ip(a), HostMatch::Ip(b)) if a == b => HostMatch::Ip(*a),
            (HostMatch::Name(name), HostMatch::Below(domain))
            | (HostMatch::Below(domain), HostMatch::Name(name))
                if is_below(name, domain) =>
            {
                HostMatch::Name(name.clone())
            }
            (HostMatch::Below(a), HostMatch::Below(b)) => {
                if a == b || is_below(a, b) {
                    HostMatch::Below(a.clone())
                } else if is_below(b, a) {
                    HostMatch::Below(b.clone())
                } else {
                    return None;
                }
            }
            _ => return None,
        };
        Some(HostPattern { host, port })
    }
}

impl std::str::FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostPattern::parse(s)
    }
}

/// The pattern, normalised: `*`, `api.github.com:443`, `*.example.com`, `[::1]:8080`.
impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostMatch::Any => f.write_str("*")?,
            HostMatch::Name(name) => f.write_str(name)?,
            HostMatch::Below(domain) => write!(f, "*.{domain}")?,
            HostMatch::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostMatch::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `name` is strictly below `domain`: `a.example.com` and `a.b.example.com` are below
/// `example.com`; `example.com` and `evilexample.com` are not.
fn is_below(name: &str, domain: &str) -> bool {
    name.len() > domain.len() + 1
        && name.ends_with(domain)
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

/// Letters, digits and `-` in dot-separated labels of 1 to 63 characters, none starting or
/// ending with `-`.
fn is_dns_name(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

/// Digits only (no sign, no spaces), 1 to 65535.
fn parse_port(digits: &str) -> Option<u16> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|p| *p > 0)
}

/// The name of an environment variable a grant names: a letter or `_`, then letters, digits and
/// `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvName(String);

impl EnvName {
    /// Checks a variable name.
    pub fn parse(raw: &str) -> Result<EnvName, String> {
        let ok = raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(EnvName(raw.to_string()))
        } else {
            Err(format!("bad variable name `{raw}`"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for EnvName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A plugin's env request: `*` or one name. A request that is neither is `None`: it covers
/// nothing.
pub fn env_request(raw: &str) -> Option<Option<EnvName>> {
    match raw.trim() {
        "*" => Some(None),
        name => EnvName::parse(name).ok().map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

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
        assert_eq!(
            parse_path("./src/../lib/", root).unwrap().to_string(),
            "lib/"
        );
        assert_eq!(parse_path(".", root).unwrap().to_string(), "./");
    }

    /// A path that still begins or ends with whitespace once normalised is refused, so every
    /// grant's text parses back to the same grant. Found by the `patterns` fuzz target:
    /// `"s*.p\x0c/"` was the glob `s*.p\x0c`, shown as text that parsed to the glob `s*.p`; and
    /// `"(t  . /src/../"` the folder `(t  . `, shown as `(t  . /`, which parsed to `(t  .`.
    #[test]
    fn no_whitespace_at_the_ends_of_a_grant() {
        let root = Path::new("/ws");
        for raw in [
            "s*.p\x0c/",
            "src /",
            "(t  . /src/../",
            "a/../ b",
            "docs/**\t/",
        ] {
            let error = parse_path(raw, root).unwrap_err();
            assert!(
                error.contains("begins or ends with whitespace"),
                "{raw:?}: {error}"
            );
        }
        for (raw, shown) in [
            (" src/ ", "src/"),
            ("a b/c d", "a b/c d"),
            ("\tx/ y/", "x/ y/"),
        ] {
            let grant = parse_path(raw, root).unwrap();
            assert_eq!(grant.to_string(), shown, "{raw:?}");
            assert_eq!(parse_path(shown, root).unwrap(), grant, "{raw:?}");
        }
    }

    #[test]
    fn host_patterns_parse_and_normalise() {
        for (raw, shown) in [
            ("*", "*"),
            ("*:8080", "*:8080"),
            ("api.github.com", "api.github.com"),
            ("API.GitHub.COM", "api.github.com"),
            ("api.github.com.", "api.github.com"),
            ("*.Example.com:443", "*.example.com:443"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("[::1]", "[::1]"),
            ("[::1]:80", "[::1]:80"),
            ("[0:0:0:0:0:0:0:1]:80", "[::1]:80"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
            ("localhost", "localhost"),
            (" localhost:65535 ", "localhost:65535"),
        ] {
            assert_eq!(host(raw).to_string(), shown, "{raw}");
        }
        for bad in [
            "",
            "https://x.com",
            "x.com/path",
            "*x.com",
            "a.*.com",
            "*.",
            "a..b",
            "-a.com",
            "a-.com",
            "x.com:0",
            "x.com:99999",
            "x.com:+80",
            "x.com:",
            "x.com:80:80",
            "ex ample.com",
            "::1",
            "::1:80",
            "[::1",
            "[::1]80",
            "[::1]:",
            "[127.0.0.1]",
            "[fe80::1%eth0]",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            HostPattern::parse("::1").unwrap_err(),
            "bad host pattern `::1`: an IPv6 address goes in brackets: `[::1]`, `[::1]:8080`"
        );
    }

    #[test]
    fn host_patterns_allow_what_they_say() {
        let github = host("api.github.com");
        assert!(github.allows("api.github.com", 443));
        assert!(github.allows("API.GitHub.com", 80), "names ignore case");
        assert!(github.allows("api.github.com.", 443), "a trailing dot");
        assert!(!github.allows("github.com", 443));
        assert!(!github.allows("xapi.github.com", 443));

        let example = host("*.example.com:443");
        assert!(example.allows("a.example.com", 443));
        assert!(example.allows("a.b.example.com", 443));
        assert!(!example.allows("a.example.com", 80), "the port is checked");
        assert!(!example.allows("example.com", 443), "not the domain itself");
        assert!(!example.allows("evilexample.com", 443));
        assert!(!example.allows("example.com.evil.org", 443));

        let v4 = host("127.0.0.1:8080");
        assert!(v4.allows("127.0.0.1", 8080));
        assert!(!v4.allows("127.0.0.1", 8081));
        assert!(!v4.allows("127.0.0.2", 8080));
        assert!(!v4.allows("localhost", 8080), "an address is not a name");

        // IPv6: with and without a port, with or without the URL's brackets.
        let v6 = host("[::1]");
        assert!(v6.allows("[::1]", 80) && v6.allows("[::1]", 8443));
        assert!(v6.allows("::1", 80));
        assert!(v6.allows("[0:0:0:0:0:0:0:1]", 80), "compared as an address");
        assert!(!v6.allows("[::2]", 80));
        assert!(!v6.allows("127.0.0.1", 80));
        let v6_port = host("[::1]:8080");
        assert!(v6_port.allows("[::1]", 8080) && !v6_port.allows("[::1]", 8081));
        let mapped = host("127.0.0.1");
        assert!(
            !mapped.allows("[::ffff:127.0.0.1]", 80),
            "a mapped address is another address: denied"
        );

        let any = host("*");
        assert!(any.allows("anything.example", 1) && any.allows("[::1]", 2));
        let any_port = host("*:8080");
        assert!(any_port.allows("x.org", 8080) && !any_port.allows("x.org", 8081));
        // A name that looks like a pattern never matches as one.
        assert!(!github.allows("*.github.com", 443));
    }

    #[test]
    fn host_patterns_intersect() {
        let meet = |a: &str, b: &str| host(a).intersect(&host(b)).map(|p| p.to_string());
        assert_eq!(meet("*", "api.github.com"), Some("api.github.com".into()));
        assert_eq!(
            meet("*.github.com", "api.github.com:443"),
            Some("api.github.com:443".into())
        );
        assert_eq!(
            meet("api.github.com", "*.github.com"),
            Some("api.github.com".into())
        );
        assert_eq!(meet("*.github.com", "github.com"), None);
        assert_eq!(meet("api.github.com:80", "api.github.com:443"), None);
        assert_eq!(
            meet("*.a.example.com", "*.example.com"),
            Some("*.a.example.com".into())
        );
        assert_eq!(meet("*.a.org", "*.b.org"), None);
        assert_eq!(meet("[::1]", "[::1]:8080"), Some("[::1]:8080".into()));
        assert_eq!(meet("[::1]", "127.0.0.1"), None);
        assert_eq!(meet("*:443", "*.x.org"), Some("*.x.org:443".into()));
        assert_eq!(meet("localhost", "127.0.0.1"), None);
    }

    #[test]
    fn env_names() {
        assert_eq!(
            EnvName::parse("GITHUB_TOKEN").unwrap().as_str(),
            "GITHUB_TOKEN"
        );
        assert!(EnvName::parse("_X1").is_ok());
        for bad in ["", "1X", "A-B", "A B", "*", "A=B"] {
            assert!(EnvName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(env_request("*"), Some(None));
        assert_eq!(
            env_request("TOKEN"),
            Some(Some(EnvName::parse("TOKEN").unwrap()))
        );
        assert_eq!(env_request("no way"), None);
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
    }
}
