#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use regorus::Value;

use super::super::engine::new_engine;
use super::super::fast::{Evaluator, Program, Stop};
use super::*;

/// OPA's answers (`sprintf_cases.py` writes them).
const CASES: &str = include_str!("sprintf_cases.json");

/// Cases whose OPA answer depends on a number's source text, which regorus
/// does not keep: OPA passes `1e3` (an exponent, no decimal point) as the
/// *string* `"1e3"`, and `1.5e3` as a float where regorus has the integer.
const KNOWN_DIFFERENCES: &[&str] = &[
    r#""%v", [1e3]"#,
    r#""%d", [1.5e3]"#,
    r#""%e|%E|%g|%G", [123456789.5, 0.000123, 1e-10, 123456789012.5]"#,
];

struct Case {
    args: String,
    /// `None`: OPA reports an error.
    expected: Option<String>,
}

fn cases() -> Vec<Case> {
    let table: serde_json::Value = serde_json::from_str(CASES).unwrap();
    table
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            args: c["args"].as_str().unwrap().to_string(),
            expected: c["expected"].as_str().map(str::to_string),
        })
        .collect()
}

fn show(r: &Result<String, String>) -> String {
    match r {
        Ok(s) => format!("{s:?}"),
        Err(e) => format!("error ({e})"),
    }
}

#[test]
fn matches_opa_on_every_case() {
    let cases = cases();
    assert!(cases.len() >= 300, "{} cases", cases.len());
    // One module per chunk of cases: the interpreter prepares a module as a
    // whole.
    let mut failures = Vec::new();
    let mut checked = 0;
    for (chunk_no, chunk) in cases.chunks(200).enumerate() {
        let mut text = format!("package platform.sprintf{chunk_no}\n\n");
        for (i, c) in chunk.iter().enumerate() {
            text.push_str(&format!("c{i} := sprintf({})\n", c.args));
        }
        let mut engine = new_engine(false).unwrap();
        engine.add_policy("cases.rego".into(), text).unwrap();
        let program = Program::compile(engine.get_modules());
        let input = serde_json::json!({});
        for (i, c) in chunk.iter().enumerate() {
            if KNOWN_DIFFERENCES.contains(&c.args.as_str()) {
                continue;
            }
            checked += 1;
            let path = format!("data.platform.sprintf{chunk_no}.c{i}");
            let interpreted = match engine.eval_rule(path.clone()) {
                Ok(Value::String(s)) => Ok(s.to_string()),
                Ok(other) => Err(format!("not a string: {other}")),
                Err(e) => Err(format!("{e:#}")),
            };
            let Some(id) = program.rule(&path) else {
                failures.push(format!(
                    "sprintf({}): not compiled: {:?}",
                    c.args,
                    program.why_not(&path)
                ));
                continue;
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            let compiled = match Evaluator::new(&program, &input, deadline).eval(id) {
                Ok(Value::String(s)) => Ok(s.to_string()),
                Ok(other) => Err(format!("not a string: {other}")),
                Err(Stop::Bail(why)) => Err(why),
                Err(other) => Err(format!("{other:?}")),
            };
            let ok = |r: &Result<String, String>| match (&c.expected, r) {
                (Some(want), Ok(got)) => want == got,
                (None, Err(_)) => true,
                _ => false,
            };
            if !ok(&interpreted) || !ok(&compiled) {
                failures.push(format!(
                    "sprintf({}): OPA {}, interpreter {}, compiled {}",
                    c.args,
                    c.expected
                        .as_ref()
                        .map_or("error".to_string(), |s| format!("{s:?}")),
                    show(&interpreted),
                    show(&compiled)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases differ from OPA:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The extension, not regorus's builtin, answers `sprintf` calls.
#[test]
fn the_extension_is_the_sprintf_policies_see() {
    let rule = "package t\nx := sprintf(\"%-6s|%5.1f|%x\", [\"ab\", 2.25, \"hi\"])\n";
    let mut ours = new_engine(false).unwrap();
    ours.add_policy("t.rego".into(), rule.into()).unwrap();
    assert_eq!(
        ours.eval_rule("data.t.x".into()).unwrap(),
        Value::from("ab    |  2.2|6869")
    );
    // regorus's own answer differs (so the test above proves something).
    let mut plain = regorus::Engine::new();
    plain.add_policy("t.rego".into(), rule.into()).unwrap();
    let theirs = plain.eval_rule("data.t.x".into());
    assert!(
        theirs
            .as_ref()
            .map_or(true, |v| *v != Value::from("ab    |  2.2|6869")),
        "{theirs:?}"
    );
}

/// Errors only where OPA has them: a format that is not a string, operands
/// that are not an array.
#[test]
fn errors_only_for_operand_types() {
    let call = |a: Value, b: Value| sprintf(&[a, b]);
    assert!(call(Value::from(1u64), Value::from(Vec::<Value>::new())).is_err());
    assert!(call(Value::from("%d"), Value::from(1u64)).is_err());
    assert!(call(Value::from("%d"), Value::Null).is_err());
    assert!(sprintf(&[Value::from("%d")]).is_err());
    assert_eq!(
        call(Value::from("%d %s"), Value::from(vec![Value::from("x")])).unwrap(),
        Value::from("%!d(string=x) %!s(MISSING)")
    );
}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

fn random_operand(state: &mut u64, depth: u32) -> Value {
    let r = xorshift(state);
    match r % 12 {
        0 => Value::from((xorshift(state) % 2000) as i64 - 1000),
        1 => Value::from(xorshift(state) as i64),
        2 => Value::from(xorshift(state)),
        3 => serde_json::from_str::<Value>("-123456789012345678901234567890").unwrap(),
        4 => Value::from(f64::from_bits(xorshift(state) & !(0x7ffu64 << 52)) * 1e300),
        5 => Value::from((xorshift(state) % 100_000) as f64 / 7.0 - 5000.0),
        6 => Value::from(["", "hi", "é日😀", "a\u{0}\u{7f}\u{a0}`\"\\"][(r >> 8) as usize % 4]),
        7 => Value::Bool(r & 256 != 0),
        8 => Value::Null,
        9 if depth < 2 => Value::from(
            (0..(r >> 8) % 3)
                .map(|_| random_operand(state, depth + 1))
                .collect::<Vec<_>>(),
        ),
        10 if depth < 2 => {
            let items = (0..(r >> 8) % 3).map(|_| random_operand(state, depth + 1));
            Value::from(items.collect::<std::collections::BTreeSet<_>>())
        }
        11 if depth < 2 => {
            let fields = (0..(r >> 8) % 3).map(|_| {
                (
                    random_operand(state, depth + 1),
                    random_operand(state, depth + 1),
                )
            });
            Value::from(fields.collect::<std::collections::BTreeMap<_, _>>())
        }
        _ => Value::from((r % 64) as i64),
    }
}

/// Random formats over the verb alphabet and random operands never panic.
#[test]
fn random_formats_never_panic() {
    const ALPHABET: &[char] = &[
        '%', '-', '+', '#', ' ', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '.', '*', '[',
        ']', 'v', 'd', 's', 'f', 'e', 'g', 'x', 'X', 'o', 'b', 'q', 't', 'c', 'U', 'T', 'p', 'w',
        'G', 'E', 'F', 'O', 'z', 'é', '日', '😀', '\n',
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        let len = xorshift(&mut state) % 16;
        let mut format = String::new();
        for _ in 0..len {
            let r = xorshift(&mut state) as usize;
            // Keep widths small: a run of digits can ask for up to 10^6.
            let c = ALPHABET[r % ALPHABET.len()];
            if c.is_ascii_digit() && format.ends_with(|p: char| p.is_ascii_digit()) {
                continue;
            }
            format.push(c);
        }
        let n = xorshift(&mut state) % 5;
        let operands: Vec<Value> = (0..n).map(|_| random_operand(&mut state, 0)).collect();
        let out = sprintf(&[Value::from(format.as_str()), Value::from(operands)]);
        assert!(out.is_ok(), "{format:?}: {out:?}");
    }
}

/// Loaded policy sets (both evaluation paths) and `run_tests` format with
/// this `sprintf`.
#[test]
fn policies_and_policy_tests_use_it() {
    use super::super::{
        DEFAULT_TIMEOUT, Enforcement, Policies, PolicyConfig, PolicySet, run_tests,
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fmt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("p.rego"),
        "package platform.fmt\n\n\
         deny_padded contains msg if {\n\
         \tsome r in input.resources\n\
         \tmsg := sprintf(\"%-6s|%5.1f|%+d\", [r.name, r.cost, r.n])\n\
         }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("p_test.rego"),
        "package platform.fmt_test\n\n\
         test_padded if sprintf(\"%-4s|%03d\", [\"ab\", 7]) == \"ab  |007\"\n",
    )
    .unwrap();
    let config = PolicyConfig {
        sets: vec![PolicySet {
            name: "fmt".into(),
            dir,
            enforcement: Enforcement::Advisory,
            rego_v0: false,
        }],
        exceptions: vec![],
        timeout: DEFAULT_TIMEOUT,
    };
    let mut p = Policies::load(&config).unwrap();
    assert_eq!(p.interpreted_rules(), vec![], "the rule is compiled");
    let input = serde_json::json!({"resources": [{"name": "ab", "cost": 2.25, "n": 3}]});
    for interpreter_only in [false, true] {
        p.set_interpreter_only(interpreter_only);
        let d = p.evaluate(&input).unwrap();
        let messages: Vec<&str> = d.findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            ["ab    |  2.2|+3"],
            "interpreter only: {interpreter_only}"
        );
    }
    let report = run_tests(&config).unwrap();
    assert_eq!((report.passed, report.failed.len()), (1, 0), "{report:?}");
}
