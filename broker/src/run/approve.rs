//! `approve`: record an approval of a run that needs one.
//!
//! `approvals.json` is read, extended and written under an exclusive lock
//! (`approvals.lock`, flock) and replaced atomically, so concurrent approvals
//! never lose or corrupt an entry. Each approval names the identity digest it
//! approves and, with a broker key, carries a MAC; `apply` counts only
//! approvals of the identity it re-derived.

use anyhow::{Result, anyhow, bail};
use serde_json::json;

use super::{Context, Session};
use crate::bundle::{self, APPROVAL_DOMAIN, Approval};
use crate::dates::{now, rfc3339};

/// What to approve.
#[derive(Debug, Clone)]
pub struct ApproveRequest {
    pub dir: std::path::PathBuf,
    pub run: String,
    pub reason: String,
}

/// A recorded approval.
pub struct Approved {
    pub run: String,
    pub identity_digest: String,
    /// Approvals of this identity now on record (this one included).
    pub count: usize,
}

/// An exclusive lock on a run's approvals, released on drop.
struct ApprovalsLock {
    file: std::fs::File,
}

impl ApprovalsLock {
    fn acquire(session: &Session, run: &str) -> Result<ApprovalsLock> {
        let path = session.home.run_dir(run).join("approvals.lock");
        crate::fsx::check_no_symlink_below(&session.home.root, &path)?;
        let file =
            crate::fsx::open_rw(&path, 0o600).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| anyhow!("{}: cannot lock: {e}", path.display()))?;
        Ok(ApprovalsLock { file })
    }
}

impl Drop for ApprovalsLock {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.file, rustix::fs::FlockOperation::Unlock);
    }
}

/// The approvals on record for `run` (unparseable file: an error naming it).
fn read_approvals(session: &Session, run: &str) -> Result<Vec<Approval>> {
    match session.home.read_run_file(run, "approvals.json")? {
        None => Ok(Vec::new()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            anyhow!(
                "{}: not a list of approvals ({e}); it was edited by hand",
                session.home.run_dir(run).join("approvals.json").display()
            )
        }),
    }
}

/// How many approvals of `identity_digest` are on record and genuine: with a
/// key, only those whose MAC verifies (others are reported and ignored).
pub(crate) fn approvals_for(
    session: &Session,
    run: &str,
    identity_digest: &str,
    warn: &mut dyn FnMut(&str),
) -> Result<usize> {
    let _lock = ApprovalsLock::acquire(session, run)?;
    let approvals = read_approvals(session, run)?;
    let path = session.home.run_dir(run).join("approvals.json");
    let mut genuine = 0;
    for (idx, approval) in approvals.iter().enumerate() {
        if approval.identity_digest != identity_digest {
            continue;
        }
        match (&session.trust.key, &approval.mac) {
            (Some(key), Some(mac))
                if key.verify(APPROVAL_DOMAIN, approval.canonical().as_bytes(), mac) =>
            {
                genuine += 1;
            }
            (Some(key), _) => warn(&format!(
                "{}: approval #{} does not authenticate with the broker key ({}); ignored",
                path.display(),
                idx + 1,
                key.id()
            )),
            (None, _) => genuine += 1,
        }
    }
    Ok(genuine)
}

/// Records an approval. Refused for a run that was denied or is not
/// genuine; every refusal and failure is audited.
pub fn approve(
    ctx: &Context,
    request: &ApproveRequest,
    warn: &mut dyn FnMut(&str),
) -> Result<Approved> {
    if request.reason.trim().is_empty() {
        bail!("an approval needs a --reason");
    }
    let mut session = ctx.session(&request.dir)?;
    let mut audit = ctx.audit(&mut session)?;
    for warning in session.warnings.drain(..) {
        warn(&warning);
    }
    let result = (|| {
        let identity = super::apply::authentic_identity(&session, &request.run, warn)?;
        if identity.verdict == "denied" {
            bail!(
                "run {} was denied (a hard-mandatory finding): an approval cannot override it",
                request.run
            );
        }
        let digest = identity.digest();
        let mut approval = Approval {
            identity_digest: digest.clone(),
            approver: ctx.actor.clone(),
            reason: request.reason.clone(),
            at: rfc3339(now()),
            mac: None,
        };
        approval.mac = session
            .trust
            .key
            .as_ref()
            .map(|key| key.mac(APPROVAL_DOMAIN, approval.canonical().as_bytes()));
        let count = {
            let _lock = ApprovalsLock::acquire(&session, &request.run)?;
            let mut approvals = read_approvals(&session, &request.run)?;
            approvals.push(approval.clone());
            bundle::write_file(
                &session.home.run_dir(&request.run).join("approvals.json"),
                serde_json::to_vec_pretty(&approvals)?.as_slice(),
                0o600,
            )?;
            approvals
                .iter()
                .filter(|a| a.identity_digest == digest)
                .count()
        };
        Ok((identity, approval, count))
    })();
    match result {
        Ok((identity, approval, count)) => {
            audit.append(
                "dev.platform.broker.approve",
                Some(&identity.workspace),
                json!({"actor": ctx.actor, "run": request.run, "approval": {
                    "identity_digest": approval.identity_digest,
                    "approver": approval.approver,
                    "reason": approval.reason,
                    "at": approval.at,
                }}),
            )?;
            Ok(Approved {
                run: request.run.clone(),
                identity_digest: approval.identity_digest,
                count,
            })
        }
        Err(error) => Err(super::audit_failure(
            Some(&mut audit),
            "dev.platform.broker.approve.failed",
            None,
            json!({"actor": ctx.actor, "run": request.run}),
            error.context(format!("refusing to approve run {}", request.run)),
        )),
    }
}
