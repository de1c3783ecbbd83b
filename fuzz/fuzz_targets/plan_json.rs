//! Feeds arbitrary bytes to `broker::plan::parse`, the parser and redactor of
//! `terraform show -json`. Never a panic. For a plan that parses:
//! - the summary serializes (it is written to the plan cache and reports);
//! - redaction is idempotent: `redact_plan` of the redacted document changes nothing;
//! - the redacted document is itself a plan that parses to the same summary (so the
//!   cached redacted plan can be read back, and parsing it redacts nothing more).
#![no_main]

use broker::plan::{parse, redact_plan};
use libfuzzer_sys::fuzz_target;

const MAX_LEN: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_LEN {
        return;
    }
    let Ok(summary) = parse(data) else { return };
    let bytes = serde_json::to_vec(&summary).expect("a parsed plan summary serializes");
    let _: serde_json::Value = serde_json::from_slice(&bytes).expect("and reads back as JSON");

    assert_eq!(redact_plan(&summary.redacted), summary.redacted, "redacting twice changed the plan");

    let redacted = serde_json::to_vec(&summary.redacted).expect("the redacted plan serializes");
    let again = parse(&redacted).expect("the redacted plan parses");
    assert_eq!(again, summary, "parsing the redacted plan changed the summary");
});
