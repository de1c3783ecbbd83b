//! `apply`: exactly the reviewed plan, once, and only if it is still allowed.
//!
//! Nothing under the broker home is taken on trust. The identity must
//! authenticate (with a key) and match its plan event in the audit log; the
//! run must belong to this directory and workspace, and nothing that shapes
//! the plan (configuration, lock file, var files, backend, catalog, policy,
//! price book, state) may have changed. Then the plan file is copied out of
//! reach of the working directory, and from that copy — the one terraform
//! applies — the plan is shown again, redacted, priced and evaluated: the
//! re-derived verdict must equal the recorded one, and a run that needs an
//! approval needs one bound to this identity.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use serde_json::json;

use super::derive::{self, BudgetSource, verdict_name};
use super::{Context, EXIT_OK, Inputs, Loaded, Session};
use crate::audit::AuditLog;
use crate::budget::BudgetReport;
use crate::bundle::{self, Identity, PriorState, SignedIdentity, WorkspaceLock};
use crate::dates::{now, parse_rfc3339, rfc3339};
use crate::plan;
use crate::policy::Verdict;
use crate::tf::Terraform;

/// What to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyRequest {
    pub dir: std::path::PathBuf,
    /// The run (default: the newest).
    pub run: Option<String>,
    pub inputs: Inputs,
}

/// An applied run.
pub struct Applied {
    pub run: String,
    pub exit_code: u8,
}

/// A refusal: the run is not applied, and the reason says why.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse(why: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Refused(why.into()))
}

/// Loads a run's identity and checks that it is genuine: with a key, its MAC
/// must verify; always, it must be the identity the plan event in the audit
/// log names. Returns the identity.
pub(crate) fn authentic_identity(
    session: &Session,
    run: &str,
    warn: &mut dyn FnMut(&str),
) -> Result<Identity> {
    let signed = session.home.load_identity(run)?;
    let path = session.home.run_dir(run).join("identity.json");
    match (&session.trust.key, &signed.mac) {
        (Some(key), Some(_)) if mac_verifies(key, &signed) => {}
        (Some(key), Some(_)) => {
            return Err(refuse(format!(
                "{}: the identity does not authenticate with the broker key ({}): it was edited, \
                 or written under another key; plan again",
                path.display(),
                key.id()
            )));
        }
        (Some(key), None) => {
            return Err(refuse(format!(
                "{}: the identity is not authenticated (written without a broker key, or its MAC \
                 was removed) and the broker key ({}) is configured; plan again",
                path.display(),
                key.id()
            )));
        }
        (None, Some(_)) => warn(&format!(
            "{}: the identity carries a MAC but no broker key is configured to check it",
            path.display()
        )),
        (None, None) => {}
    }
    let identity = signed.identity;
    if identity.run != run {
        return Err(refuse(format!(
            "{}: the identity names run {:?}",
            path.display(),
            identity.run
        )));
    }
    let recorded = plan_event_digest(&session.home.audit_log(), run)?;
    match recorded {
        Some(digest) if digest == identity.digest() => Ok(identity),
        Some(_) => Err(refuse(format!(
            "{}: the identity differs from the one its plan event in the audit log recorded \
             (the file was edited); plan again",
            path.display()
        ))),
        None => Err(refuse(format!(
            "the audit log {} has no plan event for run {run}: the run's history is missing, so \
             its identity cannot be trusted; plan again",
            session.home.audit_log().display()
        ))),
    }
}

/// The `identity_digest` the plan event of `run` recorded, if there is one.
fn plan_event_digest(log: &Path, run: &str) -> Result<Option<String>> {
    Ok(plan_event_digests(log, Some(run))?.remove(run))
}

/// The `identity_digest` each run's plan event recorded (the last one wins);
/// with `only`, just that run's (only lines naming it are parsed).
pub(crate) fn plan_event_digests(
    log: &Path,
    only: Option<&str>,
) -> Result<std::collections::HashMap<String, String>> {
    let mut found = std::collections::HashMap::new();
    let bytes = match crate::fsx::read_nofollow(log) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(anyhow!("{}: {e}", log.display())),
    };
    let needle = match only {
        Some(run) => format!("\"run\":\"{run}\""),
        None => "\"type\":\"dev.platform.broker.plan\"".to_owned(),
    };
    for line in bytes.split(|&b| b == b'\n') {
        if line.is_empty() || !contains(line, needle.as_bytes()) {
            continue;
        }
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if event.get("type").and_then(|t| t.as_str()) != Some("dev.platform.broker.plan") {
            continue;
        }
        let (Some(run), Some(digest)) = (
            event["data"]["run"].as_str(),
            event["data"]["identity_digest"].as_str(),
        ) else {
            continue;
        };
        if only.is_none_or(|wanted| wanted == run) {
            found.insert(run.to_owned(), digest.to_owned());
        }
    }
    Ok(found)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a signed identity's MAC verifies with `key`.
pub(crate) fn mac_verifies(key: &crate::key::BrokerKey, signed: &SignedIdentity) -> bool {
    signed.mac.as_deref().is_some_and(|mac| {
        key.verify(
            bundle::IDENTITY_DOMAIN,
            signed.identity.canonical().as_bytes(),
            mac,
        )
    })
}

/// Applies a run. Refusals and failures are audited
/// (`dev.platform.broker.apply.refused` / `.failed`) before they return.
pub fn apply(
    ctx: &Context,
    request: &ApplyRequest,
    say: &mut dyn FnMut(&str),
    warn: &mut dyn FnMut(&str),
) -> Result<Applied> {
    let started = Instant::now();
    let mut session = ctx.session(&request.dir)?;
    let mut audit = ctx.audit(&mut session)?;
    for warning in session.warnings.drain(..) {
        warn(&warning);
    }
    let run = match &request.run {
        Some(run) => run.clone(),
        None => match session.home.latest_run() {
            Ok(run) => run,
            Err(error) => {
                return Err(super::audit_failure(
                    Some(&mut audit),
                    "dev.platform.broker.apply.failed",
                    None,
                    json!({"actor": ctx.actor, "dir": session.dir}),
                    error.into(),
                ));
            }
        },
    };
    let workspace = super::workspace(&session.dir);
    let mut identity_digest = None;
    match apply_in(
        ctx,
        request,
        &session,
        &mut audit,
        &run,
        &mut identity_digest,
        started,
        say,
        warn,
    ) {
        Ok(applied) => Ok(applied),
        Err(error) => {
            let event = if error.downcast_ref::<Refused>().is_some() {
                "dev.platform.broker.apply.refused"
            } else {
                "dev.platform.broker.apply.failed"
            };
            let error = error.context(format!("refusing to apply run {run}"));
            Err(super::audit_failure(
                Some(&mut audit),
                event,
                Some(&workspace),
                json!({"actor": ctx.actor, "run": run, "identity_digest": identity_digest,
                       "dir": session.dir}),
                error,
            ))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_in(
    ctx: &Context,
    request: &ApplyRequest,
    session: &Session,
    audit: &mut AuditLog,
    run: &str,
    identity_digest: &mut Option<String>,
    started: Instant,
    say: &mut dyn FnMut(&str),
    warn: &mut dyn FnMut(&str),
) -> Result<Applied> {
    let dir = &session.dir;
    let home = &session.home;
    let identity = authentic_identity(session, run, warn)?;
    let digest = identity.digest();
    *identity_digest = Some(digest.clone());

    // The run belongs to this directory and workspace.
    if identity.working_dir != dir.display().to_string() {
        return Err(refuse(format!(
            "run {run} was planned for {}, not {}",
            identity.working_dir,
            dir.display()
        )));
    }
    let workspace = super::workspace(dir);
    if identity.workspace != workspace {
        return Err(refuse(format!(
            "run {run} was planned for workspace {:?}, but {:?} is selected",
            identity.workspace, workspace
        )));
    }
    let tf = Terraform::find(ctx.terraform.as_deref(), dir)?;
    let lock = match WorkspaceLock::acquire(home, &identity.workspace, run)? {
        Ok(lock) => lock,
        Err(why) => return Err(refuse(why)),
    };
    let run_dir = home.run_dir(run);
    let expires = parse_rfc3339(&identity.expires_at).map_err(|e| anyhow!("bundle expiry: {e}"))?;
    if now() > expires {
        return Err(refuse(format!(
            "the bundle expired at {}; plan again",
            identity.expires_at
        )));
    }
    if home.read_run_file(run, "consumed")?.is_some() {
        return Err(refuse(
            "this bundle was already applied (each plan applies once); plan again",
        ));
    }
    // A fresh CI runner has the bundle but no `.terraform/`: initialize it
    // as plan did (the lock file pins the providers), then check that
    // nothing the plan was made from differs.
    tf.init_if_needed(say)?;
    check_bindings(&identity, session)?;

    // The plan file, copied where nobody who can write DIR can reach it:
    // what is digested, shown and evaluated below is what terraform applies.
    let private = tempfile::Builder::new()
        .prefix("platform-broker-apply")
        .tempdir()
        .context("a private directory for the plan file")?;
    let planfile = private.path().join("plan.tfplan");
    let bytes = home
        .read_run_file(run, "plan.tfplan")?
        .ok_or_else(|| refuse("the plan file is missing from the bundle; plan again"))?;
    if bundle::bytes_digest(&bytes) != identity.plan_digest {
        return Err(refuse("the plan file changed since it was reviewed"));
    }
    crate::fsx::write_atomic(&planfile, &bytes, 0o600)?;
    drop(bytes);

    let loaded = Loaded::load(&request.inputs)?;
    if Some(loaded.catalog.digest.clone()) != identity.catalog_digest {
        return Err(refuse("the catalog changed since the plan"));
    }
    if loaded.policy_digest() != identity.policy_digest {
        return Err(refuse("the policy bundle changed since the plan"));
    }
    if loaded.book_digest != identity.pricebook_digest {
        return Err(refuse("the price book changed since the plan"));
    }
    let now_state = ctx.state_meta(&tf)?.map(|p| PriorState {
        lineage: p.lineage,
        serial: p.serial,
    });
    if now_state != identity.prior_state {
        return Err(refuse(match (&identity.prior_state, &now_state) {
            (None, Some(_)) => {
                "the plan was made against an empty state that has since been written"
            }
            _ => "the state changed since the plan (another apply ran); plan again",
        }));
    }

    // Re-derive the verdict from the plan file itself.
    let t = Instant::now();
    let shown = tf.show_json(&planfile)?;
    let summary = plan::parse_with(&shown, &session.trust.fingerprint)?;
    drop(shown);
    let budget = match (&session.trust.key, &identity.budget_digest) {
        // Authenticated by the identity's MAC: the plan-time figures stand.
        (Some(_), Some(budget_digest)) => {
            let bytes = home
                .read_run_file(run, "budget.json")?
                .ok_or_else(|| refuse("budget.json is missing from the bundle; plan again"))?;
            if &bundle::bytes_digest(&bytes) != budget_digest {
                return Err(refuse(
                    "budget.json differs from the budget report the plan recorded",
                ));
            }
            let report: BudgetReport = serde_json::from_slice(&bytes).context("budget.json")?;
            BudgetSource::Reuse(Some(report))
        }
        (Some(_), None) => BudgetSource::Reuse(None),
        // Unauthenticated figures are never reused: ask again.
        (None, _) => BudgetSource::Fetch,
    };
    let is_destroy = summary.is_destroy();
    let derived = derive::derive(
        ctx,
        &loaded,
        summary,
        super::plan::run_input(&identity, false, is_destroy),
        budget,
        warn,
    )?;
    let rederive_ms = t.elapsed().as_millis() as u64;
    let verdict = verdict_name(derived.verdict);
    if verdict != identity.verdict {
        return Err(refuse(format!(
            "the recorded verdict ({}) is not the verdict re-derived from the plan file ({verdict}); \
             the bundle was edited, or policy or budget figures moved: plan again",
            identity.verdict
        )));
    }
    match derived.verdict {
        Verdict::Denied => {
            return Err(refuse(
                "this plan was denied (a hard-mandatory policy or budget finding; see the run's report)",
            ));
        }
        Verdict::NeedsApproval => {
            let approvals = super::approve::approvals_for(session, run, &digest, warn)?;
            if approvals == 0 {
                return Err(refuse(format!(
                    "this plan needs an approval (policy or budget): platform-broker approve {run} --reason …"
                )));
            }
        }
        Verdict::Allowed => {}
    }

    // Consumed before terraform starts: a crash from here on leaves the run
    // "needs reconcile", never retried by accident.
    if !bundle::create_exclusive(&run_dir.join("consumed"), &rfc3339(now()))? {
        return Err(refuse("this bundle was already applied"));
    }
    bundle::write_file(
        &run_dir.join("status"),
        b"applying (if this stays, the run needs reconcile)\n",
        0o600,
    )?;
    audit.append(
        "dev.platform.broker.apply.start",
        Some(&identity.workspace),
        json!({"actor": ctx.actor, "run": run, "identity_digest": digest,
               "rederive_ms": rederive_ms}),
    )?;
    let result = tf.apply(&planfile, say);
    let (status, code) = match &result {
        Ok(()) => ("applied", 0),
        Err(_) => ("failed", 1),
    };
    bundle::write_file(
        &run_dir.join("status"),
        format!("{status}\n").as_bytes(),
        0o600,
    )?;
    audit.append(
        "dev.platform.broker.apply.end",
        Some(&identity.workspace),
        json!({
            "actor": ctx.actor, "run": run, "identity_digest": digest,
            "status": status, "terraform_exit": code,
            "error": result.as_ref().err().map(ToString::to_string),
            "duration_ms": started.elapsed().as_millis() as u64,
        }),
    )?;
    drop(lock);
    result.map_err(|e| anyhow!("terraform apply failed: {e}"))?;
    Ok(Applied {
        run: run.to_owned(),
        exit_code: EXIT_OK,
    })
}

/// Everything recorded about what shaped the plan still holds.
fn check_bindings(identity: &Identity, session: &Session) -> Result<()> {
    let dir = &session.dir;
    let fingerprint = &session.trust.fingerprint;
    if bundle::file_digest(&dir.join(".terraform.lock.hcl"))? != identity.lock_digest {
        return Err(refuse("the dependency lock file changed since the plan"));
    }
    let config = super::plan::config_digest(dir, fingerprint)?;
    if identity.config_digest.as_deref() != Some(config.as_str()) {
        return Err(refuse(
            "the configuration (*.tf, *.tfvars in the working directory) changed since the plan",
        ));
    }
    if super::plan::backend_digest(dir, fingerprint)? != identity.backend_digest {
        return Err(refuse(
            "the backend configuration (terraform init) changed since the plan",
        ));
    }
    for file in &identity.options.var_files {
        let now =
            super::plan::var_file_digest(Path::new(&file.name), fingerprint).map_err(|e| {
                refuse(format!(
                    "the var file {} is unreadable: {}",
                    file.name,
                    crate::render_error(&e)
                ))
            })?;
        if now != file.digest {
            return Err(refuse(format!(
                "the var file {} changed since the plan",
                file.name
            )));
        }
    }
    Ok(())
}
