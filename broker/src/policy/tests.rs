#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

fn date(s: &str) -> time::Date {
    crate::dates::parse_date(s).unwrap()
}

fn far_future() -> time::Date {
    date("2999-12-31")
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn set(name: &str, dir: PathBuf, enforcement: Enforcement) -> PolicySet {
    PolicySet {
        name: name.into(),
        dir,
        enforcement,
        rego_v0: false,
    }
}

fn config(sets: Vec<PolicySet>) -> PolicyConfig {
    PolicyConfig {
        sets,
        exceptions: vec![],
        timeout: DEFAULT_TIMEOUT,
    }
}

const FLAGGED: &str = r#"
package platform.flagged

deny_flagged contains finding if {
	some r in input.resources
	r.flag
	finding := {"address": r.address, "msg": sprintf("%s is flagged", [r.address])}
}

warn_noted contains msg if {
	some r in input.resources
	r.note
	msg := sprintf("%s is noted", [r.address])
}
"#;

/// One set per enforcement level, all with the same rules.
fn three_sets(tmp: &Path) -> PolicyConfig {
    let mut sets = vec![];
    for (name, e) in [
        ("hard", Enforcement::HardMandatory),
        ("soft", Enforcement::SoftMandatory),
        ("advisory", Enforcement::Advisory),
    ] {
        let text = FLAGGED.replace("platform.flagged", &format!("platform.{name}"));
        // Only the set's own resources are flagged: prefix match on the set name.
        let text = text.replace(
            "r.flag\n",
            &format!("r.flag\n\tstartswith(r.address, \"{name}.\")\n"),
        );
        write(tmp, &format!("{name}/p.rego"), &text);
        sets.push(set(name, tmp.join(name), e));
    }
    config(sets)
}

fn flagged(addresses: &[&str]) -> Value {
    let rs: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"address": a, "flag": true}))
        .collect();
    json!({ "input_version": "1", "resources": rs })
}

#[test]
fn verdicts_per_enforcement_level() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = three_sets(tmp.path());
    let p = Policies::load(&cfg).unwrap();

    let d = p.evaluate(&flagged(&[])).unwrap();
    assert_eq!(d.verdict, Verdict::Allowed);
    assert!(d.findings.is_empty());

    let d = p.evaluate(&flagged(&["advisory.a"])).unwrap();
    assert_eq!(d.verdict, Verdict::Allowed, "advisory never blocks");
    assert_eq!(d.findings.len(), 1);
    assert_eq!(d.findings[0].enforcement, Enforcement::Advisory);

    let d = p.evaluate(&flagged(&["soft.a", "advisory.a"])).unwrap();
    assert_eq!(d.verdict, Verdict::NeedsApproval);

    let d = p.evaluate(&flagged(&["hard.a", "soft.a"])).unwrap();
    assert_eq!(d.verdict, Verdict::Denied);
    let f = d.findings.iter().find(|f| f.set == "hard").unwrap();
    assert_eq!(f.rule, "deny_flagged");
    assert_eq!(f.severity, Severity::Deny);
    assert_eq!(f.address.as_deref(), Some("hard.a"));
    assert_eq!(f.message, "hard.a is flagged");
    assert_eq!(f.excepted_by, None);
}

#[test]
fn warns_never_block() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = three_sets(tmp.path());
    let p = Policies::load(&cfg).unwrap();
    let input = json!({"resources": [{"address": "x", "note": true}]});
    let d = p.evaluate(&input).unwrap();
    assert_eq!(d.verdict, Verdict::Allowed);
    assert_eq!(d.findings.len(), 3, "{:?}", d.findings);
    assert!(
        d.findings
            .iter()
            .all(|f| f.severity == Severity::Warn && f.rule == "warn_noted")
    );
    assert!(
        d.findings
            .iter()
            .any(|f| f.enforcement == Enforcement::HardMandatory)
    );
}

#[test]
fn finding_shapes_strings_objects_arrays_booleans_and_nested_packages() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "a/shapes.rego",
        r#"
package platform.deep.shapes

deny_strings contains "plain message" if input.on

deny_array := [{"message": "from array", "address": "a.b"}, "second"] if input.on

deny_bool if input.on

warn_object_without_msg contains {"address": "x.y", "code": 7} if input.on

# Helper rules and functions are not findings.
helper := 1
deny_fn(x) := x
"#,
    );
    // Outside package platform.*: ignored.
    write(
        tmp.path(),
        "a/other.rego",
        "package main\n\ndeny_ignored contains \"no\" if true\n",
    );
    let p = Policies::load(&config(vec![set(
        "s",
        tmp.path().join("a"),
        Enforcement::HardMandatory,
    )]))
    .unwrap();
    let d = p.evaluate(&json!({"on": true})).unwrap();
    let got: Vec<(String, Option<String>, String)> = d
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.address.clone(), f.message.clone()))
        .collect();
    assert!(
        got.contains(&("deny_strings".into(), None, "plain message".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("deny_array".into(), Some("a.b".into()), "from array".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("deny_array".into(), None, "second".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("deny_bool".into(), None, "deny_bool".into())),
        "{got:?}"
    );
    assert!(
        got.iter().any(|(r, a, m)| r == "warn_object_without_msg"
            && a.as_deref() == Some("x.y")
            && m.contains("\"code\"")),
        "{got:?}"
    );
    assert!(
        !got.iter()
            .any(|(r, ..)| r == "deny_ignored" || r == "deny_fn")
    );
    assert_eq!(d.verdict, Verdict::Denied);

    let d = p.evaluate(&json!({"on": false})).unwrap();
    assert!(d.findings.is_empty(), "{:?}", d.findings);
    assert_eq!(d.verdict, Verdict::Allowed);
}

#[test]
fn set_without_platform_rules_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "main.rego",
        "package main\n\ndeny contains \"x\" if true\n",
    );
    let e = Policies::load(&config(vec![set(
        "conftest",
        tmp.path().into(),
        Enforcement::HardMandatory,
    )]))
    .unwrap_err();
    assert!(e.to_string().contains("no deny_*/warn_* rules"), "{e}");

    let empty = tempfile::tempdir().unwrap();
    let e = Policies::load(&config(vec![set(
        "empty",
        empty.path().into(),
        Enforcement::HardMandatory,
    )]))
    .unwrap_err();
    assert!(e.to_string().contains("no .rego policy files"), "{e}");
}

#[test]
fn exceptions_exact_wildcard_and_non_matching() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = three_sets(tmp.path());
    cfg.exceptions = vec![
        Exception {
            rule: "deny_flagged".into(),
            address: "hard.exact".into(),
            owner: "team-a".into(),
            reason: "TICKET-1".into(),
            expires: far_future(),
        },
        Exception {
            rule: "deny_flagged".into(),
            address: "hard.module.*".into(),
            owner: "team-b".into(),
            reason: "TICKET-2".into(),
            expires: far_future(),
        },
        Exception {
            rule: "deny_other".into(),
            address: "*".into(),
            owner: "team-c".into(),
            reason: "unrelated rule".into(),
            expires: far_future(),
        },
    ];
    let p = Policies::load(&cfg).unwrap();

    let d = p
        .evaluate(&flagged(&[
            "hard.exact",
            "hard.module.a",
            "hard.module.b.c",
        ]))
        .unwrap();
    assert_eq!(d.verdict, Verdict::Allowed, "{:?}", d.findings);
    assert_eq!(d.findings.len(), 3);
    assert_eq!(d.excepted().count(), 3);
    let exact = d
        .findings
        .iter()
        .find(|f| f.address.as_deref() == Some("hard.exact"))
        .unwrap();
    let by = exact.excepted_by.as_deref().unwrap();
    assert!(
        by.contains("team-a") && by.contains("TICKET-1") && by.contains("2999-12-31"),
        "{by}"
    );
    let wild = d
        .findings
        .iter()
        .find(|f| f.address.as_deref() == Some("hard.module.b.c"))
        .unwrap();
    assert!(wild.excepted_by.as_deref().unwrap().contains("team-b"));

    // "hard.exact2" is not the exact address; "hard.modulex" does not match "hard.module.*".
    let d = p
        .evaluate(&flagged(&["hard.exact", "hard.exact2", "hard.modulex"]))
        .unwrap();
    assert_eq!(d.verdict, Verdict::Denied);
    assert_eq!(d.findings.iter().filter(|f| f.blocks()).count(), 2);

    // Unit-level matching rules.
    let e = &cfg.exceptions[1];
    assert!(e.matches("deny_flagged", Some("hard.module.x")));
    assert!(!e.matches("deny_flagged", None));
    assert!(!e.matches("deny_other", Some("hard.module.x")));
    assert!(cfg.exceptions[2].matches("deny_other", None));
}

#[test]
fn expired_exception_fails_loudly() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "p/p.rego", FLAGGED);
    let hcl = r#"
policy_set "s" {
  path        = "p"
  enforcement = "hard_mandatory"
}
exception {
  rule    = "deny_flagged"
  address = "aws_s3_bucket.*"
  owner   = "team-data"
  reason  = "DATA-9"
  expires = "2020-01-31"
}
"#;
    write(tmp.path(), "policy.hcl", hcl);
    let e = PolicyConfig::load(&tmp.path().join("policy.hcl")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PolicyError::ExpiredException { .. }));
    assert!(
        msg.contains("deny_flagged") && msg.contains("aws_s3_bucket.*"),
        "{msg}"
    );
    assert!(
        msg.contains("team-data") && msg.contains("2020-01-31"),
        "{msg}"
    );

    // A programmatically built config is checked again by Policies::load.
    let cfg = PolicyConfig::parse(hcl, tmp.path(), Path::new("policy.hcl")).unwrap();
    assert!(matches!(
        Policies::load(&cfg),
        Err(PolicyError::ExpiredException { .. })
    ));

    // Valid through its expiry day, expired the day after.
    let ex = &cfg.exceptions[0];
    assert!(!ex.is_expired(date("2020-01-31")));
    assert!(ex.is_expired(date("2020-02-01")));
    assert!(cfg.check_exceptions(date("2020-01-31")).is_ok());
}

#[test]
fn config_parsing() {
    let tmp = tempfile::tempdir().unwrap();
    let hcl = r#"
timeout = "250ms"
policy_set "legacy" {
  path        = "sets/legacy"
  enforcement = "soft_mandatory"
  syntax      = "v0"
}
policy_set "modern" {
  path        = "sets/modern"
  enforcement = "advisory"
}
exception {
  rule    = "deny_premium_tier"
  address = "module.billing.*"
  owner   = "team-billing"
  reason  = "FIN-1"
  expires = "2999-01-02"
}
"#;
    let cfg = PolicyConfig::parse(hcl, tmp.path(), Path::new("policy.hcl")).unwrap();
    assert_eq!(cfg.timeout, Duration::from_millis(250));
    assert_eq!(cfg.sets.len(), 2);
    assert_eq!(cfg.sets[0].dir, tmp.path().join("sets/legacy"));
    assert!(cfg.sets[0].rego_v0);
    assert_eq!(cfg.sets[0].enforcement, Enforcement::SoftMandatory);
    assert!(!cfg.sets[1].rego_v0);
    assert_eq!(cfg.exceptions[0].expires, date("2999-01-02"));

    let default_timeout = PolicyConfig::parse(
        "policy_set \"a\" {\n path = \"a\"\n enforcement = \"advisory\"\n}\n",
        tmp.path(),
        Path::new("x"),
    )
    .unwrap();
    assert_eq!(default_timeout.timeout, Duration::from_secs(2));

    for (bad, needle) in [
        (
            "policy_set \"a\" {\n path = \"a\"\n}\n",
            "missing `enforcement`",
        ),
        (
            "policy_set \"a\" {\n path = \"a\"\n enforcement = \"strict\"\n}\n",
            "strict",
        ),
        (
            "policy_set \"a\" {\n path = \"a\"\n enforcement = \"advisory\"\n syntax = \"v2\"\n}\n",
            "v2",
        ),
        (
            "timeout = \"soon\"\npolicy_set \"a\" {\n path = \"a\"\n enforcement = \"advisory\"\n}\n",
            "soon",
        ),
        ("", "no policy_set"),
        (
            "policy_set \"a\" {\n path = \"a\"\n enforcement = \"advisory\"\n}\nexception {\n rule = \"deny_x\"\n address = \"a\"\n owner = \"o\"\n reason = \"r\"\n expires = \"31/12/2030\"\n}\n",
            "YYYY-MM-DD",
        ),
        (
            "policy_set \"a\" {\n path = \"a\"\n enforcement = \"advisory\"\n}\nexception {\n rule = \"deny_x\"\n address = \"a\"\n reason = \"r\"\n expires = \"2030-01-01\"\n}\n",
            "missing `owner`",
        ),
    ] {
        let e = PolicyConfig::parse(bad, tmp.path(), Path::new("policy.hcl")).unwrap_err();
        assert!(e.to_string().contains(needle), "{bad:?}: {e}");
    }
}

#[test]
fn fails_closed_on_runtime_error() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "p.rego",
        r#"
package platform.broken

deny_bad_number contains msg if {
	n := to_number(input.value)
	msg := sprintf("%v", [n])
}
"#,
    );
    let p = Policies::load(&config(vec![set(
        "broken",
        tmp.path().into(),
        Enforcement::Advisory,
    )]))
    .unwrap();
    // Well-formed input evaluates.
    assert_eq!(
        p.evaluate(&json!({"value": "12"})).unwrap().findings.len(),
        1
    );
    // A builtin error is an Err, even in an advisory set.
    let e = p.evaluate(&json!({"value": "not a number"})).unwrap_err();
    assert!(matches!(e, PolicyError::Eval { .. }), "{e:?}");
    assert!(e.to_string().contains("deny_bad_number"), "{e}");
}

#[test]
fn fails_closed_on_conflicting_complete_rule() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "p.rego",
        r#"
package platform.conflict

level := "a" if input.x
level := "b" if input.x

deny_level contains level if input.x
"#,
    );
    let p = Policies::load(&config(vec![set(
        "c",
        tmp.path().into(),
        Enforcement::HardMandatory,
    )]))
    .unwrap();
    assert!(
        p.evaluate(&json!({"x": false}))
            .unwrap()
            .findings
            .is_empty()
    );
    let e = p.evaluate(&json!({"x": true})).unwrap_err();
    assert!(matches!(e, PolicyError::Eval { .. }), "{e:?}");
}

#[test]
fn fails_closed_on_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "slow.rego",
        r#"
package platform.slow

deny_slow contains msg if {
	n := count([x | some i in numbers.range(1, input.n); some j in numbers.range(1, input.n); x := i * j])
	n < 0
	msg := "never"
}
"#,
    );
    let quick = tempfile::tempdir().unwrap();
    write(quick.path(), "quick.rego", FLAGGED);
    let mut cfg = config(vec![
        set("quick", quick.path().into(), Enforcement::Advisory),
        set("slow", tmp.path().into(), Enforcement::Advisory),
    ]);
    cfg.timeout = Duration::from_millis(20);
    let mut p = Policies::load(&cfg).unwrap();
    let mut took = Duration::ZERO;
    for interpreter in [false, true] {
        p.set_interpreter_only(interpreter);
        let started = Instant::now();
        let e = p
            .evaluate(&json!({"n": 2000, "resources": []}))
            .unwrap_err();
        took = took.max(started.elapsed());
        assert!(matches!(e, PolicyError::Timeout { .. }), "{e:?}");
        // The message names the set that ran out of time.
        let text = e.to_string();
        assert!(text.contains("time limit"), "{text}");
        assert!(text.contains("set slow"), "{text}");
        println!("timeout detected after {took:?}: {text}");
    }
    // The evaluation is interrupted, not run to completion (4M iterations).
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn rejects_unknown_input_version_and_non_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Policies::load(&three_sets(tmp.path())).unwrap();
    assert!(matches!(
        p.evaluate(&json!({"input_version": "2"})),
        Err(PolicyError::Input(_))
    ));
    assert!(matches!(
        p.evaluate(&json!([1, 2])),
        Err(PolicyError::Input(_))
    ));
}

#[test]
fn v0_and_v1_syntax_both_load() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "v0/legacy.rego",
        r#"
package platform.legacy

deny_legacy[msg] {
	r := input.resources[_]
	r.flag
	msg := sprintf("%s (v0)", [r.address])
}

warn_legacy[{"address": r.address, "msg": "warned"}] {
	r := input.resources[_]
}
"#,
    );
    write(tmp.path(), "v1/modern.rego", FLAGGED);
    let mut legacy = set("legacy", tmp.path().join("v0"), Enforcement::SoftMandatory);
    legacy.rego_v0 = true;
    let modern = set("modern", tmp.path().join("v1"), Enforcement::HardMandatory);
    let p = Policies::load(&config(vec![legacy.clone(), modern.clone()])).unwrap();
    let d = p.evaluate(&flagged(&["a.b"])).unwrap();
    assert_eq!(d.verdict, Verdict::Denied);
    assert!(
        d.findings
            .iter()
            .any(|f| f.set == "legacy" && f.message == "a.b (v0)"),
        "{:?}",
        d.findings
    );
    assert!(d.findings.iter().any(|f| f.set == "legacy"
        && f.rule == "warn_legacy"
        && f.address.as_deref() == Some("a.b")));
    assert!(
        d.findings
            .iter()
            .any(|f| f.set == "modern" && f.message == "a.b is flagged")
    );

    // The v0 file under the v1 dialect is a parse error naming file and line.
    let mut wrong = legacy;
    wrong.rego_v0 = false;
    let e = Policies::load(&config(vec![wrong])).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("legacy.rego:4"), "{msg}");
}

#[test]
fn parse_error_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "ok.rego", FLAGGED);
    write(
        tmp.path(),
        "sub/bad.rego",
        "package platform.bad\n\ndeny_x contains msg if {\n\tmsg := \n}\n",
    );
    let e = Policies::load(&config(vec![set(
        "s",
        tmp.path().into(),
        Enforcement::Advisory,
    )]))
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("bad.rego:5") || msg.contains("bad.rego:4"),
        "{msg}"
    );
    assert!(msg.contains("policy set s"), "{msg}");
}

#[test]
fn digest_changes_when_policy_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = three_sets(tmp.path());
    let d1 = Policies::load(&cfg).unwrap().digest();
    assert!(d1.starts_with("sha256:") && d1.len() == 7 + 64, "{d1}");
    assert_eq!(d1, Policies::load(&cfg).unwrap().digest(), "deterministic");

    // Test files do not change the bundle.
    write(
        tmp.path(),
        "hard/p_test.rego",
        "package platform.hard_test\n\ntest_x if true\n",
    );
    assert_eq!(d1, Policies::load(&cfg).unwrap().digest());

    // Policy content does.
    let path = tmp.path().join("hard/p.rego");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n# comment\n")).unwrap();
    let d2 = Policies::load(&cfg).unwrap().digest();
    assert_ne!(d1, d2);

    // A new file does.
    write(
        tmp.path(),
        "soft/extra.rego",
        "package platform.extra\n\nwarn_x contains \"x\" if false\n",
    );
    let d3 = Policies::load(&cfg).unwrap().digest();
    assert_ne!(d2, d3);

    // Enforcement does.
    let mut cfg2 = cfg.clone();
    cfg2.sets[0].enforcement = Enforcement::Advisory;
    let d4 = Policies::load(&cfg2).unwrap().digest();
    assert_ne!(d3, d4);

    // Exceptions do.
    let mut cfg3 = cfg.clone();
    cfg3.exceptions.push(Exception {
        rule: "deny_flagged".into(),
        address: "*".into(),
        owner: "o".into(),
        reason: "r".into(),
        expires: far_future(),
    });
    let d5 = Policies::load(&cfg3).unwrap().digest();
    assert_ne!(d3, d5);

    // Set order in the config does not.
    let mut cfg4 = cfg.clone();
    cfg4.sets.reverse();
    assert_eq!(d3, Policies::load(&cfg4).unwrap().digest());
}

fn examples_config() -> PolicyConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/policy.hcl");
    PolicyConfig::load(&path).unwrap()
}

#[test]
fn example_policy_tests_pass() {
    let cfg = examples_config();
    let report = run_tests(&cfg).unwrap();
    println!(
        "example policy tests: {} passed, {} failed",
        report.passed,
        report.failed.len()
    );
    for ((set, rule), why) in report.failed.iter().zip(&report.failure_reasons) {
        println!("FAIL {set} {rule}: {why}");
    }
    assert!(
        report.ok(),
        "{:?} {:?}",
        report.failed,
        report.failure_reasons
    );
    assert!(report.passed >= 20, "only {} tests ran", report.passed);
}

#[test]
fn run_tests_reports_failures_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "p.rego", FLAGGED);
    write(
        tmp.path(),
        "p_test.rego",
        r#"
package platform.flagged_test

import data.platform.flagged

test_passes if {
	count(flagged.deny_flagged) == 1 with input as {"resources": [{"address": "a", "flag": true}]}
}

test_fails if {
	count(flagged.deny_flagged) == 2 with input as {"resources": [{"address": "a", "flag": true}]}
}

test_errors if {
	to_number("x") == 1
}
"#,
    );
    let r = run_tests(&config(vec![set(
        "s",
        tmp.path().into(),
        Enforcement::Advisory,
    )]))
    .unwrap();
    assert_eq!(r.passed, 1);
    let failed: Vec<&str> = r.failed.iter().map(|(_, rule)| rule.as_str()).collect();
    assert_eq!(
        failed,
        [
            "platform.flagged_test.test_errors",
            "platform.flagged_test.test_fails"
        ]
    );
    assert!(r.failed.iter().all(|(s, _)| s == "s"));
    assert_eq!(r.failure_reasons.len(), 2);
}

fn example_input(environment: &str) -> Value {
    json!({
        "input_version": "1",
        "run": {
            "created_by": "alice",
            "commit_sha": "0123abc",
            "is_destroy": false,
            "refresh_only": false,
            "workspace": {"name": "orders", "environment": environment, "tags": ["team:checkout"]}
        },
        "plan": {
            "format_version": "1.2",
            "resource_changes": [
                {
                    "address": "platform_postgres_database.legacy",
                    "mode": "managed", "type": "platform_postgres_database", "name": "legacy",
                    "change": {"actions": ["create"], "before": null,
                               "after": {"name": "legacy", "tier": "small", "labels": {"team": "checkout"}}}
                },
                {
                    "address": "platform_postgres_database.big",
                    "mode": "managed", "type": "platform_postgres_database", "name": "big",
                    "change": {"actions": ["update"], "before": {"tier": "small", "labels": {}},
                               "after": {"tier": "standard", "labels": {}}}
                },
                {
                    "address": "platform_postgres_database.old",
                    "mode": "managed", "type": "platform_postgres_database", "name": "old",
                    "change": {"actions": ["delete"], "before": {"labels": {"owner": "x"}}, "after": null}
                },
                {
                    "address": "aws_s3_bucket.logs",
                    "mode": "managed", "type": "aws_s3_bucket", "name": "logs",
                    "change": {"actions": ["create"], "before": null, "after": {"tags": {"env": "prod"}}}
                }
            ]
        },
        "cost": {
            "currency": "USD", "monthly_before": 100, "monthly_after": 740, "monthly_delta": 640,
            "resources": [
                {"address": "platform_postgres_database.big", "before": 25, "after": 140, "delta": 115, "unpriced": false},
                {"address": "aws_s3_bucket.logs", "before": null, "after": null, "delta": null, "unpriced": true}
            ]
        },
        "catalog": {"resources": [
            {"address": "platform_postgres_database.legacy", "offering": "postgres_database", "version": "1.0.0",
             "version_status": "deprecated", "owner_team": "checkout", "tier": "small", "requires_approval": false},
            {"address": "platform_postgres_database.big", "offering": "postgres_database", "version": "1.2.0",
             "version_status": "current", "owner_team": "", "tier": "standard", "requires_approval": true},
            {"address": "platform_postgres_database.old", "offering": "postgres_database", "version": "1.2.0",
             "version_status": "current", "owner_team": "checkout", "tier": "small", "requires_approval": false}
        ]},
        "drift": {"resources": []}
    })
}

#[test]
fn example_policies_evaluate() {
    let cfg = examples_config();
    let p = Policies::load(&cfg).unwrap();
    let d = p.evaluate(&example_input("production")).unwrap();
    let has = |rule: &str, addr: Option<&str>| {
        d.findings
            .iter()
            .any(|f| f.rule == rule && f.address.as_deref() == addr)
    };
    for f in &d.findings {
        println!(
            "{:?} {} {} {:?}: {}",
            f.enforcement, f.set, f.rule, f.address, f.message
        );
    }
    assert!(has(
        "deny_deprecated_offering",
        Some("platform_postgres_database.legacy")
    ));
    assert!(has(
        "deny_destroy_stateful",
        Some("platform_postgres_database.old")
    ));
    assert!(has(
        "deny_premium_tier",
        Some("platform_postgres_database.big")
    ));
    assert!(has("deny_monthly_cost_increase", None));
    assert!(has("warn_unpriced_resource", Some("aws_s3_bucket.logs")));
    assert!(has("deny_missing_owner", Some("aws_s3_bucket.logs")));
    assert!(has(
        "deny_missing_owner",
        Some("platform_postgres_database.big")
    ));
    assert!(!has(
        "deny_missing_owner",
        Some("platform_postgres_database.legacy")
    ));
    assert_eq!(d.verdict, Verdict::Denied);

    // Waive both hard findings: needs approval (soft) remains.
    let mut cfg2 = cfg.clone();
    for (rule, address) in [
        (
            "deny_deprecated_offering",
            "platform_postgres_database.legacy",
        ),
        ("deny_destroy_stateful", "platform_postgres_database.*"),
    ] {
        cfg2.exceptions.push(Exception {
            rule: rule.into(),
            address: address.into(),
            owner: "team-checkout".into(),
            reason: "CHG-42".into(),
            expires: far_future(),
        });
    }
    let p2 = Policies::load(&cfg2).unwrap();
    assert_ne!(p.digest(), p2.digest());
    let d2 = p2.evaluate(&example_input("production")).unwrap();
    assert_eq!(d2.verdict, Verdict::NeedsApproval);
    assert_eq!(d2.excepted().count(), 2);

    // Outside production and under the cost threshold only advisory findings remain.
    let mut input = example_input("staging");
    input["cost"]["monthly_delta"] = json!(100);
    let d3 = p2.evaluate(&input).unwrap();
    assert_eq!(d3.verdict, Verdict::Allowed, "{:?}", d3.findings);
}

#[test]
fn sarif_and_junit_shape() {
    let findings = vec![
        Finding {
            rule: "deny_deprecated_offering".into(),
            severity: Severity::Deny,
            set: "platform-hard".into(),
            enforcement: Enforcement::HardMandatory,
            address: Some("platform_postgres_database.legacy".into()),
            message: "creates <deprecated> & \"old\"".into(),
            excepted_by: None,
        },
        Finding {
            rule: "deny_premium_tier".into(),
            severity: Severity::Deny,
            set: "platform-soft".into(),
            enforcement: Enforcement::SoftMandatory,
            address: Some("platform_postgres_database.big".into()),
            message: "needs approval".into(),
            excepted_by: Some("team-a: CHG-1 (expires 2999-12-31)".into()),
        },
        Finding {
            rule: "warn_unpriced_resource".into(),
            severity: Severity::Warn,
            set: "platform-soft".into(),
            enforcement: Enforcement::SoftMandatory,
            address: None,
            message: "unpriced".into(),
            excepted_by: None,
        },
    ];
    let s = report::sarif(&findings, None);
    assert_eq!(s["version"], "2.1.0");
    assert!(s["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "platform-broker");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3);
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["ruleId"], "deny_deprecated_offering");
    assert_eq!(results[0]["level"], "error");
    let idx = results[0]["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[idx]["id"], "deny_deprecated_offering");
    assert_eq!(
        results[0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "platform_postgres_database.legacy"
    );
    assert_eq!(results[1]["level"], "warning");
    assert_eq!(results[1]["suppressions"][0]["kind"], "external");
    assert_eq!(results[2]["level"], "note");
    assert!(results[2].get("locations").is_none());

    let x = report::junit(&findings);
    assert!(
        x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"),
        "{x}"
    );
    assert!(
        x.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""),
        "{x}"
    );
    assert!(
        x.contains("<testsuite name=\"platform-hard\" tests=\"1\" failures=\"1\""),
        "{x}"
    );
    assert!(x.contains("<testcase classname=\"platform-hard\" name=\"deny_deprecated_offering platform_postgres_database.legacy\">"), "{x}");
    assert!(
        x.contains("creates &lt;deprecated&gt; &amp; &quot;old&quot;"),
        "{x}"
    );
    assert!(!x.contains("<deprecated>"));
    assert!(
        x.contains("<skipped message=\"excepted by team-a: CHG-1"),
        "{x}"
    );
    assert_eq!(x.matches("<testcase ").count(), 3);
    assert_eq!(x.matches("</testcase>").count(), 3);
    assert_eq!(x.matches("<failure ").count(), 1);

    let empty = report::junit(&[]);
    assert!(empty.contains("tests=\"0\" failures=\"0\""));
    assert_eq!(report::sarif(&[], None)["runs"][0]["results"], json!([]));
}

/// A synthetic plan of `n` resources shaped like a real one.
fn synthetic_input(n: usize) -> Value {
    let mut changes = Vec::with_capacity(n);
    let mut catalog = Vec::with_capacity(n / 2);
    let mut costs = Vec::with_capacity(n);
    // Terraform repeats every resource in planned_values, prior_state and
    // configuration; a real input carries all of them.
    let mut planned = Vec::with_capacity(n);
    let mut prior = Vec::with_capacity(n);
    let mut configured = Vec::with_capacity(n);
    for i in 0..n {
        let actions = match i % 10 {
            0 => json!(["create"]),
            1 => json!(["delete", "create"]),
            2 => json!(["delete"]),
            3 | 4 => json!(["update"]),
            _ => json!(["no-op"]),
        };
        let platform = i % 2 == 0;
        let (ty, address) = if platform {
            (
                "platform_postgres_database",
                format!("module.m{}.platform_postgres_database.db{i}", i % 50),
            )
        } else {
            (
                "aws_s3_bucket",
                format!("module.m{}.aws_s3_bucket.b{i}", i % 50),
            )
        };
        let labels = if i % 7 == 0 {
            json!({"service": "s", "allow_destroy": "true"})
        } else {
            json!({"service": "s", "team": "checkout"})
        };
        let attrs = json!({
            "name": format!("r{i}"), "tier": "small", "labels": labels, "tags": labels,
            "connection_limit": 20, "extensions": ["citext"], "password": "sha256:1a2b3c4d",
        });
        let before = if i % 10 == 0 {
            Value::Null
        } else {
            attrs.clone()
        };
        let after = if i % 10 == 2 { Value::Null } else { attrs };
        let state_entry = |values: &Value| {
            json!({
                "address": address, "mode": "managed", "type": ty, "name": format!("r{i}"),
                "provider_name": "registry.terraform.io/platform/platform", "schema_version": 0,
                "values": values, "sensitive_values": {"password": true}
            })
        };
        if !after.is_null() {
            planned.push(state_entry(&after));
            configured.push(json!({
                "address": address, "mode": "managed", "type": ty, "name": format!("r{i}"),
                "provider_config_key": "platform", "schema_version": 0,
                "expressions": {"name": {"constant_value": format!("r{i}")},
                                "tier": {"constant_value": "small"},
                                "labels": {"references": ["local.labels"]}}
            }));
        }
        if !before.is_null() {
            prior.push(state_entry(&before));
        }
        changes.push(json!({
            "address": address, "mode": "managed", "type": ty, "name": format!("r{i}"),
            "provider_name": "registry.terraform.io/platform/platform",
            "change": {"actions": actions, "before": before, "after": after,
                       "after_unknown": {}, "before_sensitive": {"password": true}, "after_sensitive": {"password": true}}
        }));
        if platform {
            catalog.push(json!({
                "address": address, "offering": "postgres_database",
                "version": if i % 100 == 0 { "1.0.0" } else { "1.2.0" },
                "version_status": if i % 100 == 0 { "deprecated" } else { "current" },
                "owner_team": "checkout", "tier": if i % 20 == 0 { "standard" } else { "small" },
                "requires_approval": i % 20 == 0
            }));
        }
        costs.push(json!({"address": address, "before": 25, "after": 25, "delta": 0, "unpriced": !platform && i % 9 == 0}));
    }
    json!({
        "input_version": "1",
        "run": {"created_by": "ci", "commit_sha": "abc", "is_destroy": false, "refresh_only": false,
                "workspace": {"name": "big", "environment": "production", "tags": []}},
        "plan": {"format_version": "1.2", "terraform_version": "1.9.0", "resource_changes": changes,
                 "planned_values": {"root_module": {"resources": planned}},
                 "prior_state": {"format_version": "1.0", "terraform_version": "1.9.0",
                                 "values": {"root_module": {"resources": prior}}},
                 "configuration": {"provider_config": {"platform": {"name": "platform"}},
                                   "root_module": {"resources": configured}}},
        "cost": {"currency": "USD", "monthly_before": 125000, "monthly_after": 125900, "monthly_delta": 900, "resources": costs},
        "catalog": {"resources": catalog},
        "drift": {"resources": []}
    })
}

#[test]
fn bench_examples_on_10k_resource_plan() {
    let mut cfg = examples_config();
    // A measurement, not a limit: unoptimised test builds on a loaded
    // machine take longer than the examples' 2 s.
    cfg.timeout = Duration::from_secs(300);
    let t = Instant::now();
    let mut p = Policies::load(&cfg).unwrap();
    let load = t.elapsed();
    assert_eq!(p.interpreted_rules(), vec![], "every example rule compiles");
    let input = synthetic_input(10_000);
    let mut times = vec![];
    let mut last = None;
    // Enough runs that the minimum is a quiet one on a shared machine.
    for _ in 0..15 {
        let t = Instant::now();
        let d = p.evaluate(&input).unwrap();
        times.push(t.elapsed());
        last = Some(d);
    }
    let d = last.unwrap();
    times.sort();
    // The same sets in regorus's interpreter alone, side by side.
    p.set_interpreter_only(true);
    let mut interpreted = vec![];
    for _ in 0..7 {
        let t = Instant::now();
        let di = p.evaluate(&input).unwrap();
        interpreted.push(t.elapsed());
        assert_eq!(di, d, "the interpreter decides differently");
    }
    p.set_interpreter_only(false);
    interpreted.sort();
    // The share of one interpreted evaluation spent converting the input
    // into regorus values: the whole input (what serde would build) and
    // what the example policies can reach (`input.plan` keys they name).
    let t = Instant::now();
    let whole = <regorus::Value as serde::Deserialize>::deserialize(&input).unwrap();
    let serde_whole = t.elapsed();
    drop(whole);
    let t = Instant::now();
    let pruned = super::input::to_rego_pruned(&input, p.plan_keys());
    let ours = t.elapsed();
    drop(pruned);
    println!(
        "policy bench: input {} MB; interpreter's conversion via serde, whole input {serde_whole:?}; as evaluate does it (plan keys {:?}) {ours:?}",
        serde_json::to_vec(&input).unwrap().len() / 1_000_000,
        p.plan_keys()
    );
    let mut counts = std::collections::BTreeMap::new();
    for f in &d.findings {
        *counts.entry(f.rule.as_str()).or_insert(0) += 1;
    }
    println!(
        "policy bench: 10,000 resources, {} sets, load {:?}; evaluate min {:?} median {:?} max {:?} (target < 100 ms); verdict {:?}; findings {:?}",
        cfg.sets.len(),
        load,
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        d.verdict,
        counts
    );
    println!(
        "policy bench: compiled min {:?} | interpreter alone min {:?} median {:?} | interpreter / compiled {:.2}x",
        times[0],
        interpreted[0],
        interpreted[interpreted.len() / 2],
        interpreted[0].as_secs_f64() / times[0].as_secs_f64()
    );
    assert_eq!(d.verdict, Verdict::Denied);
    assert_eq!(counts.get("deny_deprecated_offering"), Some(&100)); // i % 100 == 0 are creates
}

#[test]
fn load_errors_name_the_builtin_at_its_call() {
    let cases = [
        (
            "deny_net contains \"x\" if http.send({\"method\": \"get\", \"url\": input.u})\n",
            "p.rego:3:26: error: `http.send` is refused in policies: it reaches the network",
        ),
        (
            "deny_rand contains n if n := rand.intn(\"k\", 10)\n",
            "p.rego:3:30: error: `rand.intn` is refused",
        ),
        (
            "deny_hash contains h if h := crypto.md5(input.s)\n",
            "p.rego:3:30: error: `crypto.md5` is an OPA builtin the broker does not provide",
        ),
        (
            "deny_typo contains h if h := sprintff(\"%s\", [input.s])\n",
            "p.rego:3:30: error: `sprintff` is neither a builtin nor a function defined in this policy set",
        ),
        (
            "deny_deep contains p if {\n\tsome r in input.rs\n\tp := [x | x := r.tags[_]; not lib_missing.f(x)]\n}\n",
            "p.rego:5:35: error: `lib_missing.f` is neither",
        ),
    ];
    for (rule, want) in cases {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "p.rego",
            &format!("package platform.t\n\n{rule}"),
        );
        let cfg = config(vec![set("t", tmp.path().into(), Enforcement::Advisory)]);
        let e = Policies::load(&cfg).unwrap_err().to_string();
        assert!(e.contains(want), "{rule}\n got: {e}\nwant: {want}");
        assert!(!e.contains("unsafe"), "{e}");
    }
}

#[test]
fn walk_time_and_net_builtins_evaluate_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "v1/p.rego",
        r#"
package platform.b

deny_walk contains msg if {
	walk(input.doc, [path, value])
	value == "secret"
	msg := concat(".", [sprintf("%v", [p]) | some p in path])
}

deny_walk_fn contains count(paths) if {
	paths := [path | [path, value] := walk(input.doc); value == "secret"]
}

deny_walk_in_head contains count([p | [p, v] := walk(input.doc); v == "secret"]) if true

deny_cidr contains cidr if {
	some cidr in input.cidrs
	net.cidr_contains(cidr, "10.1.2.3")
}

deny_expired contains name if {
	some name, until in input.exceptions
	time.parse_rfc3339_ns(until) < time.parse_rfc3339_ns("2026-01-01T00:00:00Z")
}
"#,
    );
    write(
        tmp.path(),
        "v0/p.rego",
        r#"
package platform.b0

deny_walk[msg] {
	walk(input.doc, [path, value])
	value == "secret"
	msg := concat(".", [sprintf("%v", [p]) | p := path[_]])
}
"#,
    );
    let mut v0 = set("v0", tmp.path().join("v0"), Enforcement::Advisory);
    v0.rego_v0 = true;
    let cfg = config(vec![
        set("v1", tmp.path().join("v1"), Enforcement::Advisory),
        v0,
    ]);
    let input = json!({
        "doc": {"a": {"b": "secret", "c": ["x", "secret"]}},
        "cidrs": ["10.0.0.0/8", "192.168.0.0/16"],
        "exceptions": {"old": "2025-06-01T00:00:00Z", "new": "2027-01-01T00:00:00Z"},
    });
    for interpreter in [false, true] {
        let mut p = Policies::load(&cfg).unwrap();
        p.set_interpreter_only(interpreter);
        let d = p.evaluate(&input).unwrap();
        let mut got: Vec<(String, String)> = d
            .findings
            .iter()
            .map(|f| (format!("{}/{}", f.set, f.rule), f.message.clone()))
            .collect();
        got.sort();
        let want: Vec<(String, String)> = [
            ("v0/deny_walk", "a.b"),
            ("v0/deny_walk", "a.c.1"),
            ("v1/deny_cidr", "10.0.0.0/8"),
            ("v1/deny_expired", "old"),
            ("v1/deny_walk", "a.b"),
            ("v1/deny_walk", "a.c.1"),
            ("v1/deny_walk_fn", "2"),
            ("v1/deny_walk_in_head", "2"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want, "interpreter only: {interpreter}");
    }
}

/// A function with two arguments and an `else`: regorus's interpreter
/// leaves it undefined here, OPA 1.x (and the compiled evaluator) give "a".
#[test]
fn else_on_a_two_argument_function_gives_opas_answer() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "p.rego",
        "package platform.e\n\n\
         deny_pick contains [x, pick(x, input.n)] if { some x in input.items }\n\n\
         pick(a, b) := a if { a == b } else := b if { is_number(b) }\n",
    );
    let cfg = config(vec![set("e", tmp.path().into(), Enforcement::Advisory)]);
    let p = Policies::load(&cfg).unwrap();
    assert!(p.interpreted_rules().is_empty());
    let d = p
        .evaluate(&json!({"items": [{"name": 1}, "a", 0.5], "n": "a"}))
        .unwrap();
    let messages: Vec<&str> = d.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages, [r#"["a","a"]"#], "{d:?}");
}

/// Values checked against OPA 1.x (`opa eval`, v0 compatibility for the
/// deprecated ones).
#[test]
fn added_and_deprecated_builtins_give_opas_answers() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "v0/p.rego",
        r#"
package platform.old

warn_values[v] {
	v := [
		any([false, true]), any(set()), all([true, true]), all([true, false]), all([]),
		re_match("^a+b$", "aab"), re_match("x", "aab"),
		set_diff({1, 2, 3}, {2}), cast_array({2, 1}), cast_set([1, 1, 2]),
		net.cidr_overlap("10.0.0.0/8", "10.1.2.3"), net.cidr_overlap("10.0.0.0/8", "11.0.0.1"),
		net.cidr_intersects("10.0.0.0/8", "10.1.0.0/16"), net.cidr_intersects("10.0.0.0/16", "10.1.0.0/16"),
		net.cidr_intersects("2001:db8::/32", "2001:db8:1::/48"),
		crypto.sha256("abc"),
	]
}
"#,
    );
    write(
        tmp.path(),
        "v1/p.rego",
        "package platform.new\n\nwarn_any contains \"x\" if any([true])\n",
    );
    let mut v0 = set("v0", tmp.path().join("v0"), Enforcement::Advisory);
    v0.rego_v0 = true;
    let d = Policies::load(&config(vec![v0]))
        .unwrap()
        .evaluate(&json!({}))
        .unwrap();
    let want = json!([
        true,
        false,
        true,
        false,
        true,
        true,
        false,
        [1, 3],
        [1, 2],
        [1, 2],
        true,
        false,
        true,
        false,
        true,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    ]);
    assert_eq!(d.findings.len(), 1, "{d:?}");
    assert_eq!(d.findings[0].message, want.to_string());

    let e = Policies::load(&config(vec![set(
        "v1",
        tmp.path().join("v1"),
        Enforcement::Advisory,
    )]))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("p.rego:3:26: error: `any` is a deprecated builtin, refused in Rego v1"),
        "{e}"
    );
}

#[test]
fn functions_called_through_imports_and_data_paths_resolve() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "lib.rego",
        "package platform.lib\n\nshout(s) := upper(s)\n\ndefault quiet(_) := \"\"\n",
    );
    write(
        tmp.path(),
        "p.rego",
        "package platform.t\n\nimport data.platform.lib\nimport data.platform.lib as l2\n\n\
         deny_a contains lib.shout(input.s)\n\n\
         deny_b contains l2.shout(input.s)\n\n\
         deny_c contains data.platform.lib.shout(input.s)\n\n\
         deny_d contains own(input.s)\n\n\
         own(s) := concat(\"\", [s, lib.quiet(s)])\n",
    );
    let cfg = config(vec![set("t", tmp.path().into(), Enforcement::Advisory)]);
    let d = Policies::load(&cfg)
        .unwrap()
        .evaluate(&json!({"s": "hi"}))
        .unwrap();
    let messages: Vec<&str> = d.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages, ["HI", "HI", "HI", "hi"], "{d:?}");
}

#[test]
fn plan_keys_a_policy_names_reach_it_and_computed_access_gets_the_whole_plan() {
    let input = json!({
        "plan": {"resource_changes": [], "planned_values": {"outputs": {"x": {"value": 1}}},
                 "prior_state": {"values": {}}},
    });
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "named.rego",
        "package platform.named\n\nwarn_named contains \"seen\" if input.plan.planned_values.outputs.x.value == 1\n\nwarn_pruned contains \"prior_state visible\" if input.plan[\"prior_state\"]\n",
    );
    // A computed key (`input.plan["prior_state"]`) anywhere in the bundle
    // makes the whole plan reachable.
    let named = Policies::load(&config(vec![set(
        "named",
        tmp.path().into(),
        Enforcement::Advisory,
    )]));
    let d = named.unwrap().evaluate(&input).unwrap();
    let rules: Vec<&str> = d.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["warn_named", "warn_pruned"], "{d:?}");

    // Only literal paths: the named key is there, whole, for any use.
    let only = tempfile::tempdir().unwrap();
    write(
        only.path(),
        "only.rego",
        "package platform.only\n\nwarn_named contains \"seen\" if input.plan.planned_values.outputs.x.value == 1\n\nwarn_keys contains k if some k, _ in object.filter(input.plan.planned_values, [\"outputs\"])\n",
    );
    let p = Policies::load(&config(vec![set(
        "only",
        only.path().into(),
        Enforcement::Advisory,
    )]))
    .unwrap();
    assert_eq!(
        p.plan_keys(),
        &super::input::PlanKeys::Only(["planned_values".to_owned()].into())
    );
    let d = p.evaluate(&input).unwrap();
    let messages: Vec<&str> = d.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages, ["outputs", "seen"], "{d:?}");
}

// ---------------------------------------------------------------------------
// The compiled evaluator against regorus's interpreter.

/// Evaluates `input` with the compiled evaluator and with the interpreter
/// alone; the outcomes (decision, or error text) must be identical.
fn assert_same_both_ways(p: &mut Policies, input: &Value, what: &str) {
    let outcome = |r: Result<Decision, PolicyError>| match r {
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    };
    p.set_interpreter_only(false);
    let compiled = outcome(p.evaluate(input));
    p.set_interpreter_only(true);
    let interpreted = outcome(p.evaluate(input));
    p.set_interpreter_only(false);
    assert_eq!(
        compiled, interpreted,
        "compiled and interpreted evaluation differ on {what}: input {input}"
    );
}

/// Rules covering the constructs the compiled evaluator takes, each
/// yielding values derived from the input so that differences show.
const DIFFERENTIAL_POLICY: &str = r#"package platform.diff

deny_iter contains x if { x := input.items[_] }

deny_iter_key contains [i, x] if { x := input.items[i] }

deny_obj_iter contains [k, v] if { some k, v in input.obj }

deny_in contains x if {
	some x in input.items
	x in {"a", 1, true, null}
}

deny_not contains x if {
	some x in input.items
	not x == "a"
}

deny_not_iter contains "no a" if { not input.items[_] == "a" }

deny_cmp contains [x, y] if {
	some x in input.items
	some y in input.items
	x < y
}

deny_cmp_str contains x if {
	some x in input.items
	x >= "m"
}

deny_eq_num contains x if {
	some x in input.items
	x == 1
}

deny_objget contains v if { v := object.get(input.obj, ["a", "b"], "default") }

deny_objget_key contains v if { v := object.get(input.obj, "a", null) }

deny_count contains n if { n := count(input.items) }

deny_count_obj contains n if { n := count(input.obj) }

deny_sprintf contains s if {
	some x in input.items
	s := sprintf("%v|%s|%d", [x, x, 1])
}

level := "high" if input.n > 10

level := "low" if input.n <= 10

deny_level contains level if level

conflict := 1 if input.c1

conflict := 2 if input.c2

deny_conflict contains conflict if input.c1

f(x) := y if { y := x.a }

f(x) := "none" if { is_object(x); not x.a }

g(1) := "one"

g(x) := "str" if is_string(x)

deny_fn contains [f(x), g(x)] if { some x in input.items }

deny_fn_undef contains v if { v := f(input.missing) }

deny_array_compr contains c if { c := [x | some x in input.items; is_string(x)] }

deny_set_compr contains c if { c := {x | some x in input.items} }

deny_object_compr contains c if { c := {k: v | some k, v in input.obj} }

deny_keys_in_order contains ks if { ks := [k | some k, _ in input.obj] }

by_name[x.name] := x if {
	some x in input.items
	is_string(x.name)
}

deny_partial_object contains v if { v := by_name[input.s] }

deny_partial_object_all contains by_name if input.c1

deny_unify contains x if { x = input.items[0] }

deny_unify_both contains "same" if { input.items[0] = input.items[1] }

deny_arith contains y if {
	some x in input.items
	is_number(x)
	y := (x * 2) + 1
}

deny_arith_div contains y if { y := input.n / 4 }

deny_set_union contains s if { s := {x | some x in input.items} | {"z"} }

deny_set_inter contains s if { s := {x | some x in input.items} & {"a", 1} }

default mode := "off"

mode := input.mode

deny_default contains mode if true

deny_key_in contains i if {
	some i in [0, 1, 2]
	i, "a" in input.items
}

deny_index_scalar contains v if { v := input.items[0].x }

deny_to_number contains n if { n := to_number(input.s) }

deny_types contains [x, is_object(x), is_string(x), is_array(x), is_number(x), is_boolean(x), is_null(x), is_set(x)] if {
	some x in input.items
}

deny_prefix contains x if {
	some x in input.items
	startswith(x, "a")
}

deny_suffix contains s if {
	s := input.s
	endswith(s, "c")
}

deny_some_var contains x if {
	some x
	input.items[x] == "a"
}

deny_array_undef contains v if { v := [input.missing, 1] }

deny_membership_undef contains "false" if {
	r := input.missing in {1}
	r == false
}

letters := {"a", "b"}

deny_set_index contains x if {
	some x in input.items
	letters[x]
}

deny_object_literal contains o if { o := {"v": input.items, "n": count(input.items), "s": input.s} }

deny_truthy contains [x] if {
	some x in input.items
	x
}

deny_ne contains x if {
	some x in input.items
	x != "a"
}

items := ["shadowed"]

deny_shadow contains x if {
	items := input.items
	x := items[0]
}

deny_rule_items contains x if { x := items[_] }

deny_concat contains s if { s := concat(",", [x | some x in input.items; is_string(x)]) }

deny_nested_compr contains n if {
	n := count([y | some x in input.items; y := [z | some z in input.items; z == x]])
}

deny_dot_on_array contains v if { v := input.items.a }

deny_bool_result contains r if { r := input.n > 3 }

deny_string_index contains v if { v := input.s[0] }

deny_object_with_undefined contains o if { o := {"a": input.missing} }

deny_obj_values_in contains x if {
	some x in input.items
	x in input.obj
}

deny_complete_object contains true if { input.obj == {"a": 1} }

deny_array_equal contains true if { input.items == ["a", 1] }

deny_built_types contains [v, is_null(v), is_string(v), is_number(v), is_boolean(v), is_set(v)] if {
	some v in [null, "s", 1, false, {1}, input.s]
}

deny_every contains "all strings" if {
	every x in input.items { is_string(x) }
}

deny_every_kv contains k if {
	some k, _ in input.obj
	every i, x in input.items {
		x != k
		i < 3
	}
}

deny_every_undefined contains "vacuous" if {
	every x in input.missing { x == 1 }
}

deny_every_nested contains "nested" if {
	every x in input.items {
		every y in input.items { x == y }
	}
}

deny_every_some contains x if {
	some x in input.items
	every k, v in input.obj { v != x }
}

deny_built_index contains v if {
	some x in input.items
	v := {"a": [x], "b": {x}}[input.s]
}

deny_else_rule contains x if { x := size_class }

size_class := "none" if {
	not input.items
} else := "big" if {
	count(input.items) > 3
} else := "small" if {
	count(input.items) > 0
} else := "empty"

deny_else_fn contains [x, kind(x)] if { some x in input.items }

kind(x) := "string" if {
	is_string(x)
} else := "one" if {
	x == 1
} else := "other"

deny_else_bare contains x if { x := flag }

flag if { input.c1 == true } else = false if { input.c2 == true }


deny_memo_scalar contains [x, n] if {
	some x in input.items
	n := count([y | some y in input.items; y == x])
}

deny_memo_const contains n if {
	some x in input.items
	x != null
	n := count({y | some y in input.items})
}

deny_memo_object contains [x, n] if {
	some x in input.items
	n := count([k | some k, _ in x])
}

deny_memo_outer_some contains [x, m] if {
	some x in input.items
	m := {k: v | some k, v in input.obj; v == x}
}

deny_walk_numbers contains p if {
	walk(input.obj, [p, v])
	is_number(v)
}

deny_walk_order contains ps if {
	ps := [p | walk(input.items, [p, _])]
}

deny_walk_strings contains v if {
	walk(input, [_, v])
	is_string(v)
	startswith(v, "a")
}

deny_walk_fn contains count(ps) if {
	ps := [p | [p, v] := walk(input.obj); v != null]
}
"#;

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// A random scalar or small container, written as JSON text so that
/// numbers keep their spelling (`1.0`, big integers) as a plan would.
fn random_json(state: &mut u64, depth: u32) -> String {
    const SCALARS: &[&str] = &[
        "\"a\"",
        "\"b\"",
        "\"abc\"",
        "\"z\"",
        "\"m\"",
        "\"\"",
        "1",
        "1.0",
        "2",
        "-3",
        "0.5",
        "1e3",
        "123456789012345678901234567890",
        "true",
        "false",
        "null",
        "\"1\"",
    ];
    const KEYS: &[&str] = &["a", "b", "name", "x", "owner", "c"];
    let pick = xorshift(state);
    if depth == 0 || !pick.is_multiple_of(4) {
        return SCALARS[(pick / 4) as usize % SCALARS.len()].to_string();
    }
    let len = (xorshift(state) % 4) as usize;
    if pick.is_multiple_of(8) {
        let items: Vec<String> = (0..len).map(|_| random_json(state, depth - 1)).collect();
        format!("[{}]", items.join(","))
    } else {
        let fields: Vec<String> = (0..len)
            .map(|_| {
                let k = KEYS[xorshift(state) as usize % KEYS.len()];
                format!("\"{k}\":{}", random_json(state, depth - 1))
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

fn random_input(state: &mut u64) -> Value {
    let items: Vec<String> = (0..(xorshift(state) % 6))
        .map(|_| random_json(state, 2))
        .collect();
    let maybe = |state: &mut u64, key: &str, text: String| {
        if xorshift(state).is_multiple_of(5) {
            String::new()
        } else {
            format!(",\"{key}\":{text}")
        }
    };
    let mut text = format!("{{\"items\":[{}]", items.join(","));
    let obj = random_json(state, 2);
    text += &maybe(state, "obj", obj);
    let n = random_json(state, 0);
    text += &maybe(state, "n", n);
    let s = random_json(state, 0);
    text += &maybe(state, "s", s);
    let c1 = random_json(state, 0);
    text += &maybe(state, "c1", c1);
    let c2 = random_json(state, 0);
    text += &maybe(state, "c2", c2);
    let mode = random_json(state, 0);
    text += &maybe(state, "mode", mode);
    text += "}";
    serde_json::from_str(&text).unwrap()
}

/// The ids of the rules the compiled evaluator leaves to the interpreter.
fn interpreted_ids(p: &Policies) -> Vec<String> {
    p.interpreted_rules()
        .into_iter()
        .map(|(_, r, _)| r)
        .collect()
}

#[test]
fn compiled_evaluator_agrees_with_the_interpreter_on_every_construct() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "diff.rego", DIFFERENTIAL_POLICY);
    let cfg = config(vec![set("diff", tmp.path().into(), Enforcement::Advisory)]);
    let mut p = Policies::load(&cfg).unwrap();
    // Every rule above is in the compiled subset but one: regorus hoists a
    // loop out of `not`, and is left to read that its own way.
    let interpreted = interpreted_ids(&p);
    assert_eq!(interpreted, ["deny_not_iter"]);
    let fixed = [
        json!({}),
        json!({"items": ["a", 1, true, null, "b"], "obj": {"a": {"b": 2}, "c": 1}, "n": 12, "s": "abc", "c1": true, "mode": "on"}),
        json!({"items": [{"name": "x", "a": 1}, {"name": "y"}, "a"], "obj": {"a": 1}, "n": 3, "s": "x"}),
        json!({"items": "not an array", "obj": [1, 2], "n": "ten", "s": 5}),
        json!({"items": [], "obj": {}, "c1": true, "c2": true}),
        json!({"items": ["a", 1], "obj": {"a": 1}, "s": "abc", "c2": false}),
    ];
    for (i, input) in fixed.iter().enumerate() {
        assert_same_both_ways(&mut p, input, &format!("fixed input {i}"));
    }
    // Rule by rule, so that one rule's error does not hide the others.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let (mut settled, mut handed_over) = (0, 0);
    for i in 0..1500 {
        let input = random_input(&mut state);
        let (s, h, diffs) = p.compare_engines(&input);
        assert!(diffs.is_empty(), "random input {i} {input}: {diffs:#?}");
        settled += s;
        handed_over += h;
        if i % 10 == 0 {
            assert_same_both_ways(&mut p, &input, &format!("random input {i}"));
        }
    }
    println!(
        "differential: {settled} rule results settled by the compiled evaluator, {handed_over} handed over although the interpreter succeeded"
    );
    assert!(settled > 1500 * 40, "too few results settled: {settled}");
    assert!(
        handed_over * 100 < settled,
        "too many handed over: {handed_over}"
    );
}

#[test]
fn rules_outside_the_compiled_subset_are_left_to_the_interpreter() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "p.rego",
        "package platform.out\n\n\
         import data.platform.lib\n\n\
         deny_imported contains x if { x := input.items[_] }\n",
    );
    write(
        tmp.path(),
        "q.rego",
        "package platform.other\n\n\
         deny_with contains x if { x := input.a with input.a as 1 }\n\n\
         deny_not_loop contains \"no 2\" if { not input.items[_] == 2 }\n\n\
         deny_data contains x if { x := data.platform.other.ok }\n\n\
         deny_uses_else contains x if { x := input.b; helper }\n\n\
         helper := 1 if { input.b == 3 } else := 2\n\n\
         deny_ok contains x if { x := input.items[_] }\n\n\
         ok := 1\n",
    );
    write(
        tmp.path(),
        "lib.rego",
        "package platform.lib\n\nvalue := 1\n",
    );
    // A long literal of non-constants (evaluation would recurse along it).
    let long = vec!["input.b"; 65].join(", ");
    write(
        tmp.path(),
        "long.rego",
        &format!(
            "package platform.long\n\ndeny_long_literal contains count(x) if {{ x := [{long}] }}\n"
        ),
    );
    let cfg = config(vec![set("out", tmp.path().into(), Enforcement::Advisory)]);
    let mut p = Policies::load(&cfg).unwrap();
    let interpreted = interpreted_ids(&p);
    assert_eq!(
        interpreted,
        ["deny_long_literal", "deny_not_loop", "deny_with"]
    );
    for input in [
        json!({"items": [1, 1], "a": 2, "b": 3}),
        json!({"items": [1, 2]}),
        json!({}),
    ] {
        assert_same_both_ways(&mut p, &input, "a mixed set");
    }
    let d = p
        .evaluate(&json!({"items": [1, 1], "a": 2, "b": 3}))
        .unwrap();
    let rules: BTreeSet<&str> = d.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(
        rules,
        BTreeSet::from([
            "deny_data",
            "deny_imported",
            "deny_long_literal",
            "deny_not_loop",
            "deny_ok",
            "deny_uses_else",
            "deny_with"
        ])
    );
}

#[test]
fn compiled_evaluator_agrees_with_the_interpreter_on_the_examples() {
    let mut p = Policies::load(&examples_config()).unwrap();
    assert_eq!(p.interpreted_rules(), vec![]);
    for n in [0, 1, 7, 60, 500] {
        let input = synthetic_input(n);
        assert_same_both_ways(&mut p, &input, &format!("synthetic plan of {n}"));
        // Staging instead of production, and resource changes with missing parts.
        let mut other = input.clone();
        other["run"]["workspace"]["environment"] = json!("staging");
        if let Some(changes) = other["plan"]["resource_changes"].as_array_mut() {
            for (i, rc) in changes.iter_mut().enumerate() {
                match i % 4 {
                    0 => rc["change"]["after"] = Value::Null,
                    1 => rc["change"]["before"] = json!({"labels": {"allow_destroy": "true"}}),
                    2 => {
                        rc.as_object_mut().unwrap().remove("mode");
                    }
                    _ => rc["change"]["actions"] = json!("delete"),
                }
            }
        }
        assert_same_both_ways(&mut p, &other, &format!("altered synthetic plan of {n}"));
    }
}

/// Brackets nested as operands (`-{`) make the HCL parser's time exponential
/// (fuzz finding `policy_config`): refused before parsing, at once, with the
/// place. The same guard runs for the broker configuration, the price book and
/// the catalog.
#[test]
fn deeply_nested_operands_refused_before_parsing() {
    let data = include_bytes!(
        "../../../fuzz/regressions/policy_config/timeout-c4254762d31a8aab9253ac17dd126d310efdf412"
    );
    let text = String::from_utf8_lossy(data);
    let started = std::time::Instant::now();
    let error = PolicyConfig::parse(&text, Path::new("/nonexistent"), Path::new("policy.hcl"))
        .expect_err("refused");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert!(error.to_string().contains("nested too deeply"), "{error}");
    let deep = format!("x = 1\na = {}", "-{a -b ".repeat(20));
    let broker =
        crate::config::BrokerConfig::parse(&deep, Path::new("/etc"), Path::new("broker.hcl"))
            .expect_err("refused");
    assert!(broker.to_string().contains("broker.hcl:2:"), "{broker}");
    let book = crate::cost::PriceBook::parse(&deep).expect_err("refused");
    assert!(book.contains("2:"), "{book}");
}

/// Compiled evaluator vs regorus's interpreter, rule by rule, on 10,000
/// resources. A measurement (run in release, `--ignored --nocapture`).
#[test]
#[ignore]
fn rule_speed_compiled_vs_interpreter() {
    let rules = [
        (
            "collect_objects",
            "warn_x contains count(rs) if {\n\trs := [r | some r in input.plan.resource_changes; r.type == \"aws_s3_bucket\"]\n}\n",
        ),
        (
            "collect_set_objects",
            "warn_x contains count(rs) if {\n\trs := {r | some r in input.plan.resource_changes; \"create\" in r.change.actions}\n}\n",
        ),
        (
            "object_compr",
            "warn_x contains count(m) if {\n\tm := {r.address: r.change.after | some r in input.plan.resource_changes; r.change.after != null}\n}\n",
        ),
        (
            "per_resource_sprintf",
            "warn_x contains msg if {\n\tsome r in input.plan.resource_changes\n\tr.type == \"aws_s3_bucket\"\n\tnot r.change.after.tags.team\n\tmsg := sprintf(\"%s has no team tag\", [r.address])\n}\n",
        ),
        (
            "walk_tags",
            "warn_x contains count(paths) if {\n\tpaths := [p | walk(input.plan.planned_values, [p, v]); is_string(v); v == \"checkout\"]\n}\n",
        ),
        (
            "else_chain",
            "warn_x contains msg if {\n\tsome r in input.plan.resource_changes\n\tlevel(r) == \"high\"\n\tmsg := r.address\n}\n\nlevel(r) := \"high\" if {\n\t\"delete\" in r.change.actions\n} else := \"low\"\n",
        ),
        (
            "every_tags",
            "warn_x contains r.address if {\n\tsome r in input.plan.resource_changes\n\tr.change.after != null\n\tevery k, _ in r.change.after.tags { k != \"owner\" }\n}\n",
        ),
    ];
    let input = synthetic_input(10_000);
    for (name, rule) in rules {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "p.rego",
            &format!("package platform.b\n\n{rule}"),
        );
        let mut cfg = config(vec![set(name, tmp.path().into(), Enforcement::Advisory)]);
        cfg.timeout = Duration::from_secs(300);
        let mut p = Policies::load(&cfg).unwrap();
        let compiled = p.interpreted_rules().is_empty();
        let mut time = |interp: bool| {
            p.set_interpreter_only(interp);
            let mut best = Duration::MAX;
            let mut last = None;
            for _ in 0..5 {
                let t = Instant::now();
                let d = p.evaluate(&input).unwrap();
                best = best.min(t.elapsed());
                last = Some(d);
            }
            (best, last.unwrap())
        };
        let (c, dc) = time(false);
        let (i, di) = time(true);
        assert_eq!(dc, di, "{name}");
        println!(
            "rule speed: {name:<22} compiled {:>5}  fast {c:>10.1?}  interpreter {i:>10.1?}  interpreter/fast {:.2}x",
            if compiled { "yes" } else { "no" },
            i.as_secs_f64() / c.as_secs_f64()
        );
    }
}
