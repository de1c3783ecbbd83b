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
    /// `crate::cli::JSON_FORMAT_VERSION`.
    pub format_version: &'static str,
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
    for r in cost.resources.iter().filter(|r| r.unpriced) {
        out.push_str(&format!(
            "  unpriced: {} ({})\n",
            r.address,
            r.unpriced_reason.as_deref().unwrap_or("")
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
///
/// The summary is the verdict, the counts, the cost line and one line per
/// policy rule that fired (with how many findings); the table of individual
/// findings gets at most half of the remaining room, then the change list and
/// the full plan share the rest.
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
    if let Some(error) = &report.policy_error {
        head.push_str(&format!(
            "Policy evaluation failed, the run is denied (fail closed): {}\n\n",
            one_line(error, 500)
        ));
    }
    // Policy verdicts, one line per rule: always kept.
    let mut per_rule: Vec<(&Finding, usize)> = Vec::new();
    for f in &report.findings {
        match per_rule
            .iter_mut()
            .find(|(g, _)| g.set == f.set && g.rule == f.rule)
        {
            Some((_, n)) => *n += 1,
            None => per_rule.push((f, 1)),
        }
    }
    for (f, n) in &per_rule {
        head.push_str(&format!(
            "- {:?} `{}` ({}, {:?}): {} finding{}\n",
            f.severity,
            f.rule,
            f.set,
            f.enforcement,
            n,
            if *n == 1 { "" } else { "s" }
        ));
    }
    if !per_rule.is_empty() {
        head.push('\n');
    }

    let open = "<details><summary>Full plan</summary>\n\n";
    let close = "\n</details>\n";
    let reserve = 200; // the cut notes
    let mut room = MARKDOWN_LIMIT.saturating_sub(head.len() + open.len() + close.len() + reserve);

    if !report.findings.is_empty() {
        let mut table = String::from("| policy | rule | resource | message |\n|---|---|---|---|\n");
        let budget = room / 2;
        let mut shown = 0;
        for f in &report.findings {
            let row = format!(
                "| {:?} ({:?}) | `{}` | `{}` | {} |\n",
                f.severity,
                f.enforcement,
                f.rule,
                f.address.as_deref().unwrap_or("–"),
                one_line(&f.message, 1000).replace('|', "\\|")
            );
            if table.len() + row.len() > budget {
                break;
            }
            table.push_str(&row);
            shown += 1;
        }
        if shown < report.findings.len() {
            table.push_str(&format!(
                "\n…and {} more findings (all of them are in the run's report.json)\n",
                report.findings.len() - shown
            ));
        }
        table.push('\n');
        room = room.saturating_sub(table.len());
        head.push_str(&table);
    }
    let mut body = String::new();
    for change in &report.changes {
        body.push_str(&format!("- `{}` {}\n", change.action, change.address));
    }
    body.push_str("\n```json\n");
    let fence_open = body.len();
    body.push_str(details);
    body.push_str("\n```\n");
    if body.len() > room {
        let cut = crate::floor_char_boundary(&body, room);
        body.truncate(cut);
        if cut >= fence_open {
            body.push_str("\n```");
        }
        body.push_str("\n…(truncated; the full report is in the run's report.json)\n");
    }
    format!("{head}{open}{body}{close}")
}

/// `text` on one line (a table cell), at most `max` bytes.
fn one_line(text: &str, max: usize) -> String {
    let mut line = text.replace(['\n', '\r'], " ");
    if line.len() > max {
        line.truncate(crate::floor_char_boundary(&line, max));
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Enforcement, Severity};

    fn report(changes: usize, findings: usize) -> Report {
        Report {
            format_version: crate::cli::JSON_FORMAT_VERSION,
            run: "20261129T120000Z-abcd".into(),
            identity_digest: "sha256:00".into(),
            counts: Counts {
                add: changes,
                ..Counts::default()
            },
            changes: (0..changes)
                .map(|i| Change {
                    address: format!("platform_postgres_database.d[{i}]"),
                    action: "create".into(),
                    attributes: vec![],
                })
                .collect(),
            cost: CostReport {
                currency: "USD".into(),
                monthly_before: 0.0,
                monthly_after: 25.0 * changes as f64,
                monthly_delta: 25.0 * changes as f64,
                resources: vec![],
                n_unpriced: 0,
            },
            findings: (0..findings)
                .map(|i| Finding {
                    rule: if i % 2 == 0 {
                        "deny_premium_tier"
                    } else {
                        "warn_unpriced"
                    }
                    .into(),
                    severity: if i % 2 == 0 {
                        Severity::Deny
                    } else {
                        Severity::Warn
                    },
                    set: "soft".into(),
                    enforcement: Enforcement::SoftMandatory,
                    address: Some(format!("platform_postgres_database.d[{i}]")),
                    message: format!("finding {i} | with a pipe\nand a newline"),
                    excepted_by: None,
                })
                .collect(),
            policy_error: None,
            budget: None,
            verdict: "needs approval".into(),
            exit_code: 4,
        }
    }

    fn details(n: usize) -> String {
        let mut s = String::from("{\"resource_changes\": [");
        for i in 0..n {
            s.push_str(&format!("{{\"address\": \"d[{i}]\", \"note\": \"é ✓\"}},"));
        }
        s.push_str("]}");
        s
    }

    fn assert_bounded(md: &str) {
        assert!(
            md.chars().count() <= MARKDOWN_LIMIT,
            "{} chars",
            md.chars().count()
        );
        assert!(md.len() <= MARKDOWN_LIMIT, "{} bytes", md.len());
        assert!(md.ends_with("</details>\n"));
    }

    #[test]
    fn small_report_is_complete() {
        let r = report(3, 2);
        let md = markdown(&r, &details(3));
        assert_bounded(&md);
        assert!(
            md.starts_with("### platform-broker plan `20261129T120000Z-abcd`: **needs approval**")
        );
        assert!(md.contains("**3 to add, 0 to change, 0 to replace, 0 to destroy**"));
        assert!(md.contains("Monthly cost: $0.00 → $75.00 (**+$75.00**)"));
        assert!(md.contains("- Deny `deny_premium_tier` (soft, SoftMandatory): 1 finding\n"));
        assert!(md.contains("| Deny (SoftMandatory) | `deny_premium_tier` | `platform_postgres_database.d[0]` | finding 0 \\| with a pipe and a newline |"));
        assert!(md.contains("\"address\": \"d[2]\""));
        assert!(!md.contains("truncated"));
        assert!(!md.contains("more findings"));
    }

    #[test]
    fn huge_plan_is_cut_and_the_summary_kept() {
        let r = report(20_000, 4);
        let md = markdown(&r, &details(20_000));
        assert_bounded(&md);
        assert!(md.contains("**20000 to add, 0 to change"));
        assert!(md.contains("Monthly cost: $0.00 → $500000.00"));
        assert!(md.contains("- Warn `warn_unpriced` (soft, SoftMandatory): 2 findings\n"));
        assert!(md.contains("…(truncated; the full report is in the run's report.json)"));
        // Cut inside the change list: no stray code fence is opened.
        assert_eq!(md.matches("```").count() % 2, 0);
    }

    #[test]
    fn cut_inside_the_json_closes_its_fence() {
        let r = report(10, 0);
        let md = markdown(&r, &details(10_000));
        assert_bounded(&md);
        assert!(md.contains("```json\n"));
        assert!(md.contains("truncated"));
        assert_eq!(md.matches("```").count() % 2, 0);
    }

    #[test]
    fn thousands_of_findings_keep_the_per_rule_summary() {
        let r = report(5_000, 5_000);
        let md = markdown(&r, &details(5_000));
        assert_bounded(&md);
        assert!(md.contains("- Deny `deny_premium_tier` (soft, SoftMandatory): 2500 findings\n"));
        assert!(md.contains("- Warn `warn_unpriced` (soft, SoftMandatory): 2500 findings\n"));
        assert!(md.contains("more findings (all of them are in the run's report.json)"));
        let rows = md.matches("| Deny (SoftMandatory) |").count()
            + md.matches("| Warn (SoftMandatory) |").count();
        assert!(rows > 10 && rows < 5_000, "{rows} rows");
    }

    #[test]
    fn policy_error_is_in_the_summary() {
        let mut r = report(1, 0);
        r.policy_error = Some("time limit of 2s exceeded in soft/deny_x\nsecond line".into());
        r.verdict = "denied".into();
        let md = markdown(&r, "{}");
        assert!(md.contains("Policy evaluation failed, the run is denied (fail closed): time limit of 2s exceeded in soft/deny_x second line\n"));
    }
}
