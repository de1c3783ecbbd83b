//! A small JSON document with keys in the order they were written, printed
//! the same way on every build (serde_json's key order depends on a cargo
//! feature that another crate of the workspace may switch on).

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// Already in JSON number syntax.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub fn str(text: impl Into<String>) -> Json {
        Json::String(text.into())
    }

    /// A finite number; NaN and infinities (which a loaded catalog cannot
    /// hold) become null.
    pub fn f64(number: f64) -> Json {
        match hcl::Number::from_f64(number) {
            Some(number) => Json::Number(number.to_string()),
            None => Json::Null,
        }
    }

    pub fn u64(number: u64) -> Json {
        Json::Number(number.to_string())
    }

    pub fn from_hcl(value: &hcl::Value) -> Json {
        match value {
            hcl::Value::Null => Json::Null,
            hcl::Value::Bool(b) => Json::Bool(*b),
            hcl::Value::Number(n) => Json::Number(n.to_string()),
            hcl::Value::String(s) => Json::String(s.clone()),
            hcl::Value::Array(items) => Json::Array(items.iter().map(Json::from_hcl).collect()),
            hcl::Value::Object(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.clone(), Json::from_hcl(value)))
                    .collect(),
            ),
        }
    }

    fn is_scalar(&self) -> bool {
        !matches!(self, Json::Array(_) | Json::Object(_))
    }

    /// Two-space indented, arrays of scalars on one line, with a final newline.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, indent: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_json_string(out, s),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Array(items) if items.iter().all(Json::is_scalar) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out, indent);
                }
                out.push(']');
            }
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i > 0 { ",\n" } else { "\n" });
                    push_indent(out, indent + 1);
                    item.write(out, indent + 1);
                }
                out.push('\n');
                push_indent(out, indent);
                out.push(']');
            }
            Json::Object(entries) if entries.is_empty() => out.push_str("{}"),
            Json::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    out.push_str(if i > 0 { ",\n" } else { "\n" });
                    push_indent(out, indent + 1);
                    write_json_string(out, key);
                    out.push_str(": ");
                    value.write(out, indent + 1);
                }
                out.push('\n');
                push_indent(out, indent);
                out.push('}');
            }
        }
    }
}

/// Appends `s` as a JSON string literal: `"` and `\` escaped, control
/// characters as `\n`, `\r`, `\t` or `\u00XX`, everything else as it is
/// (as `platform_value::json` writes strings; the catalog crate does not
/// depend on it).
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_indent(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::Json;

    #[test]
    fn pretty_prints_in_written_order() {
        let doc = Json::Object(vec![
            ("z".into(), Json::str("a\"b\\\n\u{1}")),
            (
                "a".into(),
                Json::Array(vec![Json::u64(1), Json::Bool(false)]),
            ),
            (
                "o".into(),
                Json::Array(vec![Json::Object(vec![("k".into(), Json::Null)])]),
            ),
            ("e".into(), Json::Object(Vec::new())),
            ("f".into(), Json::f64(2.5)),
        ]);
        assert_eq!(
            doc.pretty(),
            "{\n  \"z\": \"a\\\"b\\\\\\n\\u0001\",\n  \"a\": [1, false],\n  \"o\": [\n    {\n      \"k\": null\n    }\n  ],\n  \"e\": {},\n  \"f\": 2.5\n}\n"
        );
        // What we print is JSON that serde_json reads back.
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&doc.pretty());
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
