//! A scripted model for long sessions: it reads a file again and again, then says "done", and
//! answers every summarising call of a compaction with a summary. Each answer reports the
//! request's bytes / 4 as its `input_tokens`, about what a tokenizer would count, so corral's
//! size estimate sees the conversation grow as it would with a real model. Used by the
//! compaction tests and benchmark.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::rules::is_summary_request;
use crate::server::{Reply, Turn, tool_use};

/// The summary the model writes.
pub const SUMMARY: &str = "The user asked to read a.txt repeatedly; it is 50 lines of x.";

/// A script of `replies` entries for a model that calls `read_file` on `a.txt` `calls` times
/// (ids `r0`, `r1`, ...) and then answers "done"; summarising calls, wherever they come, get
/// [`SUMMARY`]. Make `replies` the calls, plus one, plus the most compactions expected (the
/// entries left over are never used).
pub fn reading_model(calls: usize, replies: usize) -> Vec<Reply> {
    let next = Arc::new(AtomicUsize::new(0));
    (0..replies)
        .map(|_| {
            let next = next.clone();
            Reply::dynamic(move |body| {
                let tokens = body.to_string().len() / 4;
                let usage = json!({"input_tokens": tokens, "output_tokens": 5});
                if is_summary_request(body) {
                    return Turn::text(SUMMARY).with_usage(usage).into();
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let turn = if i < calls {
                    Turn::tools(vec![tool_use(
                        &format!("r{i}"),
                        "read_file",
                        json!({"path": "a.txt"}),
                    )])
                } else {
                    Turn::text("done")
                };
                turn.with_usage(usage).into()
            })
        })
        .collect()
}
