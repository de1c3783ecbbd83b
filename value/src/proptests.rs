//! Round-trip properties of both codecs over random types and conforming values.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::number::Repr;
use crate::{Number, Refinements, Type, Value, json, msgpack};

fn arb_type() -> impl Strategy<Value = Type> {
    let leaf = prop_oneof![
        Just(Type::Bool),
        Just(Type::Number),
        Just(Type::String),
        Just(Type::Dynamic)
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| Type::List(Box::new(t))),
            inner.clone().prop_map(|t| Type::Set(Box::new(t))),
            inner.clone().prop_map(|t| Type::Map(Box::new(t))),
            prop::collection::btree_map("[a-z_]{1,6}", inner.clone(), 0..4).prop_map(Type::Object),
            prop::collection::vec(inner, 0..4).prop_map(Type::Tuple),
        ]
    })
}

fn arb_number(finite: bool) -> BoxedStrategy<Number> {
    let float = if finite {
        prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO
    } else {
        prop::num::f64::NORMAL
            | prop::num::f64::SUBNORMAL
            | prop::num::f64::ZERO
            | prop::num::f64::INFINITE
    };
    prop_oneof![
        any::<i64>().prop_map(Number::from_i64),
        any::<u64>().prop_map(Number::from_u64),
        float.prop_map(|f| Number(Repr::F64(f))),
        any::<f32>()
            .prop_filter("not NaN", move |f| !f.is_nan()
                && (!finite || f.is_finite()))
            .prop_map(|f| Number(Repr::F32(f))),
        // Decimal text exactly as a msgpack string would carry it, non-canonical forms included.
        r"[+-]?([0-9]{1,40}(\.[0-9]{0,20})?|\.[0-9]{1,20})([eE][+-]?[0-9]{1,4})?"
            .prop_map(|s| Number(Repr::Text(s.into()))),
        r"-?[0-9]{1,30}\.[0-9]{1,10}".prop_filter_map("parses", |s| Number::parse(&s)),
    ]
    .boxed()
}

fn arb_refinements() -> impl Strategy<Value = Refinements> {
    (
        prop::option::of(any::<bool>()),
        prop::option::of(".{0,5}"),
        prop::option::of((arb_number(false), any::<bool>())),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(nullness, string_prefix, lower, length_min)| Refinements {
            nullness,
            string_prefix,
            number_lower: lower,
            length_min,
            ..Default::default()
        })
}

/// A value conforming to `ty`. With `known`, no unknowns and no infinities (what JSON can carry).
fn arb_value(ty: Type, known: bool) -> BoxedStrategy<Value> {
    let concrete: BoxedStrategy<Value> = match ty {
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::Number => arb_number(known).prop_map(Value::Number).boxed(),
        Type::String => ".{0,8}".prop_map(Value::String).boxed(),
        Type::Dynamic => arb_type()
            .prop_flat_map(move |t| {
                arb_value(t.clone(), known)
                    .prop_map(move |v| Value::Dynamic(t.clone(), Box::new(v)))
            })
            .boxed(),
        Type::List(e) => prop::collection::vec(arb_value(*e, known), 0..4)
            .prop_map(Value::List)
            .boxed(),
        Type::Set(e) => prop::collection::vec(arb_value(*e, known), 0..4)
            .prop_map(Value::Set)
            .boxed(),
        Type::Map(e) => prop::collection::btree_map(".{0,4}", arb_value(*e, known), 0..4)
            .prop_map(Value::Map)
            .boxed(),
        Type::Object(attrs) => {
            let names: Vec<String> = attrs.keys().cloned().collect();
            let values: Vec<_> = attrs.into_values().map(|t| arb_value(t, known)).collect();
            values
                .prop_map(move |vs| {
                    Value::Object(names.iter().cloned().zip(vs).collect::<BTreeMap<_, _>>())
                })
                .boxed()
        }
        Type::Tuple(elems) => {
            let values: Vec<_> = elems.into_iter().map(|t| arb_value(t, known)).collect();
            values.prop_map(Value::Tuple).boxed()
        }
    };
    if known {
        prop_oneof![1 => Just(Value::Null), 6 => concrete].boxed()
    } else {
        prop_oneof![1 => Just(Value::Null), 1 => arb_refinements().prop_map(Value::Unknown), 6 => concrete].boxed()
    }
}

fn typed_value(known: bool) -> impl Strategy<Value = (Type, Value)> {
    arb_type().prop_flat_map(move |t| (Just(t.clone()), arb_value(t, known)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn msgpack_round_trips((ty, v) in typed_value(false)) {
        prop_assert!(v.conforms_to(&ty));
        let bytes = msgpack::encode(&v, &ty)?;
        let back = msgpack::decode(&bytes, &ty)?;
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(msgpack::encode(&back, &ty)?, bytes.clone());
        // Each read consumes exactly the bytes written: no more, no less.
        prop_assert!(msgpack::decode(&bytes[..bytes.len() - 1], &ty).is_err());
        let mut longer = bytes.clone();
        longer.push(0xc0);
        prop_assert!(msgpack::decode(&longer, &ty).is_err());
    }

    #[test]
    fn json_round_trips((ty, v) in typed_value(true)) {
        let text = json::encode(&v, &ty)?;
        let back = json::decode(&text, &ty)?;
        prop_assert_eq!(&back, &v);
        let again = json::encode(&back, &ty)?;
        prop_assert_eq!(String::from_utf8_lossy(&again), String::from_utf8_lossy(&text));
        // Values coming from JSON survive msgpack too.
        prop_assert_eq!(msgpack::decode(&msgpack::encode(&back, &ty)?, &ty)?, back);
    }

    #[test]
    fn type_json_round_trips(ty in arb_type()) {
        prop_assert_eq!(Type::from_json(ty.to_json().as_bytes())?, ty);
    }

    #[test]
    fn number_order_matches_f64_when_exact(a in prop::num::f64::ANY, b in prop::num::f64::ANY) {
        prop_assume!(!a.is_nan() && !b.is_nan());
        let (na, nb) = (Number(Repr::F64(a)), Number(Repr::F64(b)));
        prop_assert_eq!(na.partial_cmp(&nb), a.partial_cmp(&b));
        let text = Number::parse(&na.to_string());
        if a.is_finite() {
            prop_assert_eq!(text, Some(na));
        }
    }

    #[test]
    fn decimal_text_order_is_consistent(a in r"-?[0-9]{1,5}(\.[0-9]{1,3})?", b in r"-?[0-9]{1,5}(\.[0-9]{1,3})?") {
        let (fa, fb): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
        let (na, nb) = (Number(Repr::Text(a.into())), Number(Repr::Text(b.into())));
        // Up to 8 significant digits both are exact enough in f64 to order identically.
        prop_assert_eq!(na.partial_cmp(&nb), fa.partial_cmp(&fb));
    }
}
