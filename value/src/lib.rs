//! Terraform (cty) values and types, with the msgpack and JSON codecs of tfplugin6
//! `DynamicValue`.
//!
//! # Numbers keep their wire representation
//!
//! cty numbers are arbitrary-precision decimals. Terraform sends an integer that fits
//! `i64` as a msgpack int, a number that float64 represents exactly as float64, and
//! anything else as a *decimal string*: `size = 0.1` arrives as the string `"0.1"`.
//! If a provider turned that into `f64` and sent it back as float64, Terraform would
//! see 0.1000000000000000055… and reject the plan ("planned value
//! cty.NumberFloatVal(0.1) does not match config value").
//!
//! So [`Number`] never converts on the way in: it stores the int, uint, float or the
//! decimal text exactly as received, and the encoders write that same representation
//! back. An unchanged value therefore re-encodes byte-for-byte. Comparisons are exact
//! decimal arithmetic on the side (`"1.0" == 1`, `"0.1" != 0.1f64`), and numbers the
//! provider creates itself follow cty's choice of representation.
//!
//! # Other decisions
//!
//! - `Value::Unknown` carries the refinements Terraform may send, but `Value`
//!   equality ignores them (all unknowns are equal) and the encoder always writes a
//!   plain unknown (`d4 00 00`). Refinements are promises a provider would then have
//!   to keep, so it never sends them back. Compare [`Refinements`] directly if they matter.
//! - Set equality is positional, like lists: sets round-trip in the order received.
//! - A `Dynamic`-typed attribute holds [`Value::Dynamic`] (its concrete type and the
//!   value), or a bare `Null` / `Unknown`.
//! - Decoders are hardened against hostile input: nesting is limited to
//!   [`MAX_DEPTH`], and no collection is allocated beyond what the remaining input
//!   could hold.

// Tests may unwrap; library code never does (see the workspace lints).
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::BTreeMap;

pub mod json;
pub mod msgpack;
mod number;
mod path;
mod types;

#[cfg(test)]
mod proptests;

pub use number::Number;
pub use path::{Error, Path, PathStep};
pub use types::Type;

/// Deepest nesting the decoders accept (each collection level and each dynamic
/// wrapper counts one), so hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// What Terraform promises about an unknown value (cty refinements). Bounds are
/// `(number, inclusive)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Refinements {
    pub nullness: Option<bool>,
    pub string_prefix: Option<String>,
    pub number_lower: Option<(Number, bool)>,
    pub number_upper: Option<(Number, bool)>,
    pub length_min: Option<u64>,
    pub length_max: Option<u64>,
}

/// A cty value. It carries no type of its own except inside `Dynamic`; the codecs
/// read and write it against the schema's type.
///
/// Equality is structural, with two exceptions: numbers compare numerically, and
/// all unknowns are equal whatever their refinements.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Unknown(Refinements),
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
    /// A value of a `Dynamic`-typed attribute whose concrete type is known (wire: [type-json, value]).
    Dynamic(Type, Box<Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) | (Unknown(_), Unknown(_)) => true,
            (Bool(a), Bool(b)) => a == b,
            (Number(a), Number(b)) => a == b,
            (String(a), String(b)) => a == b,
            (List(a), List(b)) | (Set(a), Set(b)) | (Tuple(a), Tuple(b)) => a == b,
            (Map(a), Map(b)) | (Object(a), Object(b)) => a == b,
            (Dynamic(ta, va), Dynamic(tb, vb)) => ta == tb && va == vb,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    /// A wholly unknown value without refinements.
    pub fn unknown() -> Value {
        Value::Unknown(Refinements::default())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether the value itself is unknown (not whether it contains unknowns).
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown(_))
    }

    /// Whether no unknown appears anywhere in the value.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown(_) => false,
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => true,
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                items.iter().all(Value::is_wholly_known)
            }
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            Value::Dynamic(_, v) => v.is_wholly_known(),
        }
    }

    /// An object attribute, looking through a dynamic wrapper.
    pub fn get_attr(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(name),
            Value::Dynamic(_, v) => v.get_attr(name),
            _ => None,
        }
    }

    /// Whether the value has the shape of `ty`, recursively. Null and unknown conform to
    /// every type; objects must have exactly the type's attributes; a `Dynamic` type
    /// takes a [`Value::Dynamic`] whose value conforms to the type it names.
    pub fn conforms_to(&self, ty: &Type) -> bool {
        match (self, ty) {
            (Value::Null | Value::Unknown(_), _) => true,
            (Value::Dynamic(t, v), Type::Dynamic) => v.conforms_to(t),
            (Value::Bool(_), Type::Bool)
            | (Value::Number(_), Type::Number)
            | (Value::String(_), Type::String) => true,
            (Value::List(items), Type::List(e)) | (Value::Set(items), Type::Set(e)) => {
                items.iter().all(|v| v.conforms_to(e))
            }
            (Value::Map(m), Type::Map(e)) => m.values().all(|v| v.conforms_to(e)),
            (Value::Tuple(items), Type::Tuple(ts)) => {
                items.len() == ts.len() && items.iter().zip(ts).all(|(v, t)| v.conforms_to(t))
            }
            (Value::Object(m), Type::Object(attrs)) => {
                m.len() == attrs.len()
                    && attrs
                        .iter()
                        .all(|(k, t)| m.get(k).is_some_and(|v| v.conforms_to(t)))
            }
            _ => false,
        }
    }

    /// Short name of the value's kind, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Unknown(_) => "unknown",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
            Value::Tuple(_) => "tuple",
            Value::Dynamic(..) => "dynamic value",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(entries: &[(&str, Value)]) -> Value {
        Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn check(v: &Value, ty: &Type, conforms: bool) {
        assert_eq!(v.conforms_to(ty), conforms, "{v:?} against {ty:?}");
    }

    #[test]
    fn conformance() {
        let ty = Type::Object(BTreeMap::from([
            ("a".to_string(), Type::Number),
            ("d".to_string(), Type::Dynamic),
        ]));
        let num = Value::Number(Number::from_i64(1));
        check(&Value::Null, &ty, true);
        check(&Value::unknown(), &ty, true);
        check(&obj(&[("a", num.clone()), ("d", Value::Null)]), &ty, true);
        check(&obj(&[("a", num.clone())]), &ty, false);
        check(&obj(&[("a", num.clone()), ("d", num.clone())]), &ty, false);
        check(
            &obj(&[
                ("a", num.clone()),
                ("d", Value::Dynamic(Type::Number, Box::new(num.clone()))),
            ]),
            &ty,
            true,
        );
        check(
            &Value::Dynamic(Type::String, Box::new(num.clone())),
            &Type::Dynamic,
            false,
        );
        check(
            &Value::Tuple(vec![num.clone()]),
            &Type::Tuple(vec![Type::Number, Type::Bool]),
            false,
        );
        check(
            &Value::List(vec![num.clone(), Value::unknown()]),
            &Type::List(Box::new(Type::Number)),
            true,
        );
        check(
            &Value::List(vec![num]),
            &Type::Set(Box::new(Type::Number)),
            false,
        );
    }

    #[test]
    fn equality_ignores_refinements_and_number_representation() {
        let refined = Value::Unknown(Refinements {
            nullness: Some(false),
            ..Default::default()
        });
        assert_eq!(refined, Value::unknown());
        assert_eq!(
            Value::Number(Number::from_i64(1)),
            Value::Number(Number::parse("1.000e0").unwrap())
        );
        assert_ne!(Value::List(vec![]), Value::Set(vec![]));
    }

    #[test]
    fn knownness_and_attrs() {
        let v = obj(&[
            ("a", Value::List(vec![Value::unknown()])),
            ("b", Value::Bool(true)),
        ]);
        assert!(!v.is_wholly_known());
        assert!(!v.is_unknown());
        assert_eq!(v.get_attr("b"), Some(&Value::Bool(true)));
        assert_eq!(
            Value::Dynamic(Type::Dynamic, Box::new(v.clone())).get_attr("b"),
            Some(&Value::Bool(true))
        );
        assert_eq!(v.get_attr("zz"), None);
        assert!(Value::Null.is_wholly_known());
    }
}
