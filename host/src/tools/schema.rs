//! Checking a tool's input against its JSON Schema before the tool runs.
//!
//! Covers the keywords tool schemas use: `type` (one or a list), `properties`, `required`,
//! `additionalProperties`, `items`, `enum`, `const`, `minimum`, `maximum`, `minLength`,
//! `maxLength`, `minItems`, `maxItems`, `pattern`, `anyOf`, `oneOf`, `allOf`. Unknown keywords
//! (`description`, `default`, `format`, ...) are ignored, as the JSON Schema spec says.

use serde_json::Value;

/// The deepest a tool's input may nest, counting each object and array as a level
/// (`{"a": [1]}` is 2 deep). Deeper input is refused before its tool runs, and is not kept as
/// such in the history: [`bound_depth`] puts a note in its place. So every session line stays
/// well inside the JSON parser's own limit (128) and `--continue` can read back whatever was
/// written.
pub const MAX_INPUT_DEPTH: usize = 64;

/// The one key of the object that stands for an input refused by [`bound_depth`].
pub const REFUSED_KEY: &str = "corral_refused_input";

/// How deeply `value` nests: 0 for a scalar, 1 for `{}` or `[]`, and so on. Iterative, so any
/// depth is measured without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// The depth rule: `Err` with what the model should do when `input` nests deeper than
/// [`MAX_INPUT_DEPTH`], or when it is the note [`bound_depth`] left for such an input.
pub fn check_depth(input: &Value) -> Result<(), String> {
    if let Some(note) = input
        .as_object()
        .filter(|map| map.len() == 1)
        .and_then(|map| map.get(REFUSED_KEY))
        .and_then(Value::as_str)
    {
        return Err(note.to_string());
    }
    let depth = depth(input);
    if depth > MAX_INPUT_DEPTH {
        return Err(too_deep(depth));
    }
    Ok(())
}

fn too_deep(depth: usize) -> String {
    format!(
        "input: nested {depth} levels deep; a tool's input may nest at most {MAX_INPUT_DEPTH} \
         levels. Send flatter input (deeply nested data can go in a file, or in a string)."
    )
}

/// Applies the depth rule to an input about to enter the history: one deeper than
/// [`MAX_INPUT_DEPTH`] is replaced by `{"corral_refused_input": "<why>"}`, which the tool
/// registry answers with that error. Returns whether it was replaced.
pub fn bound_depth(input: &mut Value) -> bool {
    let depth = depth(input);
    if depth <= MAX_INPUT_DEPTH {
        return false;
    }
    let mut note = serde_json::Map::new();
    note.insert(REFUSED_KEY.to_string(), Value::String(too_deep(depth)));
    // Taken apart level by level: dropping a deep value recursively could use much stack.
    let deep = std::mem::replace(input, Value::Object(note));
    drop_flat(deep);
    true
}

/// Drops `value` without recursion.
fn drop_flat(value: Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
}

/// Checks `value` against `schema`; the error names the first place that does not fit, e.g.
/// `input.timeout_secs: expected integer, got string "ten"`.
pub fn validate(value: &Value, schema: &Value) -> Result<(), String> {
    check(value, schema, "input")
}

fn check(value: &Value, schema: &Value, at: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return Ok(()); // `true` or an empty schema accepts anything
    };
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| has_type(value, t)) {
            return Err(format!(
                "{at}: expected {}, got {}",
                allowed.join(" or "),
                describe(value)
            ));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let list: Vec<String> = options.iter().map(Value::to_string).collect();
        return Err(format!(
            "{at}: must be one of {}, got {}",
            list.join(", "),
            describe(value)
        ));
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        return Err(format!("{at}: must be {expected}, got {}", describe(value)));
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        return Err(format!("{at}: missing required field `{name}`"));
                    }
                }
            }
            for (key, item) in map {
                let path = format!("{at}.{key}");
                match props.and_then(|p| p.get(key)) {
                    Some(sub) => check(item, sub, &path)?,
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            let known: Vec<&str> = props
                                .map(|p| p.keys().map(String::as_str).collect())
                                .unwrap_or_default();
                            return Err(format!(
                                "{at}: unknown field `{key}` (expected: {})",
                                known.join(", ")
                            ));
                        }
                        Some(sub @ Value::Object(_)) => check(item, sub, &path)?,
                        _ => {}
                    },
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, sub, &format!("{at}[{i}]"))?;
                }
            }
            bound(schema, "minItems", "maxItems", items.len(), at, "items")?;
        }
        Value::String(s) => {
            bound(
                schema,
                "minLength",
                "maxLength",
                s.chars().count(),
                at,
                "characters",
            )?;
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                let re = regex::Regex::new(pattern)
                    .map_err(|e| format!("{at}: the schema's pattern is invalid: {e}"))?;
                if !re.is_match(s) {
                    return Err(format!("{at}: must match /{pattern}/"));
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                return Err(format!("{at}: must be at least {min}, got {n}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                return Err(format!("{at}: must be at most {max}, got {n}"));
            }
        }
        _ => {}
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(value, sub, at)?;
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
    {
        let errors: Vec<String> = any
            .iter()
            .filter_map(|s| check(value, s, at).err())
            .collect();
        if errors.len() == any.len() {
            return Err(format!(
                "{at}: matches none of the allowed forms ({})",
                errors.join("; ")
            ));
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
    {
        let matching = one.iter().filter(|s| check(value, s, at).is_ok()).count();
        if matching != 1 {
            return Err(format!(
                "{at}: must match exactly one allowed form, matches {matching}"
            ));
        }
    }
    Ok(())
}

fn bound(
    schema: &serde_json::Map<String, Value>,
    min_key: &str,
    max_key: &str,
    len: usize,
    at: &str,
    unit: &str,
) -> Result<(), String> {
    let len = len as u64;
    if let Some(min) = schema.get(min_key).and_then(Value::as_u64)
        && len < min
    {
        return Err(format!("{at}: must have at least {min} {unit}, has {len}"));
    }
    if let Some(max) = schema.get(max_key).and_then(Value::as_u64)
        && len > max
    {
        return Err(format!("{at}: must have at most {max} {unit}, has {len}"));
    }
    Ok(())
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".into(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut shown = value.to_string();
    if shown.len() > 60 {
        shown = format!("{}...", shown.chars().take(57).collect::<String>());
    }
    format!("{kind} {shown}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "minLength": 1},
                "timeout_secs": {"type": "integer", "minimum": 0},
                "mode": {"enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["command"],
            "additionalProperties": false
        })
    }

    fn nested(levels: usize) -> Value {
        let mut value = json!(1);
        for _ in 0..levels {
            let mut map = serde_json::Map::new();
            map.insert("a".into(), value);
            value = Value::Object(map);
        }
        value
    }

    /// Depth counts objects and arrays; the rule takes exactly MAX_INPUT_DEPTH levels.
    #[test]
    fn the_depth_rule() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
        assert_eq!(check_depth(&nested(MAX_INPUT_DEPTH)), Ok(()));
        let error = check_depth(&nested(MAX_INPUT_DEPTH + 1)).unwrap_err();
        assert!(error.starts_with("input: nested 65 levels deep"), "{error}");
    }

    /// A too-deep input is replaced by a note the rule refuses with the same message; one
    /// within the rule is left alone. A very deep value is measured and dropped without
    /// overflowing the stack.
    #[test]
    fn bound_depth_leaves_a_note() {
        let mut ok = nested(MAX_INPUT_DEPTH);
        assert!(!bound_depth(&mut ok));
        assert_eq!(ok, nested(MAX_INPUT_DEPTH));
        let mut deep = nested(127);
        let before = check_depth(&deep).unwrap_err();
        assert!(bound_depth(&mut deep));
        assert_eq!(depth(&deep), 1);
        assert_eq!(check_depth(&deep), Err(before));
        let mut huge = nested(100_000);
        assert!(bound_depth(&mut huge));
    }

    #[test]
    fn accepts_valid_input() {
        assert_eq!(
            validate(
                &json!({"command": "ls", "timeout_secs": 5, "tags": ["x"]}),
                &schema()
            ),
            Ok(())
        );
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            (json!({}), "input: missing required field `command`"),
            (
                json!({"command": 3}),
                "input.command: expected string, got number 3",
            ),
            (
                json!({"command": ""}),
                "input.command: must have at least 1 characters, has 0",
            ),
            (
                json!({"command": "x", "timeout_secs": -1}),
                "input.timeout_secs: must be at least 0, got -1",
            ),
            (
                json!({"command": "x", "timeout_secs": 1.5}),
                "input.timeout_secs: expected integer, got number 1.5",
            ),
            (
                json!({"command": "x", "mode": "c"}),
                "input.mode: must be one of \"a\", \"b\", got string \"c\"",
            ),
            (
                json!({"command": "x", "tags": [1]}),
                "input.tags[0]: expected string, got number 1",
            ),
            (
                json!({"command": "x", "extra": 1}),
                "input: unknown field `extra` (expected: command, mode, tags, timeout_secs)",
            ),
            (json!("ls"), "input: expected object, got string \"ls\""),
        ];
        for (value, message) in cases {
            assert_eq!(
                validate(&value, &schema()),
                Err(message.to_string()),
                "{value}"
            );
        }
    }
}
