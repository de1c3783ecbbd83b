//! Reports of a plan run: text for humans, JSON for machines, one Markdown
//! comment for a pull request. Everything here reads the redacted plan only.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::budget::BudgetReport;
use crate::cost::CostReport;
use crate::plan::{Counts, PlanSummary};
use crate::policy::{Enforcement, Finding, Severity};

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
    /// The working directory as given on the command line (`plan DIR`), or
    /// the saved plan's directory for `policy eval`.
    pub dir: String,
    /// The Terraform workspace (`TF_WORKSPACE` or `.terraform/environment`).
    pub workspace: String,
    /// `--environment` (what policies see as `input.run.workspace.environment`).
    pub environment: String,
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
    budget_lines(budget, money)
}

/// [`budget_text`] with amounts written by `money`.
fn budget_lines(budget: &BudgetReport, money: fn(&str, f64) -> String) -> String {
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

/// One PR comment a reviewer can act on, never longer than
/// [`MARKDOWN_LIMIT`] bytes (so under GitHub's 65,536 characters).
///
/// The first line is a hidden marker, `<!-- platform-broker:plan DIR -->`,
/// that pipelines find to update the comment in place. Then: where the plan
/// is (directory, workspace, environment), the verdict in words and the
/// command to run next, the policy findings grouped by what they do, the
/// cost per changed resource and in total, and a Terraform-style diff per
/// resource built from `redacted_plan` (the redacted `terraform show -json`
/// document: sensitive values are markers, shown as `(sensitive)`).
///
/// The summary is always kept whole. When everything would not fit, the
/// findings, the cost table and the diffs are each cut between items (never
/// inside a block) and say how many were left out.
pub fn markdown(report: &Report, redacted_plan: &Value) -> String {
    let eval = report.run == "eval";
    let dir = if report.dir.is_empty() {
        "."
    } else {
        report.dir.as_str()
    };
    let cost = &report.cost;
    let currency = cost.currency.as_str();
    let mut head = String::new();
    head.push_str(&format!("{}\n", comment_marker(dir)));
    head.push_str(&format!(
        "### platform-broker {}: {} · workspace {} · environment {}\n\n",
        if eval { "policy eval" } else { "plan" },
        code(dir),
        code(&report.workspace),
        code(&report.environment),
    ));
    head.push_str(&format!(
        "**{}** — {} · monthly cost {} → {} (**{}**){}\n\n",
        verdict_words(&report.verdict),
        summary_line(report),
        amount(currency, cost.monthly_before),
        amount(currency, cost.monthly_after),
        signed_amount(currency, cost.monthly_delta),
        if cost.n_unpriced > 0 {
            format!(", {} unpriced", cost.n_unpriced)
        } else {
            String::new()
        },
    ));
    head.push_str(&next_step(report, dir));
    if let Some(error) = &report.policy_error {
        head.push_str(&format!(
            "Policy evaluation failed, so the run is denied (fail closed): {}\n\n",
            one_line(error, 500)
        ));
    }
    if let Some(budget) = &report.budget {
        for line in budget_lines(budget, amount).lines() {
            head.push_str(line.trim_start());
            head.push_str("  \n");
        }
        head.push('\n');
    }

    let more_runs = if eval {
        "all of them are in the `--json` report".to_owned()
    } else {
        format!(
            "see the run's report: `platform-broker runs {}`",
            shell_word(dir)
        )
    };
    let mut room = MARKDOWN_LIMIT.saturating_sub(head.len());
    let mut out = head;

    if !report.findings.is_empty() {
        let items = finding_items(&report.findings);
        let section = fit("#### Policy findings\n\n", &items, room / 3, |n| {
            format!("\n… and {n} more findings ({more_runs})\n\n")
        });
        room = room.saturating_sub(section.len());
        out.push_str(&section);
    }

    let changed: BTreeSet<&str> = report.changes.iter().map(|c| c.address.as_str()).collect();
    let rows: Vec<String> = cost
        .resources
        .iter()
        .filter(|r| changed.contains(r.address.as_str()) || r.unpriced)
        .map(|r| {
            let shown = |v: Option<f64>| v.map_or("–".to_owned(), |v| amount(currency, v));
            format!(
                "| {} | {} | {} | {} |\n",
                code(&r.address).replace('|', "\\|"),
                shown(r.before),
                shown(r.after),
                match (r.unpriced, r.delta) {
                    (false, Some(delta)) => signed_amount(currency, delta),
                    _ => format!(
                        "unpriced{}",
                        r.unpriced_reason
                            .as_deref()
                            .map(|why| format!(": {}", one_line(why, 200).replace('|', "\\|")))
                            .unwrap_or_default()
                    ),
                },
            )
        })
        .collect();
    let total = format!(
        "| **total** | {} | {} | **{}** |\n\n",
        amount(currency, cost.monthly_before),
        amount(currency, cost.monthly_after),
        signed_amount(currency, cost.monthly_delta),
    );
    let cost_head = format!(
        "#### Monthly cost ({currency})\n\n| resource | before | after | change |\n|---|---:|---:|---:|\n"
    );
    let section = fit(
        &cost_head,
        &rows,
        (room / 2).saturating_sub(total.len()),
        |n| format!("| … and {n} more resources ({more_runs}) | | | |\n"),
    );
    room = room.saturating_sub(section.len() + total.len());
    out.push_str(&section);
    out.push_str(&total);

    let blocks = resource_blocks(report, redacted_plan);
    if !blocks.is_empty() {
        let section = fit("#### Changes\n\n", &blocks, room, |n| {
            format!("… and {n} more resources ({more_runs})\n")
        });
        out.push_str(&section);
    }
    let end = out.trim_end().len();
    out.truncate(end);
    out.push('\n');
    out
}

/// The hidden first line pipelines find the comment by. `--` cannot end the
/// HTML comment early: it is written `-%2D`.
pub fn comment_marker(dir: &str) -> String {
    format!(
        "<!-- platform-broker:plan {} -->",
        dir.replace(['\n', '\r'], " ").replace("--", "-%2D")
    )
}

/// `header`, then as many `items` as fit in `room` bytes with the note for
/// the ones left out; empty when not even the header and the note fit.
fn fit(header: &str, items: &[String], room: usize, note: impl Fn(usize) -> String) -> String {
    let mut out = header.to_owned();
    let reserve = note(items.len()).len();
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        let need = out.len() + item.len() + if last { 0 } else { reserve };
        if need > room {
            if out.len() + reserve > room {
                return String::new();
            }
            out.push_str(&note(items.len() - i));
            return out;
        }
        out.push_str(item);
    }
    out
}

fn verdict_words(verdict: &str) -> &str {
    match verdict {
        "allowed" => "Allowed",
        "needs_approval" => "Needs an approval",
        "denied" => "Denied by policy",
        other => other,
    }
}

/// What to do next, with the exact commands.
fn next_step(report: &Report, dir: &str) -> String {
    let has_changes = !report.changes.is_empty();
    if report.run == "eval" {
        return "Evaluated from a saved plan (`policy eval`): there is no run to approve or apply.\n\n"
            .to_owned();
    }
    let run = shell_word(&report.run);
    let dir = shell_word(dir);
    match report.verdict.as_str() {
        "needs_approval" => format!(
            "A soft-mandatory finding needs an approval before apply. To approve run {}, then apply it:\n\n\
             ```sh\nplatform-broker approve {run} --reason \"...\" --dir {dir}\nplatform-broker apply {run} --dir {dir}\n```\n\n",
            code(&report.run)
        ),
        "allowed" if has_changes => format!(
            "To apply run {}:\n\n```sh\nplatform-broker apply {run} --dir {dir}\n```\n\n",
            code(&report.run)
        ),
        "allowed" => "No changes: there is nothing to apply.\n\n".to_owned(),
        _ => format!(
            "Run {} cannot be applied: fix what blocks it below and plan again.\n\n",
            code(&report.run)
        ),
    }
}

/// Findings grouped by what they do to the run, one item per finding.
fn finding_items(findings: &[Finding]) -> Vec<String> {
    type Group = (&'static str, fn(&Finding) -> bool);
    let groups: [Group; 4] = [
        ("Blocks the apply (hard-mandatory)", |f| {
            f.excepted_by.is_none()
                && f.severity == Severity::Deny
                && f.enforcement == Enforcement::HardMandatory
        }),
        ("Needs an approval (soft-mandatory)", |f| {
            f.excepted_by.is_none()
                && f.severity == Severity::Deny
                && f.enforcement == Enforcement::SoftMandatory
        }),
        ("Advisory (does not block)", |f| {
            f.excepted_by.is_none()
                && (f.severity == Severity::Warn || f.enforcement == Enforcement::Advisory)
        }),
        ("Waived by an exception", |f| f.excepted_by.is_some()),
    ];
    let mut items = Vec::new();
    for (title, member) in groups {
        let mut first = true;
        for f in findings.iter().filter(|f| member(f)) {
            let mut item = String::new();
            if first {
                item.push_str(&format!("**{title}**\n\n"));
                first = false;
            }
            item.push_str(&format!(
                "- {} (policy set {}){}: {}{}\n",
                code(&f.rule),
                code(&f.set),
                f.address
                    .as_deref()
                    .map(|a| format!(" on {}", code(a)))
                    .unwrap_or_default(),
                one_line(&f.message, 1000),
                f.excepted_by
                    .as_deref()
                    .map(|e| format!(" — waived: {}", one_line(e, 300)))
                    .unwrap_or_default(),
            ));
            items.push(item);
        }
        if let Some(last) = items.last_mut().filter(|_| !first) {
            last.push('\n');
        }
    }
    items
}

/// One diff block per changed resource, in Terraform's order.
fn resource_blocks(report: &Report, redacted_plan: &Value) -> Vec<String> {
    let currency = report.cost.currency.as_str();
    let empty = Vec::new();
    let changes = redacted_plan
        .get("resource_changes")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut blocks = Vec::new();
    for rc in changes {
        let Some(address) = rc.get("address").and_then(Value::as_str) else {
            continue;
        };
        let change = rc.get("change").unwrap_or(&Value::Null);
        let actions: Vec<&str> = change
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let (kind, words) = match actions.as_slice() {
            ["create"] => ("create", "will be **created**"),
            ["update"] => ("update", "will be **updated** in place"),
            ["delete"] => ("delete", "will be **destroyed**"),
            ["delete", "create"] | ["create", "delete"] => ("replace", "will be **replaced**"),
            ["forget"] => (
                "delete",
                "will be **removed from the state** (not destroyed)",
            ),
            [] | ["no-op"] | ["read"] => continue,
            _ => ("update", "will **change**"),
        };
        // `replace_paths`: the attributes that force a replacement.
        let forcing: BTreeSet<String> = change
            .get("replace_paths")
            .and_then(Value::as_array)
            .map(|paths| {
                paths
                    .iter()
                    .filter_map(|p| p.get(0).and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut block = format!("**{}** {words}", code(address));
        if let Some(deposed) = rc.get("deposed").and_then(Value::as_str) {
            block.push_str(&format!(" (deposed object {})", code(deposed)));
        }
        if let Some(c) = report.cost.resources.iter().find(|c| c.address == address) {
            match c.delta {
                Some(delta) if !c.unpriced => {
                    block.push_str(&format!(" · {}/month", signed_amount(currency, delta)))
                }
                _ => block.push_str(" · unpriced"),
            }
        }
        block.push('\n');
        let lines = attribute_lines(change, kind, &forcing);
        if lines.is_empty() {
            block.push_str("\n_No attribute changes to show._\n\n");
        } else {
            let body = lines.join("\n");
            let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
            block.push_str(&format!("\n{fence}diff\n{body}\n{fence}\n\n"));
        }
        blocks.push(block);
    }
    blocks
}

/// `+ name = "orders"`, `~ limit = 20 -> 30`, `- old = 1`, one per
/// top-level attribute that the change sets, changes or removes.
fn attribute_lines(change: &Value, kind: &str, forcing: &BTreeSet<String>) -> Vec<String> {
    let null = Value::Null;
    let field = |name: &str| change.get(name).unwrap_or(&null);
    let (before, after, unknown) = (field("before"), field("after"), field("after_unknown"));
    let (before_sensitive, after_sensitive) = (field("before_sensitive"), field("after_sensitive"));
    let mut keys: BTreeSet<&String> = BTreeSet::new();
    for value in [before, after, unknown] {
        if let Some(map) = value.as_object() {
            keys.extend(map.keys());
        }
    }
    let mut lines = Vec::new();
    for key in keys {
        let get = |v: &'_ Value| v.get(key.as_str()).cloned().unwrap_or(Value::Null);
        let (b, a, u) = (get(before), get(after), get(unknown));
        let (bs, as_) = (get(before_sensitive), get(after_sensitive));
        let b_text = render(&b, &Value::Null, &bs);
        let a_text = render(&a, &u, &as_);
        let a_unknown = any_true(&u);
        let a_absent = a.is_null() && !a_unknown;
        let note = if kind == "replace" && forcing.contains(key.as_str()) {
            "  # forces replacement"
        } else {
            ""
        };
        let name = attribute_name(key);
        let line = match kind {
            "create" if !a_absent => format!("+ {name} = {a_text}"),
            "delete" if !b.is_null() => format!("- {name} = {b_text}"),
            "create" | "delete" => continue,
            _ => {
                if (b.is_null() && a_absent) || (b == a && !a_unknown && bs == as_) {
                    continue;
                }
                if b.is_null() {
                    format!("+ {name} = {a_text}{note}")
                } else if a_absent {
                    format!("- {name} = {b_text}{note}")
                } else if let Some(nested) = nested_diff(&name, &b, &a, &u, &bs, &as_, note, 1) {
                    lines.extend(nested);
                    continue;
                } else {
                    format!("~ {name} = {b_text} -> {a_text}{note}")
                }
            }
        };
        lines.push(line);
    }
    lines
}

/// Deepest nesting shown key by key; deeper changes show whole values.
const NESTED_DIFF_DEPTH: usize = 4;

/// An update of an object (a map or a block) shown key by key, as
/// Terraform does:
///
/// ```text
/// ~ tags = {
/// ~   team = "a" -> "b"
/// +   owner = "x"
///   }
/// ```
///
/// `None` when the two values are not both objects (or lists of objects of
/// the same length), or a side is wholly unknown or sensitive: the caller
/// shows the whole values then.
#[allow(clippy::too_many_arguments)]
fn nested_diff(
    name: &str,
    before: &Value,
    after: &Value,
    unknown: &Value,
    before_sensitive: &Value,
    after_sensitive: &Value,
    note: &str,
    depth: usize,
) -> Option<Vec<String>> {
    let whole = |v: &Value| *v == Value::Bool(true);
    if depth > NESTED_DIFF_DEPTH
        || whole(unknown)
        || whole(before_sensitive)
        || whole(after_sensitive)
        || crate::plan::is_marker(before)
        || crate::plan::is_marker(after)
    {
        return None;
    }
    let null = Value::Null;
    let pad = "  ".repeat(depth);
    let mut children = Vec::new();
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            if let Some(u) = unknown.as_object() {
                keys.extend(u.iter().filter(|(_, v)| any_true(v)).map(|(k, _)| k));
            }
            for key in keys {
                let get = |v: &Value| v.get(key.as_str()).unwrap_or(&null).clone();
                let (cb, ca, cu) = (get(before), get(after), get(unknown));
                let (cbs, cas) = (get(before_sensitive), get(after_sensitive));
                child_lines(
                    &attribute_name(key),
                    (&cb, &ca, &cu, &cbs, &cas),
                    &pad,
                    depth,
                    &mut children,
                );
            }
        }
        (Value::Array(b), Value::Array(a))
            if b.len() == a.len() && a.iter().chain(b).all(Value::is_object) =>
        {
            for i in 0..a.len() {
                let get = |v: &Value| v.get(i).unwrap_or(&null).clone();
                let (cb, ca, cu) = (get(before), get(after), get(unknown));
                let (cbs, cas) = (get(before_sensitive), get(after_sensitive));
                child_lines(
                    &format!("[{i}]"),
                    (&cb, &ca, &cu, &cbs, &cas),
                    &pad,
                    depth,
                    &mut children,
                );
            }
        }
        _ => return None,
    }
    if children.is_empty() {
        return None;
    }
    let outer = "  ".repeat(depth - 1);
    let (open, close) = if after.is_array() {
        ("[", "]")
    } else {
        ("{", "}")
    };
    let mut lines = vec![format!("~ {outer}{name} = {open}{note}")];
    lines.extend(children);
    lines.push(format!("  {outer}{close}"));
    Some(lines)
}

/// The diff lines of one key (or list element) inside [`nested_diff`].
fn child_lines(
    name: &str,
    (b, a, u, bs, as_): (&Value, &Value, &Value, &Value, &Value),
    pad: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    let a_unknown = any_true(u);
    let a_absent = a.is_null() && !a_unknown;
    if (b.is_null() && a_absent) || (b == a && !a_unknown && bs == as_) {
        return;
    }
    let b_text = render(b, &Value::Null, bs);
    let a_text = render(a, u, as_);
    if b.is_null() {
        out.push(format!("+ {pad}{name} = {a_text}"));
    } else if a_absent {
        out.push(format!("- {pad}{name} = {b_text}"));
    } else if let Some(nested) = nested_diff(name, b, a, u, bs, as_, "", depth + 1) {
        out.extend(nested);
    } else {
        out.push(format!("~ {pad}{name} = {b_text} -> {a_text}"));
    }
}

const SHOWN_VALUE_MAX: usize = 400;

/// A value as Terraform shows it: strings quoted, `(known after apply)`,
/// `(sensitive)`; long values end with `…`.
fn render(value: &Value, unknown: &Value, sensitive: &Value) -> String {
    let mut text = String::new();
    render_into(value, unknown, sensitive, &mut text);
    if text.len() > SHOWN_VALUE_MAX {
        text.truncate(crate::floor_char_boundary(&text, SHOWN_VALUE_MAX));
        text.push('…');
    }
    text
}

fn render_into(value: &Value, unknown: &Value, sensitive: &Value, out: &mut String) {
    if out.len() > SHOWN_VALUE_MAX {
        return;
    }
    if *sensitive == Value::Bool(true) || crate::plan::is_marker(value) {
        out.push_str("(sensitive)");
        return;
    }
    if *unknown == Value::Bool(true) {
        out.push_str("(known after apply)");
        return;
    }
    let null = Value::Null;
    match value {
        Value::Object(map) => {
            let mut keys: BTreeSet<&String> = map.keys().collect();
            if let Some(u) = unknown.as_object() {
                keys.extend(u.iter().filter(|(_, v)| any_true(v)).map(|(k, _)| k));
            }
            if keys.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{ ");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&attribute_name(key));
                out.push_str(" = ");
                render_into(
                    map.get(key).unwrap_or(&null),
                    unknown.get(key).unwrap_or(&null),
                    sensitive.get(key).unwrap_or(&null),
                    out,
                );
            }
            out.push_str(" }");
        }
        Value::Array(items) => {
            let n = items.len().max(unknown.as_array().map_or(0, |u| u.len()));
            out.push('[');
            for i in 0..n {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(
                    items.get(i).unwrap_or(&null),
                    unknown.get(i).unwrap_or(&null),
                    sensitive.get(i).unwrap_or(&null),
                    out,
                );
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Whether an `after_unknown` value marks anything unknown.
fn any_true(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Object(map) => map.values().any(any_true),
        Value::Array(items) => items.iter().any(any_true),
        _ => false,
    }
}

/// An attribute or map key: bare when it is an identifier, else quoted.
fn attribute_name(key: &str) -> String {
    let bare = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// `text` as inline code, on one line, whatever backticks it holds.
fn code(text: &str) -> String {
    let text = one_line(text, 300);
    let ticks = "`".repeat(longest_backtick_run(&text) + 1);
    if ticks.len() > 1 || text.starts_with(' ') || text.ends_with(' ') {
        format!("{ticks} {text} {ticks}")
    } else {
        format!("{ticks}{text}{ticks}")
    }
}

/// A word for a shell command line, quoted when it needs to be.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// An amount with thousands separators and two decimals: `$7,500.00`,
/// `1,234.50 EUR`. Rounded to cents first, so never `-$0.00`.
fn amount(currency: &str, value: f64) -> String {
    with_sign(currency, value, false)
}

/// [`amount`] with `+` before an increase: `+$20.00`, `-$5.25`, `$0.00`.
fn signed_amount(currency: &str, value: f64) -> String {
    with_sign(currency, value, true)
}

fn with_sign(currency: &str, value: f64, plus: bool) -> String {
    // `as` saturates (and maps NaN to 0): no panic on absurd amounts.
    let cents = (value * 100.0).round() as i128;
    let sign = match cents.signum() {
        -1 => "-",
        1 if plus => "+",
        _ => "",
    };
    let cents = cents.unsigned_abs();
    let digits = (cents / 100).to_string();
    let mut whole = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            whole.push(',');
        }
        whole.push(c);
    }
    let (symbol, suffix) = if currency == "USD" {
        ("$", String::new())
    } else {
        ("", format!(" {currency}"))
    };
    format!("{sign}{symbol}{whole}.{:02}{suffix}", cents % 100)
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

/// `policy eval --timings`: the evaluation's wall time and each set's rule
/// time (summed over the evaluation threads, so the sets can add up to more
/// than the wall time), slowest first.
pub fn set_timings(wall: std::time::Duration, sets: &[crate::policy::SetTime]) -> String {
    let mut out = format!(
        "policy evaluation: {:.1} ms wall time\n  {:<32} {:>6} {:>9} {:>10}\n",
        wall.as_secs_f64() * 1000.0,
        "set",
        "rules",
        "compiled",
        "rule ms"
    );
    let mut sorted: Vec<&crate::policy::SetTime> = sets.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.set.cmp(&b.set)));
    for t in sorted {
        out.push_str(&format!(
            "  {:<32} {:>6} {:>9} {:>10.1}\n",
            t.set,
            t.rules,
            t.compiled,
            t.time.as_secs_f64() * 1000.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::ResourceCost;
    use serde_json::json;

    fn finding(rule: &str, severity: Severity, enforcement: Enforcement, address: &str) -> Finding {
        Finding {
            rule: rule.into(),
            severity,
            set: match enforcement {
                Enforcement::HardMandatory => "hard",
                Enforcement::SoftMandatory => "soft",
                Enforcement::Advisory => "advisory",
            }
            .into(),
            enforcement,
            address: Some(address.into()),
            message: format!("{rule} fired\non two lines"),
            excepted_by: None,
        }
    }

    fn priced(address: &str, before: Option<f64>, after: Option<f64>) -> ResourceCost {
        ResourceCost {
            address: address.into(),
            before,
            after,
            delta: Some(after.unwrap_or(0.0) - before.unwrap_or(0.0)),
            source: Some("catalog".into()),
            unpriced: false,
            unpriced_reason: None,
        }
    }

    fn change(address: &str, action: &str) -> Change {
        Change {
            address: address.into(),
            action: action.into(),
            attributes: vec![],
        }
    }

    /// A plan that creates, updates, replaces and destroys, with unknown
    /// and sensitive values, costs over 1,000, a negative delta and a
    /// finding of every level.
    fn small() -> (Report, Value) {
        let mut waived = finding(
            "deny_public_bucket",
            Severity::Deny,
            Enforcement::HardMandatory,
            "aws_s3_bucket.logs",
        );
        waived.excepted_by = Some("alice: audit logs (expires 2027-01-01)".into());
        let report = Report {
            format_version: crate::cli::JSON_FORMAT_VERSION,
            run: "20261129T120000Z-abcd".into(),
            dir: "infra/prod".into(),
            workspace: "default".into(),
            environment: "prod".into(),
            identity_digest: "sha256:00".into(),
            counts: Counts {
                add: 1,
                change: 1,
                replace: 1,
                destroy: 1,
                ..Counts::default()
            },
            changes: vec![
                change("platform_postgres_database.orders", "create"),
                change("platform_postgres_database.users", "update"),
                change("platform_cache.sessions", "replace"),
                change("platform_queue.old", "delete"),
            ],
            cost: CostReport {
                currency: "USD".into(),
                monthly_before: 1_250.5,
                monthly_after: 8_730.5,
                monthly_delta: 7_480.0,
                resources: vec![
                    priced("platform_postgres_database.orders", None, Some(7_500.0)),
                    priced(
                        "platform_postgres_database.users",
                        Some(1_200.0),
                        Some(1_200.0),
                    ),
                    priced("platform_cache.sessions", Some(30.5), Some(30.5)),
                    priced("platform_queue.old", Some(20.0), None),
                    ResourceCost {
                        address: "aws_s3_bucket.logs".into(),
                        before: None,
                        after: None,
                        delta: None,
                        source: None,
                        unpriced: true,
                        unpriced_reason: Some("not in the price book".into()),
                    },
                ],
                n_unpriced: 1,
            },
            budget: None,
            findings: vec![
                finding(
                    "deny_premium_tier",
                    Severity::Deny,
                    Enforcement::HardMandatory,
                    "platform_postgres_database.orders",
                ),
                finding(
                    "deny_large_change",
                    Severity::Deny,
                    Enforcement::SoftMandatory,
                    "platform_postgres_database.users",
                ),
                finding(
                    "warn_unpriced",
                    Severity::Warn,
                    Enforcement::Advisory,
                    "aws_s3_bucket.logs",
                ),
                waived,
            ],
            policy_error: None,
            verdict: "needs_approval".into(),
            exit_code: 4,
        };
        let plan = json!({"resource_changes": [
            {"address": "platform_postgres_database.orders", "change": {
                "actions": ["create"], "before": null,
                "after": {"name": "orders", "tier": "premium", "tags": {"team": "shop"}, "password": "(sensitive:0123abcd)"},
                "after_unknown": {"id": true, "monthly_cost": true},
                "before_sensitive": false, "after_sensitive": {"password": true}}},
            {"address": "platform_postgres_database.users", "change": {
                "actions": ["update"],
                "before": {"id": "db-1", "name": "users", "connection_limit": 20, "password": "(sensitive:0123abcd)", "extensions": ["pgcrypto"],
                           "tags": {"team": "shop", "cost_center": "42", "old": "x"}, "settings": [{"key": "work_mem", "value": "4MB"}, {"key": "timezone", "value": "UTC"}]},
                "after": {"id": "db-1", "name": "users", "connection_limit": 30, "password": "(sensitive:4567ef01)", "extensions": ["pgcrypto", null],
                          "tags": {"team": "checkout", "cost_center": "42", "owner": null}, "settings": [{"key": "work_mem", "value": "8MB"}, {"key": "timezone", "value": "UTC"}]},
                "after_unknown": {"extensions": [false, true], "tags": {"owner": true}},
                "before_sensitive": {"password": true}, "after_sensitive": {"password": true}}},
            {"address": "platform_cache.sessions", "change": {
                "actions": ["delete", "create"],
                "before": {"id": "c-1", "region": "eu-west-1", "size": 1},
                "after": {"region": "eu-central-1", "size": 1},
                "after_unknown": {"id": true},
                "before_sensitive": {}, "after_sensitive": {},
                "replace_paths": [["region"]]}},
            {"address": "platform_queue.old", "change": {
                "actions": ["delete"],
                "before": {"id": "q-1", "name": "old"},
                "after": null, "after_unknown": {},
                "before_sensitive": {}, "after_sensitive": false}},
            {"address": "data.platform_catalog.c", "change": {
                "actions": ["read"], "before": null, "after": {}, "after_unknown": {}}},
            {"address": "platform_team.t", "change": {
                "actions": ["no-op"], "before": {"a": 1}, "after": {"a": 1}, "after_unknown": {}}}
        ]});
        (report, plan)
    }

    const SMALL: &str = r#"<!-- platform-broker:plan infra/prod -->
### platform-broker plan: `infra/prod` · workspace `default` · environment `prod`

**Needs an approval** — 1 to add, 1 to change, 1 to replace, 1 to destroy · monthly cost $1,250.50 → $8,730.50 (**+$7,480.00**), 1 unpriced

A soft-mandatory finding needs an approval before apply. To approve run `20261129T120000Z-abcd`, then apply it:

```sh
platform-broker approve 20261129T120000Z-abcd --reason "..." --dir infra/prod
platform-broker apply 20261129T120000Z-abcd --dir infra/prod
```

#### Policy findings

**Blocks the apply (hard-mandatory)**

- `deny_premium_tier` (policy set `hard`) on `platform_postgres_database.orders`: deny_premium_tier fired on two lines

**Needs an approval (soft-mandatory)**

- `deny_large_change` (policy set `soft`) on `platform_postgres_database.users`: deny_large_change fired on two lines

**Advisory (does not block)**

- `warn_unpriced` (policy set `advisory`) on `aws_s3_bucket.logs`: warn_unpriced fired on two lines

**Waived by an exception**

- `deny_public_bucket` (policy set `hard`) on `aws_s3_bucket.logs`: deny_public_bucket fired on two lines — waived: alice: audit logs (expires 2027-01-01)

#### Monthly cost (USD)

| resource | before | after | change |
|---|---:|---:|---:|
| `platform_postgres_database.orders` | – | $7,500.00 | +$7,500.00 |
| `platform_postgres_database.users` | $1,200.00 | $1,200.00 | $0.00 |
| `platform_cache.sessions` | $30.50 | $30.50 | $0.00 |
| `platform_queue.old` | $20.00 | – | -$20.00 |
| `aws_s3_bucket.logs` | – | – | unpriced: not in the price book |
| **total** | $1,250.50 | $8,730.50 | **+$7,480.00** |

#### Changes

**`platform_postgres_database.orders`** will be **created** · +$7,500.00/month

```diff
+ id = (known after apply)
+ monthly_cost = (known after apply)
+ name = "orders"
+ password = (sensitive)
+ tags = { team = "shop" }
+ tier = "premium"
```

**`platform_postgres_database.users`** will be **updated** in place · $0.00/month

```diff
~ connection_limit = 20 -> 30
~ extensions = ["pgcrypto"] -> ["pgcrypto", (known after apply)]
~ password = (sensitive) -> (sensitive)
~ settings = [
~   [0] = {
~     value = "4MB" -> "8MB"
    }
  ]
~ tags = {
-   old = "x"
+   owner = (known after apply)
~   team = "shop" -> "checkout"
  }
```

**`platform_cache.sessions`** will be **replaced** · $0.00/month

```diff
~ id = "c-1" -> (known after apply)
~ region = "eu-west-1" -> "eu-central-1"  # forces replacement
```

**`platform_queue.old`** will be **destroyed** · -$20.00/month

```diff
- id = "q-1"
- name = "old"
```
"#;

    #[test]
    fn small_plan_snapshot() {
        let (report, plan) = small();
        let md = markdown(&report, &plan);
        if md != SMALL {
            panic!("snapshot differs; got:\n{md}");
        }
        assert!(!md.contains("-$0.00"), "no negative zero");
    }

    #[test]
    fn amounts_have_separators_and_no_negative_zero() {
        assert_eq!(amount("USD", 7_500.0), "$7,500.00");
        assert_eq!(amount("USD", 1_234_567.891), "$1,234,567.89");
        assert_eq!(amount("USD", -0.001), "$0.00");
        assert_eq!(signed_amount("USD", -0.0), "$0.00");
        assert_eq!(signed_amount("USD", -1_000.5), "-$1,000.50");
        assert_eq!(signed_amount("EUR", 999.999), "+1,000.00 EUR");
        assert_eq!(amount("USD", 100.0), "$100.00");
    }

    #[test]
    fn verdicts_say_what_to_do() {
        let (mut report, plan) = small();
        report.verdict = "allowed".into();
        let md = markdown(&report, &plan);
        assert!(md.contains("**Allowed** — "));
        assert!(
            md.contains("```sh\nplatform-broker apply 20261129T120000Z-abcd --dir infra/prod\n```")
        );
        assert!(!md.contains("approve"));
        report.verdict = "denied".into();
        report.dir = "my infra".into();
        let md = markdown(&report, &plan);
        assert!(md.starts_with("<!-- platform-broker:plan my infra -->\n"));
        assert!(md.contains("**Denied by policy** — "));
        assert!(md.contains("cannot be applied"));
        assert!(md.contains("`platform-broker runs 'my infra'`") || !md.contains("more resources"));
        report.policy_error = Some("time limit of 2s exceeded\nin soft/deny_x".into());
        let md = markdown(&report, &plan);
        assert!(md.contains("(fail closed): time limit of 2s exceeded in soft/deny_x\n"));
    }

    #[test]
    fn marker_cannot_close_the_comment_early() {
        assert_eq!(
            comment_marker("a-->b"),
            "<!-- platform-broker:plan a-%2D>b -->"
        );
    }

    fn big(n: usize, findings: usize) -> (Report, Value) {
        let (mut report, _) = small();
        report.counts = Counts {
            add: n,
            ..Counts::default()
        };
        report.changes = (0..n)
            .map(|i| change(&format!("platform_postgres_database.d[{i}]"), "create"))
            .collect();
        report.cost.resources = (0..n)
            .map(|i| {
                priced(
                    &format!("platform_postgres_database.d[{i}]"),
                    None,
                    Some(25.0),
                )
            })
            .collect();
        report.findings = (0..findings)
            .map(|i| {
                finding(
                    "deny_large_change",
                    Severity::Deny,
                    Enforcement::SoftMandatory,
                    &format!("platform_postgres_database.d[{i}]"),
                )
            })
            .collect();
        let changes: Vec<Value> = (0..n)
            .map(|i| {
                json!({"address": format!("platform_postgres_database.d[{i}]"), "change": {
                    "actions": ["create"], "before": null,
                    "after": {"name": format!("db_{i}"), "tier": "standard", "owner": "team-é ✓",
                              "description": "x".repeat(120), "password": "(sensitive:0123abcd)"},
                    "after_unknown": {"id": true, "monthly_cost": true, "endpoint": true},
                    "after_sensitive": {"password": true}}})
            })
            .collect();
        (report, json!({ "resource_changes": changes }))
    }

    fn assert_bounded(md: &str) {
        assert!(md.chars().count() < 65_536, "{} chars", md.chars().count());
        assert!(md.len() <= MARKDOWN_LIMIT, "{} bytes", md.len());
        assert_eq!(md.matches("```").count() % 2, 0, "a fence is left open");
    }

    #[test]
    fn three_hundred_resources_are_summarised() {
        let (report, plan) = big(300, 300);
        let md = markdown(&report, &plan);
        assert_bounded(&md);
        assert!(md.starts_with("<!-- platform-broker:plan infra/prod -->\n"));
        assert!(md.contains("300 to add"));
        assert!(md.contains("platform-broker approve 20261129T120000Z-abcd"));
        let shown = md.matches("```diff\n").count();
        assert!(shown > 10 && shown < 300, "{shown} diffs");
        assert!(md.contains(&format!(
            "… and {} more resources (see the run's report: `platform-broker runs infra/prod`)\n",
            300 - shown
        )));
        // Every diff shown is whole.
        assert_eq!(
            md.matches("```diff\n").count(),
            md.matches("\n```\n").count() - 1
        );
        assert!(md.ends_with("`platform-broker runs infra/prod`)\n"));
    }

    #[test]
    fn thousands_of_findings_and_resources_stay_bounded() {
        let (report, plan) = big(20_000, 5_000);
        let md = markdown(&report, &plan);
        assert_bounded(&md);
        assert!(md.contains("more findings (see the run's report"));
        assert!(md.contains("more resources (see the run's report"));
        assert!(md.contains("| **total** |"));
    }
}
