//! The verdict of a plan, derived from the redacted plan, the loaded inputs
//! and the run's facts. `plan` derives it to report; `apply` derives it again
//! from the plan file it is about to apply and refuses unless it matches.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::input::{self, CostInput, PolicyInput, RunInput};
use super::{Context, Loaded};
use crate::budget::{self, BudgetReport};
use crate::config::BrokerConfig;
use crate::cost::{self, CostReport};
use crate::plan::PlanSummary;
use crate::policy::{self, Finding, Verdict};

/// Where budget figures come from.
pub enum BudgetSource {
    /// Ask Cost Explorer (plan; apply without an authenticated plan-time report).
    Fetch,
    /// The plan-time report, authenticated by the identity's MAC.
    Reuse(Option<BudgetReport>),
}

/// Everything the verdict was derived from, and the verdict.
pub struct Derived {
    pub summary: PlanSummary,
    pub costs: CostReport,
    pub budget: Option<BudgetReport>,
    /// Policy findings, then budget breaches.
    pub findings: Vec<Finding>,
    /// Set when policy evaluation failed: the run is denied (fail closed).
    pub policy_error: Option<String>,
    pub verdict: Verdict,
    pub policy_time: Duration,
    /// Each policy set's share of `policy_time` (rule time, summed over the
    /// evaluation threads); empty when evaluation failed.
    pub set_times: Vec<policy::SetTime>,
}

/// The name a verdict has in identities, reports and audit events.
pub fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allowed => "allowed",
        Verdict::NeedsApproval => "needs_approval",
        Verdict::Denied => "denied",
    }
}

/// Derives the verdict. Policy errors and timeouts fail closed (denied); a
/// budget breach counts like a finding of a policy set of its level.
pub fn derive(
    ctx: &Context,
    loaded: &Loaded,
    summary: PlanSummary,
    run: RunInput,
    budget: BudgetSource,
    warn: &mut dyn FnMut(&str),
) -> Result<Derived> {
    derive_observed(ctx, loaded, summary, run, budget, warn, &mut |_| Ok(()))
}

/// [`derive`], also handing `observe` the complete policy input (the
/// document every rule is evaluated on, `input.plan` unpruned) before the
/// policies see it; an error from `observe` is returned as is.
pub fn derive_observed(
    ctx: &Context,
    loaded: &Loaded,
    mut summary: PlanSummary,
    run: RunInput,
    budget: BudgetSource,
    warn: &mut dyn FnMut(&str),
    observe: &mut dyn FnMut(&serde_json::Value) -> Result<()>,
) -> Result<Derived> {
    let costs = cost::estimate(&summary, Some(&loaded.catalog), &loaded.book);
    let budget = match budget {
        BudgetSource::Fetch => budget_check(&ctx.config, &summary, &costs)?,
        BudgetSource::Reuse(report) => report,
    };
    if let Some(warning) = budget.as_ref().and_then(|b| b.warning.as_deref()) {
        warn(warning);
    }
    let budget_findings = budget
        .as_ref()
        .map(|b| budget::findings(&b.checks))
        .unwrap_or_default();
    let catalog = input::catalog_input(&summary, &loaded.catalog);
    let drift = input::drift_input(&summary);
    let policy_input = PolicyInput {
        input_version: policy::INPUT_VERSION,
        // Moved in and back out: no deep copy of the plan.
        plan: std::mem::take(&mut summary.redacted),
        run,
        cost: CostInput {
            estimate: costs.clone(),
            budgets: budget.clone(),
        },
        catalog,
        drift,
    };
    let mut value = policy_input.into_json()?;
    observe(&value)?;
    let started = Instant::now();
    let decision = loaded
        .policy
        .as_ref()
        .map(|(_, policies)| policies.evaluate_timed(&value).map_err(|e| e.to_string()));
    let policy_time = started.elapsed();
    let (decision, set_times) = match decision {
        Some(Ok((decision, times))) => (Some(Ok(decision)), times),
        Some(Err(e)) => (Some(Err(e)), Vec::new()),
        None => (None, Vec::new()),
    };
    summary.redacted = PolicyInput::take_plan(&mut value);
    drop(value);
    let policy_verdict = match &decision {
        None => Verdict::Allowed,
        Some(Ok(decision)) => decision.verdict,
        Some(Err(_)) => Verdict::Denied,
    };
    let verdict = policy_verdict.max(policy::verdict_of(&budget_findings));
    let (mut findings, policy_error) = match decision {
        Some(Ok(d)) => (d.findings, None),
        Some(Err(e)) => (Vec::new(), Some(e)),
        None => (Vec::new(), None),
    };
    findings.extend(budget_findings);
    Ok(Derived {
        summary,
        costs,
        budget,
        findings,
        policy_error,
        verdict,
        policy_time,
        set_times,
    })
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
    let today = crate::dates::today().map_err(anyhow::Error::msg)?;
    match crate::costexplorer::lookup(ce, &teams, today) {
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
