use super::*;
use crate::Path;

/// Builds bytes from hex pairs and `'raw text'` tokens separated by whitespace.
fn wire(spec: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for tok in spec.split_whitespace() {
        if let Some(text) = tok.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
            out.extend_from_slice(text.as_bytes());
        } else {
            for pair in tok.as_bytes().chunks(2) {
                let s = std::str::from_utf8(pair).unwrap();
                out.push(u8::from_str_radix(s, 16).unwrap_or_else(|_| panic!("bad hex {tok}")));
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ty(json: &str) -> Type {
    Type::from_json(json.as_bytes()).unwrap()
}

/// Decodes `input` as `type_json` and re-encodes it. `expect` is `"same"` when the
/// bytes come back identical, the re-encoded hex when they differ, or `"error: …"`.
fn check(type_json: &str, input: &str, expect: &str) {
    let bytes = wire(input);
    let actual = match decode(&bytes, &ty(type_json)) {
        Ok(v) => {
            let again = encode(&v, &ty(type_json)).unwrap();
            assert_eq!(decode(&again, &ty(type_json)).unwrap(), v);
            if again == bytes {
                "same".to_string()
            } else {
                hex(&again)
            }
        }
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(actual, expect, "input {input}");
}

fn value(type_json: &str, input: &str) -> Value {
    decode(&wire(input), &ty(type_json)).unwrap()
}

fn num(s: &str) -> Value {
    Value::Number(Number::parse(s).unwrap())
}

#[test]
fn primitives() {
    check(r#""bool""#, "c3", "same");
    check(r#""string""#, "a3 'abc'", "same");
    check(r#""string""#, "c4 03 'abc'", "a3 61 62 63");
    check(r#""string""#, "c0", "same");
    check(r#""number""#, "c0", "same");
    check(r#""bool""#, "a1 'x'", "error: expected bool, found string");
    check(
        r#""string""#,
        "a2 ff fe",
        "error: string is not valid UTF-8",
    );
}

#[test]
fn numbers_keep_their_representation() {
    check(r#""number""#, "50", "same");
    check(r#""number""#, "cb 3ff8000000000000", "same");
    check(r#""number""#, "a3 '0.1'", "same");
    check(r#""number""#, "be '123456789012345678901234567890'", "same");
    check(r#""number""#, "d0 f6", "f6");
    check(r#""number""#, "d3 ffffffffffffffff", "ff");
    check(r#""number""#, "cd 0050", "50");
    check(r#""number""#, "cf ffffffffffffffff", "same");
    check(r#""number""#, "ca 3fc00000", "same");
    check(r#""number""#, "cb 7ff0000000000000", "same");
    check(
        r#""number""#,
        "cb 7ff8000000000000",
        "error: NaN is not a valid number",
    );
    check(r#""number""#, "a3 'abc'", r#"error: invalid number "abc""#);
    check(r#""number""#, "c3", "error: expected number, found bool");
    assert_eq!(value(r#""number""#, "50"), num("80"));
    assert_eq!(value(r#""number""#, "cb 3ff8000000000000"), num("1.5"));
    assert_eq!(value(r#""number""#, "a3 '1.5'"), num("1.5"));
    assert_ne!(
        value(r#""number""#, "a3 '0.1'"),
        Value::Number(Number::from_f64(0.1).unwrap())
    );
}

#[test]
fn created_numbers_follow_cty_rule() {
    let enc = |n: Number| hex(&encode(&Value::Number(n), &Type::Number).unwrap());
    assert_eq!(enc(Number::from_i64(80)), "50");
    assert_eq!(enc(Number::from_i64(-1)), "ff");
    assert_eq!(enc(Number::from_f64(80.0).unwrap()), "50");
    assert_eq!(
        enc(Number::from_f64(1.5).unwrap()),
        "cb 3f f8 00 00 00 00 00 00"
    );
    assert_eq!(enc(Number::parse("0.1").unwrap()), "a3 30 2e 31");
    assert_eq!(enc(Number::from_u64(300)), "cd 01 2c");
}

#[test]
fn unknowns() {
    check(r#""string""#, "d4 00 00", "same");
    check(r#""string""#, "c7 00 00", "d4 00 00");
    check(r#""string""#, "c7 01 05 ff", "d4 00 00");
    check(r#""string""#, "d4 7f 01", "d4 00 00");
    check(
        r#""string""#,
        "d5 00 0000",
        "error: unsupported extension type 0 with a 2-byte payload",
    );
    check(r#"["list","string"]"#, "d4 00 00", "same");
    check(r#""dynamic""#, "d4 00 00", "same");
    assert!(value(r#""dynamic""#, "d4 00 00").is_unknown());
}

#[test]
fn refined_unknowns() {
    let refs = |input: &str| match value(r#""number""#, input) {
        Value::Unknown(r) => r,
        other => panic!("{other:?}"),
    };
    let r = refs("c7 0a 0c 82 01 c2 02 a5 'abcde'");
    assert_eq!(r.nullness, Some(false));
    assert_eq!(r.string_prefix.as_deref(), Some("abcde"));
    let r = refs("c7 12 0c 84 03 92 00 c3 04 92 a3 '0.5' c2 05 01 06 cd 0100");
    assert_eq!(r.number_lower, Some((Number::from_i64(0), true)));
    assert_eq!(r.number_upper, Some((Number::parse("0.5").unwrap(), false)));
    assert_eq!((r.length_min, r.length_max), (Some(1), Some(256)));
    // Unknown keys (here 9, holding a nested array) are skipped.
    let r = refs("c7 08 0c 82 09 92 91 01 a0 01 c3");
    assert_eq!(r.nullness, Some(true));
    check(r#""number""#, "c7 03 0c 81 01 c3", "d4 00 00");
    check(
        r#""number""#,
        "c7 03 0c 81 01 01",
        "error: invalid refinements: nullness must be a bool, found integer",
    );
    check(
        r#""number""#,
        "c7 02 0c 91 01",
        "error: invalid refinements: expected a map",
    );
    check(
        r#""number""#,
        "c7 04 0c 81 01 c3 c0",
        "error: invalid refinements: unexpected bytes after the refinement map",
    );
    check(
        r#""number""#,
        "c7 02 0c 81 01",
        "error: invalid refinements: collection of 1 elements does not fit in the remaining 1 bytes",
    );
    check(
        r#""number""#,
        "c7 03 0c 81 02 a3",
        "error: invalid refinements: unexpected end of msgpack input",
    );
    let mut big = wire("c8 0401 0c");
    big.extend(std::iter::repeat_n(0xc0, 0x401));
    assert_eq!(
        decode(&big, &Type::Number).unwrap_err().to_string(),
        "refinements of 1025 bytes exceed the 1024-byte limit"
    );
}

const OBSERVED_TYPE: &str = r#"["object",{"computed_num":"number","dyn":"dynamic","id":"string","name":"string","rule":["list",["object",{"port":"number"}]],"secret":"string","size":"number","tags":["map","string"]}]"#;

/// The config value Terraform 1.0.3 sent (protocol notes §3.1), 151 bytes.
const OBSERVED: &str = r#"88 ac 'computed_num' c0  a3 'dyn' 92 c4 39 '["object",{"a":"number","b":["tuple",["bool","string"]]}]' 82 a1 'a' 01 a1 'b' 92 c3 a1 'x'  a2 'id' c0  a4 'name' a1 'a'  a4 'rule' 91 81 a4 'port' 50  a6 'secret' a6 's3cr3t'  a4 'size' cb 3ff8000000000000  a4 'tags' 81 a1 'k' a1 'v'"#;

#[test]
fn observed_terraform_object_round_trips() {
    assert_eq!(wire(OBSERVED).len(), 151);
    check(OBSERVED_TYPE, OBSERVED, "same");
    let v = value(OBSERVED_TYPE, OBSERVED);
    assert!(v.conforms_to(&ty(OBSERVED_TYPE)));
    assert_eq!(v.get_attr("size"), Some(&num("1.5")));
    assert_eq!(v.get_attr("id"), Some(&Value::Null));
    let Some(Value::Dynamic(t, inner)) = v.get_attr("dyn") else {
        panic!("{v:?}")
    };
    assert_eq!(
        t.to_json(),
        r#"["object",{"a":"number","b":["tuple",["bool","string"]]}]"#
    );
    assert_eq!(
        inner.get_attr("b"),
        Some(&Value::Tuple(vec![
            Value::Bool(true),
            Value::String("x".into())
        ]))
    );
    let Some(Value::List(rules)) = v.get_attr("rule") else {
        panic!("{v:?}")
    };
    assert_eq!(rules[0].get_attr("port"), Some(&num("80")));
}

#[test]
fn objects_require_every_attribute() {
    let t = r#"["object",{"a":"number","b":"string"}]"#;
    check(t, "82 a1 'a' 01 a1 'b' a0", "same");
    check(t, "82 a1 'b' a0 a1 'a' 01", "82 a1 61 01 a1 62 a0");
    check(
        t,
        "81 a1 'a' 01",
        "error: an object with 2 attributes is required (1 given)",
    );
    check(
        t,
        "80",
        "error: an object with 2 attributes is required (0 given)",
    );
    check(
        t,
        "82 a1 'a' 01 a1 'c' a0",
        r#"error: unsupported attribute "c""#,
    );
    check(
        t,
        "82 a1 'a' 01 a1 'a' 02",
        r#"error: duplicate attribute "a""#,
    );
    check(
        t,
        "82 a1 'a' a1 'x' a1 'b' a0",
        r#"error: at .a: invalid number "x""#,
    );
    check(r#"["object",{}]"#, "80", "same");
}

#[test]
fn errors_carry_paths() {
    let t = r#"["object",{"rule":["list",["object",{"port":"number"}]],"tags":["map","bool"]}]"#;
    check(
        t,
        "82 a4 'rule' 92 81 a4 'port' 01 81 a4 'port' c3 a4 'tags' 80",
        "error: at .rule[1].port: expected number, found bool",
    );
    check(
        t,
        "82 a4 'rule' 90 a4 'tags' 81 a1 'k' 01",
        r#"error: at .tags["k"]: expected bool, found integer"#,
    );
    let err = decode(&wire("81 a1 'k' 01"), &ty(r#"["map","bool"]"#)).unwrap_err();
    assert_eq!(err.path(), &Path::root().key("k"));
    assert_eq!(err.message(), "expected bool, found integer");
}

#[test]
fn collections() {
    check(r#"["list","number"]"#, "93 01 02 03", "same");
    check(r#"["set","string"]"#, "92 a1 'b' a1 'a'", "same");
    check(r#"["list","number"]"#, "90", "same");
    check(r#"["list","number"]"#, "dc 0001 01", "91 01");
    check(
        r#"["map","number"]"#,
        "82 a1 'b' 02 a1 'a' 01",
        "82 a1 61 01 a1 62 02",
    );
    check(
        r#"["map","number"]"#,
        "82 a1 'a' 01 a1 'a' 02",
        "81 a1 61 02",
    );
    check(
        r#"["map","number"]"#,
        "81 01 01",
        "error: expected a string key, found integer",
    );
    check(r#"["tuple",["bool","number"]]"#, "92 c2 05", "same");
    check(
        r#"["tuple",["bool","number"]]"#,
        "91 c2",
        "error: a tuple of length 2 is required (1 given)",
    );
    check(
        r#"["list","number"]"#,
        "dd ffffffff 01",
        "error: collection of 4294967295 elements does not fit in the remaining 1 bytes",
    );
    check(
        r#"["map","number"]"#,
        "df ffffffff",
        "error: collection of 4294967295 elements does not fit in the remaining 0 bytes",
    );
}

#[test]
fn dynamic_values() {
    check(r#""dynamic""#, "c0", "same");
    check(r#""dynamic""#, r#"92 c4 08 '"string"' a2 'hi'"#, "same");
    check(
        r#""dynamic""#,
        r#"92 a8 '"string"' a2 'hi'"#,
        "92 c4 08 22 73 74 72 69 6e 67 22 a2 68 69",
    );
    check(r#""dynamic""#, r#"92 c4 08 '"string"' c0"#, "same");
    check(r#""dynamic""#, r#"92 c4 08 '"string"' d4 00 00"#, "same");
    check(
        r#""dynamic""#,
        r#"92 c4 09 '"dynamic"' 92 c4 08 '"number"' 01"#,
        "same",
    );
    check(
        r#""dynamic""#,
        "a2 'hi'",
        "error: expected a dynamic value as [type, value], found string",
    );
    check(
        r#""dynamic""#,
        "93 c0 c0 c0",
        "error: expected a dynamic value as [type, value], found an array of 3 elements",
    );
    check(
        r#""dynamic""#,
        r#"92 c4 05 '"str"' c0"#,
        r#"error: invalid type JSON: unknown primitive type "str""#,
    );
    check(
        r#""dynamic""#,
        r#"92 c4 08 '"number"' a1 'x'"#,
        r#"error: invalid number "x""#,
    );
    let v = value(r#""dynamic""#, r#"92 c4 08 '"string"' c0"#);
    assert_eq!(v, Value::Dynamic(Type::String, Box::new(Value::Null)));
}

#[test]
fn framing() {
    check(r#""number""#, "", "error: unexpected end of msgpack input");
    check(
        r#""number""#,
        "01 02",
        "error: 1 unexpected bytes after the value",
    );
    check(
        r#""string""#,
        "a3 'ab'",
        "error: unexpected end of msgpack input",
    );
    check(r#""number""#, "c1", "error: invalid msgpack marker 0xc1");
    let mut deep = vec![0x91; 200];
    deep.push(0xc0);
    let mut t = Type::Number;
    for _ in 0..200 {
        t = Type::List(Box::new(t));
    }
    assert_eq!(
        decode(&deep, &t).unwrap_err().message(),
        "value is nested deeper than 128 levels"
    );
}

#[test]
fn encoder_is_strict() {
    let t = ty(r#"["object",{"a":"number"}]"#);
    let err = |v: Value, t: &Type| encode(&v, t).unwrap_err().to_string();
    assert_eq!(
        err(Value::Object(BTreeMap::new()), &t),
        r#"missing attribute "a""#
    );
    let extra = BTreeMap::from([
        ("a".to_string(), Value::Null),
        ("b".to_string(), Value::Null),
    ]);
    assert_eq!(
        err(Value::Object(extra), &t),
        r#"unsupported attribute "b""#
    );
    let wrong = BTreeMap::from([("a".to_string(), Value::String("1".into()))]);
    assert_eq!(
        err(Value::Object(wrong), &t),
        "at .a: expected number, found string"
    );
    assert_eq!(
        err(Value::String("x".into()), &Type::Dynamic),
        "a dynamic-typed value must be Value::Dynamic, found string"
    );
    assert_eq!(
        err(Value::List(vec![]), &ty(r#"["set","bool"]"#)),
        "expected set of bool, found list"
    );
    let refined = Value::Unknown(Refinements {
        nullness: Some(false),
        ..Default::default()
    });
    assert_eq!(hex(&encode(&refined, &Type::String).unwrap()), "d4 00 00");
}
