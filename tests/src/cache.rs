//! The prompt cache as the Anthropic API sees a request: its content in the API's order (tools,
//! system, messages), cut into units (a tool, a system block, a message's role, a content
//! block), each written as JSON without its `cache_control` (a marker moved from one block to
//! another changes no cached bytes), and the units that carry a breakpoint.
//!
//! The rules ([`crate::rules`]) check with it that a request begins with the bytes the previous
//! request cached; the prompt-cache benchmark measures with it how much
//! of each request the previous one's breakpoints cached.

use serde_json::Value;

/// A request body cut into units.
#[derive(Debug, Clone)]
pub struct Units {
    units: Vec<String>,
    /// The indexes of the units with a `cache_control`, in order.
    pub breakpoints: Vec<usize>,
}

impl Units {
    /// Cuts a Messages request body.
    pub fn of(body: &Value) -> Self {
        let mut out = Self {
            units: Vec::new(),
            breakpoints: Vec::new(),
        };
        for tool in body["tools"].as_array().into_iter().flatten() {
            out.push(tool);
        }
        match &body["system"] {
            Value::String(text) => out.push(&Value::String(text.clone())),
            Value::Array(blocks) => blocks.iter().for_each(|b| out.push(b)),
            _ => {}
        }
        for message in body["messages"].as_array().into_iter().flatten() {
            out.push(&serde_json::json!({"role": message["role"]}));
            for block in message["content"].as_array().into_iter().flatten() {
                out.push(block);
            }
        }
        out
    }

    fn push(&mut self, unit: &Value) {
        let mut unit = unit.clone();
        if let Some(map) = unit.as_object_mut()
            && map.remove("cache_control").is_some()
        {
            self.breakpoints.push(self.units.len());
        }
        self.units.push(unit.to_string());
    }

    /// The whole request's bytes.
    pub fn bytes(&self) -> String {
        self.units.join("\n")
    }

    /// The bytes of the units up to and including `unit`.
    pub fn prefix(&self, unit: usize) -> String {
        self.units[..=unit.min(self.units.len().saturating_sub(1))].join("\n")
    }

    /// How many bytes of `self` the API reads from the cache `previous` wrote: the longest
    /// prefix up to one of `previous`'s breakpoints that `self` begins with, if `self` has a
    /// breakpoint at or after it to find it from. 0 without breakpoints.
    pub fn cached_from(&self, previous: &Units) -> usize {
        let bytes = self.bytes();
        previous
            .breakpoints
            .iter()
            .rev()
            .map(|&b| (b, previous.prefix(b)))
            .find(|(b, prefix)| {
                bytes.starts_with(prefix.as_str())
                    && self.breakpoints.iter().any(|&mine| mine >= *b)
            })
            .map_or(0, |(_, prefix)| prefix.len())
    }

    /// How many bytes `self` begins with that are `previous`'s too (what a request re-sends).
    pub fn shared_with(&self, previous: &Units) -> usize {
        let (a, b) = (self.bytes(), previous.bytes());
        a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
    }
}
