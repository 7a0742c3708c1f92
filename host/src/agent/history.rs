//! The conversation the agent keeps, and the API's rules for it.
//!
//! Rules every request must obey (the Anthropic Messages API's, which the other providers share):
//! messages alternate user / assistant, starting with a user message; every `tool_use` of an
//! assistant message is answered by a `tool_result` in the very next user message, and those
//! results come first in it; the last message sent is a user message.
//!
//! Besides the messages, the history knows where each user turn (a prompt and all the calls it
//! led to) began, so a turn can be taken back whole: by `/undo`, or when its first model call
//! failed ([`Change::Truncate`]). A compaction ([`Change::Compact`]) replaces the older turns by
//! a summary; the turns it kept keep their starts.

use serde::{Deserialize, Serialize};

use crate::llm::{ContentBlock, Message, Role};

/// The messages of a session, kept valid by construction.
#[derive(Debug, Clone, Default)]
pub struct History {
    messages: Vec<Message>,
    /// The JSON size of each message, kept as the messages change (each change sizes only the
    /// messages it touched), so the size of the whole history costs no serialisation per turn.
    sizes: Vec<u64>,
    /// Where each user turn still in the history began, oldest first.
    turns: Vec<Mark>,
}

/// A place in the history: the first block of a turn, message `message`'s block `block`
/// (a turn whose prompt was appended to a user message begins inside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Mark {
    pub message: usize,
    pub block: usize,
}

/// What a change to the history was, so the session log can record it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new message was added.
    Push(Message),
    /// Blocks were added to the end of the last message.
    Append(Vec<ContentBlock>),
    /// A user turn begins here: the content added next is its prompt.
    Turn,
    /// Everything from `to` on was taken out (`/undo`, or a prompt whose model call failed).
    Truncate { to: Mark },
    /// The older part of the conversation was replaced by a summary ([`Compaction`]).
    Compact(Compaction),
}

/// One compaction: messages `0..keep_from` go, and a user message holding `summary` takes
/// their place (followed, when message `keep_from` is a user message, by that message's
/// blocks); the results named in `replaced` get the pointer text given there (their full text
/// was saved to a file). Kept as data so replaying a session file comes to the same history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compaction {
    pub keep_from: usize,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replaced>,
}

/// A tool result whose content was replaced by a pointer to the file holding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replaced {
    pub tool_use_id: String,
    pub content: String,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn last(&self) -> Option<&Message> {
        self.messages.last()
    }

    /// The length of the messages serialised as one JSON array (what
    /// `serde_json::to_vec(self.messages())` would make), without serialising them.
    pub fn json_bytes(&self) -> u64 {
        let separators = self.sizes.len().saturating_sub(1) as u64;
        2 + separators + self.sizes.iter().sum::<u64>()
    }

    /// Sizes the messages from `first` on again (those before it did not change).
    fn resize_from(&mut self, first: usize) {
        self.sizes.truncate(first.min(self.sizes.len()));
        let from = self.sizes.len();
        self.sizes.extend(
            self.messages[from..]
                .iter()
                .map(crate::agent::compaction::json_len),
        );
    }

    /// Where the next content added will be.
    pub fn end(&self) -> Mark {
        Mark {
            message: self.messages.len(),
            block: 0,
        }
    }

    /// Where the newest user turn still in the history began (`None` when it was compacted
    /// away, or there is none).
    pub fn last_turn(&self) -> Option<Mark> {
        self.turns.last().copied()
    }

    /// Marks the start of a user turn: the prompt added next begins it.
    pub fn begin_turn(&mut self) -> Change {
        self.apply(Change::Turn);
        Change::Turn
    }

    /// Takes out everything from `to` on (the turns that began there or later with it).
    pub fn truncate(&mut self, to: Mark) -> Change {
        self.apply(Change::Truncate { to });
        Change::Truncate { to }
    }

    /// The blocks from `mark` to the end: what [`truncate`](Self::truncate) to `mark` removes.
    pub fn blocks_from(&self, mark: Mark) -> impl Iterator<Item = &ContentBlock> {
        self.messages
            .iter()
            .enumerate()
            .skip(mark.message)
            .flat_map(move |(index, message)| {
                let skip = if index == mark.message { mark.block } else { 0 };
                message.content.iter().skip(skip)
            })
    }

    /// Carries out `compaction` ([`Compaction`]).
    pub fn compact(&mut self, compaction: Compaction) -> Change {
        self.apply(Change::Compact(compaction.clone()));
        Change::Compact(compaction)
    }

    /// Adds user content: appended to the last message when that is a user message (so two user
    /// turns never follow each other), a new message otherwise.
    pub fn add_user(&mut self, blocks: Vec<ContentBlock>) -> Change {
        match self.messages.last_mut() {
            Some(last) if last.role == Role::User => {
                last.content.extend(blocks.iter().cloned());
                self.resize_from(self.messages.len() - 1);
                Change::Append(blocks)
            }
            _ => {
                let message = Message {
                    role: Role::User,
                    content: blocks,
                };
                self.messages.push(message.clone());
                self.resize_from(self.messages.len() - 1);
                Change::Push(message)
            }
        }
    }

    /// Adds the model's answer. An empty answer is not kept (the API refuses empty messages).
    /// A tool input deeper than the depth rule allows is kept as the note that refuses it
    /// ([`crate::tools::schema::bound_depth`]), so the session file can always be read back.
    pub fn add_assistant(&mut self, mut content: Vec<ContentBlock>) -> Option<Change> {
        if content.is_empty() {
            return None;
        }
        bound_inputs(&mut content);
        let message = Message {
            role: Role::Assistant,
            content,
        };
        self.messages.push(message.clone());
        self.resize_from(self.messages.len() - 1);
        Some(Change::Push(message))
    }

    /// Replays a change read from a session file, under the same depth rule as
    /// [`add_assistant`](Self::add_assistant).
    pub fn apply(&mut self, change: Change) {
        // Every change touches the last message at most, except a compaction.
        let first = match &change {
            Change::Compact(_) => 0,
            Change::Truncate { to } => to.message,
            _ => self.messages.len().saturating_sub(1),
        };
        self.apply_unsized(change);
        self.resize_from(first);
    }

    fn apply_unsized(&mut self, change: Change) {
        match change {
            Change::Push(mut message) => {
                bound_inputs(&mut message.content);
                self.messages.push(message)
            }
            Change::Append(mut blocks) => {
                bound_inputs(&mut blocks);
                if let Some(last) = self.messages.last_mut() {
                    last.content.extend(blocks);
                }
            }
            Change::Turn => {
                let mark = match self.messages.last() {
                    Some(last) if last.role == Role::User => Mark {
                        message: self.messages.len() - 1,
                        block: last.content.len(),
                    },
                    _ => self.end(),
                };
                self.turns.push(mark);
            }
            Change::Truncate { to } => {
                if to.block == 0 {
                    self.messages.truncate(to.message);
                } else if let Some(message) = self.messages.get_mut(to.message) {
                    message.content.truncate(to.block);
                    self.messages.truncate(to.message + 1);
                }
                self.turns.retain(|t| *t < to);
            }
            Change::Compact(compaction) => self.apply_compaction(compaction),
        }
    }

    fn apply_compaction(&mut self, compaction: Compaction) {
        for message in &mut self.messages {
            for block in &mut message.content {
                if let ContentBlock::ToolResult {
                    tool_use_id,
                    content,
                    ..
                } = block
                    && let Some(r) = compaction
                        .replaced
                        .iter()
                        .find(|r| &r.tool_use_id == tool_use_id)
                {
                    *content = r.content.clone();
                }
            }
        }
        let k = compaction.keep_from.min(self.messages.len());
        let tail = self.messages.split_off(k);
        let mut first = vec![ContentBlock::text(compaction.summary)];
        // A kept user message joins the summary's, so roles still alternate.
        let joins = tail.first().is_some_and(|m| m.role == Role::User);
        let mut tail = tail.into_iter();
        if joins && let Some(user) = tail.next() {
            first.extend(user.content);
        }
        self.messages = std::iter::once(Message {
            role: Role::User,
            content: first,
        })
        .chain(tail)
        .collect();
        self.turns = self
            .turns
            .iter()
            .filter(|t| t.message >= k)
            .map(|t| match (joins, t.message == k) {
                (true, true) => Mark {
                    message: 0,
                    block: t.block + 1,
                },
                (true, false) => Mark {
                    message: t.message - k,
                    block: t.block,
                },
                (false, _) => Mark {
                    message: t.message - k + 1,
                    block: t.block,
                },
            })
            .collect();
    }

    /// The `tool_result` blocks owed by the last message, if it is an assistant message with
    /// `tool_use` blocks: what a session interrupted mid-call needs before it can go on. Each
    /// says "interrupted: corral stopped before this tool call finished", unless `known` has a
    /// truer account of that call (see [`super::restart`]).
    pub fn unanswered_tool_uses(
        &self,
        mut known: impl FnMut(&crate::llm::ToolUse<'_>) -> Option<String>,
    ) -> Vec<ContentBlock> {
        match self.messages.last() {
            Some(last) if last.role == Role::Assistant => last
                .tool_uses()
                .map(|t| ContentBlock::ToolResult {
                    tool_use_id: t.id.to_string(),
                    content: known(&t).unwrap_or_else(|| {
                        "interrupted: corral stopped before this tool call finished".into()
                    }),
                    is_error: true,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The depth rule on every tool input of `blocks`.
fn bound_inputs(blocks: &mut [ContentBlock]) {
    for block in blocks {
        if let ContentBlock::ToolUse { input, .. } = block {
            crate::tools::schema::bound_depth(input);
        }
    }
}

/// Checks the API's rules on a list of messages about to be sent; the error says which rule
/// broke where. Used by the agent before every call (a failure is a bug in corral) and by the
/// test server on every request it receives.
pub fn check_request(messages: &[Message]) -> Result<(), String> {
    let Some(first) = messages.first() else {
        return Err("no messages".into());
    };
    if first.role != Role::User {
        return Err("the first message is not a user message".into());
    }
    for (i, pair) in messages.windows(2).enumerate() {
        if pair[0].role == pair[1].role {
            return Err(format!("messages {i} and {} have the same role", i + 1));
        }
    }
    for (i, message) in messages.iter().enumerate() {
        if message.content.is_empty() {
            return Err(format!("message {i} is empty"));
        }
        if message.role == Role::Assistant {
            let ids: Vec<&str> = message.tool_uses().map(|t| t.id).collect();
            if ids.is_empty() {
                continue;
            }
            let Some(next) = messages.get(i + 1) else {
                return Err(format!(
                    "message {i} has tool_use blocks and is the last message"
                ));
            };
            let results: Vec<&str> = next
                .content
                .iter()
                .take_while(|b| matches!(b, ContentBlock::ToolResult { .. }))
                .filter_map(|b| match b {
                    ContentBlock::ToolResult { tool_use_id, .. } => Some(tool_use_id.as_str()),
                    _ => None,
                })
                .collect();
            if results != ids {
                return Err(format!(
                    "message {} must start with tool_result blocks for {ids:?} in order, has {results:?}",
                    i + 1
                ));
            }
        }
        if message.role == Role::User && i > 0 {
            let owed = messages[i - 1].tool_uses().count();
            let results = message
                .content
                .iter()
                .filter(|b| matches!(b, ContentBlock::ToolResult { .. }))
                .count();
            if results > owed {
                return Err(format!(
                    "message {i} has tool_result blocks nobody asked for"
                ));
            }
        }
    }
    if messages.last().map(|m| m.role) != Some(Role::User) {
        return Err("the last message is not a user message (an accidental prefill)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool_use(id: &str) -> ContentBlock {
        ContentBlock::ToolUse {
            id: id.into(),
            name: "bash".into(),
            input: json!({}),
        }
    }

    fn result(id: &str) -> ContentBlock {
        ContentBlock::ToolResult {
            tool_use_id: id.into(),
            content: "ok".into(),
            is_error: false,
        }
    }

    /// The size the history keeps is the size of its JSON after every kind of change: a new
    /// message, blocks appended, a turn taken back inside a message, a compaction.
    #[test]
    fn the_kept_size_is_the_json_size() {
        let real = |h: &History| serde_json::to_vec(h.messages()).expect("JSON").len() as u64;
        let mut h = History::new();
        assert_eq!(h.json_bytes(), real(&h));
        h.begin_turn();
        h.add_user(vec![ContentBlock::text("go \"quoted\"")]);
        h.add_assistant(vec![tool_use("1")]);
        h.add_user(vec![result("1")]);
        assert_eq!(h.json_bytes(), real(&h));
        h.begin_turn();
        h.add_user(vec![ContentBlock::text("more")]);
        assert_eq!(h.json_bytes(), real(&h));
        let turn = h.last_turn().expect("a turn");
        h.truncate(turn);
        assert_eq!(h.json_bytes(), real(&h));
        h.add_assistant(vec![ContentBlock::text("done")]);
        h.compact(Compaction {
            keep_from: 2,
            summary: "summary".into(),
            replaced: Vec::new(),
        });
        assert_eq!(h.json_bytes(), real(&h));
    }

    #[test]
    fn user_content_merges_into_a_trailing_user_message() {
        let mut h = History::new();
        assert!(matches!(
            h.add_user(vec![ContentBlock::text("a")]),
            Change::Push(_)
        ));
        assert!(matches!(
            h.add_user(vec![ContentBlock::text("b")]),
            Change::Append(_)
        ));
        assert_eq!(h.messages().len(), 1);
        assert_eq!(h.add_assistant(vec![]), None);
        assert_eq!(check_request(h.messages()), Ok(()));
    }

    #[test]
    fn the_rules_are_checked() {
        let user = |c| Message {
            role: Role::User,
            content: c,
        };
        let asst = |c| Message {
            role: Role::Assistant,
            content: c,
        };
        let ok = vec![
            user(vec![ContentBlock::text("go")]),
            asst(vec![tool_use("a"), tool_use("b")]),
            user(vec![
                result("a"),
                result("b"),
                ContentBlock::text("<background-results>"),
            ]),
        ];
        assert_eq!(check_request(&ok), Ok(()));
        let swapped = vec![
            ok[0].clone(),
            ok[1].clone(),
            user(vec![result("b"), result("a")]),
        ];
        assert!(check_request(&swapped).is_err());
        let text_first = vec![
            ok[0].clone(),
            ok[1].clone(),
            user(vec![ContentBlock::text("x"), result("a"), result("b")]),
        ];
        assert!(check_request(&text_first).is_err());
        let prefill = vec![ok[0].clone(), asst(vec![ContentBlock::text("hi")])];
        assert!(check_request(&prefill).unwrap_err().contains("prefill"));
    }

    #[test]
    fn an_interrupted_call_is_answered_with_errors() {
        let mut h = History::new();
        h.add_user(vec![ContentBlock::text("go")]);
        h.add_assistant(vec![tool_use("a")]);
        let owed = h.unanswered_tool_uses(|_| None);
        assert_eq!(owed.len(), 1);
        h.add_user(owed);
        assert_eq!(check_request(h.messages()), Ok(()));
    }
}
