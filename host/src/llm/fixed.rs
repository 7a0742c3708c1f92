//! The part of a request body that is the same on every call of an agent: the tools and the
//! system prompt, serialised once and reused, byte for byte, while they stay the same.
//!
//! An agent sends the same tools and system prompt on every call; only the conversation grows.
//! Serialising them again each turn costs CPU and nothing else; worse, a provider whose output
//! could differ between calls would break the prompt cache, which needs the request to begin
//! with the same bytes as the one before. Each provider keeps one [`FixedPart`]: the first call
//! writes the fragment, and every later call with equal tools, system prompt and flags gets
//! those same bytes back (a comparison, not a serialisation). Different ones (a compaction's
//! summarising call has no tools) write a fragment of their own in its place.

use std::sync::{Arc, Mutex};

use super::ToolSpec;

/// A provider's once-serialised tools and system prompt (see the module doc).
#[derive(Debug, Default)]
pub(super) struct FixedPart {
    slot: Mutex<Option<Entry>>,
}

#[derive(Debug)]
struct Entry {
    system: String,
    tools: Vec<ToolSpec>,
    /// What else the fragment depends on (whether cache breakpoints are placed, say).
    flags: u8,
    json: Arc<str>,
}

impl FixedPart {
    /// The fragment for `system`, `tools` and `flags`: the one kept when they equal the last
    /// call's, else `write()`'s, kept for the next call.
    pub(super) fn get(
        &self,
        system: &str,
        tools: &[ToolSpec],
        flags: u8,
        write: impl FnOnce() -> String,
    ) -> Arc<str> {
        let mut slot = self
            .slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = slot.as_ref()
            && entry.flags == flags
            && entry.system == system
            && entry.tools == tools
        {
            return entry.json.clone();
        }
        let json: Arc<str> = write().into();
        *slot = Some(Entry {
            system: system.to_string(),
            tools: tools.to_vec(),
            flags,
            json: json.clone(),
        });
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: "d".into(),
            input_schema: serde_json::json!({"type": "object"}),
        }
    }

    /// The second call with the same tools and system gets the first call's bytes without
    /// writing; a change of tools, system or flags writes anew.
    #[test]
    fn written_once_while_the_same() {
        let fixed = FixedPart::default();
        let writes = std::cell::Cell::new(0);
        let write = |s: &str| {
            writes.set(writes.get() + 1);
            s.to_string()
        };
        let tools = [tool("a")];
        let first = fixed.get("sys", &tools, 1, || write("one"));
        let again = fixed.get("sys", &tools, 1, || write("two"));
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(writes.get(), 1);
        assert_eq!(&*fixed.get("sys", &[tool("b")], 1, || write("b")), "b");
        assert_eq!(&*fixed.get("other", &[tool("b")], 1, || write("o")), "o");
        assert_eq!(&*fixed.get("other", &[tool("b")], 0, || write("f")), "f");
        assert_eq!(writes.get(), 4);
    }
}
