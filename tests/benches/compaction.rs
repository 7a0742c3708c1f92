//! A 500-turn session within a declared context window: the real `corral` binary reads a
//! 5000-byte file 499 times (each result about 5.3 kB with its line numbers), then answers,
//! against the scripted Anthropic server, with `[agent] context_window` set. The model's answers
//! report the request's bytes / 4 as their `input_tokens`.
//!
//! For each window: whether the session ran to the end, the compactions it took, the largest
//! request (bytes, and tokens at 4 bytes a token, and as a share of the window), the largest
//! request right after a compaction, and the wall time. A count of bytes more than a timing, so
//! the dev profile does: `cargo build -p corral && cargo bench -p corral-tests --profile dev
//! --bench compaction`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use corral_tests::long_session::reading_model;
use corral_tests::rules::is_summary_request;
use corral_tests::{Corral, ScriptedServer};

const TURNS: usize = 500;

fn session(window: usize) {
    let corral = Corral::new();
    let line = format!("{}\n", "x".repeat(99));
    corral.write("a.txt", &line.repeat(50));
    corral.write(
        "corral.toml",
        &format!("[agent]\ncontext_window = {window}\n"),
    );
    corral.trust();
    let calls = TURNS - 1;
    let server = ScriptedServer::start(reading_model(calls, TURNS + 200));
    let started = std::time::Instant::now();
    let out = corral.run(
        Some(&server),
        &[
            "run",
            "-q",
            "--max-turns",
            "1000",
            "read a.txt again and again",
        ],
    );
    let elapsed = started.elapsed();
    out.assert_code(0);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    let bodies = server.bodies();
    let sizes: Vec<usize> = bodies.iter().map(|b| b.to_string().len()).collect();
    let summaries: Vec<usize> = (0..bodies.len())
        .filter(|&i| is_summary_request(&bodies[i]))
        .collect();
    let agent: Vec<usize> = (0..bodies.len())
        .filter(|i| !summaries.contains(i))
        .map(|i| sizes[i])
        .collect();
    assert_eq!(agent.len(), TURNS, "every turn's call was made");
    let peak = *agent.iter().max().unwrap();
    let peak_summary = summaries.iter().map(|&i| sizes[i]).max().unwrap_or(0);
    let after = summaries.iter().map(|&i| sizes[i + 1]).max().unwrap_or(0);
    let pct = |bytes: usize| 100.0 * (bytes / 4) as f64 / window as f64;
    println!(
        "| {window} | {} | {} | {peak} B = {} tokens ({:.1}%) | {after} B ({:.1}%) | {peak_summary} B ({:.1}%) | {:.1} s |",
        agent.len(),
        summaries.len(),
        peak / 4,
        pct(peak),
        pct(after),
        pct(peak_summary),
        elapsed.as_secs_f64()
    );
}

fn main() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    println!(
        "| context window (tokens) | agent calls | compactions | largest request | largest right after a compaction | largest summarising call | wall time |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for window in [32_768, 200_000] {
        session(window);
    }
}
