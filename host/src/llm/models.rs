//! The models corral knows: their limits and how they think, from the provider's models page.
//!
//! Used when a request is built: `max_tokens` is kept within the model's output limit (and,
//! unset, is a default that leaves room for thinking), and thinking and effort are sent only in
//! the form the model takes ([`ThinkingSupport`]). An id not in [`MODELS`] still works: it gets
//! [`UNKNOWN_MAX_TOKENS`] and no thinking or effort setting at all, which every Messages and
//! Chat Completions server accepts. A dated snapshot id (`claude-haiku-4-5-20251001`) is its
//! model's.
//!
//! README.md has the same table for users; a test keeps the two equal.

/// The model used when neither `--model`, `CORRAL_MODEL` nor `[agent] model` names one: the
/// models page's choice for agentic coding.
pub const DEFAULT_MODEL: &str = "claude-opus-5";

/// `max_tokens` for a model corral does not know, unless one is configured: small enough for
/// any server (a local one with a short context refuses more).
pub const UNKNOWN_MAX_TOKENS: u32 = 8192;

/// `max_tokens` for a known model when none is configured, or its output limit when lower:
/// room for adaptive thinking and a long answer.
pub const DEFAULT_MAX_TOKENS: u32 = 32_000;

/// The context window assumed for a model corral does not know, unless `[agent] context_window`
/// says: small enough that compaction starts before most servers would refuse a request (a
/// local server with a shorter context still answers "too long", and corral compacts then).
pub const UNKNOWN_CONTEXT_WINDOW: u32 = 32_768;

/// How a model thinks, and so what it may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingSupport {
    /// Always thinks, adaptively: `thinking: {type: "adaptive"}` and effort are taken;
    /// `disabled` and budgets are refused (400), so `thinking = "off"` sends nothing.
    AlwaysAdaptive,
    /// Adaptive thinking (`{type: "adaptive"}` or `{type: "disabled"}`) and effort.
    Adaptive,
    /// Extended thinking with a token budget (`{type: "enabled", budget_tokens}`); no effort.
    Budget,
}

impl ThinkingSupport {
    /// The name the README's table uses.
    pub fn label(self) -> &'static str {
        match self {
            Self::AlwaysAdaptive => "adaptive (always on)",
            Self::Adaptive => "adaptive",
            Self::Budget => "extended (budget)",
        }
    }

    /// Whether `output_config.effort` may be sent.
    pub fn takes_effort(self) -> bool {
        matches!(self, Self::AlwaysAdaptive | Self::Adaptive)
    }
}

/// One model id and its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    pub id: &'static str,
    /// Input and output tokens of one call together.
    pub context_window: u32,
    /// The most `max_tokens` the model takes.
    pub max_output: u32,
    pub thinking: ThinkingSupport,
}

/// The ids corral knows, newest first.
pub const MODELS: &[Model] = &[
    Model {
        id: "claude-fable-5",
        context_window: 1_000_000,
        max_output: 128_000,
        thinking: ThinkingSupport::AlwaysAdaptive,
    },
    Model {
        id: "claude-opus-5",
        context_window: 1_000_000,
        max_output: 128_000,
        thinking: ThinkingSupport::Adaptive,
    },
    Model {
        id: "claude-sonnet-5",
        context_window: 1_000_000,
        max_output: 128_000,
        thinking: ThinkingSupport::Adaptive,
    },
    Model {
        id: "claude-haiku-4-5",
        context_window: 200_000,
        max_output: 64_000,
        thinking: ThinkingSupport::Budget,
    },
    Model {
        id: "claude-sonnet-4-5",
        context_window: 200_000,
        max_output: 64_000,
        thinking: ThinkingSupport::Budget,
    },
];

/// The model `id` names: one of [`MODELS`] by its id, or by its id and a snapshot date
/// (`-YYYYMMDD`). `None` for any other id.
pub fn lookup(id: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| {
        id == m.id
            || id.strip_prefix(m.id).is_some_and(|rest| {
                rest.len() == 9
                    && rest.starts_with('-')
                    && rest[1..].bytes().all(|b| b.is_ascii_digit())
            })
    })
}

/// The `max_tokens` of a call to `id`: the configured one (or, unset, [`DEFAULT_MAX_TOKENS`]),
/// never above a known model's output limit; for an unknown id the configured one or
/// [`UNKNOWN_MAX_TOKENS`].
pub fn max_tokens(id: &str, configured: Option<u32>) -> u32 {
    match lookup(id) {
        Some(model) => configured
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .min(model.max_output),
        None => configured.unwrap_or(UNKNOWN_MAX_TOKENS),
    }
}

/// The context window of a call to `id`, in tokens: the configured one, else a known model's,
/// else [`UNKNOWN_CONTEXT_WINDOW`].
pub fn context_window(id: &str, configured: Option<u32>) -> u32 {
    configured
        .or_else(|| lookup(id).map(|m| m.context_window))
        .unwrap_or(UNKNOWN_CONTEXT_WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids and their dated snapshots are known; anything else, a longer name included, is not.
    #[test]
    fn ids_and_snapshots_are_known() {
        assert_eq!(lookup("claude-opus-5").map(|m| m.id), Some("claude-opus-5"));
        assert_eq!(
            lookup("claude-haiku-4-5-20251001").map(|m| m.thinking),
            Some(ThinkingSupport::Budget)
        );
        assert_eq!(lookup("claude-opus-5-1"), None);
        assert_eq!(lookup("claude-opus-5-2026"), None);
        assert_eq!(lookup("qwen2.5-0.5b-instruct"), None);
        assert!(lookup(DEFAULT_MODEL).is_some(), "the default is known");
    }

    /// max_tokens is bounded by the model; an unknown model keeps the small default.
    #[test]
    fn max_tokens_stays_within_the_model() {
        assert_eq!(max_tokens("claude-opus-5", None), DEFAULT_MAX_TOKENS);
        assert_eq!(max_tokens("claude-opus-5", Some(500_000)), 128_000);
        assert_eq!(max_tokens("claude-haiku-4-5", Some(100)), 100);
        assert_eq!(max_tokens("local", None), UNKNOWN_MAX_TOKENS);
        assert_eq!(max_tokens("local", Some(100_000)), 100_000);
    }

    /// The README's table lists every model with the limits used here, so what users read is
    /// what corral does.
    #[test]
    fn the_readme_table_matches() {
        let readme = include_str!("../../../README.md");
        for model in MODELS {
            let row = format!(
                "| `{}` | {} | {} | {} |",
                model.id,
                tokens(model.context_window),
                tokens(model.max_output),
                model.thinking.label()
            );
            assert!(readme.contains(&row), "README.md has no row {row}");
        }
    }

    fn tokens(n: u32) -> String {
        if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
            format!("{}M", n / 1_000_000)
        } else {
            format!("{}K", n / 1000)
        }
    }
}
