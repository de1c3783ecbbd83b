//! Conversions between catalog literals (`hcl::Value`) and Terraform values.
//!
//! The catalog knows nothing of cty; guardrails and expressions work on
//! `hcl::Value`, so known Terraform values cross into that world here and
//! defaults and evaluated outputs come back typed.

use std::collections::BTreeMap;

use platform_value::{Number, Type, Value};

/// The catalog view of a wholly known value; `None` when any part is unknown.
/// Nulls inside collections become `hcl::Value::Null`.
pub fn to_hcl(value: &Value) -> Option<hcl::Value> {
    Some(match value {
        Value::Null => hcl::Value::Null,
        Value::Unknown(_) => return None,
        Value::Bool(b) => hcl::Value::Bool(*b),
        Value::Number(n) => hcl::Value::Number(number_to_hcl(n)),
        Value::String(s) => hcl::Value::String(s.clone()),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            hcl::Value::Array(items.iter().map(to_hcl).collect::<Option<Vec<_>>>()?)
        }
        Value::Map(entries) | Value::Object(entries) => {
            let mut map = hcl::Map::new();
            for (key, item) in entries {
                map.insert(key.clone(), to_hcl(item)?);
            }
            hcl::Value::Object(map)
        }
        Value::Dynamic(_, inner) => to_hcl(inner)?,
    })
}

fn number_to_hcl(n: &Number) -> hcl::Number {
    match n.as_i64() {
        Some(i) => hcl::Number::from(i),
        None => hcl::Number::from_f64(n.to_f64()).unwrap_or_else(|| hcl::Number::from(0)),
    }
}

/// Converts a catalog literal to a value of type `ty`, with Terraform's
/// primitive conversions (numbers and bools to strings, numeric strings to
/// numbers). Errors name what did not fit.
pub fn from_hcl(value: &hcl::Value, ty: &Type) -> Result<Value, String> {
    Ok(match (ty, value) {
        (_, hcl::Value::Null) => Value::Null,
        (Type::String, hcl::Value::String(s)) => Value::String(s.clone()),
        (Type::String, hcl::Value::Number(n)) => Value::String(n.to_string()),
        (Type::String, hcl::Value::Bool(b)) => Value::String(b.to_string()),
        (Type::Number, hcl::Value::Number(n)) => Value::Number(hcl_number(n)?),
        (Type::Number, hcl::Value::String(s)) => {
            Value::Number(Number::parse(s.trim()).ok_or_else(|| format!("{s:?} is not a number"))?)
        }
        (Type::Bool, hcl::Value::Bool(b)) => Value::Bool(*b),
        (Type::Bool, hcl::Value::String(s)) if s == "true" || s == "false" => {
            Value::Bool(s == "true")
        }
        (Type::List(inner), hcl::Value::Array(items)) => Value::List(
            items
                .iter()
                .map(|item| from_hcl(item, inner))
                .collect::<Result<_, _>>()?,
        ),
        (Type::Set(inner), hcl::Value::Array(items)) => {
            let mut out: Vec<Value> = Vec::with_capacity(items.len());
            for item in items {
                let item = from_hcl(item, inner)?;
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            Value::Set(out)
        }
        (Type::Map(inner), hcl::Value::Object(entries)) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_hcl(v, inner)?)))
                .collect::<Result<BTreeMap<_, _>, String>>()?,
        ),
        (Type::Object(attrs), hcl::Value::Object(entries)) => {
            let mut out = BTreeMap::new();
            for (name, attr_ty) in attrs {
                let item = entries.get(name).unwrap_or(&hcl::Value::Null);
                out.insert(name.clone(), from_hcl(item, attr_ty)?);
            }
            Value::Object(out)
        }
        (Type::Dynamic, other) => {
            let ty = infer_type(other);
            Value::Dynamic(ty.clone(), Box::new(from_hcl(other, &ty)?))
        }
        (ty, other) => {
            return Err(format!(
                "expected {}, found {}",
                ty.to_json(),
                hcl_kind(other)
            ));
        }
    })
}

/// Renders a catalog value as the string an output attribute holds.
pub fn hcl_to_string(value: &hcl::Value) -> Option<String> {
    match value {
        hcl::Value::Null => None,
        hcl::Value::String(s) => Some(s.clone()),
        hcl::Value::Number(n) => Some(n.to_string()),
        hcl::Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

fn hcl_number(n: &hcl::Number) -> Result<Number, String> {
    if let Some(i) = n.as_i64() {
        return Ok(Number::from_i64(i));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Number::from_u64(u));
    }
    n.as_f64()
        .and_then(Number::from_f64)
        .ok_or_else(|| format!("{n} is not a finite number"))
}

fn infer_type(value: &hcl::Value) -> Type {
    match value {
        hcl::Value::Null | hcl::Value::String(_) => Type::String,
        hcl::Value::Bool(_) => Type::Bool,
        hcl::Value::Number(_) => Type::Number,
        hcl::Value::Array(items) => Type::Tuple(items.iter().map(infer_type).collect()),
        hcl::Value::Object(entries) => Type::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), infer_type(v)))
                .collect(),
        ),
    }
}

fn hcl_kind(value: &hcl::Value) -> &'static str {
    match value {
        hcl::Value::Null => "null",
        hcl::Value::Bool(_) => "a bool",
        hcl::Value::Number(_) => "a number",
        hcl::Value::String(_) => "a string",
        hcl::Value::Array(_) => "a list",
        hcl::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: hcl::Value, ty: Type, expect: &str) {
        let got = match from_hcl(&value, &ty) {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("error: {e}"),
        };
        assert!(got.contains(expect), "{got} does not contain {expect}");
    }

    #[test]
    fn conversions() {
        check(hcl::Value::from(20), Type::Number, "Number");
        check(
            hcl::Value::from("x"),
            Type::Number,
            "error: \"x\" is not a number",
        );
        check(
            hcl::Value::Array(vec!["a".into(), "a".into()]),
            Type::Set(Box::new(Type::String)),
            "Set([String(\"a\")])",
        );
        check(hcl::Value::from(true), Type::String, "String(\"true\")");
    }

    #[test]
    fn unknown_is_not_converted() {
        assert!(to_hcl(&Value::List(vec![Value::unknown()])).is_none());
        assert_eq!(
            to_hcl(&Value::String("a".into())),
            Some(hcl::Value::from("a"))
        );
    }
}
