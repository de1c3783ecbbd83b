//! cty types and their JSON form.

use std::collections::BTreeMap;
use std::fmt;

use crate::Error;

/// A cty type. `Dynamic` is cty's `DynamicPseudoType`: the concrete type travels with the value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    Bool,
    Number,
    String,
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    /// cty's type JSON, compact and with object attributes sorted, as Terraform writes it.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Type::Bool => out.push_str("\"bool\""),
            Type::Number => out.push_str("\"number\""),
            Type::String => out.push_str("\"string\""),
            Type::Dynamic => out.push_str("\"dynamic\""),
            Type::List(e) | Type::Set(e) | Type::Map(e) => {
                let kind = match self {
                    Type::List(_) => "list",
                    Type::Set(_) => "set",
                    _ => "map",
                };
                out.push_str("[\"");
                out.push_str(kind);
                out.push_str("\",");
                e.write_json(out);
                out.push(']');
            }
            Type::Object(attrs) => {
                out.push_str("[\"object\",{");
                for (i, (name, ty)) in attrs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(out, name);
                    out.push(':');
                    ty.write_json(out);
                }
                out.push_str("}]");
            }
            Type::Tuple(elems) => {
                out.push_str("[\"tuple\",[");
                for (i, ty) in elems.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    ty.write_json(out);
                }
                out.push_str("]]");
            }
        }
    }

    /// Parses cty type JSON. Object types may carry the optional-attributes third
    /// element of type constraints; it is validated and dropped, since it does not
    /// change how values are encoded.
    pub fn from_json(bytes: &[u8]) -> Result<Type, Error> {
        // serde_json's recursion limit (128) bounds the nesting, so the recursive
        // conversion below cannot exhaust the stack on hostile input.
        let json: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::msg(format!("invalid type JSON: {e}")))?;
        Type::from_json_value(&json)
    }

    pub(crate) fn from_json_value(json: &serde_json::Value) -> Result<Type, Error> {
        use serde_json::Value as J;
        let bad = || Error::msg(format!("invalid type JSON: {json}"));
        match json {
            J::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                _ => Err(Error::msg(format!(
                    "invalid type JSON: unknown primitive type {s:?}"
                ))),
            },
            J::Array(items) => {
                let kind = items.first().and_then(J::as_str).ok_or_else(bad)?;
                match (kind, &items[1..]) {
                    ("list", [e]) => Ok(Type::List(Box::new(Type::from_json_value(e)?))),
                    ("set", [e]) => Ok(Type::Set(Box::new(Type::from_json_value(e)?))),
                    ("map", [e]) => Ok(Type::Map(Box::new(Type::from_json_value(e)?))),
                    ("object", [J::Object(attrs), rest @ ..]) if rest.len() <= 1 => {
                        let mut out = BTreeMap::new();
                        for (name, ty) in attrs {
                            out.insert(name.clone(), Type::from_json_value(ty)?);
                        }
                        if let Some(optional) = rest.first() {
                            let names = optional.as_array().ok_or_else(bad)?;
                            for name in names {
                                let name = name.as_str().ok_or_else(bad)?;
                                if !out.contains_key(name) {
                                    return Err(Error::msg(format!(
                                        "invalid type JSON: optional attribute {name:?} is not an attribute"
                                    )));
                                }
                            }
                        }
                        Ok(Type::Object(out))
                    }
                    ("tuple", [J::Array(elems)]) => Ok(Type::Tuple(
                        elems
                            .iter()
                            .map(Type::from_json_value)
                            .collect::<Result<_, _>>()?,
                    )),
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }

    /// Whether this type contains `Dynamic` anywhere.
    pub fn has_dynamic(&self) -> bool {
        match self {
            Type::Dynamic => true,
            Type::Bool | Type::Number | Type::String => false,
            Type::List(e) | Type::Set(e) | Type::Map(e) => e.has_dynamic(),
            Type::Object(attrs) => attrs.values().any(Type::has_dynamic),
            Type::Tuple(elems) => elems.iter().any(Type::has_dynamic),
        }
    }
}

/// Short names for messages ("list of string", "object").
impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Number => f.write_str("number"),
            Type::String => f.write_str("string"),
            Type::Dynamic => f.write_str("dynamic"),
            Type::List(e) => write!(f, "list of {e}"),
            Type::Set(e) => write!(f, "set of {e}"),
            Type::Map(e) => write!(f, "map of {e}"),
            Type::Object(_) => f.write_str("object"),
            Type::Tuple(_) => f.write_str("tuple"),
        }
    }
}

/// Appends `s` as a JSON string literal (quoted, escaped).
pub fn write_json_string(out: &mut String, s: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, expect: &str) {
        let actual = match Type::from_json(json.as_bytes()) {
            Ok(ty) => ty.to_json(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(actual, expect);
    }

    #[test]
    fn primitives() {
        check(r#""string""#, r#""string""#);
        check(r#""number""#, r#""number""#);
        check(r#""bool""#, r#""bool""#);
        check(r#""dynamic""#, r#""dynamic""#);
    }

    #[test]
    fn collections_and_structures() {
        check(r#"["list","string"]"#, r#"["list","string"]"#);
        check(
            r#" [ "set" , ["map","bool"] ] "#,
            r#"["set",["map","bool"]]"#,
        );
        check(
            r#"["object",{"b":["tuple",["bool","string"]],"a":"number"}]"#,
            r#"["object",{"a":"number","b":["tuple",["bool","string"]]}]"#,
        );
        check(r#"["tuple",[]]"#, r#"["tuple",[]]"#);
        check(r#"["object",{}]"#, r#"["object",{}]"#);
    }

    #[test]
    fn optional_attributes_are_accepted() {
        check(
            r#"["object",{"a":"number","b":"string"},["b"]]"#,
            r#"["object",{"a":"number","b":"string"}]"#,
        );
        check(
            r#"["object",{"a":"number"},["c"]]"#,
            r#"error: invalid type JSON: optional attribute "c" is not an attribute"#,
        );
    }

    #[test]
    fn rejects_malformed() {
        check(
            r#""str""#,
            r#"error: invalid type JSON: unknown primitive type "str""#,
        );
        check(r#"["list"]"#, r#"error: invalid type JSON: ["list"]"#);
        check(
            r#"["list","string","x"]"#,
            r#"error: invalid type JSON: ["list","string","x"]"#,
        );
        check(
            r#"["tuple","string"]"#,
            r#"error: invalid type JSON: ["tuple","string"]"#,
        );
        check("42", "error: invalid type JSON: 42");
        check(
            "[",
            "error: invalid type JSON: EOF while parsing a list at line 1 column 1",
        );
    }
}
