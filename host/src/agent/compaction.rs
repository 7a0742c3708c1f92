//! Context compaction: when the conversation grows past the model's context window, the older
//! turns are replaced by a summary the model writes, and the recent ones are kept as they are.
//!
//! **When.** Before each model call the agent estimates the request's size in tokens: the
//! `input_tokens` the last answer reported, plus [`BYTES_PER_TOKEN`] a token for every byte
//! added since (and never less than the whole request's bytes at that rate, for servers that
//! report no usage); when that says the request is due, the provider's own counter, where it
//! has one ([`crate::llm::Provider::count_tokens`]), decides. Past [`THRESHOLD_PERCENT`] of the context window
//! ([`crate::llm::models::context_window`], or `[agent] context_window`) the conversation is
//! compacted first. It is also compacted once, and the call made again, when the server answers
//! that the prompt is too long ([`crate::llm::LlmError::is_prompt_too_long`]), and on demand
//! (`/compact` in chat, [`super::Agent::compact`]).
//!
//! **What.** The recent messages are kept verbatim, as many as fit in [`TARGET_PERCENT`] of the
//! window with the system prompt, the tools and room for the summary. The cut falls before an
//! assistant message or before a user message that answers no tool call, so every `tool_use`
//! keeps its `tool_result` and a kept assistant message keeps its thinking blocks byte for byte.
//! The older messages go to the model, rendered as a plain transcript (no tools offered, long
//! results cut), in a separate call that asks for a summary; the summary becomes the first user
//! message, in a `<conversation-summary>` block. Of the kept messages, bulky tool results older
//! than the last [`RECENT_EXCHANGES`] exchanges are replaced by a pointer to a file under
//! `.corral/results/` that holds their full text, and so are the bulky results of the
//! summarised part (the transcript names those files).
//!
//! **Where it stays.** The session file gets one more line ([`super::history::Compaction`]);
//! the whole transcript stays above it, and `--continue` replays to the compacted history.

use serde::Serialize;

use super::history::{Compaction, Replaced};
use super::{AgentError, Event};
use crate::llm::{ContentBlock, Message, Request, Role, Thinking, ToolSpec, Usage};
pub use crate::workspace::RESULTS_DIR;
use crate::workspace::{Results, Workspace};

/// Compact when a request's estimated size passes this share of the context window.
pub const THRESHOLD_PERCENT: u64 = 80;
/// What a compaction aims for: the request after it within this share of the window.
pub const TARGET_PERCENT: u64 = 50;
/// The most of the window kept free for the answer when deciding to compact: a request is due
/// when it leaves less than `max_tokens` (up to this share) for the answer.
pub const OUTPUT_RESERVE_MAX_PERCENT: u64 = 25;
/// The fewest `max_tokens` a call is given when its request nearly fills the window.
pub const MIN_ANSWER_TOKENS: u32 = 1024;
/// The bytes counted as one token when estimating (English and code run at 3 to 4).
pub const BYTES_PER_TOKEN: u64 = 4;
/// A tool result longer than this many bytes is bulky: a compaction moves it to a file.
pub const BULKY_RESULT_BYTES: usize = 2048;
/// The newest exchanges (an assistant message and the user message after it) whose tool
/// results a compaction never moves out.
pub const RECENT_EXCHANGES: usize = 3;
/// How much of a tool result the transcript given to the summarising call shows.
pub const TRANSCRIPT_RESULT_CHARS: usize = 800;
/// The most tokens of a summary: a tenth of the window, within these bounds.
pub const SUMMARY_MAX_TOKENS: (u32, u32) = (256, 4096);
/// How a summary block begins (and how the test server and `corral sessions` know it).
pub const SUMMARY_TAG: &str = "<conversation-summary>";

/// Why a compaction happened, as [`super::Event::Compacted`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The estimate passed [`THRESHOLD_PERCENT`] of the window.
    Threshold,
    /// The server said the prompt is too long.
    PromptTooLong,
    /// The user asked (`/compact`).
    Requested,
}

/// The instructions of the summarising call.
pub const SUMMARY_SYSTEM: &str = "You summarise the older part of a conversation between a \
user and a coding agent, so the agent can go on with the work without it. Write for the agent: \
the user's requests and goals, decisions made, the files read or changed (exact paths) and what \
was learned from them, commands run and their results, errors met and how they were solved, and \
what is left to do. Keep exact names, paths, numbers and values. Be concise. Answer with the \
summary only: no preamble, no tool calls.";

/// A compaction worked out, before the model has written the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Messages `0..keep_from` are summarised.
    pub keep_from: usize,
    /// The kept results replaced by a pointer.
    pub replaced: Vec<Replaced>,
    /// Results (id, full text) to save under `.corral/results/`: the replaced ones and the
    /// bulky ones of the summarised part.
    pub saves: Vec<(String, String)>,
    /// The summarised part as text, for the summarising call.
    pub transcript: String,
}

/// The bytes of a request as the estimate counts them: the system prompt, the tools and the
/// messages, as JSON.
pub fn request_bytes(system: &str, tools: &[ToolSpec], messages: &[Message]) -> u64 {
    fixed_bytes(system, tools) + json_len(messages)
}

/// The bytes of the system prompt and the tools as the estimate counts them: the part of
/// [`request_bytes`] that is the same on every call.
pub fn fixed_bytes(system: &str, tools: &[ToolSpec]) -> u64 {
    system.len() as u64 + json_len(tools)
}

/// The length of `value` as JSON, counted without building it.
pub fn json_len(value: &(impl serde::Serialize + ?Sized)) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

/// The estimate of a request of `bytes` in tokens: `last` is what the previous call reported
/// (`input_tokens`, and the request bytes it was for), when there was one since the history last
/// changed shape.
pub fn estimate(bytes: u64, last: Option<(u64, u64)>) -> u64 {
    let floor = bytes / BYTES_PER_TOKEN;
    match last {
        Some((tokens, at)) => {
            floor.max(tokens.saturating_add(bytes.saturating_sub(at) / BYTES_PER_TOKEN))
        }
        None => floor,
    }
}

/// Whether a request estimated at `tokens` should be compacted first.
/// Whether a request of about `tokens` is due for compaction in `window`, when its answer may
/// be `max_tokens` long: past [`THRESHOLD_PERCENT`] of the window, or past what leaves room for
/// the answer (the API refuses a request whose input and `max_tokens` together exceed the
/// window), that room counted up to [`OUTPUT_RESERVE_MAX_PERCENT`] of the window.
pub fn due(tokens: u64, window: u32, max_tokens: u32) -> bool {
    let window = u64::from(window);
    let reserve = u64::from(max_tokens).min(window * OUTPUT_RESERVE_MAX_PERCENT / 100);
    tokens > (window * THRESHOLD_PERCENT / 100).min(window - reserve)
}

/// The `max_tokens` of a call whose request is about `tokens`: the configured `max_tokens`, or
/// what is left of the window when that is less (the API refuses input and `max_tokens` past
/// the window), never under [`MIN_ANSWER_TOKENS`].
pub fn answer_tokens(max_tokens: u32, tokens: u64, window: u32) -> u32 {
    let room = u64::from(window).saturating_sub(tokens);
    let room = u32::try_from(room).unwrap_or(u32::MAX);
    max_tokens.min(room).max(MIN_ANSWER_TOKENS.min(max_tokens))
}

/// The `max_tokens` of the summarising call for `window`.
pub fn summary_max_tokens(window: u32) -> u32 {
    (window / 10).clamp(SUMMARY_MAX_TOKENS.0, SUMMARY_MAX_TOKENS.1)
}

/// The path, relative to the workspace, of the file holding tool result `id`'s full text.
pub fn result_path(id: &str) -> String {
    Results::path_of(&result_name(id))
}

/// The file name in [`Results`] of the result of tool call `id`.
fn result_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{safe}.txt")
}

/// What replaces a moved result in the conversation.
pub fn pointer(id: &str, bytes: usize) -> String {
    format!(
        "[corral: this tool result ({bytes} bytes) was taken out of the conversation to save \
         context; its full text is in {} (read it with bash, e.g. `sed -n 1,80p FILE`)]",
        result_path(id)
    )
}

/// The first user message's text after a compaction.
pub fn summary_block(summary: &str, session_file: &str) -> String {
    format!(
        "{SUMMARY_TAG}\nThe older part of this conversation was compacted to fit the context \
         window; this is a summary of it. The whole transcript is in {session_file}, and tool \
         results taken out are in .corral/{RESULTS_DIR}/.\n\n{}\n</conversation-summary>",
        summary.trim()
    )
}

/// The user message of the summarising call.
pub fn summary_prompt(transcript: &str) -> String {
    format!(
        "Here is the older part of the conversation, as a transcript:\n\n<transcript>\n{transcript}\n</transcript>\n\n\
         Write the summary that lets the agent go on without it."
    )
}

/// Works out a compaction of `messages` for a context window of `window` tokens, where the
/// system prompt and the tools take `fixed_bytes`. `None` when there is nothing to summarise
/// (the history is one exchange or less).
pub fn plan(messages: &[Message], window: u32, fixed_bytes: u64) -> Option<Plan> {
    let n = messages.len();
    let has_tool_use = |i: usize| messages[i].tool_uses().next().is_some();
    // The latest cut: what must be kept is the message to be answered and, when it carries
    // tool results, the assistant message that asked for them.
    let k_max = match messages.last()? {
        last if last.role == Role::Assistant => n,
        _ if n >= 2 && has_tool_use(n - 2) => n - 2,
        _ => n - 1,
    };
    let cut_ok =
        |k: usize| k == n || messages[k].role == Role::Assistant || (k > 0 && !has_tool_use(k - 1));
    let cuts: Vec<usize> = (1..=k_max).filter(|&k| cut_ok(k)).collect();
    let &latest = cuts.last()?;

    let protected_from = n.saturating_sub(2 * RECENT_EXCHANGES);
    let bulky = |i: usize, content: &str| i < protected_from && content.len() > BULKY_RESULT_BYTES;
    // Each message's bytes once its bulky results are pointers.
    let sizes: Vec<u64> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut m = m.clone();
            for block in &mut m.content {
                if let ContentBlock::ToolResult {
                    tool_use_id,
                    content,
                    ..
                } = block
                    && bulky(i, content)
                {
                    *content = pointer(tool_use_id, content.len());
                }
            }
            serde_json::to_vec(&m).map_or(0, |v| v.len() as u64)
        })
        .collect();
    let budget_tokens = (u64::from(window) * TARGET_PERCENT / 100)
        .saturating_sub(fixed_bytes / BYTES_PER_TOKEN)
        .saturating_sub(u64::from(summary_max_tokens(window)));
    let budget = budget_tokens * BYTES_PER_TOKEN;
    let tail = |k: usize| sizes[k..].iter().sum::<u64>();
    // Rather at the start of a user turn (its prompt kept with its answers), else anywhere.
    let clean = |k: usize| k == n || messages[k].role == Role::User;
    let fits = |k: &usize| tail(*k) <= budget;
    let keep_from = cuts
        .iter()
        .copied()
        .filter(|&k| clean(k))
        .find(fits)
        .or_else(|| cuts.iter().copied().find(fits))
        .unwrap_or(latest);

    let mut replaced = Vec::new();
    let mut saves = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        for block in &message.content {
            if let ContentBlock::ToolResult {
                tool_use_id,
                content,
                ..
            } = block
            {
                if i >= keep_from && bulky(i, content) {
                    replaced.push(Replaced {
                        tool_use_id: tool_use_id.clone(),
                        content: pointer(tool_use_id, content.len()),
                    });
                    saves.push((tool_use_id.clone(), content.clone()));
                } else if i < keep_from && content.chars().count() > TRANSCRIPT_RESULT_CHARS {
                    saves.push((tool_use_id.clone(), content.clone()));
                }
            }
        }
    }
    // The transcript may take what the kept part leaves of the window, less the answer.
    let room = (u64::from(window) * TARGET_PERCENT / 100)
        .saturating_sub(u64::from(summary_max_tokens(window)))
        * BYTES_PER_TOKEN;
    let transcript = transcript(&messages[..keep_from], room as usize);
    Some(Plan {
        keep_from,
        replaced,
        saves,
        transcript,
    })
}

/// `messages` as a plain transcript of at most about `room` bytes: the oldest entries give way
/// first (an earlier summary, at the start, stays).
fn transcript(messages: &[Message], room: usize) -> String {
    let mut entries: Vec<String> = Vec::new();
    for message in messages {
        let who = match message.role {
            Role::User => "User",
            Role::Assistant => "Assistant",
        };
        for block in &message.content {
            let entry = match block {
                ContentBlock::Text { text } => format!("{who}: {text}"),
                ContentBlock::ToolUse { id, name, input } => {
                    format!("Assistant called {name} ({id}): {input}")
                }
                ContentBlock::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => {
                    let what = if *is_error { "error" } else { "result" };
                    let total = content.chars().count();
                    if total > TRANSCRIPT_RESULT_CHARS {
                        let cut: String = content.chars().take(TRANSCRIPT_RESULT_CHARS).collect();
                        format!(
                            "Tool {what} ({tool_use_id}): {cut}\n[... {} bytes in all; the full \
                             text is in {}]",
                            content.len(),
                            result_path(tool_use_id)
                        )
                    } else {
                        format!("Tool {what} ({tool_use_id}): {content}")
                    }
                }
                ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => continue,
            };
            entries.push(entry);
        }
    }
    let keep_first = entries
        .first()
        .is_some_and(|e| e.starts_with(&format!("User: {SUMMARY_TAG}")));
    let mut total: usize = entries.iter().map(|e| e.len() + 2).sum();
    let mut dropped = 0;
    let start = usize::from(keep_first);
    while total > room && entries.len() > start + 1 {
        total -= entries[start].len() + 2;
        entries.remove(start);
        dropped += 1;
    }
    if dropped > 0 {
        entries.insert(
            start,
            format!("[... {dropped} earlier entries left out for room ...]"),
        );
    }
    entries.join("\n\n")
}

/// Writes each saved result to its file in the workspace's [`Results`], unless it is there
/// already (an earlier compaction saved it). A file that cannot be written is reported to `warn`
/// and the compaction goes on: the session file still holds the text.
pub fn save_results(workspace: &Workspace, saves: &[(String, String)], warn: impl Fn(String)) {
    if saves.is_empty() {
        return;
    }
    let results = match Results::open(workspace) {
        Ok(results) => results,
        Err(error) => {
            warn(format!(
                "could not open .corral/{RESULTS_DIR}/ to save tool results: {error}"
            ));
            return;
        }
    };
    for (id, content) in saves {
        let name = result_name(id);
        if results.contains(&name) {
            continue;
        }
        if let Err(error) = results.write(&name, content.as_bytes()) {
            warn(format!(
                "could not save a tool result to {}: {error}",
                Results::path_of(&name)
            ));
        }
    }
}

/// The [`Compaction`] of `plan` once the model wrote `summary`.
pub fn finish(plan: Plan, summary: &str, session_file: &str) -> Compaction {
    Compaction {
        keep_from: plan.keep_from,
        summary: summary_block(summary, session_file),
        replaced: plan.replaced,
    }
}

/// What one compaction did, as [`super::Event::Compacted`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Compacted {
    pub reason: Reason,
    /// Messages replaced by the summary.
    pub summarized: usize,
    /// Messages kept (the summary's own not counted).
    pub kept: usize,
    /// Kept tool results replaced by a pointer to their file.
    pub results_moved: usize,
    /// The estimated size of the next request before and after, in tokens.
    pub tokens_before: u64,
    pub tokens_after: u64,
    /// The context window the estimate is held against.
    pub context_window: u32,
}

impl super::Agent {
    /// The context window in force, in tokens: `[agent] context_window`, else the model's
    /// ([`crate::llm::models::context_window`]).
    pub fn context_window(&self) -> u32 {
        crate::llm::models::context_window(&self.config.model, self.config.context_window)
    }

    /// The `max_tokens` the configuration asks of a call (for the model in use).
    pub fn configured_max_tokens(&self) -> u32 {
        crate::llm::models::max_tokens(&self.config.model, self.config.max_tokens)
    }

    /// The `max_tokens` of the next call: [`Self::configured_max_tokens`], less when the
    /// request leaves less room in the window ([`answer_tokens`]). The estimate is made only
    /// when the configured figure is more than the share of the window compaction keeps free.
    pub fn next_max_tokens(&self) -> u32 {
        let max_tokens = self.configured_max_tokens();
        let window = self.context_window();
        if u64::from(max_tokens) * 100 <= u64::from(window) * OUTPUT_RESERVE_MAX_PERCENT {
            return max_tokens;
        }
        answer_tokens(max_tokens, self.estimated_tokens(), window)
    }

    /// [`request_bytes`] of the next request, from the sizes the history keeps.
    pub(super) fn request_bytes(&self) -> u64 {
        fixed_bytes(&self.system, &self.specs) + self.history.json_bytes()
    }

    /// The estimated size of the next request, in tokens (see the module doc).
    pub fn estimated_tokens(&self) -> u64 {
        estimate(self.request_bytes(), self.last_sent)
    }

    /// Compacts the conversation now (`/compact` in chat): the model summarises the older
    /// turns. `Ok(None)` when there is nothing to summarise (one exchange or less). Fails when
    /// the summarising call fails (the history is then as it was) or the session file cannot be
    /// written.
    pub async fn compact(&mut self) -> Result<Option<Compacted>, AgentError> {
        let mut usage = Usage::default();
        self.compact_for(Reason::Requested, &mut usage).await
    }

    /// Compacts when the next request's estimate passes the threshold. A summarising call that
    /// fails is a warning: the request is still sent, whole.
    pub(super) async fn compact_if_due(&mut self, usage: &mut Usage) -> Result<(), AgentError> {
        let (window, max_tokens) = (self.context_window(), self.configured_max_tokens());
        if !due(self.estimated_tokens(), window, max_tokens) {
            return Ok(());
        }
        // The estimate says so; the provider's own counter, where it has one, has the last
        // word (and the estimates after build on its count).
        if let Some(counted) = self.count_tokens().await {
            self.last_sent = Some((counted, self.request_bytes()));
            if !due(counted, window, max_tokens) {
                return Ok(());
            }
        }
        match self.compact_for(Reason::Threshold, usage).await {
            Ok(_) => Ok(()),
            Err(AgentError::Llm(error)) => {
                (self.events)(&Event::Warning {
                    message: format!("could not compact the conversation: {}", error.brief()),
                });
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// The provider's count of the next request's input tokens; `None` where it has no
    /// counter or the count failed (said in the log: the estimate decides then).
    async fn count_tokens(&self) -> Option<u64> {
        let provider = self.provider.clone();
        let request = Request {
            model: &self.config.model,
            max_tokens: self.configured_max_tokens(),
            thinking: self.config.thinking,
            effort: self.config.effort,
            cache: self.config.cache,
            system: &self.system,
            tools: &self.specs,
            messages: self.history.messages(),
        };
        match provider.count_tokens(&request).await {
            Ok(counted) => counted,
            Err(error) => {
                tracing::warn!(%error, "could not count the request's tokens; going by the estimate");
                None
            }
        }
    }

    /// One compaction for `reason`; the summarising call's tokens are added to `usage`.
    pub(super) async fn compact_for(
        &mut self,
        reason: Reason,
        usage: &mut Usage,
    ) -> Result<Option<Compacted>, AgentError> {
        let window = self.context_window();
        let fixed = request_bytes(&self.system, &self.specs, &[]);
        let tokens_before = self.estimated_tokens();
        let Some(plan) = plan(self.history.messages(), window, fixed) else {
            return Ok(None);
        };
        let messages = [Message::user_text(summary_prompt(&plan.transcript))];
        let model = self.config.model.clone();
        let request = Request {
            model: &model,
            max_tokens: summary_max_tokens(window).min(crate::llm::models::max_tokens(
                &model,
                self.config.max_tokens,
            )),
            thinking: Thinking::Off,
            effort: None,
            cache: false,
            system: SUMMARY_SYSTEM,
            tools: &[],
            messages: &messages,
        };
        let events = self.events.clone();
        let max_retries = self.config.retry.max_retries;
        let on_retry =
            move |attempt: u32, wait: std::time::Duration, error: &crate::llm::LlmError| {
                events(&Event::Retrying {
                    attempt,
                    max_retries,
                    wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error: error.brief(),
                })
            };
        let response = crate::llm::call(
            self.provider.as_ref(),
            &self.config.retry,
            &request,
            &|_| {},
            &on_retry,
        )
        .await?;
        *usage += response.usage;
        self.session.record_usage(response.usage)?;
        let summary = Message {
            role: Role::Assistant,
            content: response.content,
        }
        .text();
        let summary = match summary.trim() {
            "" => "(the model wrote no summary)".to_string(),
            text => text.to_string(),
        };
        let events = self.events.clone();
        save_results(&self.workspace, &plan.saves, |message| {
            events(&Event::Warning { message })
        });
        let session_file = format!(".corral/sessions/{}.jsonl", self.session.id());
        let summarized = plan.keep_from;
        let kept = self.history.messages().len() - plan.keep_from;
        let results_moved = plan.replaced.len();
        let change = self.history.compact(finish(plan, &summary, &session_file));
        self.session.record(&change)?;
        self.last_sent = None;
        let report = Compacted {
            reason,
            summarized,
            kept,
            results_moved,
            tokens_before,
            tokens_after: self.estimated_tokens(),
            context_window: window,
        };
        (self.events)(&Event::Compacted(report));
        Ok(Some(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::history::{History, check_request};
    use serde_json::json;

    fn call(id: &str) -> ContentBlock {
        ContentBlock::ToolUse {
            id: id.into(),
            name: "read_file".into(),
            input: json!({"path": "a"}),
        }
    }

    fn result(id: &str, bytes: usize) -> ContentBlock {
        ContentBlock::ToolResult {
            tool_use_id: id.into(),
            content: "x".repeat(bytes),
            is_error: false,
        }
    }

    /// A long tool loop: one prompt, then `n` calls each answered by a 5 kB result.
    fn tool_loop(n: usize) -> History {
        let mut h = History::new();
        h.begin_turn();
        h.add_user(vec![ContentBlock::text("read a, often")]);
        for i in 0..n {
            h.add_assistant(vec![
                ContentBlock::Thinking {
                    thinking: "hm".into(),
                    signature: format!("sig{i}"),
                },
                call(&format!("t{i}")),
            ]);
            h.add_user(vec![result(&format!("t{i}"), 5000)]);
        }
        h
    }

    /// Past the threshold the plan keeps a valid, smaller tail: the cut falls before an
    /// assistant message, the results kept whole are the recent ones, the older bulky ones
    /// become pointers, and the compacted history obeys the API's rules and fits the target.
    #[test]
    fn a_long_tool_loop_compacts_to_a_valid_smaller_history() {
        let mut h = tool_loop(300);
        let window = 40_000;
        let bytes = request_bytes("", &[], h.messages());
        assert!(due(estimate(bytes, None), window, 1000), "{bytes} bytes");
        let plan = plan(h.messages(), window, 0).expect("a plan");
        assert_eq!(h.messages()[plan.keep_from].role, Role::Assistant);
        assert!(
            plan.keep_from > 100,
            "deep enough to fit: {}",
            plan.keep_from
        );
        assert!(plan.transcript.contains("left out for room"));
        assert!(
            plan.transcript
                .contains(&format!(".corral/results/t{}.txt", plan.keep_from / 2 - 1))
        );
        assert!(
            plan.saves.iter().any(|(id, _)| id == "t0"),
            "every bulky result is saved"
        );
        assert!(!plan.transcript.contains("sig0"), "thinking stays out");
        let kept_before = h.messages()[plan.keep_from..].to_vec();
        let compaction = finish(plan, "read a 300 times", ".corral/sessions/s.jsonl");
        h.compact(compaction);
        check_request(h.messages()).expect("valid");
        assert!(h.messages()[0].text().starts_with(SUMMARY_TAG));
        assert!(h.messages()[0].text().contains("read a 300 times"));
        let after = request_bytes("", &[], h.messages());
        assert!(!due(estimate(after, None), window, 1000), "{after} bytes");
        assert!(after / BYTES_PER_TOKEN <= u64::from(window) * TARGET_PERCENT / 100);
        // The kept assistant messages are the same, thinking and all.
        let assistants = |m: &[Message]| -> Vec<Message> {
            m.iter()
                .filter(|m| m.role == Role::Assistant)
                .cloned()
                .collect()
        };
        assert_eq!(assistants(&h.messages()[1..]), assistants(&kept_before));
        let results: Vec<&str> = h
            .messages()
            .iter()
            .flat_map(|m| &m.content)
            .filter_map(|b| match b {
                ContentBlock::ToolResult { content, .. } => Some(content.as_str()),
                _ => None,
            })
            .collect();
        let whole = results.iter().filter(|c| c.len() == 5000).count();
        assert_eq!(whole, RECENT_EXCHANGES, "the recent results stay whole");
        assert!(
            results
                .iter()
                .filter(|c| c.len() != 5000)
                .all(|c| c.contains(".corral/results/"))
        );
        // The prompt's turn began before the cut: it cannot be undone any more.
        assert_eq!(h.last_turn(), None);
    }

    /// A chat history between prompts (ending with the model's answer) may be summarised
    /// whole; the next prompt joins the summary's message. A kept user turn keeps its start.
    #[test]
    fn turns_after_the_cut_keep_their_starts() {
        let mut h = History::new();
        for i in 0..6 {
            h.begin_turn();
            h.add_user(vec![ContentBlock::text(format!(
                "prompt {i} {}",
                "y".repeat(3000)
            ))]);
            h.add_assistant(vec![ContentBlock::text(format!("answer {i}"))]);
        }
        let plan = plan(h.messages(), 8000, 0).expect("a plan");
        assert_eq!(h.messages()[plan.keep_from].role, Role::User);
        let kept = h.messages().len() - plan.keep_from;
        h.compact(finish(plan, "s", "f"));
        assert_eq!(h.messages().len(), kept);
        let mark = h.last_turn().expect("the last turn is kept");
        let last_prompt = &h.messages()[mark.message].content[mark.block];
        assert!(matches!(last_prompt, ContentBlock::Text { text } if text.starts_with("prompt 5")));
        h.truncate(mark);
        assert_eq!(h.last().map(|m| m.text()), Some("answer 4".into()));
    }

    /// One exchange is nothing to summarise.
    #[test]
    fn a_single_prompt_is_not_compacted() {
        let h = tool_loop(0);
        assert_eq!(plan(h.messages(), 1000, 0), None);
    }

    /// The estimate takes the reported tokens plus what was added, never less than the bytes.
    #[test]
    fn the_estimate_adds_what_came_since() {
        assert_eq!(estimate(4000, None), 1000);
        assert_eq!(estimate(4000, Some((3000, 2000))), 3500);
        assert_eq!(
            estimate(4000, Some((10, 2000))),
            1000,
            "a server reporting too little"
        );
        assert!(due(801, 1000, 100) && !due(800, 1000, 100));
    }

    /// A long answer moves the threshold down, up to a quarter of the window; a call is given
    /// no more `max_tokens` than the window has left, and never less than the minimum.
    #[test]
    fn room_is_left_for_the_answer() {
        assert!(!due(799, 1000, 200) && due(801, 1000, 200));
        assert!(due(781, 1000, 220) && !due(780, 1000, 220));
        assert!(due(751, 1000, 900) && !due(750, 1000, 900));
        assert_eq!(answer_tokens(64_000, 150_000, 200_000), 50_000);
        assert_eq!(answer_tokens(8_000, 150_000, 200_000), 8_000);
        assert_eq!(answer_tokens(64_000, 199_900, 200_000), MIN_ANSWER_TOKENS);
        assert_eq!(answer_tokens(500, 199_900, 200_000), 500);
    }
}
