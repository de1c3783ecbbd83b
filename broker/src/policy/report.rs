//! Machine-readable policy reports for CI: SARIF 2.1.0 and JUnit XML.
//!
//! Both keep the real rule id (`deny_<id>` / `warn_<id>`), never a generic
//! `main/deny`, and carry set, enforcement and resource address. SARIF
//! results also carry the file and line of the block that declares the
//! address (`crate::locate`), which GitHub code scanning needs to keep them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Enforcement, Finding, Severity};
use crate::locate::{Location, Locator};

const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const TOOL_NAME: &str = "platform-broker";

/// SARIF level: a blocking deny of a hard set is an `error`, of a soft set a
/// `warning`; advisory denies and warns are `note`s.
fn sarif_level(f: &Finding) -> &'static str {
    match (f.severity, f.enforcement) {
        (Severity::Deny, Enforcement::HardMandatory) => "error",
        (Severity::Deny, Enforcement::SoftMandatory) => "warning",
        _ => "note",
    }
}

/// A SARIF `physicalLocation`: a URI (relative ones under `%SRCROOT%`)
/// and the block's region.
fn physical(l: &Location) -> Value {
    let mut artifact = json!({ "uri": l.uri });
    if let Some(base) = l.base {
        artifact["uriBaseId"] = json!(base);
    }
    json!({
        "artifactLocation": artifact,
        "region": {
            "startLine": l.start_line,
            "startColumn": l.start_column,
            "endLine": l.end_line,
            "endColumn": l.end_column,
        },
    })
}

/// A SARIF 2.1.0 log with one run. Each distinct rule id is a
/// `reportingDescriptor`; each finding a `result`. A finding with a
/// resource address has one location: the address as a logical location
/// and, when `locator` finds the block that declares it, that block as the
/// physical location. A finding without an address (about the whole plan:
/// budgets, unpriced resources) is placed at line 1 of the configuration's
/// main file, as code scanning shows no result without a location.
/// Excepted findings carry an external `suppression` with the exception's
/// owner and reason.
pub fn sarif(findings: &[Finding], locator: Option<&Locator>) -> Value {
    // rule id -> index, in first-seen order of sorted ids
    let mut rule_ids: BTreeMap<&str, (&str, Enforcement, Severity)> = BTreeMap::new();
    for f in findings {
        rule_ids
            .entry(f.rule.as_str())
            .or_insert((f.set.as_str(), f.enforcement, f.severity));
    }
    let index: BTreeMap<&str, usize> = rule_ids.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|(id, (set, enforcement, severity))| {
            json!({
                "id": id,
                "name": id,
                "shortDescription": { "text": format!("{} rule {id} of policy set {set}", severity.as_str()) },
                "properties": { "policy_set": set, "enforcement": enforcement.as_str() },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut r = json!({
                "ruleId": f.rule,
                "ruleIndex": index.get(f.rule.as_str()).copied().unwrap_or(0),
                "level": sarif_level(f),
                "message": { "text": f.message },
                "properties": {
                    "policy_set": f.set,
                    "enforcement": f.enforcement.as_str(),
                    "severity": f.severity.as_str(),
                    "blocking": f.blocks(),
                },
            });
            if let Some(address) = &f.address {
                let mut location = json!({
                    "logicalLocations": [{ "fullyQualifiedName": address, "kind": "resource" }]
                });
                if let Some(l) = locator.and_then(|l| l.locate(address)) {
                    location["physicalLocation"] = physical(&l);
                }
                r["locations"] = json!([location]);
                r["partialFingerprints"] = json!({
                    "policyFinding/v1": format!("{}|{}|{}", f.set, f.rule, address)
                });
            } else if let Some(l) = locator.and_then(Locator::main_file) {
                r["locations"] = json!([{ "physicalLocation": physical(&l) }]);
                r["partialFingerprints"] = json!({
                    "policyFinding/v1": format!("{}|{}|", f.set, f.rule)
                });
            }
            if let Some(by) = &f.excepted_by {
                r["suppressions"] = json!([{ "kind": "external", "justification": by }]);
            }
            r
        })
        .collect();
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": TOOL_NAME,
                "informationUri": "https://github.com/platform/platform-broker",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// JUnit XML: one `<testsuite>` per policy set, one `<testcase>` per finding
/// (`classname` = set, `name` = `rule address`). Blocking findings (deny of a
/// soft or hard mandatory set) are `<failure>`s; excepted findings are
/// `<skipped>` with the exception; warns and advisory denies pass with the
/// message in `<system-out>`.
pub fn junit(findings: &[Finding]) -> String {
    let mut by_set: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_set.entry(f.set.as_str()).or_default().push(f);
    }
    let total = findings.len();
    let failures = findings.iter().filter(|f| f.blocks()).count();
    let skipped = findings.iter().filter(|f| f.excepted_by.is_some()).count();
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{TOOL_NAME} policy\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">"
    );
    for (set, items) in &by_set {
        let f_count = items.iter().filter(|f| f.blocks()).count();
        let s_count = items.iter().filter(|f| f.excepted_by.is_some()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f_count}\" errors=\"0\" skipped=\"{s_count}\">",
            esc(set),
            items.len()
        );
        for f in items {
            let name = match &f.address {
                Some(a) => format!("{} {}", f.rule, a),
                None => f.rule.clone(),
            };
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\">",
                esc(set),
                esc(&name)
            );
            if let Some(by) = &f.excepted_by {
                let _ = write!(out, "<skipped message=\"excepted by {}\"/>", esc(by));
                let _ = write!(out, "<system-out>{}</system-out>", esc(&f.message));
            } else if f.blocks() {
                let _ = write!(
                    out,
                    "<failure message=\"{}\" type=\"{}\">{}</failure>",
                    esc(&f.message),
                    f.enforcement.as_str(),
                    esc(&format!(
                        "{} ({}, {}): {}",
                        f.rule,
                        f.set,
                        f.enforcement.as_str(),
                        f.message
                    ))
                );
            } else {
                let _ = write!(
                    out,
                    "<system-out>{} ({}): {}</system-out>",
                    f.severity.as_str(),
                    f.enforcement.as_str(),
                    esc(&f.message)
                );
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// XML text/attribute escaping; drops characters XML 1.0 cannot carry.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}
