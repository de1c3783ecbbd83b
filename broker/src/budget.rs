//! Budgets per team: month-to-date actual spend (Cost Explorer), a month-end
//! estimate (Cost Explorer's forecast, else a linear projection), plus the
//! plan's monthly cost delta for that team, against the team's thresholds.
//!
//! The key decision: a budget check that cannot run says so. Without
//! actuals (no credentials, endpoint down, access denied, timeout) the report
//! carries `status = "skipped"` and a warning; it is never a silent pass and
//! never an error that stops the plan. This module is pure: the numbers come
//! in from `costexplorer`, so the threshold math is tested without AWS.
//!
//! The plan's delta is added in full to the month-end estimate: a resource
//! created today costs its whole monthly price next month, and a budget is
//! there to stop the run-rate crossing the line, so the check is deliberately
//! conservative. Only a plan that raises a team's spend can breach; one that
//! lowers it is never blocked by a budget.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use crate::config::Budget;
use crate::cost::CostReport;
use crate::plan::{Mode, PlanSummary};
use crate::policy::{Enforcement, Finding, Severity};

/// Where a month-end estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateSource {
    /// Month-to-date actual plus Cost Explorer's GetCostForecast for the rest.
    Forecast,
    /// Month-to-date actual scaled linearly to the whole month (the account
    /// or endpoint serves no forecast).
    Projection,
    /// The last day of the month: month-to-date is the month.
    Actual,
}

impl EstimateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EstimateSource::Forecast => "forecast",
            EstimateSource::Projection => "projection",
            EstimateSource::Actual => "actual",
        }
    }
}

/// One team's spend as Cost Explorer reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamSpend {
    pub actual_mtd: f64,
    pub month_end: f64,
    pub source: EstimateSource,
    /// Why the forecast was not used, when it was not.
    pub note: Option<String>,
}

/// The outcome of one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ThresholdResult {
    /// As configured: `80%` or `$1200.00`.
    pub at: String,
    /// The level in money.
    pub amount: f64,
    pub enforcement: Enforcement,
    pub reached: bool,
}

/// One team's budget check.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BudgetCheck {
    pub team: String,
    pub monthly_budget: f64,
    pub actual_mtd: f64,
    pub month_end_estimate: f64,
    /// `forecast`, `projection` or `actual`.
    pub estimate_source: EstimateSource,
    pub estimate_note: Option<String>,
    /// The plan's monthly cost delta for resources of this team.
    pub plan_delta: f64,
    /// `month_end_estimate + plan_delta`.
    pub projected: f64,
    pub thresholds: Vec<ThresholdResult>,
    /// The most severe enforcement among reached thresholds, when the plan
    /// raises the team's spend.
    pub breach: Option<Enforcement>,
}

/// `input.cost.budgets` and the report's budget section.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BudgetReport {
    /// `checked`, `skipped` (actuals unavailable) or `not_needed` (no
    /// budgeted team's cost changes).
    pub status: String,
    /// Set when skipped: why, for humans. Never holds a credential.
    pub warning: Option<String>,
    pub currency: String,
    pub period: Option<(String, String)>,
    pub checks: Vec<BudgetCheck>,
    /// Resources with a cost delta but no team (no `team` attribute or tag).
    pub unattributed: Vec<String>,
}

/// The plan's monthly delta per team, and priced resources that name no team.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamDeltas {
    pub by_team: BTreeMap<String, f64>,
    pub unattributed: Vec<String>,
}

/// A resource's team: the platform `team` attribute, else the cost-allocation
/// tag in `tags_all` or `tags` (AWS provider resources).
fn team_of(values: &Json, team_tag: &str) -> Option<String> {
    let nonempty = |v: Option<&Json>| {
        v.and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    nonempty(values.get("team"))
        .or_else(|| nonempty(values.get("tags_all").and_then(|t| t.get(team_tag))))
        .or_else(|| nonempty(values.get("tags").and_then(|t| t.get(team_tag))))
}

/// Splits the plan's priced cost changes by team: a resource's old price
/// leaves its old team, its new price joins its new team (so moving a
/// resource between teams moves its cost). Unpriced resources are listed by
/// the cost report already and contribute nothing here.
pub fn team_deltas(plan: &PlanSummary, costs: &CostReport, team_tag: &str) -> TeamDeltas {
    let mut out = TeamDeltas::default();
    for cost in costs.resources.iter().filter(|r| !r.unpriced) {
        let Some(change) = plan
            .resources
            .iter()
            .find(|r| r.mode == Mode::Managed && r.address == cost.address)
        else {
            continue;
        };
        let mut attributed = true;
        for (price, values, sign) in [
            (cost.before, &change.before, -1.0),
            (cost.after, &change.after, 1.0),
        ] {
            let Some(price) = price.filter(|p| *p != 0.0) else {
                continue;
            };
            match team_of(values, team_tag) {
                Some(team) => *out.by_team.entry(team).or_insert(0.0) += sign * price,
                None => attributed = false,
            }
        }
        if !attributed {
            out.unattributed.push(cost.address.clone());
        }
    }
    out.by_team.retain(|_, delta| delta.abs() >= 0.005);
    out
}

/// The first day of `today`'s month and of the next one.
pub fn month_bounds(today: time::Date) -> (time::Date, time::Date) {
    let start = today.replace_day(1).unwrap_or(today);
    let next = start
        .checked_add(time::Duration::days(i64::from(
            today.month().length(today.year()),
        )))
        .unwrap_or(start);
    (start, next)
}

/// Month-to-date spend scaled to the whole month: `mtd × days in month ÷
/// days elapsed` (today counted as elapsed, so the first of the month is not a
/// division by a fraction of a day).
pub fn projection(actual_mtd: f64, today: time::Date) -> f64 {
    let days = f64::from(today.month().length(today.year()));
    let elapsed = f64::from(today.day()).max(1.0);
    actual_mtd * days / elapsed
}

/// Checks one team's budget.
pub fn check(budget: &Budget, spend: &TeamSpend, plan_delta: f64) -> BudgetCheck {
    let projected = spend.month_end + plan_delta;
    let thresholds: Vec<ThresholdResult> = budget
        .thresholds
        .iter()
        .map(|t| {
            let amount = t.at.amount(budget.monthly);
            ThresholdResult {
                at: t.at.describe(),
                amount,
                enforcement: t.enforcement,
                // Cents decide, not float noise.
                reached: round_cents(projected) >= round_cents(amount),
            }
        })
        .collect();
    let breach = if plan_delta > 0.0 {
        thresholds
            .iter()
            .filter(|t| t.reached)
            .map(|t| t.enforcement)
            .max()
    } else {
        None
    };
    BudgetCheck {
        team: budget.team.clone(),
        monthly_budget: budget.monthly,
        actual_mtd: spend.actual_mtd,
        month_end_estimate: spend.month_end,
        estimate_source: spend.source,
        estimate_note: spend.note.clone(),
        plan_delta,
        projected,
        thresholds,
        breach,
    }
}

fn round_cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

/// A breached budget as a finding, so it feeds the verdict, SARIF and JUnit
/// like a policy finding: set `budget`, rule `deny_budget_<team>` (advisory
/// breaches are `warn_budget_<team>`).
pub fn findings(checks: &[BudgetCheck]) -> Vec<Finding> {
    let mut out = Vec::new();
    for check in checks {
        let Some(enforcement) = check.breach else {
            continue;
        };
        let reached: Vec<String> = check
            .thresholds
            .iter()
            .filter(|t| t.reached && t.enforcement == enforcement)
            .map(|t| format!("{} (${:.2})", t.at, t.amount))
            .collect();
        let severity = if enforcement == Enforcement::Advisory {
            Severity::Warn
        } else {
            Severity::Deny
        };
        out.push(Finding {
            rule: format!("{}_budget_{}", severity.as_str(), rule_id(&check.team)),
            severity,
            set: "budget".into(),
            enforcement,
            address: None,
            message: format!(
                "team {} would reach {} of its ${:.2} monthly budget: projected ${:.2} = month-end {} ${:.2} (month-to-date ${:.2}) + plan delta ${:.2}",
                check.team,
                reached.join(", "),
                check.monthly_budget,
                check.projected,
                check.estimate_source.as_str(),
                check.month_end_estimate,
                check.actual_mtd,
                check.plan_delta,
            ),
            excepted_by: None,
        });
    }
    out
}

/// A team name as a rule id fragment: lowercase letters, digits and `_`.
fn rule_id(team: &str) -> String {
    team.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Level, Threshold};
    use time::macros::date;

    fn budget(monthly: f64, thresholds: &[(Level, Enforcement)]) -> Budget {
        Budget {
            team: "checkout".into(),
            monthly,
            thresholds: thresholds
                .iter()
                .map(|&(at, enforcement)| Threshold { at, enforcement })
                .collect(),
            line: 1,
        }
    }

    fn spend(month_end: f64) -> TeamSpend {
        TeamSpend {
            actual_mtd: month_end / 2.0,
            month_end,
            source: EstimateSource::Projection,
            note: None,
        }
    }

    /// The one helper: checks a budget and renders the result.
    fn check_budget(budget: &Budget, month_end: f64, delta: f64) -> String {
        let c = check(budget, &spend(month_end), delta);
        let reached: Vec<String> = c
            .thresholds
            .iter()
            .map(|t| format!("{}={}", t.at, if t.reached { "reached" } else { "ok" }))
            .collect();
        format!(
            "projected={:.2} [{}] breach={}",
            c.projected,
            reached.join(" "),
            c.breach.map_or("none", Enforcement::as_str)
        )
    }

    #[test]
    fn percent_and_amount_thresholds() {
        let b = budget(
            1000.0,
            &[
                (Level::Percent(80.0), Enforcement::Advisory),
                (Level::Amount(1100.0), Enforcement::SoftMandatory),
                (Level::Percent(120.0), Enforcement::HardMandatory),
            ],
        );
        assert_eq!(
            check_budget(&b, 500.0, 100.0),
            "projected=600.00 [80%=ok $1100.00=ok 120%=ok] breach=none"
        );
        assert_eq!(
            check_budget(&b, 700.0, 100.0),
            "projected=800.00 [80%=reached $1100.00=ok 120%=ok] breach=advisory"
        );
        assert_eq!(
            check_budget(&b, 1000.0, 100.0),
            "projected=1100.00 [80%=reached $1100.00=reached 120%=ok] breach=soft_mandatory"
        );
        assert_eq!(
            check_budget(&b, 1150.0, 100.0),
            "projected=1250.00 [80%=reached $1100.00=reached 120%=reached] breach=hard_mandatory"
        );
    }

    #[test]
    fn a_plan_that_lowers_or_keeps_spend_never_breaches() {
        let b = budget(
            100.0,
            &[(Level::Percent(100.0), Enforcement::HardMandatory)],
        );
        assert_eq!(
            check_budget(&b, 500.0, -50.0),
            "projected=450.00 [100%=reached] breach=none"
        );
        assert_eq!(
            check_budget(&b, 500.0, 0.0),
            "projected=500.00 [100%=reached] breach=none"
        );
    }

    #[test]
    fn reaching_exactly_counts_and_float_noise_does_not() {
        let b = budget(
            1000.0,
            &[(Level::Percent(100.0), Enforcement::HardMandatory)],
        );
        assert_eq!(
            check_budget(&b, 999.99, 0.01),
            "projected=1000.00 [100%=reached] breach=hard_mandatory"
        );
        assert_eq!(
            check_budget(&b, 0.1 + 0.2, 999.69),
            "projected=999.99 [100%=ok] breach=none"
        );
    }

    #[test]
    fn linear_projection() {
        // 10 days of a 30-day month: ×3.
        assert_eq!(projection(100.0, date!(2026 - 11 - 10)), 300.0);
        // The first of the month counts as one day elapsed.
        assert_eq!(projection(10.0, date!(2026 - 02 - 01)), 280.0);
        // The last day: the month-to-date is the month.
        assert_eq!(projection(31.0, date!(2026 - 12 - 31)), 31.0);
        assert_eq!(
            month_bounds(date!(2026 - 12 - 31)),
            (date!(2026 - 12 - 01), date!(2027 - 01 - 01))
        );
        assert_eq!(
            month_bounds(date!(2028 - 02 - 10)),
            (date!(2028 - 02 - 01), date!(2028 - 03 - 01))
        );
    }

    #[test]
    fn findings_carry_rule_enforcement_and_numbers() {
        let b = budget(
            1000.0,
            &[
                (Level::Percent(80.0), Enforcement::Advisory),
                (Level::Percent(100.0), Enforcement::HardMandatory),
            ],
        );
        let c = check(&b, &spend(950.0), 100.0);
        let f = findings(&[c]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "deny_budget_checkout");
        assert_eq!(f[0].enforcement, Enforcement::HardMandatory);
        assert!(f[0].blocks());
        assert_eq!(
            f[0].message,
            "team checkout would reach 100% ($1000.00) of its $1000.00 monthly budget: projected $1050.00 = month-end projection $950.00 (month-to-date $475.00) + plan delta $100.00"
        );
        let advisory = findings(&[check(&b, &spend(750.0), 100.0)]);
        assert_eq!(advisory[0].rule, "warn_budget_checkout");
        assert!(!advisory[0].blocks());
    }

    /// A plan JSON of `aws_instance` changes: (address, actions, before, after).
    fn plan_of(changes: &[(&str, &[&str], Json, Json)]) -> PlanSummary {
        let resource_changes: Vec<Json> = changes
            .iter()
            .map(|(address, actions, before, after)| {
                serde_json::json!({
                    "address": address, "mode": "managed", "type": "aws_instance",
                    "name": address.trim_start_matches("aws_instance."),
                    "provider_name": "registry.terraform.io/hashicorp/aws",
                    "change": {"actions": actions, "before": before, "after": after,
                               "after_unknown": {}, "before_sensitive": {}, "after_sensitive": {}},
                })
            })
            .collect();
        let plan = serde_json::json!({
            "format_version": "1.2", "terraform_version": "1.11.4",
            "resource_changes": resource_changes,
        });
        crate::plan::parse(plan.to_string().as_bytes()).expect("plan parses")
    }

    #[test]
    fn deltas_follow_the_team_of_each_side() {
        let book = crate::cost::PriceBook::parse(
            r#"
resource "aws_instance" {
  by     = "instance_type"
  prices = { "small" = 10, "large" = 40 }
}
"#,
        )
        .expect("book");
        let vm = |size: &str, team: Option<&str>| match team {
            Some(team) => serde_json::json!({"instance_type": size, "tags_all": {"team": team}}),
            None => serde_json::json!({"instance_type": size}),
        };
        let plan = plan_of(&[
            // New for a: +40.
            (
                "aws_instance.new",
                &["create"],
                Json::Null,
                vm("large", Some("a")),
            ),
            // Resized within b: -10 + 40.
            (
                "aws_instance.grow",
                &["update"],
                vm("small", Some("b")),
                vm("large", Some("b")),
            ),
            // Moved from a to b: a -10, b +10.
            (
                "aws_instance.moved",
                &["update"],
                vm("small", Some("a")),
                vm("small", Some("b")),
            ),
            // Deleted from c: -10.
            (
                "aws_instance.gone",
                &["delete"],
                vm("small", Some("c")),
                Json::Null,
            ),
            // Unchanged cost, same team: nothing to check.
            (
                "aws_instance.same",
                &["update"],
                vm("small", Some("d")),
                vm("small", Some("d")),
            ),
            // No team at all.
            (
                "aws_instance.orphan",
                &["create"],
                Json::Null,
                vm("small", None),
            ),
        ]);
        let costs = crate::cost::estimate(&plan, None, &book);
        let deltas = team_deltas(&plan, &costs, "team");
        assert_eq!(
            deltas.by_team,
            BTreeMap::from([
                ("a".to_owned(), 30.0),
                ("b".to_owned(), 40.0),
                ("c".to_owned(), -10.0),
            ])
        );
        assert_eq!(deltas.unattributed, vec!["aws_instance.orphan".to_owned()]);
    }

    #[test]
    fn team_of_attribute_then_tags() {
        let tag = "team";
        assert_eq!(
            team_of(
                &serde_json::json!({"team": "a", "tags": {"team": "b"}}),
                tag
            )
            .as_deref(),
            Some("a")
        );
        assert_eq!(
            team_of(&serde_json::json!({"tags_all": {"team": "b"}}), tag).as_deref(),
            Some("b")
        );
        assert_eq!(
            team_of(&serde_json::json!({"tags": {"team": "c"}}), tag).as_deref(),
            Some("c")
        );
        assert_eq!(team_of(&serde_json::json!({"tags": {}}), tag), None);
        assert_eq!(team_of(&Json::Null, tag), None);
    }
}
