//! Grant patterns (`corral::policy`): `parse_path`, `HostPattern::parse` with `allows` and
//! `intersect`, `EnvName::parse`.
//!
//! Input: newline-separated fields: a path grant, a host pattern, a second host pattern, a
//! request host, a port (the field's first two bytes). What must hold: no panic; whatever
//! parses shows (`Display`) as text that parses again to the same value; a parsed path grant
//! never leaves the workspace; `intersect` is symmetric and allows nothing that either
//! pattern does not; a pattern with a port allows no other port.
#![no_main]

use corral::policy::{EnvName, HostPattern, PathGrant, parse_path};
use corral_fuzz::{fields, workspace_root};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fields(data, b'\n', 5);
    let text = |i: usize| String::from_utf8_lossy(f[i]).into_owned();
    let root = workspace_root();

    let raw = text(0);
    if let Ok(grant) = parse_path(&raw, &root) {
        let shown = grant.to_string();
        let again = parse_path(&shown, &root)
            .unwrap_or_else(|e| panic!("{raw:?} shows as {shown:?}, which fails: {e}"));
        assert_eq!(again, grant, "{raw:?} shows as {shown:?}");
        let base = grant.base();
        assert!(
            !base.starts_with('/') && !base.split('/').any(|p| p == ".."),
            "{raw:?} has base {base:?}"
        );
        if let PathGrant::Glob { pattern, .. } = &grant {
            assert!(!pattern.starts_with('/'), "{raw:?}: glob {pattern:?}");
        }
    }

    for i in 0..4 {
        if let Ok(name) = EnvName::parse(&text(i)) {
            assert_eq!(EnvName::parse(&name.to_string()).as_ref(), Ok(&name));
        }
    }

    let port = match f[4] {
        [a, b, ..] => u16::from_le_bytes([*a, *b]),
        [a] => u16::from(*a),
        [] => 443,
    };
    let host = text(3);
    let a = HostPattern::parse(&text(1));
    let b = HostPattern::parse(&text(2));
    for pattern in [&a, &b].into_iter().flatten() {
        let shown = pattern.to_string();
        let again = HostPattern::parse(&shown)
            .unwrap_or_else(|e| panic!("{pattern:?} shows as {shown:?}, which fails: {e}"));
        assert_eq!(&again, pattern, "shows as {shown:?}");
        let allowed = pattern.allows(&host, port);
        if allowed
            && let Some((_, p)) = shown.rsplit_once(':')
            && !shown.ends_with(']')
        {
            assert_eq!(
                p.parse::<u16>().ok(),
                Some(port),
                "{shown} allowed port {port}"
            );
        }
        assert_eq!(pattern.intersect(pattern).as_ref(), Some(pattern));
    }
    if let (Ok(a), Ok(b)) = (&a, &b) {
        let meet = a.intersect(b);
        assert_eq!(
            meet,
            b.intersect(a),
            "intersect is not symmetric for {a} and {b}"
        );
        if let Some(meet) = meet
            && meet.allows(&host, port)
        {
            assert!(
                a.allows(&host, port) && b.allows(&host, port),
                "{meet} (from {a} and {b}) allows {host:?}:{port}"
            );
        }
    }
});
