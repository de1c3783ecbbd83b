//! The broker's SARIF: physical locations for every address form, and the
//! whole log checked against the OASIS SARIF 2.1.0 JSON schema
//! (`fixtures/sarif/sarif-schema-2.1.0.json`, see the README there). These
//! run without terraform; `hard_mandatory_deny` checks a real `plan --sarif`.

use std::path::Path;
use std::sync::LazyLock;

use broker::locate::Locator;
use broker::policy::report;
use broker::policy::{Enforcement, Finding, Severity};
use serde_json::{Value as Json, json};

const SCHEMA: &str = include_str!("../fixtures/sarif/sarif-schema-2.1.0.json");

/// A checker for the JSON Schema draft-04 keywords the SARIF schema uses.
/// Any other keyword, `$ref` or `format` is a test failure, so nothing in
/// the schema goes unchecked.
fn check(schema: &Json, root: &Json, value: &Json, path: &str, errors: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        panic!("{path}: schema is not an object");
    };
    if let Some(reference) = object.get("$ref").and_then(Json::as_str) {
        // draft-04: a `$ref` replaces its siblings (here only descriptions).
        let name = reference
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        let target = &root["definitions"][name];
        assert!(!target.is_null(), "dangling $ref {reference}");
        return check(target, root, value, path, errors);
    }
    for (keyword, rule) in object {
        match keyword.as_str() {
            "$schema" | "id" | "definitions" | "title" | "description" | "default" => {}
            "type" => {
                let types: Vec<&str> = match rule {
                    Json::String(t) => vec![t.as_str()],
                    Json::Array(ts) => ts.iter().filter_map(Json::as_str).collect(),
                    _ => panic!("bad type keyword at {path}"),
                };
                let matches = |t: &str| match t {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    "number" => value.is_number(),
                    "integer" => {
                        value.is_i64()
                            || value.is_u64()
                            || value.as_f64().is_some_and(|n| n.fract() == 0.0)
                    }
                    other => panic!("unknown type {other}"),
                };
                if !types.iter().any(|t| matches(t)) {
                    errors.push(format!("{path}: expected {types:?}, got {value}"));
                }
            }
            "enum" => {
                if !rule.as_array().expect("enum array").contains(value) {
                    errors.push(format!("{path}: {value} not in {rule}"));
                }
            }
            "required" => {
                if let Some(map) = value.as_object() {
                    for key in rule.as_array().expect("required array") {
                        let key = key.as_str().expect("required key");
                        if !map.contains_key(key) {
                            errors.push(format!("{path}: missing required {key}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(map) = value.as_object() {
                    for (key, sub) in rule.as_object().expect("properties object") {
                        if let Some(v) = map.get(key) {
                            check(sub, root, v, &format!("{path}.{key}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(map) = value.as_object() {
                    let known = object.get("properties").and_then(Json::as_object);
                    for (key, v) in map {
                        if known.is_some_and(|k| k.contains_key(key)) {
                            continue;
                        }
                        match rule {
                            Json::Bool(false) => {
                                errors.push(format!("{path}: unexpected key {key}"))
                            }
                            Json::Bool(true) => {}
                            sub => check(sub, root, v, &format!("{path}.{key}"), errors),
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    assert!(rule.is_object(), "{path}: tuple `items` unsupported");
                    for (i, item) in items.iter().enumerate() {
                        check(rule, root, item, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            "minItems" => {
                let min = rule.as_u64().expect("minItems") as usize;
                if value.as_array().is_some_and(|a| a.len() < min) {
                    errors.push(format!("{path}: fewer than {min} items"));
                }
            }
            "uniqueItems" => {
                if let (Some(items), Some(true)) = (value.as_array(), rule.as_bool()) {
                    for (i, a) in items.iter().enumerate() {
                        if items[..i].contains(a) {
                            errors.push(format!("{path}[{i}]: duplicate item {a}"));
                        }
                    }
                }
            }
            "minimum" | "maximum" => {
                let bound = rule.as_f64().expect("numeric bound");
                if let Some(n) = value.as_f64() {
                    let ok = if keyword == "minimum" {
                        n >= bound
                    } else {
                        n <= bound
                    };
                    if !ok {
                        errors.push(format!("{path}: {n} violates {keyword} {bound}"));
                    }
                }
            }
            "pattern" => {
                // The schema's patterns are plain ECMA-262 that `regex`
                // reads the same way; unanchored, as JSON Schema means.
                let re = regex::Regex::new(rule.as_str().expect("pattern")).expect("pattern");
                if let Some(s) = value.as_str()
                    && !re.is_match(s)
                {
                    errors.push(format!("{path}: {s:?} does not match {re}"));
                }
            }
            "format" => {
                let format = rule.as_str().expect("format");
                if let Some(s) = value.as_str()
                    && !format_ok(format, s)
                {
                    errors.push(format!("{path}: {s:?} is not a {format}"));
                }
            }
            "anyOf" | "oneOf" => {
                let passing = rule
                    .as_array()
                    .expect("anyOf/oneOf array")
                    .iter()
                    .filter(|sub| {
                        let mut sub_errors = Vec::new();
                        check(sub, root, value, path, &mut sub_errors);
                        sub_errors.is_empty()
                    })
                    .count();
                let ok = if keyword == "anyOf" {
                    passing >= 1
                } else {
                    passing == 1
                };
                if !ok {
                    errors.push(format!("{path}: {passing} branch(es) of {keyword} match"));
                }
            }
            other => panic!("the schema uses `{other}` at {path}: teach this checker"),
        }
    }
}

/// The `format`s the schema uses, checked as draft-04 defines them.
fn format_ok(format: &str, s: &str) -> bool {
    static URI: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$").expect("regex"));
    static DATE_TIME: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
            .expect("regex")
    });
    match format {
        // RFC 3986: a scheme, then no whitespace.
        "uri" => URI.is_match(s),
        "uri-reference" => !s.chars().any(char::is_whitespace),
        "date-time" => DATE_TIME.is_match(s),
        other => panic!("unknown format {other}: teach this checker"),
    }
}

/// Errors of `log` against the SARIF 2.1.0 schema; empty when it is valid.
pub fn schema_errors(log: &Json) -> Vec<String> {
    let schema: Json = serde_json::from_str(SCHEMA).expect("schema parses");
    assert_eq!(
        schema["id"],
        "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    );
    let mut errors = Vec::new();
    check(&schema, &schema, log, "sarif", &mut errors);
    errors
}

#[track_caller]
pub fn assert_valid(log: &Json) {
    let errors = schema_errors(log);
    assert!(
        errors.is_empty(),
        "SARIF fails its schema: {errors:#?}\n{log:#}"
    );
}

/// 1-based line of the first line of `text` that starts with `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(needle))
        .unwrap_or_else(|| panic!("{needle} not in:\n{text}"))
        + 1
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

const MAIN_TF: &str = r#"terraform {
  required_version = ">= 1.0"
}

# A bucket; this comment is not the block.
resource "aws_s3_bucket" "logs" {
  bucket = "logs"
}

resource "aws_s3_bucket" "data" {
  bucket = "data"
}

resource "aws_s3_bucket" "replica" {
  count  = 2
  bucket = "replica-${count.index}"
}
"#;

const MORE_TF: &str = r#"data "aws_caller_identity" "me" {}

  resource "aws_iam_role" "role" {
  for_each = toset(["reader", "writer"])
  name     = each.key
}

module "store" {
  source = "./modules/store"
}

module "registry" {
  source  = "terraform-aws-modules/s3-bucket/aws"
  version = "4.1.2"
}

module "git" {
  source = "git::https://example.com/modules.git//bucket"
}
"#;

const STORE_TF: &str = r#"variable "name" {
  default = "store"
}

resource "aws_s3_bucket" "inner" {
  bucket = var.name
}

module "queue" {
  source = "../queue"
}
"#;

const QUEUE_TF: &str = r#"resource "aws_sqs_queue" "q" {
  for_each = toset(["a.b", "c"])
  name     = each.key
}
"#;

/// A repository with the configuration in `infra/`; returns the tempdir.
fn fixture() -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix("broker-sarif-")
        .tempdir()
        .expect("tempdir");
    let infra = tmp.path().join("infra");
    write(&infra.join("main.tf"), MAIN_TF);
    write(&infra.join("more.tf"), MORE_TF);
    write(&infra.join("modules/store/main.tf"), STORE_TF);
    write(&infra.join("modules/queue/queue.tf"), QUEUE_TF);
    write(
        &infra.join("notes.txt"),
        "resource \"aws_s3_bucket\" \"logs\" {}\n",
    );
    tmp
}

fn finding(rule: &str, address: Option<&str>) -> Finding {
    Finding {
        rule: rule.into(),
        severity: Severity::Deny,
        set: "hard".into(),
        enforcement: Enforcement::HardMandatory,
        address: address.map(str::to_owned),
        message: format!("{rule} on {}", address.unwrap_or("the plan")),
        excepted_by: None,
    }
}

/// Every address form has the file and line of the block that declares it.
#[test]
fn sarif_physical_locations_for_every_address_form() {
    let tmp = fixture();
    let root = tmp.path();
    let locator = Locator::new(&root.join("infra"), Some(root));
    // (address, expected uri, expected start line, expected start column)
    let cases: &[(&str, &str, usize, usize)] = &[
        (
            "aws_s3_bucket.logs",
            "infra/main.tf",
            line_of(MAIN_TF, r#"resource "aws_s3_bucket" "logs""#),
            1,
        ),
        (
            "aws_s3_bucket.data",
            "infra/main.tf",
            line_of(MAIN_TF, r#"resource "aws_s3_bucket" "data""#),
            1,
        ),
        (
            "aws_s3_bucket.replica[1]",
            "infra/main.tf",
            line_of(MAIN_TF, r#"resource "aws_s3_bucket" "replica""#),
            1,
        ),
        (
            r#"aws_iam_role.role["writer"]"#,
            "infra/more.tf",
            line_of(MORE_TF, r#"  resource "aws_iam_role" "role""#),
            3,
        ),
        ("data.aws_caller_identity.me", "infra/more.tf", 1, 1),
        (
            "module.store.aws_s3_bucket.inner",
            "infra/modules/store/main.tf",
            line_of(STORE_TF, r#"resource "aws_s3_bucket" "inner""#),
            1,
        ),
        (
            r#"module.store.module.queue.aws_sqs_queue.q["a.b"]"#,
            "infra/modules/queue/queue.tf",
            1,
            1,
        ),
        (
            "module.registry.aws_s3_bucket.this[0]",
            "infra/more.tf",
            line_of(MORE_TF, r#"module "registry""#),
            1,
        ),
        (
            "module.git.aws_s3_bucket.this",
            "infra/more.tf",
            line_of(MORE_TF, r#"module "git""#),
            1,
        ),
        // A local module whose resource is not there: its call.
        (
            "module.store.aws_s3_bucket.gone",
            "infra/more.tf",
            line_of(MORE_TF, r#"module "store""#),
            1,
        ),
    ];
    let mut findings: Vec<Finding> = cases
        .iter()
        .map(|(address, ..)| finding("deny_thing", Some(address)))
        .collect();
    findings.push(finding("deny_missing", Some("aws_s3_bucket.not_declared")));
    findings.push(finding("deny_budget", None));
    let log = report::sarif(&findings, Some(&locator));
    assert_valid(&log);
    let results = log["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), cases.len() + 2);
    for ((address, uri, line, column), result) in cases.iter().zip(results) {
        let location = &result["locations"][0];
        assert_eq!(
            location["logicalLocations"][0]["fullyQualifiedName"], *address,
            "{result:#}"
        );
        let physical = &location["physicalLocation"];
        assert_eq!(
            physical["artifactLocation"]["uri"], *uri,
            "{address}: {result:#}"
        );
        assert_eq!(
            physical["artifactLocation"]["uriBaseId"], "%SRCROOT%",
            "{address}"
        );
        assert_eq!(
            physical["region"]["startLine"], *line,
            "{address}: {result:#}"
        );
        assert_eq!(
            physical["region"]["startColumn"], *column,
            "{address}: {result:#}"
        );
        let end = physical["region"]["endLine"].as_u64().expect("endLine") as usize;
        assert!(end >= *line, "{address}: {result:#}");
    }
    // The whole block: `resource "aws_s3_bucket" "replica" { … }` ends on its `}`.
    let replica = &results[2]["locations"][0]["physicalLocation"]["region"];
    let replica_line = line_of(MAIN_TF, r#"resource "aws_s3_bucket" "replica""#);
    assert_eq!(replica["endLine"], replica_line + 3, "{replica}");
    assert_eq!(replica["endColumn"], 2, "{replica}");

    // Not declared anywhere: the address only.
    let missing = &results[cases.len()];
    assert!(
        missing["locations"][0]["physicalLocation"].is_null(),
        "{missing:#}"
    );
    assert_eq!(
        missing["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "aws_s3_bucket.not_declared"
    );
    // No address: line 1 of the main file, so code scanning keeps it.
    let budget = &results[cases.len() + 1];
    assert_eq!(
        budget["locations"][0]["physicalLocation"],
        json!({
            "artifactLocation": { "uri": "infra/main.tf", "uriBaseId": "%SRCROOT%" },
            "region": { "startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1 },
        })
    );
    assert!(budget["locations"][0].get("logicalLocations").is_none());
    assert_eq!(
        budget["partialFingerprints"]["policyFinding/v1"],
        "hard|deny_budget|"
    );

    // No attribute value of the configuration leaks into the log.
    let text = log.to_string();
    for value in ["replica-", "reader", "4.1.2", "example.com", "store\""] {
        assert!(!text.contains(value), "{value} leaked: {text}");
    }
}

/// Files outside the source root are absolute `file://` URIs without a
/// base; without a locator, logical locations only (the old shape).
#[test]
fn sarif_locations_outside_the_source_root_and_without_a_locator() {
    let tmp = fixture();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let locator = Locator::new(&tmp.path().join("infra"), Some(elsewhere.path()));
    let findings = [finding("deny_thing", Some("aws_s3_bucket.logs"))];
    let log = report::sarif(&findings, Some(&locator));
    assert_valid(&log);
    let artifact =
        &log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"];
    let uri = artifact["uri"].as_str().expect("uri");
    assert!(
        uri.starts_with("file:///") && uri.ends_with("/infra/main.tf"),
        "{uri}"
    );
    assert!(artifact.get("uriBaseId").is_none(), "{artifact}");

    let bare = report::sarif(&findings, None);
    assert_valid(&bare);
    let location = &bare["runs"][0]["results"][0]["locations"][0];
    assert!(location.get("physicalLocation").is_none(), "{location}");
    assert_valid(&report::sarif(&[], None));
}

/// The checker is not vacuous: it rejects what the schema forbids.
#[test]
fn sarif_schema_checker_rejects_invalid_logs() {
    let tmp = fixture();
    let locator = Locator::new(&tmp.path().join("infra"), Some(tmp.path()));
    let good = report::sarif(
        &[finding("deny_thing", Some("aws_s3_bucket.logs"))],
        Some(&locator),
    );
    assert_valid(&good);
    let mutate = |f: &dyn Fn(&mut Json)| {
        let mut bad = good.clone();
        f(&mut bad);
        assert!(!schema_errors(&bad).is_empty(), "accepted: {bad:#}");
    };
    mutate(&|l| l["version"] = json!("2.0.0"));
    mutate(&|l| l["runs"][0]["results"][0]["level"] = json!("fatal"));
    mutate(&|l| {
        l["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
            json!(0)
    });
    mutate(&|l| l["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["bogus"] = json!(1));
    mutate(&|l| l["runs"][0]["tool"]["driver"]["informationUri"] = json!("not a uri"));
    mutate(&|l| {
        l["runs"][0]["results"][0]["message"] = json!({});
    });
    mutate(&|l| {
        l["runs"][0]["tool"]["driver"]
            .as_object_mut()
            .expect("driver")
            .remove("name");
    });
}
