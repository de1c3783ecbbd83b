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
pub mod plan;
pub mod policy;
pub mod report;
pub mod tf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
