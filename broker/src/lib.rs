//! `platform-broker`: wraps `terraform plan`/`apply` with policy, cost,
//! drift detection and a tamper-evident audit trail.
//!
//! The key decision: one run parses `terraform show -json` **once** into a
//! `plan::PlanSummary`; policy, cost, redaction and every report read that one
//! value, so they can never disagree about what the plan does. Only `tf`
//! spawns processes; only `audit` writes the log.

pub mod audit;
pub mod budget;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod cost;
pub mod costexplorer;
pub mod dates;
pub mod fsx;
pub mod key;
pub mod plan;
pub mod policy;
pub mod report;
pub mod run;
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
