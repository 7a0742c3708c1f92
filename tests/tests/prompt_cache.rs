//! Prompt caching end to end: the real `corral` binary against the scripted Anthropic server,
//! whose rules refuse a request with more than 4 breakpoints, with none on the last tool, the
//! system prompt or the newest message, or that does not begin with the bytes the previous
//! request cached (up to its last breakpoint) with a breakpoint of its own close enough after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::cache::Units;
use corral_tests::{Corral, ScriptedServer, Turn, tool_use};
use serde_json::json;

fn reads(n: usize) -> Vec<corral_tests::Reply> {
    let mut script: Vec<corral_tests::Reply> = (0..n)
        .map(|i| {
            Turn::tools(vec![tool_use(
                &format!("r{i}"),
                "read_file",
                json!({"path": "a.txt"}),
            )])
            .into()
        })
        .collect();
    script.push(Turn::text("read").into());
    script
}

/// Four tool turns: every request has its breakpoints where the rules want them (at most 4),
/// and from the second on each begins with what the previous one cached.
#[test]
fn breakpoints_roll_forward_and_the_prefix_holds() {
    let corral = Corral::new();
    corral.write("a.txt", "hello\n");
    let server = ScriptedServer::start(reads(4));
    corral
        .run(Some(&server), &["run", "read a.txt"])
        .assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 5);
    let counts: Vec<usize> = bodies
        .iter()
        .map(|b| Units::of(b).breakpoints.len())
        .collect();
    assert_eq!(counts, [3, 4, 4, 4, 4]);
    for pair in bodies.windows(2) {
        let (before, now) = (Units::of(&pair[0]), Units::of(&pair[1]));
        assert!(
            now.cached_from(&before) >= before.bytes().len() - 200,
            "a request reads almost all of the previous one from the cache"
        );
    }
}

/// `--no-cache` and `[agent] cache = false` (trusted: untrusted, it would raise the cost and is
/// ignored) send no breakpoint at all, and the system prompt as a plain string.
#[test]
fn caching_can_be_turned_off() {
    for (args, toml) in [
        (vec!["--no-cache"], None),
        (vec![], Some("[agent]\ncache = false\n")),
    ] {
        let corral = Corral::new();
        if let Some(toml) = toml {
            corral.write("corral.toml", toml);
            corral.trust();
        }
        corral.write("a.txt", "hello\n");
        let server = ScriptedServer::start(reads(1));
        let mut all = vec!["run"];
        all.extend(args);
        all.push("read");
        corral.run(Some(&server), &all).assert_code(0);
        server.assert_clean();
        for body in server.bodies() {
            assert!(!body.to_string().contains("cache_control"), "{body}");
            assert!(body["system"].is_string());
        }
    }
}

/// What the cache read and wrote reaches the closing line and `--json`; `input_tokens` counts
/// them in.
#[test]
fn usage_tells_what_was_cached() {
    let usage = json!({"input_tokens": 34, "cache_read_input_tokens": 1100,
        "cache_creation_input_tokens": 100, "output_tokens": 567});
    for stream in [true, false] {
        let corral = Corral::new();
        let server = ScriptedServer::start(vec![Turn::text("ok").with_usage(usage.clone()).into()]);
        let mut args = vec!["run"];
        if !stream {
            args.push("--no-stream");
        }
        args.push("hi");
        let out = corral.run(Some(&server), &args);
        out.assert_code(0);
        assert!(
            out.stderr
                .contains("tokens: 1234 in (1100 cached, 100 written), 567 out"),
            "{}",
            out.stderr
        );
        let server = ScriptedServer::start(vec![Turn::text("ok").with_usage(usage.clone()).into()]);
        let out = corral.run(Some(&server), &["run", "--json", "hi"]);
        let finished = out
            .events()
            .into_iter()
            .find(|e| e["type"] == "finished")
            .expect("finished");
        assert_eq!(
            finished["usage"],
            json!({"input_tokens": 1234, "output_tokens": 567,
                "cache_read_input_tokens": 1100, "cache_creation_input_tokens": 100})
        );
    }
}
