//! The JSON encoding of `DynamicValue.json` and of `RawState` (cty's `json` package rules).
//!
//! JSON cannot carry unknowns. Numbers keep their text: [`decode`] keeps the JSON
//! number text unless the natural representation prints the same, and [`encode`]
//! writes text-carried numbers back verbatim when they are valid JSON.

use std::collections::BTreeMap;

use serde_json::Value as J;

use crate::number::Repr;
pub use crate::types::write_json_string;
use crate::{Error, Number, PathStep, Type, Value};

/// Decodes JSON `bytes` as a value of type `ty`.
///
/// Lenient as cty is: numbers and bools may arrive as strings and strings as numbers
/// or bools. An object attribute missing from the JSON decodes as null (state written
/// by an older schema), but a key the type lacks is an error.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, Error> {
    // serde_json limits nesting to 128, which bounds the recursion below.
    let json: J =
        serde_json::from_slice(bytes).map_err(|e| Error::msg(format!("invalid JSON: {e}")))?;
    from_json(&json, ty)
}

fn kind(j: &J) -> &'static str {
    match j {
        J::Null => "null",
        J::Bool(_) => "bool",
        J::Number(_) => "number",
        J::String(_) => "string",
        J::Array(_) => "array",
        J::Object(_) => "object",
    }
}

fn type_error(ty: &Type, j: &J) -> Error {
    Error::msg(format!("expected {ty}, found {}", kind(j)))
}

fn from_json(j: &J, ty: &Type) -> Result<Value, Error> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        Type::Dynamic => {
            let J::Object(fields) = j else {
                return Err(Error::msg(format!(
                    "expected a dynamic value as {{\"value\", \"type\"}}, found {}",
                    kind(j)
                )));
            };
            if let Some(k) = fields.keys().find(|k| *k != "value" && *k != "type") {
                return Err(Error::msg(format!(
                    "unsupported key {k:?} in a dynamic value"
                )));
            }
            let (Some(t), Some(v)) = (fields.get("type"), fields.get("value")) else {
                return Err(Error::msg(
                    "a dynamic value needs both \"value\" and \"type\"",
                ));
            };
            let concrete = Type::from_json_value(t)?;
            let v = from_json(v, &concrete)?;
            Ok(Value::Dynamic(concrete, Box::new(v)))
        }
        Type::Bool => match j {
            J::Bool(b) => Ok(Value::Bool(*b)),
            J::String(s) if s == "true" => Ok(Value::Bool(true)),
            J::String(s) if s == "false" => Ok(Value::Bool(false)),
            _ => Err(type_error(ty, j)),
        },
        Type::Number => {
            let n = match j {
                J::Number(n) => Number::from_json_text(n.as_str()),
                J::String(s) => Number::from_wire_text(s),
                _ => return Err(type_error(ty, j)),
            };
            n.map(Value::Number)
                .ok_or_else(|| Error::msg(format!("invalid number {j}")))
        }
        Type::String => match j {
            J::String(s) => Ok(Value::String(s.clone())),
            J::Number(n) => Ok(Value::String(n.as_str().to_owned())),
            J::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(type_error(ty, j)),
        },
        Type::List(elem) | Type::Set(elem) => {
            let J::Array(items) = j else {
                return Err(type_error(ty, j));
            };
            let items = elements(items, std::iter::repeat(&**elem))?;
            Ok(if matches!(ty, Type::List(_)) {
                Value::List(items)
            } else {
                Value::Set(items)
            })
        }
        Type::Tuple(elems) => {
            let J::Array(items) = j else {
                return Err(type_error(ty, j));
            };
            if items.len() != elems.len() {
                return Err(Error::msg(format!(
                    "a tuple of length {} is required ({} given)",
                    elems.len(),
                    items.len()
                )));
            }
            Ok(Value::Tuple(elements(items, elems.iter())?))
        }
        Type::Map(elem) => {
            let J::Object(fields) = j else {
                return Err(type_error(ty, j));
            };
            let mut m = BTreeMap::new();
            for (k, v) in fields {
                m.insert(
                    k.clone(),
                    from_json(v, elem).map_err(|e| e.within(PathStep::Key(k.clone())))?,
                );
            }
            Ok(Value::Map(m))
        }
        Type::Object(attrs) => {
            let J::Object(fields) = j else {
                return Err(type_error(ty, j));
            };
            if let Some(k) = fields.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(Error::msg(format!("unsupported attribute {k:?}")));
            }
            let mut m = BTreeMap::new();
            for (k, attr_ty) in attrs {
                let v = match fields.get(k) {
                    Some(v) => {
                        from_json(v, attr_ty).map_err(|e| e.within(PathStep::Attr(k.clone())))?
                    }
                    None => Value::Null,
                };
                m.insert(k.clone(), v);
            }
            Ok(Value::Object(m))
        }
    }
}

fn elements<'t>(items: &[J], types: impl Iterator<Item = &'t Type>) -> Result<Vec<Value>, Error> {
    items
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (item, t))| from_json(item, t).map_err(|e| e.within(PathStep::Index(i as i64))))
        .collect()
}

/// Encodes `v` as compact JSON of type `ty`, objects with sorted keys and dynamic
/// values as `{"value":V,"type":T}`. Unknowns and infinities are errors.
pub fn encode(v: &Value, ty: &Type) -> Result<Vec<u8>, Error> {
    let mut out = String::new();
    write_value(&mut out, v, ty)?;
    Ok(out.into_bytes())
}

fn write_value(out: &mut String, v: &Value, ty: &Type) -> Result<(), Error> {
    match (v, ty) {
        (Value::Null, _) => out.push_str("null"),
        (Value::Unknown(_), _) => {
            return Err(Error::msg("unknown values cannot be encoded as JSON"));
        }
        (Value::Dynamic(concrete, inner), Type::Dynamic) => {
            out.push_str("{\"value\":");
            write_value(out, inner, concrete)?;
            out.push_str(",\"type\":");
            out.push_str(&concrete.to_json());
            out.push('}');
        }
        (other, Type::Dynamic) => {
            return Err(Error::msg(format!(
                "a dynamic-typed value must be Value::Dynamic, found {}",
                other.kind()
            )));
        }
        (Value::Bool(b), Type::Bool) => out.push_str(if *b { "true" } else { "false" }),
        (Value::Number(n), Type::Number) => {
            if n.is_infinite() {
                return Err(Error::msg("infinite numbers cannot be encoded as JSON"));
            }
            match &n.0 {
                Repr::Text(s) if is_json_number(s) => out.push_str(s),
                _ => out.push_str(&n.to_string()),
            }
        }
        (Value::String(s), Type::String) => write_json_string(out, s),
        (Value::List(items), Type::List(elem)) | (Value::Set(items), Type::Set(elem)) => {
            write_array(out, items.iter().zip(std::iter::repeat(&**elem)))?;
        }
        (Value::Tuple(items), Type::Tuple(elems)) => {
            if items.len() != elems.len() {
                return Err(Error::msg(format!(
                    "a tuple of length {} is required ({} given)",
                    elems.len(),
                    items.len()
                )));
            }
            write_array(out, items.iter().zip(elems))?;
        }
        (Value::Map(m), Type::Map(elem)) => {
            write_object(out, m.iter().map(|(k, v)| (k, v, &**elem)), PathStep::Key)?;
        }
        (Value::Object(m), Type::Object(attrs)) => {
            crate::msgpack::check_attributes(m, attrs)?;
            let entries = attrs
                .iter()
                .map(|(k, t)| (k, m.get(k).unwrap_or(&Value::Null), t));
            write_object(out, entries, PathStep::Attr)?;
        }
        (other, _) => return Err(Error::msg(format!("expected {ty}, found {}", other.kind()))),
    }
    Ok(())
}

fn write_array<'a>(
    out: &mut String,
    items: impl Iterator<Item = (&'a Value, &'a Type)>,
) -> Result<(), Error> {
    out.push('[');
    for (i, (item, t)) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_value(out, item, t).map_err(|e| e.within(PathStep::Index(i as i64)))?;
    }
    out.push(']');
    Ok(())
}

fn write_object<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a String, &'a Value, &'a Type)>,
    step: fn(String) -> PathStep,
) -> Result<(), Error> {
    out.push('{');
    for (i, (k, item, t)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, k);
        out.push(':');
        write_value(out, item, t).map_err(|e| e.within(step(k.clone())))?;
    }
    out.push('}');
    Ok(())
}

/// JSON's number grammar, narrowed to the form serde_json hands back after parsing
/// (exponent written `e+N` / `e-N`): `-? (0 | [1-9] D*) (. D+)? (e [+-] D+)?`.
/// Text in any other form is written canonically instead, so encoding is stable
/// across a decode/encode cycle.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if b.get(i) == Some(&b'e') {
        i += 1;
        if !matches!(b.get(i), Some(b'+' | b'-')) {
            return false;
        }
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(json: &str) -> Type {
        Type::from_json(json.as_bytes()).unwrap()
    }

    /// Decodes `input` as `type_json` and re-encodes it; `expect` is `"same"` when the
    /// text comes back identical, the re-encoded text otherwise, or `"error: …"`.
    fn check(type_json: &str, input: &str, expect: &str) {
        let actual = match decode(input.as_bytes(), &ty(type_json)) {
            Ok(v) => match encode(&v, &ty(type_json)) {
                Ok(again) => {
                    let again = String::from_utf8(again).unwrap();
                    assert_eq!(decode(again.as_bytes(), &ty(type_json)).unwrap(), v);
                    if again == input {
                        "same".to_string()
                    } else {
                        again
                    }
                }
                Err(e) => format!("encode error: {e}"),
            },
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(actual, expect, "input {input}");
    }

    #[test]
    fn numbers_are_exact_and_keep_their_text() {
        check(r#""number""#, "80", "same");
        check(r#""number""#, "1.5", "same");
        check(r#""number""#, "0.1", "same");
        // serde_json normalises the exponent sign; the rest of the text is kept.
        check(r#""number""#, "1e2", "1e+2");
        check(r#""number""#, "1.50", "same");
        check(r#""number""#, "-0", "same");
        check(
            r#""number""#,
            "123456789012345678901234567890.000000000000000000001",
            "same",
        );
        check(r#""number""#, "1e400", "1e+400");
        check(r#""number""#, r#""12""#, "12");
        check(r#""number""#, r#""+.5""#, "0.5");
        check(r#""number""#, r#""x""#, r#"error: invalid number "x""#);
        check(r#""number""#, "true", "error: expected number, found bool");
        let v = decode(b"0.1", &Type::Number).unwrap();
        assert_eq!(
            crate::msgpack::encode(&v, &Type::Number).unwrap(),
            b"\xa30.1"
        );
        let v = decode(b"80", &Type::Number).unwrap();
        assert_eq!(crate::msgpack::encode(&v, &Type::Number).unwrap(), b"\x50");
    }

    #[test]
    fn float_numbers_encode_exactly() {
        let v = Value::Number(Number::from_f64(0.1).unwrap());
        assert_eq!(
            encode(&v, &Type::Number).unwrap(),
            b"0.1000000000000000055511151231257827021181583404541015625"
        );
        let inf = Value::Number(Number::from_f64(f64::INFINITY).unwrap());
        assert_eq!(
            encode(&inf, &Type::Number).unwrap_err().to_string(),
            "infinite numbers cannot be encoded as JSON"
        );
    }

    #[test]
    fn primitives_are_lenient_like_cty() {
        check(r#""string""#, r#""a\"b\u0001""#, "same");
        check(r#""string""#, "12.50", r#""12.50""#);
        check(r#""string""#, "true", r#""true""#);
        check(r#""bool""#, r#""false""#, "false");
        check(r#""bool""#, r#""no""#, "error: expected bool, found string");
        check(r#""string""#, "null", "same");
    }

    #[test]
    fn raw_state_objects() {
        let t = r#"["object",{"id":"string","rule":["list",["object",{"port":"number"}]],"tags":["map","string"]}]"#;
        check(
            t,
            r#"{"id":"x","rule":[{"port":80}],"tags":{"k":"v"}}"#,
            "same",
        );
        check(
            t,
            "{\n  \"tags\": null,\n  \"id\": \"x\"\n}",
            r#"{"id":"x","rule":null,"tags":null}"#,
        );
        check(
            t,
            r#"{"id":"x","gone":1}"#,
            r#"error: unsupported attribute "gone""#,
        );
        check(
            t,
            r#"{"rule":[{"port":80},{"port":"x"}]}"#,
            r#"error: at .rule[1].port: invalid number "x""#,
        );
        check(
            t,
            r#"{"tags":{"a":[]}}"#,
            r#"error: at .tags["a"]: expected string, found array"#,
        );
        check(
            t,
            "[",
            "error: invalid JSON: EOF while parsing a list at line 1 column 1",
        );
    }

    #[test]
    fn tuples_and_sets() {
        check(r#"["tuple",["bool","number"]]"#, "[true,2]", "same");
        check(
            r#"["tuple",["bool","number"]]"#,
            "[true]",
            "error: a tuple of length 2 is required (1 given)",
        );
        check(r#"["set","string"]"#, r#"["b","a"]"#, "same");
    }

    #[test]
    fn dynamic_values() {
        check(r#""dynamic""#, r#"{"value":"hi","type":"string"}"#, "same");
        check(
            r#""dynamic""#,
            r#"{"type":["list","number"],"value":[1,2]}"#,
            r#"{"value":[1,2],"type":["list","number"]}"#,
        );
        check(r#""dynamic""#, r#"{"value":null,"type":"string"}"#, "same");
        check(r#""dynamic""#, "null", "same");
        check(
            r#""dynamic""#,
            r#""hi""#,
            r#"error: expected a dynamic value as {"value", "type"}, found string"#,
        );
        check(
            r#""dynamic""#,
            r#"{"value":1}"#,
            r#"error: a dynamic value needs both "value" and "type""#,
        );
        check(
            r#""dynamic""#,
            r#"{"value":1,"type":"number","x":1}"#,
            r#"error: unsupported key "x" in a dynamic value"#,
        );
    }

    #[test]
    fn unknowns_cannot_be_encoded() {
        let t = ty(r#"["object",{"a":["list","string"]}]"#);
        let v = Value::Object(BTreeMap::from([(
            "a".to_string(),
            Value::List(vec![Value::unknown()]),
        )]));
        assert_eq!(
            encode(&v, &t).unwrap_err().to_string(),
            "at .a[0]: unknown values cannot be encoded as JSON"
        );
    }

    #[test]
    fn json_number_grammar() {
        for ok in ["0", "-0", "1.5", "1e+5", "-12.25e-3"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in [
            "", "-", "01", "+1", ".5", "1.", "1e", "1e+", "0x1", "1e5", "1E+5",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }
}
