//! The commands, on top of the library modules. Each returns the process exit
//! code; errors become exit 1 in `main`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value as Json, json};

use crate::audit::{AuditLog, Webhook};
use crate::budget::{self, BudgetReport};
use crate::bundle::{self, Home, Identity, PriorState, WorkspaceLock};
use crate::config::BrokerConfig;
use crate::cost::{self, CostReport, PriceBook};
use crate::plan::{self, Mode, PlanSummary};
use crate::policy::{self, Decision, Policies, PolicyConfig, Verdict};
use crate::report;
use crate::tf::{PlanOptions, PlanOutcome, Terraform};

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;
pub const EXIT_DENIED: u8 = 3;
pub const EXIT_NEEDS_APPROVAL: u8 = 4;

pub struct Global {
    pub terraform: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// The broker configuration (`--config`); the default without one.
    pub config: BrokerConfig,
}

impl Global {
    fn home(&self, dir: &Path) -> Home {
        Home::new(self.home.clone().unwrap_or_else(|| dir.join(".platform")))
    }

    /// The configured webhooks, ready to deliver (secrets read from the
    /// environment).
    fn webhooks(&self, home: &Home) -> Result<Vec<Webhook>> {
        self.config
            .audit
            .webhooks
            .iter()
            .map(|config| {
                let default_spool = home.root.join("audit-spool").join(&config.name);
                Ok(Webhook::from_config(config, &default_spool)?.with_warnings(true))
            })
            .collect()
    }
}

/// The audit log with the configured sinks: the file is written (and
/// fsynced) first, then stdout and webhooks get the line.
fn open_audit(global: &Global, home: &Home) -> Result<AuditLog> {
    let webhooks = global.webhooks(home)?;
    let mut audit =
        AuditLog::open(&home.root.join("audit.log"))?.with_stdout(global.config.audit.stdout);
    for webhook in webhooks {
        audit.add_sink(Box::new(webhook));
    }
    Ok(audit)
}

#[derive(clap::Args)]
pub struct Inputs {
    /// Policy configuration (HCL); default: none (no policy).
    #[arg(long, env = "PLATFORM_POLICY")]
    pub policy: Option<PathBuf>,
    /// Price book for non-platform resource types.
    #[arg(long, env = "PLATFORM_PRICEBOOK")]
    pub pricebook: Option<PathBuf>,
    /// Catalog directory (default: the catalog compiled into the broker).
    #[arg(long, env = "PLATFORM_CATALOG")]
    pub catalog: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// Terraform working directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub inputs: Inputs,
    /// Environment name policies see (input.run.workspace.environment).
    #[arg(long, env = "PLATFORM_ENVIRONMENT", default_value = "default")]
    pub environment: String,
    /// Hours until the bundle expires.
    #[arg(long, default_value_t = 24)]
    pub expires_hours: u32,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the report as one Markdown PR comment.
    #[arg(long)]
    pub markdown: bool,
    /// Also write policy findings as SARIF 2.1.0 to this file.
    #[arg(long)]
    pub sarif: Option<PathBuf>,
    /// Also write policy findings as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The run to apply (default: the newest bundle).
    pub run: Option<String>,
    /// Terraform working directory.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub inputs: Inputs,
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    pub run: String,
    #[arg(long)]
    pub reason: String,
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

#[derive(clap::Args)]
pub struct DriftArgs {
    /// Working directories to check, one after another (each with its own
    /// broker home unless --home is given).
    #[arg(default_value = ".", value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
    /// Acknowledge drift of ADDRESS (optionally one attribute) until a date.
    #[arg(long, value_name = "ADDRESS")]
    pub ack: Option<String>,
    #[arg(long, requires = "ack")]
    pub attribute: Option<String>,
    #[arg(long, requires = "ack", value_name = "YYYY-MM-DD")]
    pub until: Option<String>,
    #[arg(long, requires = "ack")]
    pub reason: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Run every `test_*` rule of the configured policy sets.
    Test {
        #[arg(long, env = "PLATFORM_POLICY")]
        policy: PathBuf,
    },
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first bad event.
    Verify {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// The last N events.
    Tail {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(short, default_value_t = 10)]
        n: usize,
    },
    /// Every event, after verifying the chain.
    Export {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Deliver the events spooled for the configured webhooks, in order.
    Flush {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

fn actor() -> String {
    std::env::var("PLATFORM_ACTOR")
        .or_else(|_| std::env::var("GITHUB_ACTOR"))
        .or_else(|_| std::env::var("GITLAB_USER_LOGIN"))
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn progress(line: &str) {
    eprintln!("  {line}");
}

fn workspace(dir: &Path) -> String {
    std::env::var("TF_WORKSPACE").ok().unwrap_or_else(|| {
        std::fs::read_to_string(dir.join(".terraform/environment"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "default".to_owned())
    })
}

fn commit(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The catalog the broker prices and labels platform resources with.
fn load_catalog(dir: Option<&Path>) -> Result<platform_catalog::Catalog> {
    let (catalog, diags) = match dir {
        Some(dir) => platform_catalog::load_dir(dir),
        None => platform_catalog::load_sources(vec![platform_catalog::Source {
            name: "examples/catalogs/postgres.hcl".into(),
            text: include_str!("../../examples/catalogs/postgres.hcl").into(),
        }]),
    };
    if platform_catalog::has_errors(&diags) {
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        bail!("invalid catalog:\n{}", lines.join("\n"));
    }
    Ok(catalog)
}

struct Loaded {
    catalog: platform_catalog::Catalog,
    book: PriceBook,
    policy: Option<(PolicyConfig, Policies)>,
}

fn load_inputs(inputs: &Inputs) -> Result<Loaded> {
    let catalog = load_catalog(inputs.catalog.as_deref())?;
    let book = match &inputs.pricebook {
        Some(path) => PriceBook::load(path)?,
        None => PriceBook::default(),
    };
    let policy = match &inputs.policy {
        Some(path) => {
            let config = PolicyConfig::load(path)?;
            let policies = Policies::load(&config)?;
            Some((config, policies))
        }
        None => None,
    };
    Ok(Loaded {
        catalog,
        book,
        policy,
    })
}

/// `input.catalog`: what the catalog says about each platform resource.
fn catalog_input(plan: &PlanSummary, catalog: &platform_catalog::Catalog) -> Json {
    let mut resources = Vec::new();
    for change in plan.resources.iter().filter(|r| r.mode == Mode::Managed) {
        let Some(offering) = catalog
            .offerings
            .iter()
            .find(|o| catalog.resource_type(o) == change.type_)
        else {
            continue;
        };
        let values = if change.after.is_null() {
            &change.before
        } else {
            &change.after
        };
        let version = values
            .get("offering_version")
            .and_then(Json::as_str)
            .and_then(|v| offering.version(v))
            .unwrap_or_else(|| offering.current());
        let tier_name = values.get("tier").and_then(Json::as_str);
        let tier = tier_name.and_then(|t| version.tier(t));
        resources.push(json!({
            "address": change.address,
            "offering": offering.name,
            "version": version.version,
            "version_status": version.status.as_str(),
            // The instance's owning team (docs/policy-input.md); the
            // offering's owners are the platform team behind it.
            "owner_team": values.get("team").and_then(Json::as_str).unwrap_or(""),
            "offering_owner": offering.owner.team,
            "tier": tier_name,
            "requires_approval": tier.is_some_and(|t| t.requires_approval),
            "action": change.action.as_str(),
        }));
    }
    json!({ "digest": catalog.digest, "resources": resources })
}

fn drift_input(plan: &PlanSummary) -> Json {
    Json::Array(
        plan.drift
            .iter()
            .map(|d| json!({"address": d.address, "attributes": d.changed_attributes}))
            .collect(),
    )
}

fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Allowed => "allowed",
        Verdict::NeedsApproval => "needs_approval",
        Verdict::Denied => "denied",
    }
}

pub fn plan(global: &Global, args: PlanArgs) -> Result<u8> {
    let started = Instant::now();
    let dir =
        std::fs::canonicalize(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    let home = global.home(&dir);
    let loaded = load_inputs(&args.inputs)?;
    // Opened before terraform runs, so a misconfigured sink (say, a missing
    // webhook secret) fails fast.
    let mut audit = open_audit(global, &home)?;
    let tf = Terraform::find(global.terraform.as_deref(), &dir)?;
    let mut say = progress;
    let mut timings = Timings::default();
    let t = Instant::now();
    tf.init_if_needed(&mut say)?;
    timings.terraform_init = t.elapsed();
    let prior = tf.state_meta()?;
    let (run, run_dir) = home.create_run()?;
    let planfile = run_dir.join("plan.tfplan");
    eprintln!("platform-broker: planning {} (run {run})", dir.display());
    let t = Instant::now();
    let outcome = tf.plan(&planfile, &PlanOptions::default(), &mut say)?;
    timings.terraform_plan = t.elapsed();
    bundle::set_private(&planfile)?;
    let t = Instant::now();
    let shown = tf.show_json(&planfile)?;
    timings.terraform_show = t.elapsed();
    let mut summary = plan::parse(&shown)?;
    let costs = cost::estimate(&summary, Some(&loaded.catalog), &loaded.book);
    let budget = budget_check(&global.config, &summary, &costs)?;
    if let Some(warning) = budget.as_ref().and_then(|b| b.warning.as_deref()) {
        eprintln!("platform-broker: warning: {warning}");
    }
    let budget_findings = budget
        .as_ref()
        .map(|b| budget::findings(&b.checks))
        .unwrap_or_default();
    let mut cost_input = serde_json::to_value(&costs)?;
    if let (Some(budget), Some(object)) = (&budget, cost_input.as_object_mut()) {
        object.insert("budgets".into(), serde_json::to_value(budget)?);
    }
    let workspace = workspace(&dir);
    let commit_sha = commit(&dir);
    let run_input = json!({
        "created_by": actor(),
        "commit_sha": commit_sha,
        "is_destroy": summary.is_destroy(),
        "refresh_only": false,
        "workspace": {"name": workspace, "environment": args.environment, "tags": []},
    });
    let catalog = catalog_input(&summary, &loaded.catalog);
    let drift = drift_input(&summary);
    // The redacted plan moves into the policy input and back (no deep copy).
    let mut input = json!({
        "input_version": "1",
        "plan": std::mem::take(&mut summary.redacted),
        "run": run_input,
        "cost": cost_input,
        "catalog": catalog,
        "drift": drift,
    });
    // Policy errors and timeouts fail closed: the run is denied.
    let t = Instant::now();
    let decision: Option<Result<Decision, String>> = loaded
        .policy
        .as_ref()
        .map(|(_, policies)| policies.evaluate(&input).map_err(|e| e.to_string()));
    timings.policy = t.elapsed();
    summary.redacted = input["plan"].take();
    drop(input);
    let policy_verdict = match &decision {
        None => Verdict::Allowed,
        Some(Ok(decision)) => decision.verdict,
        Some(Err(_)) => Verdict::Denied,
    };
    // A budget breach counts like a finding of a policy set of its level.
    let verdict = policy_verdict.max(policy::verdict_of(&budget_findings));
    let has_changes = matches!(outcome, PlanOutcome::Changes) && summary.has_changes();
    let code = match verdict {
        Verdict::Denied => EXIT_DENIED,
        Verdict::NeedsApproval if has_changes => EXIT_NEEDS_APPROVAL,
        _ if has_changes => EXIT_CHANGES,
        _ => EXIT_OK,
    };
    let created = now();
    let identity = Identity {
        run: run.clone(),
        plan_digest: bundle::file_digest(&planfile)?.unwrap_or_default(),
        lock_digest: bundle::file_digest(&dir.join(".terraform.lock.hcl"))?,
        catalog_digest: Some(loaded.catalog.digest.clone()),
        policy_digest: loaded.policy.as_ref().map(|(_, p)| p.digest()),
        prior_state: prior.map(|p| PriorState {
            lineage: p.lineage,
            serial: p.serial,
        }),
        working_dir: dir.display().to_string(),
        workspace: workspace.clone(),
        commit: commit_sha,
        created_by: actor(),
        created_at: rfc3339(created),
        expires_at: rfc3339(created + time::Duration::hours(i64::from(args.expires_hours))),
        verdict: verdict_name(&verdict).to_owned(),
    };
    let mut findings = match &decision {
        Some(Ok(d)) => d.findings.clone(),
        _ => Vec::new(),
    };
    findings.extend(budget_findings);
    let policy_error = match &decision {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    };
    let report = report::Report {
        run: run.clone(),
        identity_digest: identity.digest(),
        counts: summary.counts(),
        changes: report::changes(&summary),
        cost: costs.clone(),
        budget: budget.clone(),
        findings: findings.clone(),
        policy_error,
        verdict: verdict_name(&verdict).to_owned(),
        exit_code: code,
    };
    bundle::write_file(
        &run_dir.join("plan.redacted.json"),
        summary.redacted.to_string().as_bytes(),
        0o600,
    )?;
    bundle::write_file(
        &run_dir.join("report.json"),
        serde_json::to_vec_pretty(&report)?.as_slice(),
        0o600,
    )?;
    bundle::write_file(
        &run_dir.join("identity.json"),
        serde_json::to_vec_pretty(&identity)?.as_slice(),
        0o600,
    )?;
    if let Some(path) = &args.sarif {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&policy::report::sarif(&findings))?,
        )?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, policy::report::junit(&findings))?;
    }
    audit.append(
        "dev.platform.broker.plan",
        Some(&workspace),
        json!({
            "actor": actor(),
            "run": run,
            "identity_digest": identity.digest(),
            "counts": summary.counts(),
            "verdict": identity.verdict,
            "findings": findings.iter().map(|f| json!({"rule": f.rule, "address": f.address, "severity": format!("{:?}", f.severity)})).collect::<Vec<_>>(),
            "cost_delta": costs.monthly_delta,
            "budget": budget.as_ref().map(|b| json!({
                "status": b.status,
                "checks": b.checks.iter().map(|c| json!({"team": c.team, "projected": c.projected, "plan_delta": c.plan_delta, "estimate_source": c.estimate_source, "breach": c.breach})).collect::<Vec<_>>(),
            })),
            "exit_code": code,
            "duration_ms": started.elapsed().as_millis() as u64,
            "durations_ms": timings.json(started.elapsed()),
        }),
    )?;
    let text = if args.json {
        serde_json::to_string_pretty(&report)?
    } else if args.markdown {
        report::markdown(&report, &shown_for_markdown(&summary))
    } else {
        report::text(&report)
    };
    println!("{text}");
    Ok(code)
}

/// Where a plan run's time went (wall clock), for the audit event: what
/// Terraform took, what policy evaluation took, and the broker's own share.
#[derive(Default)]
struct Timings {
    terraform_init: std::time::Duration,
    terraform_plan: std::time::Duration,
    terraform_show: std::time::Duration,
    policy: std::time::Duration,
}

impl Timings {
    fn json(&self, total: std::time::Duration) -> Json {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
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

/// Today's date (UTC), or `PLATFORM_TODAY=YYYY-MM-DD` when set (as the
/// provider's deprecation rules do), so a budget month can be pinned.
fn today() -> Result<time::Date> {
    match std::env::var("PLATFORM_TODAY") {
        Ok(text) if !text.trim().is_empty() => {
            policy::parse_date(&text).map_err(|e| anyhow::anyhow!("PLATFORM_TODAY: {e}"))
        }
        _ => Ok(now().date()),
    }
}

/// The budget section of a plan: `None` without budgets. Cost Explorer is
/// only asked when a budgeted team's cost changes; when it cannot answer the
/// check is skipped with a warning, never passed silently.
fn budget_check(
    config: &BrokerConfig,
    summary: &PlanSummary,
    costs: &CostReport,
) -> Result<Option<BudgetReport>> {
    let Some(ce) = &config.cost_explorer else {
        return Ok(None);
    };
    if config.budgets.is_empty() {
        return Ok(None);
    }
    let deltas = budget::team_deltas(summary, costs, &ce.team_tag);
    let budgets: Vec<_> = config
        .budgets
        .iter()
        .filter(|b| deltas.by_team.contains_key(&b.team))
        .collect();
    let mut report = BudgetReport {
        status: "not_needed".into(),
        warning: None,
        currency: costs.currency.clone(),
        period: None,
        checks: Vec::new(),
        unattributed: deltas.unattributed.clone(),
    };
    if budgets.is_empty() {
        return Ok(Some(report));
    }
    let teams: Vec<String> = budgets.iter().map(|b| b.team.clone()).collect();
    match crate::costexplorer::lookup(ce, &teams, today()?) {
        Err(reason) => {
            report.status = "skipped".into();
            report.warning = Some(format!(
                "budget check skipped: actual spend is unavailable ({reason})"
            ));
        }
        Ok(actuals) => {
            report.status = "checked".into();
            report.currency = actuals.unit.clone();
            report.period = Some(actuals.period.clone());
            for budget in budgets {
                let Some(spend) = actuals.teams.get(&budget.team) else {
                    continue;
                };
                let delta = deltas.by_team.get(&budget.team).copied().unwrap_or(0.0);
                report.checks.push(budget::check(budget, spend, delta));
            }
        }
    }
    Ok(Some(report))
}

fn shown_for_markdown(summary: &PlanSummary) -> String {
    serde_json::to_string_pretty(
        &summary
            .redacted
            .get("resource_changes")
            .cloned()
            .unwrap_or(Json::Null),
    )
    .unwrap_or_default()
}

/// Why an apply is refused, if it is.
fn refusal(
    identity: &Identity,
    dir: &Path,
    home: &Home,
    tf: &Terraform,
    inputs: &Inputs,
) -> Result<Option<String>> {
    let run_dir = home.run_dir(&identity.run);
    let expires = time::OffsetDateTime::parse(
        &identity.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .context("bundle expiry")?;
    if now() > expires {
        return Ok(Some(format!(
            "the bundle expired at {}; plan again",
            identity.expires_at
        )));
    }
    if run_dir.join("consumed").exists() {
        return Ok(Some(
            "this bundle was already applied (each plan applies once); plan again".into(),
        ));
    }
    match bundle::file_digest(&run_dir.join("plan.tfplan"))? {
        Some(d) if d == identity.plan_digest => {}
        _ => return Ok(Some("the plan file changed since it was reviewed".into())),
    }
    if bundle::file_digest(&dir.join(".terraform.lock.hcl"))? != identity.lock_digest {
        return Ok(Some(
            "the dependency lock file changed since the plan".into(),
        ));
    }
    let loaded = load_inputs(inputs)?;
    if Some(loaded.catalog.digest.clone()) != identity.catalog_digest {
        return Ok(Some("the catalog changed since the plan".into()));
    }
    if loaded.policy.as_ref().map(|(_, p)| p.digest()) != identity.policy_digest {
        return Ok(Some("the policy bundle changed since the plan".into()));
    }
    let now_state = tf.state_meta()?.map(|p| PriorState {
        lineage: p.lineage,
        serial: p.serial,
    });
    if now_state != identity.prior_state {
        return Ok(Some(match (&identity.prior_state, &now_state) {
            (None, Some(_)) => {
                "the plan was made against an empty state that has since been written".into()
            }
            _ => "the state changed since the plan (another apply ran); plan again".into(),
        }));
    }
    match identity.verdict.as_str() {
        "denied" => {
            return Ok(Some(
                "this plan was denied (a hard-mandatory policy or budget finding; see the run's report)"
                    .into(),
            ));
        }
        "needs_approval" => {
            let approvals =
                std::fs::read_to_string(run_dir.join("approvals.json")).unwrap_or_default();
            let approved = serde_json::from_str::<Vec<Json>>(&approvals)
                .unwrap_or_default()
                .iter()
                .any(|a| {
                    a.get("identity_digest").and_then(Json::as_str)
                        == Some(identity.digest().as_str())
                });
            if !approved {
                return Ok(Some(format!(
                    "this plan needs an approval (policy or budget): platform-broker approve {} --reason …",
                    identity.run
                )));
            }
        }
        _ => {}
    }
    Ok(None)
}

pub fn apply(global: &Global, args: ApplyArgs) -> Result<u8> {
    let started = Instant::now();
    let dir =
        std::fs::canonicalize(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    let home = global.home(&dir);
    let run = match args.run {
        Some(run) => run,
        None => home.latest_run()?,
    };
    let identity = home.load_identity(&run)?;
    let tf = Terraform::find(global.terraform.as_deref(), &dir)?;
    let mut audit = open_audit(global, &home)?;
    let lock = match WorkspaceLock::acquire(&home, &identity.workspace, &run)? {
        Ok(lock) => lock,
        Err(why) => bail!("refusing to apply run {run}: {why}"),
    };
    if let Some(why) = refusal(&identity, &dir, &home, &tf, &args.inputs)? {
        audit.append(
            "dev.platform.broker.apply.refused",
            Some(&identity.workspace),
            json!({"actor": actor(), "run": run, "identity_digest": identity.digest(), "reason": why}),
        )?;
        drop(lock);
        bail!("refusing to apply run {run}: {why}");
    }
    let run_dir = home.run_dir(&run);
    // Consumed before terraform starts: a crash from here on leaves the run
    // "needs reconcile", never retried by accident.
    if !bundle::create_exclusive(&run_dir.join("consumed"), &rfc3339(now()))? {
        bail!("refusing to apply run {run}: this bundle was already applied");
    }
    bundle::write_file(
        &run_dir.join("status"),
        b"applying (if this stays, the run needs reconcile)\n",
        0o600,
    )?;
    audit.append(
        "dev.platform.broker.apply.start",
        Some(&identity.workspace),
        json!({"actor": actor(), "run": run, "identity_digest": identity.digest()}),
    )?;
    let mut say = progress;
    let result = tf.apply(&run_dir.join("plan.tfplan"), &mut say);
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
            "actor": actor(), "run": run, "identity_digest": identity.digest(),
            "status": status, "terraform_exit": code,
            "error": result.as_ref().err().map(ToString::to_string),
            "duration_ms": started.elapsed().as_millis() as u64,
        }),
    )?;
    drop(lock);
    result?;
    println!("platform-broker: applied run {run}");
    Ok(EXIT_OK)
}

pub fn approve(global: &Global, args: ApproveArgs) -> Result<u8> {
    let dir = std::fs::canonicalize(&args.dir)?;
    let home = global.home(&dir);
    let identity = home.load_identity(&args.run)?;
    if args.reason.trim().is_empty() {
        bail!("an approval needs a --reason");
    }
    let path = home.run_dir(&args.run).join("approvals.json");
    let mut approvals: Vec<Json> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let approval = json!({
        "identity_digest": identity.digest(),
        "approver": actor(),
        "reason": args.reason,
        "at": rfc3339(now()),
    });
    approvals.push(approval.clone());
    bundle::write_file(
        &path,
        serde_json::to_vec_pretty(&approvals)?.as_slice(),
        0o600,
    )?;
    let mut audit = open_audit(global, &home)?;
    audit.append(
        "dev.platform.broker.approve",
        Some(&identity.workspace),
        json!({"run": args.run, "approval": approval}),
    )?;
    println!(
        "platform-broker: approved run {} ({})",
        args.run,
        identity.digest()
    );
    Ok(EXIT_OK)
}

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

/// `drift DIR...`: each directory in turn. Exit 1 when any directory
/// failed (the others are still checked and reported), else 2 when any has
/// open drift, else 0. With one directory the output is that directory's
/// report; with several, text sections headed by the directory, or one JSON
/// object `{"dirs": [...], "exit_code": N}`.
pub fn drift(global: &Global, args: DriftArgs) -> Result<u8> {
    if args.dirs.len() == 1 {
        let outcome = drift_dir(global, &args.dirs[0], &args)?;
        print_drift(&outcome, args.json)?;
        return Ok(outcome.code());
    }
    if args.ack.is_some() {
        anyhow::bail!("--ack acknowledges drift in one directory: give exactly one DIR");
    }
    let mut worst = EXIT_OK;
    let mut reports = Vec::new();
    for dir in &args.dirs {
        if !args.json {
            println!("== {} ==", dir.display());
        }
        match drift_dir(global, dir, &args) {
            Ok(outcome) => {
                if !args.json {
                    print_drift(&outcome, false)?;
                }
                worst = worst_exit(worst, outcome.code());
                reports.push(
                    json!({"dir": dir, "drift": outcome.drifted(), "exit_code": outcome.code()}),
                );
            }
            Err(error) => {
                eprintln!("platform-broker: error: {}: {error:#}", dir.display());
                worst = worst_exit(worst, EXIT_ERROR);
                reports.push(
                    json!({"dir": dir, "error": format!("{error:#}"), "exit_code": EXIT_ERROR}),
                );
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"dirs": reports, "exit_code": worst}))?
        );
    }
    Ok(worst)
}

/// Error beats drift beats clean.
fn worst_exit(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        EXIT_ERROR => 2,
        EXIT_CHANGES => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// What `drift` did in one directory.
enum DirDrift {
    /// `--ack`: an acknowledgement was recorded.
    Acknowledged { address: String, until: String },
    /// A refresh-only plan ran: every drifted attribute, and the exit code.
    Checked { code: u8, drifted: Vec<Drifted> },
}

impl DirDrift {
    fn code(&self) -> u8 {
        match self {
            DirDrift::Acknowledged { .. } => EXIT_OK,
            DirDrift::Checked { code, .. } => *code,
        }
    }

    fn drifted(&self) -> &[Drifted] {
        match self {
            DirDrift::Acknowledged { .. } => &[],
            DirDrift::Checked { drifted, .. } => drifted,
        }
    }
}

/// One directory's drift check (or acknowledgement).
fn drift_dir(global: &Global, dir: &Path, args: &DriftArgs) -> Result<DirDrift> {
    let started = Instant::now();
    let dir = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
    let home = global.home(&dir);
    std::fs::create_dir_all(&home.root)?;
    let acks_path = home.root.join("drift-acks.json");
    let mut acks: Vec<Json> = std::fs::read_to_string(&acks_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if let Some(address) = &args.ack {
        let until = args
            .until
            .as_ref()
            .context("--ack needs --until YYYY-MM-DD")?;
        let reason = args.reason.as_ref().context("--ack needs --reason")?;
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(until, &format).with_context(|| format!("--until {until:?}"))?;
        acks.push(json!({"address": address, "attribute": args.attribute, "until": until, "reason": reason, "by": actor()}));
        bundle::write_file(
            &acks_path,
            serde_json::to_vec_pretty(&acks)?.as_slice(),
            0o600,
        )?;
        return Ok(DirDrift::Acknowledged {
            address: address.clone(),
            until: until.clone(),
        });
    }
    let tf = Terraform::find(global.terraform.as_deref(), &dir)?;
    let mut say = progress;
    tf.init_if_needed(&mut say)?;
    let scratch = tempfile::Builder::new()
        .prefix("drift")
        .tempdir_in(&home.root)?;
    let planfile = scratch.path().join("drift.tfplan");
    let options = PlanOptions {
        refresh_only: true,
        ..PlanOptions::default()
    };
    tf.plan(&planfile, &options, &mut say)?;
    let summary = plan::parse(&tf.show_json(&planfile)?)?;
    let known_path = home.root.join("drift-known.json");
    let mut known: BTreeMap<String, String> = std::fs::read_to_string(&known_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
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
    let new: Vec<&Drifted> = drifted.iter().filter(|d| !d.seen_before).collect();
    for d in &new {
        known.insert(d.fingerprint.clone(), rfc3339(now()));
    }
    bundle::write_file(
        &known_path,
        serde_json::to_vec_pretty(&known)?.as_slice(),
        0o600,
    )?;
    let open: Vec<&Drifted> = drifted
        .iter()
        .filter(|d| d.acknowledged.is_none())
        .collect();
    let code = if open.is_empty() {
        EXIT_OK
    } else {
        EXIT_CHANGES
    };
    let mut audit = open_audit(global, &home)?;
    audit.append(
        "dev.platform.broker.drift",
        Some(&workspace(&dir)),
        json!({
            "actor": actor(),
            "drifted": drifted.iter().map(|d| json!({"address": d.address, "attribute": d.attribute, "fingerprint": d.fingerprint, "new": !d.seen_before, "acknowledged": d.acknowledged.is_some()})).collect::<Vec<_>>(),
            "exit_code": code,
            "duration_ms": started.elapsed().as_millis() as u64,
        }),
    )?;
    Ok(DirDrift::Checked { code, drifted })
}

fn print_drift(outcome: &DirDrift, as_json: bool) -> Result<()> {
    let drifted = match outcome {
        DirDrift::Acknowledged { address, until } => {
            println!("platform-broker: acknowledged drift of {address} until {until}");
            return Ok(());
        }
        DirDrift::Checked { code, drifted } if as_json => {
            let report = json!({"drift": drifted, "exit_code": code});
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        DirDrift::Checked { drifted, .. } => drifted,
    };
    if drifted.is_empty() {
        println!("No drift: the infrastructure matches the state.");
        return Ok(());
    }
    let new = drifted.iter().filter(|d| !d.seen_before).count();
    let acknowledged = drifted.iter().filter(|d| d.acknowledged.is_some()).count();
    println!(
        "Drift ({} attribute(s), {new} new, {acknowledged} acknowledged):",
        drifted.len()
    );
    for d in drifted {
        let note = match (&d.acknowledged, d.seen_before) {
            (Some(reason), _) => format!(" [acknowledged: {reason}]"),
            (None, true) => " [seen before]".to_owned(),
            (None, false) => " [new]".to_owned(),
        };
        println!(
            "  {}.{}: {} -> {}{note}",
            d.address, d.attribute, d.before, d.after
        );
    }
    Ok(())
}

pub fn policy(_global: &Global, command: PolicyCommand) -> Result<u8> {
    match command {
        PolicyCommand::Test { policy } => {
            let config = PolicyConfig::load(&policy)?;
            let report = policy::run_tests(&config)?;
            for (set, rule) in &report.failed {
                println!("FAIL {set}: {rule}");
            }
            println!("{} passed, {} failed", report.passed, report.failed.len());
            Ok(if report.failed.is_empty() { EXIT_OK } else { 1 })
        }
    }
}

pub fn audit(global: &Global, command: AuditCommand) -> Result<u8> {
    match command {
        AuditCommand::Verify { dir } => {
            let path = global.home(&dir).root.join("audit.log");
            let report = crate::audit::verify(&path)?;
            match &report.first_bad {
                None => {
                    println!("audit log OK: {} events, chain intact", report.events);
                    Ok(EXIT_OK)
                }
                Some(bad) => {
                    println!("audit log BROKEN at line {}: {}", bad.line, bad.reason);
                    Ok(1)
                }
            }
        }
        AuditCommand::Tail { dir, n } => {
            for line in crate::audit::tail(&global.home(&dir).root.join("audit.log"), n)? {
                println!("{line}");
            }
            Ok(EXIT_OK)
        }
        AuditCommand::Export { dir } => {
            let mut out = std::io::stdout().lock();
            crate::audit::export(&global.home(&dir).root.join("audit.log"), &mut out)?;
            Ok(EXIT_OK)
        }
        AuditCommand::Flush { dir } => {
            let webhooks = global.webhooks(&global.home(&dir))?;
            if webhooks.is_empty() {
                bail!("no audit webhook is configured (see --config and docs/broker-config.md)");
            }
            let mut code = EXIT_OK;
            for mut webhook in webhooks {
                let report = webhook.flush()?;
                match &report.error {
                    None => println!(
                        "audit webhook \"{}\": delivered {}, 0 pending",
                        webhook.name(),
                        report.delivered
                    ),
                    Some(error) => {
                        println!(
                            "audit webhook \"{}\": delivered {}, {} pending in {}: {error}",
                            webhook.name(),
                            report.delivered,
                            report.pending,
                            webhook.spool_dir().display()
                        );
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
    }
}
