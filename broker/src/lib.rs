//! `platform-broker`: wraps `terraform plan`/`apply` with policy, cost,
//! drift detection and a tamper-evident audit trail.
//!
//! The key decision: one run parses `terraform show -json` **once** into a
//! `plan::PlanSummary`; policy, cost, redaction and every report read that one
//! value, so they can never disagree about what the plan does. Only `tf`
//! spawns processes; only `audit` writes the log.

pub mod archive;
pub mod audit;
pub mod budget;
pub mod bundle;
pub mod cli;
pub mod client;
pub mod config;
pub mod cost;
pub mod costexplorer;
pub mod dates;
pub mod fsx;
pub mod http;
pub mod key;
pub mod locate;
pub mod mirror;
pub mod plan;
pub mod policy;
pub mod remote;
pub mod report;
pub mod run;
pub mod server;
pub mod store;
pub mod tf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The largest char boundary of `text` at or below `index`: where a string
/// may be cut to at most `index` bytes.
pub(crate) fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut at = index.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// An error and its causes on one line, `outer: cause: root cause`, each
/// said once: a cause whose words the text so far already holds (an error
/// that formats its own source, as many do) is not repeated.
pub fn render_error(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let words = cause.to_string();
        if words.is_empty() || text.contains(&words) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&words);
    }
    text
}

#[cfg(test)]
mod render_tests {
    use super::render_error;

    #[test]
    fn each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(crate::policy::PolicyError::Io {
            path: "/nope.hcl".into(),
            source: io,
        });
        assert_eq!(render_error(&error), "/nope.hcl: No such file or directory");
        let chained = anyhow::anyhow!("root cause")
            .context("reading x")
            .context("plan");
        assert_eq!(render_error(&chained), "plan: reading x: root cause");
    }
}
