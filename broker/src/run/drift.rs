//! `drift`: a refresh-only plan (never writes state), each drifted attribute
//! fingerprinted, remembered and optionally acknowledged until a date.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde_json::{Value as Json, json};

use super::{Context, EXIT_CHANGES, EXIT_OK, Session};
use crate::audit::AuditLog;
use crate::bundle;
use crate::dates::{now, parse_date, rfc3339};
use crate::plan;
use crate::tf::{PlanOptions, Terraform};

/// One drifted attribute, with its fingerprint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drifted {
    pub address: String,
    pub attribute: String,
    pub before: Json,
    pub after: Json,
    pub fingerprint: String,
    pub seen_before: bool,
    pub acknowledged: Option<String>,
}

/// `--ack`: acknowledge drift of an address (optionally one attribute) until
/// a date, with a reason.
#[derive(Debug, Clone)]
pub struct Ack {
    pub address: String,
    pub attribute: Option<String>,
    pub until: String,
    pub reason: String,
}

/// What `drift` did in one directory.
pub enum DirDrift {
    /// `--ack`: an acknowledgement was recorded.
    Acknowledged { address: String, until: String },
    /// A refresh-only plan ran: every drifted attribute, and the exit code.
    Checked { code: u8, drifted: Vec<Drifted> },
}

impl DirDrift {
    pub fn code(&self) -> u8 {
        match self {
            DirDrift::Acknowledged { .. } => EXIT_OK,
            DirDrift::Checked { code, .. } => *code,
        }
    }

    pub fn drifted(&self) -> &[Drifted] {
        match self {
            DirDrift::Acknowledged { .. } => &[],
            DirDrift::Checked { drifted, .. } => drifted,
        }
    }
}

/// One directory's drift check (or acknowledgement). Failures after the audit
/// log is open are audited (`dev.platform.broker.drift.failed`).
pub fn drift_dir(
    ctx: &Context,
    dir: &Path,
    ack: Option<&Ack>,
    say: &mut dyn FnMut(&str),
    warn: &mut dyn FnMut(&str),
) -> Result<DirDrift> {
    drift_dir_with(ctx, dir, ack, &[], say, warn)
}

/// `drift_dir` with variable files for the refresh-only plan (the server's
/// workspace variables).
pub fn drift_dir_with(
    ctx: &Context,
    dir: &Path,
    ack: Option<&Ack>,
    var_files: &[std::path::PathBuf],
    say: &mut dyn FnMut(&str),
    warn: &mut dyn FnMut(&str),
) -> Result<DirDrift> {
    let started = Instant::now();
    let mut session = ctx.session(dir)?;
    let mut audit = ctx.audit(&mut session)?;
    for warning in session.warnings.drain(..) {
        warn(&warning);
    }
    let workspace = super::workspace(&session.dir);
    match drift_in(ctx, &session, &mut audit, ack, var_files, started, say) {
        Ok(outcome) => Ok(outcome),
        Err(error) => Err(super::audit_failure(
            Some(&mut audit),
            "dev.platform.broker.drift.failed",
            Some(&workspace),
            json!({"actor": ctx.actor, "dir": session.dir,
                   "duration_ms": started.elapsed().as_millis() as u64}),
            error,
        )),
    }
}

fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match crate::fsx::read_nofollow(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{}: not the broker's JSON (edited by hand?)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

fn drift_in(
    ctx: &Context,
    session: &Session,
    audit: &mut AuditLog,
    ack: Option<&Ack>,
    var_files: &[std::path::PathBuf],
    started: Instant,
    say: &mut dyn FnMut(&str),
) -> Result<DirDrift> {
    let dir = &session.dir;
    let home = &session.home;
    let acks_path = home.root.join("drift-acks.json");
    let mut acks: Vec<Json> = read_json(&acks_path)?;
    if let Some(ack) = ack {
        parse_date(&ack.until).map_err(|e| anyhow::anyhow!("--until: {e}"))?;
        let entry = json!({"address": ack.address, "attribute": ack.attribute, "until": ack.until,
                           "reason": ack.reason, "by": ctx.actor});
        acks.push(entry.clone());
        bundle::write_file(
            &acks_path,
            serde_json::to_vec_pretty(&acks)?.as_slice(),
            0o600,
        )?;
        audit.append(
            "dev.platform.broker.drift.ack",
            Some(&super::workspace(dir)),
            json!({"actor": ctx.actor, "ack": entry}),
        )?;
        return Ok(DirDrift::Acknowledged {
            address: ack.address.clone(),
            until: ack.until.clone(),
        });
    }
    let tf = Terraform::find(ctx.terraform.as_deref(), dir)?;
    tf.init_if_needed(say)?;
    let scratch = tempfile::Builder::new()
        .prefix("drift")
        .tempdir_in(&home.root)?;
    let planfile = scratch.path().join("drift.tfplan");
    let options = PlanOptions {
        refresh_only: true,
        var_files: var_files.to_vec(),
        ..PlanOptions::default()
    };
    tf.plan(&planfile, &options, say)?;
    let summary = plan::parse_with(&tf.show_json(&planfile)?, &session.trust.fingerprint)?;
    let known_path = home.root.join("drift-known.json");
    let mut known: BTreeMap<String, String> = read_json(&known_path)?;
    let today = now().date().to_string();
    let mut drifted = Vec::new();
    for change in &summary.drift {
        for attribute in &change.changed_attributes {
            let before = change.before.get(attribute).cloned().unwrap_or(Json::Null);
            let after = change.after.get(attribute).cloned().unwrap_or(Json::Null);
            let fingerprint = bundle::bytes_digest(
                format!(
                    "{}\u{0}{attribute}\u{0}{before}\u{0}{after}",
                    change.address
                )
                .as_bytes(),
            );
            let acknowledged = acks.iter().find(|a| {
                a.get("address").and_then(Json::as_str) == Some(change.address.as_str())
                    && a.get("attribute")
                        .and_then(Json::as_str)
                        .is_none_or(|x| x == attribute)
                    && a.get("until")
                        .and_then(Json::as_str)
                        .is_some_and(|u| u >= today.as_str())
            });
            drifted.push(Drifted {
                address: change.address.clone(),
                attribute: attribute.clone(),
                before,
                after,
                seen_before: known.contains_key(&fingerprint),
                acknowledged: acknowledged
                    .and_then(|a| a.get("reason").and_then(Json::as_str))
                    .map(str::to_owned),
                fingerprint,
            });
        }
    }
    for d in drifted.iter().filter(|d| !d.seen_before) {
        known.insert(d.fingerprint.clone(), rfc3339(now()));
    }
    bundle::write_file(
        &known_path,
        serde_json::to_vec_pretty(&known)?.as_slice(),
        0o600,
    )?;
    let code = if drifted.iter().all(|d| d.acknowledged.is_some()) {
        EXIT_OK
    } else {
        EXIT_CHANGES
    };
    audit.append(
        "dev.platform.broker.drift",
        Some(&super::workspace(dir)),
        json!({
            "actor": ctx.actor,
            "drifted": drifted.iter().map(|d| json!({"address": d.address, "attribute": d.attribute, "fingerprint": d.fingerprint, "new": !d.seen_before, "acknowledged": d.acknowledged.is_some()})).collect::<Vec<_>>(),
            "exit_code": code,
            "duration_ms": started.elapsed().as_millis() as u64,
        }),
    )?;
    Ok(DirDrift::Checked { code, drifted })
}
