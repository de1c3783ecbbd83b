//! Reports of a plan run: text for humans, JSON for machines, one Markdown
//! comment for a pull request. Everything here reads the redacted plan only.

use serde::Serialize;

use crate::budget::BudgetReport;
use crate::cost::CostReport;
use crate::plan::{Counts, PlanSummary};
use crate::policy::Finding;

/// GitHub caps a comment at 65,536 characters; stay clear of it.
pub const MARKDOWN_LIMIT: usize = 60_000;

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub address: String,
    pub action: String,
    pub attributes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: String,
    pub identity_digest: String,
    pub counts: Counts,
    pub changes: Vec<Change>,
    pub cost: CostReport,
    /// Budgets of the teams whose cost the plan changes (`None` without a
    /// budget configuration).
    pub budget: Option<BudgetReport>,
    /// Policy findings, then budget breaches (set `budget`).
    pub findings: Vec<Finding>,
    /// Set when policy evaluation failed: the run is then denied (fail closed).
    pub policy_error: Option<String>,
    pub verdict: String,
    pub exit_code: u8,
}

pub fn changes(plan: &PlanSummary) -> Vec<Change> {
    plan.resources
        .iter()
        .filter(|r| r.action.as_str() != "no-op" && r.action.as_str() != "read")
        .map(|r| Change {
            address: r.address.clone(),
            action: r.action.as_str().to_owned(),
            attributes: r.changed_attributes.clone(),
        })
        .collect()
}

fn money(currency: &str, amount: f64) -> String {
    let sign = if amount < 0.0 { "-" } else { "" };
    let symbol = if currency == "USD" { "$" } else { "" };
    let suffix = if currency == "USD" {
        String::new()
    } else {
        format!(" {currency}")
    };
    format!("{sign}{symbol}{:.2}{suffix}", amount.abs())
}

fn summary_line(report: &Report) -> String {
    let c = &report.counts;
    format!(
        "{} to add, {} to change, {} to replace, {} to destroy",
        c.add, c.change, c.replace, c.destroy
    )
}

pub fn text(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!("Run {} — {}\n", report.run, summary_line(report)));
    for change in &report.changes {
        out.push_str(&format!("  {:<8} {}", change.action, change.address));
        if !change.attributes.is_empty() {
            out.push_str(&format!(" ({})", change.attributes.join(", ")));
        }
        out.push('\n');
    }
    let cost = &report.cost;
    out.push_str(&format!(
        "Cost: {} -> {} per month ({}{})",
        money(&cost.currency, cost.monthly_before),
        money(&cost.currency, cost.monthly_after),
        if cost.monthly_delta >= 0.0 { "+" } else { "" },
        money(&cost.currency, cost.monthly_delta),
    ));
    if cost.n_unpriced > 0 {
        out.push_str(&format!(", {} unpriced", cost.n_unpriced));
    }
    out.push('\n');
    for r in cost.resources.iter().filter(|r| r.unpriced.is_some()) {
        out.push_str(&format!(
            "  unpriced: {} ({})\n",
            r.address,
            r.unpriced.as_deref().unwrap_or("")
        ));
    }
    if let Some(budget) = &report.budget {
        out.push_str(&budget_text(budget));
    }
    if let Some(error) = &report.policy_error {
        out.push_str(&format!(
            "Policy: evaluation failed, denied (fail closed): {error}\n"
        ));
    }
    for f in &report.findings {
        out.push_str(&format!(
            "Policy {:?} {} [{}/{:?}]{}: {}{}\n",
            f.severity,
            f.rule,
            f.set,
            f.enforcement,
            f.address
                .as_deref()
                .map(|a| format!(" {a}"))
                .unwrap_or_default(),
            f.message,
            f.excepted_by
                .as_deref()
                .map(|e| format!(" (excepted: {e})"))
                .unwrap_or_default(),
        ));
    }
    out.push_str(&format!(
        "Verdict: {} (exit {})\n",
        report.verdict, report.exit_code
    ));
    out
}

/// The budget lines of a report: one per checked team, or why none ran.
pub fn budget_text(budget: &BudgetReport) -> String {
    let mut out = String::new();
    match budget.status.as_str() {
        "skipped" => out.push_str(&format!(
            "Budget: WARNING: {}\n",
            budget
                .warning
                .as_deref()
                .unwrap_or("budget check skipped: actual spend is unavailable")
        )),
        "not_needed" => out.push_str("Budget: no budgeted team's cost changes; nothing to check\n"),
        _ => {
            if let Some((start, end)) = &budget.period {
                out.push_str(&format!(
                    "Budget (month to date {start} .. {end}, exclusive):\n"
                ));
            }
            for c in &budget.checks {
                let currency = &budget.currency;
                out.push_str(&format!(
                    "  team {}: actual {} + rest of month ({}) = {}, plan {}{} -> projected {} of {} budget{}\n",
                    c.team,
                    money(currency, c.actual_mtd),
                    c.estimate_source.as_str(),
                    money(currency, c.month_end_estimate),
                    if c.plan_delta >= 0.0 { "+" } else { "" },
                    money(currency, c.plan_delta),
                    money(currency, c.projected),
                    money(currency, c.monthly_budget),
                    match c.breach {
                        Some(level) => format!(" — BREACH ({level})"),
                        None => String::new(),
                    },
                ));
                if let Some(note) = &c.estimate_note {
                    out.push_str(&format!("    ({}: {note})\n", c.estimate_source.as_str()));
                }
            }
        }
    }
    for address in &budget.unattributed {
        out.push_str(&format!("  no team (not in any budget): {address}\n"));
    }
    out
}

/// One PR comment: the summary first, the details collapsed, never longer
/// than [`MARKDOWN_LIMIT`] — the details are cut, the summary never is.
pub fn markdown(report: &Report, details: &str) -> String {
    let cost = &report.cost;
    let mut head = String::new();
    head.push_str(&format!(
        "### platform-broker plan `{}`: **{}**\n\n",
        report.run, report.verdict
    ));
    head.push_str(&format!("**{}**\n\n", summary_line(report)));
    head.push_str(&format!(
        "Monthly cost: {} → {} (**{}{}**){}\n\n",
        money(&cost.currency, cost.monthly_before),
        money(&cost.currency, cost.monthly_after),
        if cost.monthly_delta >= 0.0 { "+" } else { "" },
        money(&cost.currency, cost.monthly_delta),
        if cost.n_unpriced > 0 {
            format!(", {} unpriced", cost.n_unpriced)
        } else {
            String::new()
        },
    ));
    if let Some(budget) = &report.budget {
        for line in budget_text(budget).lines() {
            head.push_str(line.trim_start());
            head.push_str("  \n");
        }
        head.push('\n');
    }
    if !report.findings.is_empty() || report.policy_error.is_some() {
        head.push_str("| policy | rule | resource | message |\n|---|---|---|---|\n");
        if let Some(error) = &report.policy_error {
            head.push_str(&format!(
                "| error | – | – | evaluation failed (denied): {} |\n",
                error.replace('|', "\\|")
            ));
        }
        for f in &report.findings {
            head.push_str(&format!(
                "| {:?} ({:?}) | `{}` | `{}` | {} |\n",
                f.severity,
                f.enforcement,
                f.rule,
                f.address.as_deref().unwrap_or("–"),
                f.message.replace('|', "\\|")
            ));
        }
        head.push('\n');
    }
    let mut body = String::new();
    for change in &report.changes {
        body.push_str(&format!("- `{}` {}\n", change.action, change.address));
    }
    body.push_str("\n```json\n");
    body.push_str(details);
    body.push_str("\n```\n");
    let open = "<details><summary>Full plan</summary>\n\n";
    let close = "\n</details>\n";
    let room = MARKDOWN_LIMIT.saturating_sub(head.len() + open.len() + close.len() + 64);
    if body.len() > room {
        let mut cut = room;
        while cut > 0 && !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push_str("\n```\n…(truncated; the full report is in the run's report.json)\n");
    }
    format!("{head}{open}{body}{close}")
}
