//! `policy eval --plan PLAN.json`: the verdict of a saved `terraform show
//! -json` document, with the same input building, pricing, budgets and
//! policy evaluation as `plan`, and no terraform run, no bundle, no audit
//! event (nothing is planned or applied). conftest and `opa eval` users
//! expect this.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::derive::{self, BudgetSource, Derived, verdict_name};
use super::input::{RunInput, WorkspaceInput};
use super::{Context, Inputs, Loaded};
use super::{EXIT_DENIED, EXIT_NEEDS_APPROVAL, EXIT_OK};
use crate::key::{self, Fingerprint};
use crate::plan::{self, PlanSummary};
use crate::policy::Verdict;
use crate::report::{self, Report};

/// A plan document to evaluate.
pub struct EvalRequest {
    /// The `terraform show -json` document; `-` reads standard input.
    pub plan: PathBuf,
    pub inputs: Inputs,
    /// `input.run.workspace.environment`.
    pub environment: String,
    /// Where to write the complete policy input document (`--input-out`).
    pub input_out: Option<PathBuf>,
}

pub struct Evaluated {
    pub report: Report,
    pub summary: PlanSummary,
    /// 0 allowed, 3 denied, 4 needs approval.
    pub exit_code: u8,
    /// The policy evaluation's wall time, and each set's rule time.
    pub policy_time: std::time::Duration,
    pub set_times: Vec<crate::policy::SetTime>,
}

/// Documents larger than this are refused (a 10,000-resource plan is about
/// 30 MB).
const MAX_PLAN_BYTES: u64 = 1 << 30;

pub fn eval(ctx: &Context, request: &EvalRequest, warn: &mut dyn FnMut(&str)) -> Result<Evaluated> {
    let text = read_plan(&request.plan)?;
    // Redaction markers keyed by the broker key when there is one (as in a
    // bundle), else by a salt of this process: nothing is kept.
    let fingerprint = match key::load(&ctx.config.trust, &[])? {
        Some(key) => Fingerprint::from_key(&key),
        None => {
            let mut salt = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
                .map_err(|_| anyhow::anyhow!("no randomness for the redaction salt"))?;
            Fingerprint::from_salt(&salt)
        }
    };
    let summary = plan::parse_with(text.as_bytes(), &fingerprint).with_context(|| {
        format!(
            "{}: not a `terraform show -json` plan document",
            shown(&request.plan)
        )
    })?;
    drop(text);
    let loaded = Loaded::load(&request.inputs)?;
    let is_destroy = summary.is_destroy();
    let run = RunInput {
        id: "eval".to_owned(),
        created_by: ctx.actor.clone(),
        commit_sha: None,
        is_destroy,
        refresh_only: false,
        target_addrs: Vec::new(),
        replace_addrs: Vec::new(),
        workspace: WorkspaceInput {
            name: "default".to_owned(),
            environment: request.environment.clone(),
            tags: Vec::new(),
            directory: request
                .plan
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        },
    };
    let dir = match run.workspace.directory.as_str() {
        "" => ".".to_owned(),
        directory => directory.to_owned(),
    };
    let Derived {
        summary,
        costs,
        budget,
        findings,
        policy_error,
        verdict,
        policy_time,
        set_times,
    } = derive::derive_observed(
        ctx,
        &loaded,
        summary,
        run,
        BudgetSource::Fetch,
        warn,
        &mut |input| match &request.input_out {
            Some(path) => write_input(path, input),
            None => Ok(()),
        },
    )?;
    let exit_code = match verdict {
        Verdict::Denied => EXIT_DENIED,
        Verdict::NeedsApproval => EXIT_NEEDS_APPROVAL,
        Verdict::Allowed => EXIT_OK,
    };
    let report = Report {
        format_version: crate::cli::JSON_FORMAT_VERSION,
        run: "eval".to_owned(),
        dir,
        workspace: "default".to_owned(),
        environment: request.environment.clone(),
        identity_digest: String::new(),
        counts: summary.counts(),
        changes: report::changes(&summary),
        cost: costs,
        budget,
        findings,
        policy_error,
        verdict: verdict_name(verdict).to_owned(),
        exit_code,
    };
    Ok(Evaluated {
        report,
        summary,
        exit_code,
        policy_time,
        set_times,
    })
}

fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Writes the policy input as pretty JSON (`--input-out`).
fn write_input(path: &Path, input: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(input).context("serialising the policy input")?;
    text.push(b'\n');
    std::fs::write(path, text)
        .with_context(|| format!("writing the policy input to {}", path.display()))
}

fn read_plan(path: &Path) -> Result<String> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_PLAN_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_PLAN_BYTES + 1).read_to_string(&mut text))
    };
    read.with_context(|| shown(path))?;
    if text.len() as u64 > MAX_PLAN_BYTES {
        bail!("{}: larger than {} bytes", shown(path), MAX_PLAN_BYTES);
    }
    Ok(text)
}
