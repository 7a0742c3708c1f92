//! Session files (`corral::agent::SessionLog`): any file text read back, and any history
//! corral writes read back as it was.
//!
//! Input: one byte, then the rest. Byte even: the rest is a session file's text, opened with
//! `--resume`. Byte odd: the rest is a script of changes to a history (`\x01` cuts it into
//! steps; a step's first byte says what it adds: user text, tool results, or an assistant
//! answer with text and a tool call whose input is the rest as JSON, or the raw text when it is
//! not JSON, nested a chosen number of levels deeper), written as corral writes them and read
//! back. What must hold: no panic; a file that opens opens again to the same history with no
//! warning (a torn last line is cut once); every tool input read back is within the depth rule;
//! what corral wrote reads back to the history it had.
#![no_main]

use std::path::PathBuf;

use corral::agent::history::History;
use corral::agent::{SessionChoice, SessionLog};
use corral::llm::{ContentBlock, Message};
use corral::tools::schema::{self, MAX_INPUT_DEPTH};
use corral_fuzz::{fields, scratch};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ID: &str = "00000000-0000-4000-8000-000000000000";

fn sessions() -> PathBuf {
    let dir = scratch().join("sessions");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn within_rule(messages: &[Message]) {
    for message in messages {
        for call in message.tool_uses() {
            assert!(
                schema::depth(call.input) <= MAX_INPUT_DEPTH,
                "a deep input was read back"
            );
        }
    }
}

fn read_any(text: &[u8]) {
    let dir = sessions();
    let path = dir.join(format!("{ID}.jsonl"));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let choice = SessionChoice::Id(ID.into());
    let Ok((log, history, _)) = SessionLog::open(&dir, &choice) else {
        return;
    };
    drop(log);
    within_rule(history.messages());
    let (_, again, warnings) =
        SessionLog::open(&dir, &choice).unwrap_or_else(|e| panic!("opened once, then not: {e}"));
    assert_eq!(
        again.messages(),
        history.messages(),
        "a second open reads another history"
    );
    assert!(warnings.is_empty(), "a second open warns: {warnings:?}");
}

fn nest(mut value: Value, levels: usize) -> Value {
    for _ in 0..levels {
        value = Value::Array(vec![value]);
    }
    value
}

fn write_and_read(script: &[u8]) {
    let dir = sessions();
    let mut log = SessionLog::create(&dir, "model").unwrap_or_else(|e| panic!("{e}"));
    let mut history = History::new();
    for (n, step) in script.split(|&b| b == 1).enumerate() {
        let Some((&kind, rest)) = step.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest).into_owned();
        let change = match kind % 3 {
            0 => Some(history.add_user(vec![ContentBlock::text(text)])),
            1 => Some(history.add_user(vec![ContentBlock::ToolResult {
                tool_use_id: format!("t{n}"),
                content: text,
                is_error: kind & 8 != 0,
            }])),
            _ => {
                let f = fields(rest, 0, 2);
                let input = serde_json::from_slice(f[1])
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(f[1]).into()));
                let levels = usize::from(kind / 3) * 2;
                let mut content = vec![ContentBlock::ToolUse {
                    id: format!("t{n}"),
                    name: String::from_utf8_lossy(f[0]).into_owned(),
                    input: nest(input, levels),
                }];
                if kind & 4 != 0 {
                    content.insert(0, ContentBlock::text(String::from_utf8_lossy(f[0])));
                }
                history.add_assistant(content)
            }
        };
        if let Some(change) = change {
            log.record(&change).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let path = log.path().to_path_buf();
    let id = log.id().to_string();
    drop(log);
    let opened = SessionLog::open(&dir, &SessionChoice::Id(id));
    let _ = std::fs::remove_file(&path);
    let (_, read, warnings) = opened.unwrap_or_else(|e| panic!("what corral wrote fails: {e}"));
    assert!(warnings.is_empty(), "what corral wrote warns: {warnings:?}");
    within_rule(read.messages());
    assert_eq!(
        read.messages(),
        history.messages(),
        "what corral wrote reads back otherwise"
    );
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&mode, rest)) if mode % 2 == 0 => read_any(rest),
        Some((_, rest)) => write_and_read(rest),
        None => {}
    }
});
