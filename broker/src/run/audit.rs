//! `audit verify`: the chain, and (with a key) the runs it must contain;
//! `audit repair`: adopt or cut what a crash (or someone) left beyond the
//! head, itself an audited event.

use std::path::Path;

use anyhow::Result;

use super::Context;
use crate::audit::{RepairMode, RepairReport, VerifyReport};

/// What `audit verify` found.
pub struct AuditCheck {
    pub report: VerifyReport,
    /// Authenticated runs whose plan event is missing from the log: events
    /// were removed (with a key, a run's identity cannot be forged, so its
    /// plan event must be in the log).
    pub missing_runs: Vec<String>,
    /// Whether the check used a broker key.
    pub keyed: bool,
    pub warnings: Vec<String>,
}

impl AuditCheck {
    pub fn ok(&self) -> bool {
        self.report.ok && self.missing_runs.is_empty()
    }
}

/// Verifies the audit log of `dir`'s broker home.
pub fn verify(ctx: &Context, dir: &Path) -> Result<AuditCheck> {
    let mut session = ctx.session(dir)?;
    let report = crate::audit::verify_with(&session.home.audit_log(), session.trust.key.as_ref())?;
    let mut missing_runs = Vec::new();
    if let Some(key) = &session.trust.key {
        // One pass over the log for every run's plan event.
        let recorded = super::apply::plan_event_digests(&session.home.audit_log(), None)?;
        for run in session.home.run_names()? {
            let Ok(signed) = session.home.load_identity(&run) else {
                continue;
            };
            if super::apply::mac_verifies(key, &signed)
                && recorded.get(&run) != Some(&signed.identity.digest())
            {
                missing_runs.push(run);
            }
        }
    }
    Ok(AuditCheck {
        report,
        missing_runs,
        keyed: session.trust.key.is_some(),
        warnings: std::mem::take(&mut session.warnings),
    })
}

/// What `audit repair` did.
pub struct Repaired {
    pub report: RepairReport,
    pub warnings: Vec<String>,
}

/// Repairs the audit log of `dir`'s broker home and records what it did as
/// a `dev.platform.broker.audit.repair` event (nothing done: no event).
pub fn repair(ctx: &Context, dir: &Path, mode: RepairMode) -> Result<Repaired> {
    let mut session = ctx.session(dir)?;
    let path = session.home.audit_log();
    let report = crate::audit::repair_with(&path, session.trust.key.as_ref(), mode)?;
    if !report.is_empty() {
        let events = |list: &[crate::audit::RepairedEvent]| {
            list.iter()
                .map(|e| serde_json::json!({"seq": e.seq, "id": e.id, "type": e.type_}))
                .collect::<Vec<_>>()
        };
        let mut audit = ctx.audit(&mut session)?;
        audit.append(
            "dev.platform.broker.audit.repair",
            None,
            serde_json::json!({
                "actor": ctx.actor,
                "mode": match mode { RepairMode::Adopt => "adopt", RepairMode::Cut => "cut" },
                "torn_bytes_cut": report.torn_bytes,
                "adopted": events(&report.adopted),
                "cut": events(&report.cut),
            }),
        )?;
    }
    Ok(Repaired {
        report,
        warnings: std::mem::take(&mut session.warnings),
    })
}
