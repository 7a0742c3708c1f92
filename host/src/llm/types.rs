//! The provider-neutral conversation: messages, content blocks, tool specs, usage.
//!
//! These types are what the agent keeps in its history and writes to the session file. They
//! follow the Anthropic Messages shapes (which every other provider can be mapped onto), so a
//! history serialises to exactly what the Anthropic API expects.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
}

impl Message {
    /// A user message holding one text block.
    pub fn user_text(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![ContentBlock::text(text)],
        }
    }

    /// The `tool_use` blocks of this message, in order.
    pub fn tool_uses(&self) -> impl Iterator<Item = ToolUse<'_>> {
        self.content.iter().filter_map(|block| match block {
            ContentBlock::ToolUse { id, name, input } => Some(ToolUse { id, name, input }),
            _ => None,
        })
    }

    /// All text blocks joined, in order (thinking is not text).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for block in &self.content {
            if let ContentBlock::Text { text } = block {
                out.push_str(text);
            }
        }
        out
    }
}

/// A borrowed view of a `tool_use` block.
#[derive(Debug, Clone, Copy)]
pub struct ToolUse<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub input: &'a Value,
}

/// One block of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    /// The model's reasoning, as the API sent it. Kept verbatim in the history and the session
    /// file and sent back byte for byte: the Anthropic API checks the `signature` of every
    /// thinking block of the tool loop under way and refuses (400) one changed or left out. From
    /// an OpenAI-compatible server (`reasoning_content`) the signature is empty, and the
    /// Anthropic provider never sends such a block, which it could not verify.
    Thinking {
        thinking: String,
        signature: String,
    },
    /// Reasoning the API encrypted (`data`); sent back as received, like [`Self::Thinking`].
    RedactedThinking {
        data: String,
    },
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }
}

/// A tool as offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema object describing the tool's input.
    pub input_schema: Value,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    PauseTurn,
    Refusal,
    /// A reason this version of corral does not know; kept verbatim.
    #[serde(untagged)]
    Other(String),
}

/// Tokens spent by one or more model calls.
///
/// `input_tokens` counts every input token, cached or not; the cache counts are parts of it (the
/// Anthropic API reports uncached, written and read tokens apart, and corral adds them up, so
/// both providers mean the same). `reasoning_tokens` is the part of `output_tokens` spent
/// thinking, when the server says (OpenAI's `completion_tokens_details`). The counts a server
/// does not report are 0, and are left out of the JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache by this call (Anthropic's
    /// `cache_creation_input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache (Anthropic's `cache_read_input_tokens`, OpenAI's
    /// `prompt_tokens_details.cached_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_input_tokens: u64,
    /// Output tokens spent reasoning (OpenAI's `completion_tokens_details.reasoning_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Sums the usage of several calls, as the agent does over the turns of a prompt. The counts
/// are whatever the server reported (any `u64`), so the sum saturates at `u64::MAX` rather than
/// overflow.
impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_creation_input_tokens = self
            .cache_creation_input_tokens
            .saturating_add(other.cache_creation_input_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .saturating_add(other.cache_read_input_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
    }
}

/// Whether the model may think before it answers (`[agent] thinking`, `--thinking`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Thinking {
    /// The model decides when and how much to think (the default). Sent as the API of the chosen
    /// model takes it ([`super::models`]); nothing for a model corral does not know.
    #[default]
    Adaptive,
    /// No thinking, where the model can be asked not to think (some always think).
    Off,
}

impl std::str::FromStr for Thinking {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "adaptive" => Ok(Self::Adaptive),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "unknown thinking `{other}`; use \"adaptive\" or \"off\""
            )),
        }
    }
}

/// How much the model should spend on an answer, thinking included (`[agent] effort`,
/// `--effort`). Unset, the model's default (`high` for the current models). Sent as
/// `output_config.effort`, only to models that take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    Low,
    Medium,
    High,
    Max,
}

impl std::str::FromStr for Effort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            "max" => Ok(Self::Max),
            other => Err(format!(
                "unknown effort `{other}`; use \"low\", \"medium\", \"high\" or \"max\""
            )),
        }
    }
}

/// A piece of an answer as it streams in: its text, or its thinking. A thinking block that
/// starts gives an empty `Thinking` piece first, so a display can say the model thinks even
/// when the API sends no thinking text (it may send only a signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta<'a> {
    Text(&'a str),
    Thinking(&'a str),
}

/// Everything one model call needs.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub model: &'a str,
    pub max_tokens: u32,
    pub thinking: Thinking,
    /// `None`: the model's default effort.
    pub effort: Option<Effort>,
    /// Mark the stable prefix and the newest turn for the prompt cache (Anthropic's
    /// `cache_control` breakpoints; OpenAI-compatible servers cache prefixes on their own).
    pub cache: bool,
    pub system: &'a str,
    pub tools: &'a [ToolSpec],
    pub messages: &'a [Message],
}

/// A complete answer of the model: one assistant message and why it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub content: Vec<ContentBlock>,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that reports an absurd token count cannot make the running total overflow (a
    /// panic in a debug build). The stream assembler fuzz targets add a response's usage up as
    /// the agent does, and crashed on their seed `huge_usage` (`input_tokens` of `u64::MAX`).
    #[test]
    fn usage_adds_up_without_overflow() {
        let mut total = Usage {
            input_tokens: 5,
            output_tokens: 1,
            cache_read_input_tokens: 4,
            ..Usage::default()
        };
        total += Usage {
            input_tokens: u64::MAX,
            output_tokens: 2,
            cache_read_input_tokens: u64::MAX,
            ..Usage::default()
        };
        assert_eq!(
            total,
            Usage {
                input_tokens: u64::MAX,
                output_tokens: 3,
                cache_read_input_tokens: u64::MAX,
                ..Usage::default()
            }
        );
    }
}
