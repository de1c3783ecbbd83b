//! `plan`: terraform plan + show, policy, cost and budget, a bundle for apply.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::{Value as Json, json};

use super::derive::{self, BudgetSource, Derived, verdict_name};
use super::input::{RunInput, WorkspaceInput};
use super::{Context, EXIT_CHANGES, EXIT_DENIED, EXIT_NEEDS_APPROVAL, EXIT_OK, Inputs, Loaded};
use crate::audit::AuditLog;
use crate::bundle::{self, Identity, PlanRecord, PriorState, Recorded, SignedIdentity};
use crate::dates::{now, rfc3339};
use crate::key::{Fingerprint, Trust};
use crate::plan::{self, PlanSummary};
use crate::policy::Verdict;
use crate::report::{self, Report};
use crate::tf::{PlanOptions, PlanOutcome, Terraform};

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    pub dir: PathBuf,
    pub inputs: Inputs,
    /// The environment policies see (`input.run.workspace.environment`).
    pub environment: String,
    pub expires_hours: u32,
    pub destroy: bool,
    /// `-var NAME=VALUE`: passed to terraform, recorded only by name and a
    /// keyed digest.
    pub vars: Vec<(String, String)>,
    pub var_files: Vec<PathBuf>,
    pub targets: Vec<String>,
    pub replace: Vec<String>,
}

/// A finished plan run.
pub struct Planned {
    pub run: String,
    pub report: Report,
    /// The redacted plan (for the Markdown report's details).
    pub summary: PlanSummary,
    pub exit_code: u8,
}

/// Keyed digest of the root module's configuration: every `*.tf`, `*.tf.json`,
/// `*.tfvars` and `*.tfvars.json` file directly in `dir` (names and bytes, in
/// name order). Local modules elsewhere are part of the plan file itself.
pub fn config_digest(dir: &Path, fingerprint: &Fingerprint) -> Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            [".tf", ".tf.json", ".tfvars", ".tfvars.json"]
                .iter()
                .any(|ext| name.ends_with(ext))
        })
        .collect();
    names.sort();
    let mut all = Vec::new();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).with_context(|| name.clone())?;
        all.extend_from_slice(name.as_bytes());
        all.push(0);
        all.extend_from_slice(bytes.len().to_string().as_bytes());
        all.push(0);
        all.extend_from_slice(&bytes);
    }
    Ok(format!("keyed:{}", fingerprint.short(&all, 64)))
}

/// Keyed digest of the initialized backend (type and configuration hash);
/// `None` without `.terraform/terraform.tfstate` (the default local backend).
pub fn backend_digest(dir: &Path, fingerprint: &Fingerprint) -> Result<Option<String>> {
    let path = dir.join(".terraform").join("terraform.tfstate");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
    };
    let value: Json =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))?;
    let backend = value.get("backend").cloned().unwrap_or(Json::Null);
    Ok(Some(format!(
        "keyed:{}",
        fingerprint.short(backend.to_string().as_bytes(), 64)
    )))
}

/// Keyed digest of a var file's contents.
pub fn var_file_digest(path: &Path, fingerprint: &Fingerprint) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("var file {}", path.display()))?;
    Ok(format!("keyed:{}", fingerprint.short(&bytes, 64)))
}

/// The identity's record of the plan options (values only as keyed digests).
fn plan_record(request: &PlanRequest, var_files: &[PathBuf], trust: &Trust) -> Result<PlanRecord> {
    Ok(PlanRecord {
        destroy: request.destroy,
        targets: request.targets.clone(),
        replace: request.replace.clone(),
        vars: request
            .vars
            .iter()
            .map(|(name, value)| Recorded {
                name: name.clone(),
                digest: format!(
                    "keyed:{}",
                    trust
                        .fingerprint
                        .short(format!("{name}\0{value}").as_bytes(), 64)
                ),
            })
            .collect(),
        var_files: var_files
            .iter()
            .map(|path| {
                Ok(Recorded {
                    name: path.display().to_string(),
                    digest: var_file_digest(path, &trust.fingerprint)?,
                })
            })
            .collect::<Result<_>>()?,
    })
}

/// `input.run` for a run.
pub(crate) fn run_input(identity: &Identity, refresh_only: bool, is_destroy: bool) -> RunInput {
    RunInput {
        id: identity.run.clone(),
        created_by: identity.created_by.clone(),
        commit_sha: identity.commit.clone(),
        is_destroy,
        refresh_only,
        target_addrs: identity.options.targets.clone(),
        replace_addrs: identity.options.replace.clone(),
        workspace: WorkspaceInput {
            name: identity.workspace.clone(),
            environment: identity.environment.clone(),
            tags: Vec::new(),
            directory: identity.working_dir.clone(),
        },
    }
}

/// The MAC of an identity with the broker key, if there is one.
pub(crate) fn sign(identity: Identity, trust: &Trust) -> SignedIdentity {
    let mac = trust
        .key
        .as_ref()
        .map(|key| key.mac(bundle::IDENTITY_DOMAIN, identity.canonical().as_bytes()));
    SignedIdentity { identity, mac }
}

/// Where a plan run's time went (wall clock), for the audit event.
#[derive(Default)]
struct Timings {
    terraform_init: Duration,
    terraform_plan: Duration,
    terraform_show: Duration,
    policy: Duration,
}

impl Timings {
    fn json(&self, total: Duration) -> Json {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let terraform = self.terraform_init + self.terraform_plan + self.terraform_show;
        let round = |x: f64| (x * 10.0).round() / 10.0;
        json!({
            "terraform_init": round(ms(self.terraform_init)),
            "terraform_plan": round(ms(self.terraform_plan)),
            "terraform_show": round(ms(self.terraform_show)),
            "policy": round(ms(self.policy)),
            "broker": round(ms(total.saturating_sub(terraform))),
            "total": round(ms(total)),
        })
    }
}

/// Plans `request.dir`. Every failure after the audit log is open is audited
/// (`dev.platform.broker.plan.failed`, with the reason) before it returns.
pub fn plan(
    ctx: &Context,
    request: &PlanRequest,
    say: &mut dyn FnMut(&str),
    warn: &mut dyn FnMut(&str),
) -> Result<Planned> {
    let started = Instant::now();
    let mut session = ctx.session(&request.dir)?;
    // Opened before terraform runs, so a misconfigured sink (say, a missing
    // webhook secret) fails fast.
    let mut audit = ctx.audit(&mut session)?;
    for warning in session.warnings.drain(..) {
        warn(&warning);
    }
    let workspace = super::workspace(&session.dir);
    let mut run_id = None;
    match plan_in(
        ctx,
        request,
        &session,
        &mut audit,
        started,
        &mut run_id,
        say,
        warn,
    ) {
        Ok(planned) => Ok(planned),
        Err(error) => Err(super::audit_failure(
            Some(&mut audit),
            "dev.platform.broker.plan.failed",
            Some(&workspace),
            json!({"actor": ctx.actor, "run": run_id, "dir": session.dir,
                   "duration_ms": started.elapsed().as_millis() as u64}),
            scrub_vars(error, &request.vars),
        )),
    }
}

/// Terraform may quote a `-var` value in an error (it only hides values of
/// variables declared sensitive): the broker's error and its audit event
/// never carry one.
fn scrub_vars(error: anyhow::Error, vars: &[(String, String)]) -> anyhow::Error {
    let text = crate::render_error(&error);
    let mut scrubbed = text.clone();
    for (name, value) in vars {
        if value.len() >= 3 {
            scrubbed = scrubbed.replace(value.as_str(), &format!("(value of -var {name})"));
        }
    }
    if scrubbed == text {
        error
    } else {
        anyhow::anyhow!(scrubbed)
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_in(
    ctx: &Context,
    request: &PlanRequest,
    session: &super::Session,
    audit: &mut AuditLog,
    started: Instant,
    run_id: &mut Option<String>,
    say: &mut dyn FnMut(&str),
    warn: &mut dyn FnMut(&str),
) -> Result<Planned> {
    let dir = &session.dir;
    let home = &session.home;
    let trust = &session.trust;
    let loaded = Loaded::load(&request.inputs)?;
    let var_files: Vec<PathBuf> = request
        .var_files
        .iter()
        .map(|f| {
            let f = if f.is_absolute() {
                f.clone()
            } else {
                dir.join(f)
            };
            std::fs::canonicalize(&f).with_context(|| format!("var file {}", f.display()))
        })
        .collect::<Result<_>>()?;
    let record = plan_record(request, &var_files, trust)?;
    let tf = Terraform::find(ctx.terraform.as_deref(), dir)?;
    let mut timings = Timings::default();
    let t = Instant::now();
    tf.init_if_needed(say)?;
    timings.terraform_init = t.elapsed();
    let prior = ctx.state_meta(&tf)?;
    let (run, run_dir) = home.create_run()?;
    *run_id = Some(run.clone());
    let planfile = run_dir.join("plan.tfplan");
    say(&format!("planning {} (run {run})", dir.display()));
    let options = PlanOptions {
        destroy: request.destroy,
        vars: request.vars.clone(),
        var_files: var_files.clone(),
        targets: request.targets.clone(),
        replace: request.replace.clone(),
        ..PlanOptions::default()
    };
    // The commit lookup (a git process) runs while terraform plans.
    let commit = {
        let tf = tf.clone();
        std::thread::spawn(move || tf.git_commit())
    };
    let t = Instant::now();
    let outcome = tf.plan(&planfile, &options, say)?;
    timings.terraform_plan = t.elapsed();
    bundle::set_private(&planfile)?;
    let t = Instant::now();
    let shown = tf.show_json(&planfile)?;
    timings.terraform_show = t.elapsed();
    let summary = plan::parse_with(&shown, &trust.fingerprint)?;
    drop(shown);
    let workspace = super::workspace(dir);
    let created = now();
    let mut identity = Identity {
        run: run.clone(),
        plan_digest: bundle::file_digest(&planfile)?.unwrap_or_default(),
        lock_digest: bundle::file_digest(&dir.join(".terraform.lock.hcl"))?,
        catalog_digest: Some(loaded.catalog.digest.clone()),
        policy_digest: loaded.policy_digest(),
        pricebook_digest: loaded.book_digest.clone(),
        prior_state: prior.map(|p| PriorState {
            lineage: p.lineage,
            serial: p.serial,
        }),
        working_dir: dir.display().to_string(),
        workspace: workspace.clone(),
        environment: request.environment.clone(),
        config_digest: Some(config_digest(dir, &trust.fingerprint)?),
        backend_digest: backend_digest(dir, &trust.fingerprint)?,
        options: record,
        budget_digest: None,
        commit: commit.join().unwrap_or(None),
        created_by: ctx.actor.clone(),
        created_at: rfc3339(created),
        expires_at: rfc3339(created + time::Duration::hours(i64::from(request.expires_hours))),
        verdict: String::new(),
        key_id: trust.key.as_ref().map(|k| k.id().to_owned()),
    };
    let is_destroy = summary.is_destroy();
    let Derived {
        summary,
        costs,
        budget,
        findings,
        policy_error,
        verdict,
        policy_time,
        ..
    } = derive::derive(
        ctx,
        &loaded,
        summary,
        run_input(&identity, false, is_destroy),
        BudgetSource::Fetch,
        warn,
    )?;
    timings.policy = policy_time;
    let has_changes = matches!(outcome, PlanOutcome::Changes) && summary.has_changes();
    let code = match verdict {
        Verdict::Denied => EXIT_DENIED,
        Verdict::NeedsApproval if has_changes => EXIT_NEEDS_APPROVAL,
        _ if has_changes => EXIT_CHANGES,
        _ => EXIT_OK,
    };
    identity.verdict = verdict_name(verdict).to_owned();
    if let Some(budget) = &budget {
        let bytes = serde_json::to_vec_pretty(budget)?;
        identity.budget_digest = Some(bundle::bytes_digest(&bytes));
        bundle::write_file(&run_dir.join("budget.json"), &bytes, 0o600)?;
    }
    let signed = sign(identity, trust);
    let identity = &signed.identity;
    let report = Report {
        format_version: crate::cli::JSON_FORMAT_VERSION,
        run: run.clone(),
        dir: request.dir.display().to_string(),
        workspace: workspace.clone(),
        environment: request.environment.clone(),
        identity_digest: identity.digest(),
        counts: summary.counts(),
        changes: report::changes(&summary),
        cost: costs.clone(),
        budget: budget.clone(),
        findings: findings.clone(),
        policy_error,
        verdict: identity.verdict.clone(),
        exit_code: code,
    };
    bundle::write_cache(
        &run_dir.join("plan.redacted.json"),
        summary.redacted.to_string().as_bytes(),
    )?;
    bundle::write_cache(
        &run_dir.join("report.json"),
        serde_json::to_vec_pretty(&report)?.as_slice(),
    )?;
    bundle::write_file(
        &run_dir.join("identity.json"),
        serde_json::to_vec_pretty(&signed)?.as_slice(),
        0o600,
    )?;
    audit.append(
        "dev.platform.broker.plan",
        Some(&workspace),
        json!({
            "actor": ctx.actor,
            "run": run,
            "identity_digest": identity.digest(),
            "expires_at": identity.expires_at,
            "counts": summary.counts(),
            "verdict": identity.verdict,
            "findings": findings.iter().map(|f| json!({"rule": f.rule, "address": f.address, "severity": format!("{:?}", f.severity)})).collect::<Vec<_>>(),
            "cost_delta": costs.monthly_delta,
            "budget": budget.as_ref().map(|b| json!({
                "status": b.status,
                "checks": b.checks.iter().map(|c| json!({"team": c.team, "projected": c.projected, "plan_delta": c.plan_delta, "estimate_source": c.estimate_source, "breach": c.breach})).collect::<Vec<_>>(),
            })),
            "options": {
                "destroy": identity.options.destroy,
                "targets": identity.options.targets,
                "replace": identity.options.replace,
                "vars": identity.options.vars.iter().map(|v| &v.name).collect::<Vec<_>>(),
                "var_files": identity.options.var_files.iter().map(|v| &v.name).collect::<Vec<_>>(),
            },
            "exit_code": code,
            "duration_ms": started.elapsed().as_millis() as u64,
            "durations_ms": timings.json(started.elapsed()),
        }),
    )?;
    Ok(Planned {
        run,
        report,
        summary,
        exit_code: code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_values_never_reach_an_error() {
        let error = anyhow::anyhow!("Error: bad value \"s3cr3t-value\" for var.db_password");
        let vars = vec![("db_password".to_owned(), "s3cr3t-value".to_owned())];
        let text = format!("{:#}", scrub_vars(error, &vars));
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("(value of -var db_password)"), "{text}");
    }

    #[test]
    fn config_digest_covers_tf_and_tfvars_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fp = Fingerprint::from_salt(b"salt");
        std::fs::write(dir.path().join("main.tf"), "a").expect("write");
        let first = config_digest(dir.path(), &fp).expect("digest");
        std::fs::write(dir.path().join("notes.txt"), "x").expect("write");
        assert_eq!(config_digest(dir.path(), &fp).expect("digest"), first);
        std::fs::write(dir.path().join("prod.auto.tfvars"), "x = 1").expect("write");
        let with_vars = config_digest(dir.path(), &fp).expect("digest");
        assert_ne!(with_vars, first);
        std::fs::write(dir.path().join("main.tf"), "b").expect("write");
        assert_ne!(config_digest(dir.path(), &fp).expect("digest"), with_vars);
        // Keyed: another home's salt gives another digest of the same files.
        assert_ne!(
            config_digest(dir.path(), &Fingerprint::from_salt(b"other")).expect("digest"),
            config_digest(dir.path(), &fp).expect("digest")
        );
    }
}
