//! Decodes arbitrary bytes as msgpack of a type picked by the first byte. Whatever
//! decodes must be stable: encode → decode → encode gives the same bytes and value.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use platform_value::{Type, msgpack};

fn ty(selector: u8) -> Type {
    let b = |t: Type| Box::new(t);
    let obj = |attrs: &[(&str, Type)]| {
        Type::Object(attrs.iter().map(|(k, t)| (k.to_string(), t.clone())).collect::<BTreeMap<_, _>>())
    };
    match selector % 10 {
        // Dynamic reaches every type, through the type JSON in the wrapper.
        0 => Type::Dynamic,
        1 => Type::Number,
        2 => Type::String,
        3 => Type::List(b(Type::Number)),
        4 => Type::Set(b(Type::String)),
        5 => Type::Map(b(Type::Dynamic)),
        6 => obj(&[("a", Type::Number), ("b", Type::List(b(Type::String))), ("c", Type::Dynamic)]),
        7 => Type::Tuple(vec![Type::Bool, Type::Number, Type::Dynamic]),
        8 => Type::List(b(obj(&[("x", Type::Set(b(Type::Number))), ("y", Type::Map(b(Type::String)))]))),
        _ => obj(&[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let ty = ty(selector);
    let Ok(value) = msgpack::decode(rest, &ty) else { return };
    assert!(value.conforms_to(&ty), "{value:?} does not conform to {ty:?}");
    let first = msgpack::encode(&value, &ty).expect("a decoded value encodes");
    let again = msgpack::decode(&first, &ty).expect("an encoded value decodes");
    assert_eq!(again, value);
    let second = msgpack::encode(&again, &ty).expect("a decoded value encodes");
    assert_eq!(first, second);
});
