//! A start after a corral that died without ending its commands (`kill -9`, a crash): what the
//! task journal ([`crate::process::journal`]) says it left, and what the user and the model are
//! told about it.
//!
//! [`Restart::recover`] runs when an agent is built, before anything starts: it ends what is
//! still running of those commands. Each one that was still running becomes a warning for the
//! user. When the session is continued, the model learns the truth about its own work: a `bash`
//! call it was waiting for gets a result saying whether the command was still running (and was
//! ended) or had ended meanwhile, instead of a bare "interrupted"; its background tasks that
//! corral never reported get one `<background-results>` block saying the same of each.

use serde_json::Value;

use crate::background::TaskId;
use crate::llm::{ContentBlock, Message, ToolUse};
use crate::process::journal::{COMMAND_BYTES, Journal, Leftover, TaskKind};
use crate::workspace::Workspace;

/// What the start found of dead corrals' commands in this workspace.
#[derive(Debug, Default)]
pub(super) struct Restart {
    leftovers: Vec<Leftover>,
    /// Which `bash` leftovers already answered a call.
    used: Vec<bool>,
}

impl Restart {
    /// Ends what dead corrals left in `workspace` (see [`Journal::recover`]). A journal that
    /// cannot be read is a warning, not an error: corral starts all the same.
    pub fn recover(workspace: &Workspace, warn: impl Fn(String)) -> Self {
        let journal = Journal::new(&workspace.state_dir());
        let leftovers = match journal.recover() {
            Ok(leftovers) => leftovers,
            Err(error) => {
                warn(format!(
                    "{}: {error}; commands left running by a corral that was killed, if any, \
                     were not ended",
                    journal.path().display()
                ));
                Vec::new()
            }
        };
        for left in leftovers.iter().filter(|l| l.ended > 0) {
            warn(format!(
                "{} was still running, left by a corral that was stopped without ending it; \
                 ended it ({} process{})",
                describe(left),
                left.ended,
                if left.ended == 1 { "" } else { "es" }
            ));
        }
        Self {
            used: vec![false; leftovers.len()],
            leftovers,
        }
    }

    /// The result owed to the unanswered call `call` of a continued session, when the journal
    /// knows its command: a `bash` call whose command matches a leftover's (each leftover
    /// answers one call). `None` for the plain "interrupted".
    pub fn owed_result(&mut self, call: &ToolUse<'_>) -> Option<String> {
        if call.name != "bash" {
            return None;
        }
        let command = call.input.get("command").and_then(Value::as_str)?;
        // The journal keeps a command's first COMMAND_BYTES: a command that long matches by
        // its start.
        let same = |kept: &str| {
            kept == command || (kept.len() + 4 > COMMAND_BYTES && command.starts_with(kept))
        };
        let (i, left) = self
            .leftovers
            .iter()
            .enumerate()
            .find(|(i, l)| l.kind == TaskKind::Bash && !self.used[*i] && same(&l.command))?;
        self.used[i] = true;
        Some(if left.ended > 0 {
            format!(
                "interrupted: corral was stopped while this command ran, without ending it. It \
                 was still running when corral started again, and was ended then ({} \
                 process{}). Its output and exit status are lost.",
                left.ended,
                if left.ended == 1 { "" } else { "es" }
            )
        } else {
            "interrupted: corral was stopped while this command ran. The command was no longer \
             running when corral started again; its output and exit status are lost."
                .to_string()
        })
    }

    /// One `<background-results>` block about the background tasks of `history` (those its
    /// `background_run` results name) that a dead corral left: each one still running and
    /// ended now, or no longer running. `None` when there are none.
    pub fn background_note(&self, history: &[Message]) -> Option<String> {
        let mentioned = started_ids(history);
        let entries: Vec<String> = self
            .leftovers
            .iter()
            .filter(|l| l.kind == TaskKind::Background)
            .filter(|l| l.id.as_ref().is_some_and(|id| mentioned.contains(id)))
            .map(|l| {
                let id = l.id.as_deref().unwrap_or("");
                let status = if l.ended > 0 {
                    format!(
                        "killed (corral was stopped without ending it; it was still running when \
                         corral started again and was ended then, {} process{})",
                        l.ended,
                        if l.ended == 1 { "" } else { "es" }
                    )
                } else {
                    "ended, exit status unknown (corral was stopped before it reported the task's \
                     end; it was no longer running when corral started again)"
                        .to_string()
                };
                let log = l
                    .log
                    .as_deref()
                    .map(|log| format!("\nlog: {log}"))
                    .unwrap_or_default();
                format!("[bg:{id}] {status}: {}{log}", l.command)
            })
            .collect();
        if entries.is_empty() {
            return None;
        }
        Some(format!(
            "<background-results>\n{}\n</background-results>",
            entries.join("\n\n")
        ))
    }
}

/// The ids of the background tasks `history` started ("Background task <id> started: ...").
fn started_ids(history: &[Message]) -> Vec<TaskId> {
    history
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|block| match block {
            ContentBlock::ToolResult {
                content,
                is_error: false,
                ..
            } => content.strip_prefix("Background task "),
            _ => None,
        })
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `background task ab12cd34 (`cmd`)` or `a bash command (`cmd`)`, for the user.
fn describe(left: &Leftover) -> String {
    let mut command: String = left
        .command
        .chars()
        .take(80)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if left.command.chars().count() > 80 {
        command.push_str("...");
    }
    match (&left.kind, &left.id) {
        (TaskKind::Background, Some(id)) => format!("background task {id} (`{command}`)"),
        _ => format!("a bash command (`{command}`)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Role;
    use serde_json::json;

    fn left(kind: TaskKind, id: Option<&str>, command: &str, ended: usize) -> Leftover {
        Leftover {
            kind,
            id: id.map(str::to_string),
            command: command.into(),
            log: id.map(|id| format!(".corral/tasks/{id}.log")),
            started_at: std::time::UNIX_EPOCH,
            ended,
        }
    }

    fn restart(leftovers: Vec<Leftover>) -> Restart {
        Restart {
            used: vec![false; leftovers.len()],
            leftovers,
        }
    }

    /// A `bash` call is answered from the leftover with its command, each leftover once; other
    /// calls and other commands keep the plain "interrupted".
    #[test]
    fn bash_calls_are_matched_by_command_once() {
        let mut r = restart(vec![
            left(TaskKind::Bash, None, "make test", 2),
            left(TaskKind::Bash, None, "sleep 9", 0),
        ]);
        let input = json!({"command": "make test"});
        let call = ToolUse {
            id: "a",
            name: "bash",
            input: &input,
        };
        assert!(
            r.owed_result(&call)
                .is_some_and(|t| t.contains("ended then (2 processes)"))
        );
        assert_eq!(r.owed_result(&call), None, "used once");
        let other = json!({"command": "make"});
        let call = ToolUse {
            id: "b",
            name: "bash",
            input: &other,
        };
        assert_eq!(r.owed_result(&call), None);
        let input = json!({"command": "sleep 9"});
        let call = ToolUse {
            id: "c",
            name: "bash",
            input: &input,
        };
        assert!(
            r.owed_result(&call)
                .is_some_and(|t| t.contains("no longer running"))
        );
    }

    /// The note names only the background tasks the history started, each with the truth.
    #[test]
    fn the_note_names_this_sessions_tasks() {
        let r = restart(vec![
            left(TaskKind::Background, Some("aaaa1111"), "serve", 3),
            left(TaskKind::Background, Some("bbbb2222"), "build", 0),
            left(
                TaskKind::Background,
                Some("cccc3333"),
                "another session's",
                1,
            ),
        ]);
        let history = vec![Message {
            role: Role::User,
            content: vec![
                ContentBlock::ToolResult {
                    tool_use_id: "x".into(),
                    content: "Background task aaaa1111 started: serve".into(),
                    is_error: false,
                },
                ContentBlock::ToolResult {
                    tool_use_id: "y".into(),
                    content: "Background task bbbb2222 started: build".into(),
                    is_error: false,
                },
            ],
        }];
        let note = r.background_note(&history).expect("a note");
        assert!(note.contains("[bg:aaaa1111] killed (corral was stopped without ending it"));
        assert!(note.contains("3 processes)"));
        assert!(note.contains("[bg:bbbb2222] ended, exit status unknown"));
        assert!(note.contains("log: .corral/tasks/bbbb2222.log"));
        assert!(!note.contains("cccc3333"));
        assert_eq!(restart(Vec::new()).background_note(&history), None);
    }
}
