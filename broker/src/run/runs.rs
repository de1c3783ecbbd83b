//! `runs`: the plan bundles under a broker home, oldest first.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::Context;
use crate::dates::{now, parse_rfc3339};

/// One run as `platform-broker runs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: String,
    pub created: Option<String>,
    pub verdict: Option<String>,
    /// `planned`, `applying`, `applied`, `failed`, `expired`, or
    /// `unreadable` (the identity is missing or does not parse).
    pub status: String,
    pub expires: Option<String>,
    /// Approvals on record (not checked here; `apply` checks them).
    pub approvals: usize,
}

/// Lists the runs of `dir`'s broker home. Reads only; nothing is trusted or
/// changed (what `apply` would decide is for `apply`).
pub fn list(ctx: &Context, dir: &Path) -> Result<Vec<RunRow>> {
    let session = ctx.session(dir)?;
    let home = &session.home;
    let mut rows = Vec::new();
    for id in home.run_names()? {
        let identity = home.load_identity(&id).ok().map(|s| s.identity);
        let status_file = home
            .read_run_file(&id, "status")
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned());
        let approvals = home
            .read_run_file(&id, "approvals.json")
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok())
            .map_or(0, |a| a.len());
        let expired = identity
            .as_ref()
            .and_then(|i| parse_rfc3339(&i.expires_at).ok())
            .is_some_and(|at| now() > at);
        let status = match (&identity, status_file) {
            (None, _) => "unreadable".to_owned(),
            (Some(_), Some(status)) => status
                .split_whitespace()
                .next()
                .unwrap_or("unknown")
                .to_owned(),
            (Some(_), None) if expired => "expired".to_owned(),
            (Some(_), None) => "planned".to_owned(),
        };
        rows.push(RunRow {
            created: identity.as_ref().map(|i| i.created_at.clone()),
            verdict: identity.as_ref().map(|i| i.verdict.clone()),
            expires: identity.as_ref().map(|i| i.expires_at.clone()),
            status,
            approvals,
            id,
        });
    }
    Ok(rows)
}
