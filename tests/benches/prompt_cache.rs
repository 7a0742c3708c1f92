//! How much of each request the prompt cache serves, over a 100-turn scripted session: the real
//! `corral` binary reads a 5000-byte file 99 times (each result about 5.3 kB with its line
//! numbers), then answers, against the scripted Anthropic server; once with caching (the
//! default) and once with `--no-cache`.
//!
//! For every request: its bytes (the API's order: tools, system, messages; breakpoint markers
//! aside, [`corral_tests::cache::Units`]), the bytes the API would read from the cache the
//! previous request wrote (the longest prefix up to one of its breakpoints that this request
//! begins with, found from a breakpoint of this one), and the bytes this request re-sends (its
//! common prefix with the previous one). It is a count of bytes, not a timing, so the dev
//! profile does: `cargo build -p corral && cargo bench -p corral-tests --profile dev --bench
//! prompt_cache`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use corral_tests::cache::Units;
use corral_tests::{Corral, Reply, ScriptedServer, Turn, tool_use};
use serde_json::json;

const TURNS: usize = 100;

/// Per request: (bytes, cached bytes, re-sent bytes).
fn session(cache: bool) -> Vec<(usize, usize, usize)> {
    let corral = Corral::new();
    let line = format!("{}\n", "x".repeat(99));
    corral.write("a.txt", &line.repeat(50));
    let mut script: Vec<Reply> = (1..TURNS)
        .map(|i| {
            Turn::tools(vec![tool_use(
                &format!("r{i}"),
                "read_file",
                json!({"path": "a.txt"}),
            )])
            .into()
        })
        .collect();
    script.push(Turn::text("read it 99 times").into());
    let server = ScriptedServer::start(script);
    let mut args = vec!["run", "--max-turns", "200"];
    if !cache {
        args.push("--no-cache");
    }
    args.push("read a.txt again and again");
    corral.run(Some(&server), &args).assert_code(0);
    server.assert_clean();
    let units: Vec<Units> = server.bodies().iter().map(Units::of).collect();
    assert_eq!(units.len(), TURNS);
    units
        .iter()
        .enumerate()
        .map(|(i, now)| {
            let total = now.bytes().len();
            match i.checked_sub(1).map(|p| &units[p]) {
                None => (total, 0, 0),
                Some(before) => (total, now.cached_from(before), now.shared_with(before)),
            }
        })
        .collect()
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn report(name: &str, rows: &[(usize, usize, usize)]) {
    println!("## {name}");
    println!("| turn | request bytes | cached | share cached | of the re-sent bytes |");
    println!("| --- | --- | --- | --- | --- |");
    for turn in [1, 2, 3, 4, 5, 10, 20, 50, 100] {
        let (total, cached, resent) = rows[turn - 1];
        println!(
            "| {turn} | {total} | {cached} | {:.1}% | {:.1}% |",
            pct(cached, total),
            pct(cached, resent)
        );
    }
    let from3 = &rows[2..];
    let min_share = from3
        .iter()
        .map(|&(t, c, _)| pct(c, t))
        .fold(f64::INFINITY, f64::min);
    let min_resent = from3
        .iter()
        .map(|&(_, c, r)| pct(c, r))
        .fold(f64::INFINITY, f64::min);
    let first95 = rows
        .iter()
        .position(|&(t, c, _)| pct(c, t) >= 95.0)
        .map_or("never".to_string(), |i| (i + 1).to_string());
    let (all, cached): (usize, usize) = rows.iter().fold((0, 0), |(a, c), r| (a + r.0, c + r.1));
    println!(
        "\nturns 3-100: least share cached {min_share:.1}%, least share of the re-sent bytes cached {min_resent:.1}%; \
         share cached first >= 95% at turn {first95}; all 100 requests: {all} bytes, {cached} cached ({:.1}%)\n",
        pct(cached, all)
    );
}

fn main() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    report("caching on (the default)", &session(true));
    report("caching off (--no-cache)", &session(false));
}
