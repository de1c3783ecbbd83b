//! Policy engine: Rego policy sets evaluated in process with `regorus`.
//!
//! * A [`PolicyConfig`] (HCL file) lists policy sets, each with an enforcement
//!   level and a Rego dialect, plus scoped, expiring [`Exception`]s.
//! * [`Policies::load`] parses every set **once**; [`Policies::evaluate`] runs
//!   every `deny_<id>` / `warn_<id>` rule under `package platform.*` against one
//!   input document (see `docs/policy-input.md`) and returns a [`Decision`].
//! * Fail closed: a parse error, an evaluation error or exceeding the time
//!   limit is an `Err`; the CLI turns it into "denied".
//! * [`run_tests`] runs the `test_*` rules of `*_test.rego` files beside the
//!   policies; [`report`] renders findings as SARIF 2.1.0 and JUnit XML.

mod builtins;
mod config;
mod engine;
mod fast;
mod input;
pub mod report;
mod sprintf;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use config::{DEFAULT_TIMEOUT, PolicyConfig};
pub use engine::{INPUT_VERSION, Policies, SetTime, TestReport, run_tests};

/// How a policy set's `deny_*` findings affect the verdict (Sentinel/Scalr semantics).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Reported, never blocks.
    Advisory,
    /// A finding needs an approval before apply.
    SoftMandatory,
    /// A finding denies the run.
    HardMandatory,
}

impl Enforcement {
    /// The configuration spelling: `advisory`, `soft_mandatory`, `hard_mandatory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Advisory => "advisory",
            Enforcement::SoftMandatory => "soft_mandatory",
            Enforcement::HardMandatory => "hard_mandatory",
        }
    }

    /// Parses the configuration spelling (also accepts `-` for `_`).
    pub fn parse(s: &str) -> Option<Enforcement> {
        match s.trim().replace('-', "_").as_str() {
            "advisory" => Some(Enforcement::Advisory),
            "soft_mandatory" => Some(Enforcement::SoftMandatory),
            "hard_mandatory" => Some(Enforcement::HardMandatory),
            _ => None,
        }
    }
}

impl fmt::Display for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One policy set: a directory of `.rego` files sharing an enforcement level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    pub name: String,
    /// Directory holding the set's `.rego` files (searched recursively);
    /// `*_test.rego` files are only loaded by [`run_tests`].
    pub dir: PathBuf,
    pub enforcement: Enforcement,
    /// `true`: the older (pre-1.0, conftest) Rego syntax without `if`/`contains`.
    pub rego_v0: bool,
}

/// A scoped, owned, expiring waiver of one rule for some resource addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// Rule id, e.g. `deny_premium_tier`.
    pub rule: String,
    /// Resource address, exact, or a prefix followed by a trailing `*`
    /// (`*` alone matches every finding of the rule, with or without address).
    pub address: String,
    pub owner: String,
    pub reason: String,
    /// Last day (UTC) on which the exception applies.
    pub expires: time::Date,
}

impl Exception {
    /// Whether this exception covers a finding of `rule` at `address`.
    pub fn matches(&self, rule: &str, address: Option<&str>) -> bool {
        if self.rule != rule {
            return false;
        }
        if self.address == "*" {
            return true;
        }
        let Some(address) = address else {
            return false;
        };
        match self.address.strip_suffix('*') {
            Some(prefix) => address.starts_with(prefix),
            None => self.address == address,
        }
    }

    /// Whether the exception has expired on `today` (it is valid through `expires`).
    pub fn is_expired(&self, today: time::Date) -> bool {
        today > self.expires
    }

    /// `owner: reason (expires YYYY-MM-DD)`, recorded on excepted findings.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} (expires {})",
            self.owner,
            self.reason,
            crate::dates::format_date(self.expires)
        )
    }
}

/// `deny_*` or `warn_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Deny,
    Warn,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Deny => "deny",
            Severity::Warn => "warn",
        }
    }
}

/// One element produced by a `deny_*` / `warn_*` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Rule id, e.g. `deny_deprecated_offering`.
    pub rule: String,
    pub severity: Severity,
    /// Policy set name.
    pub set: String,
    pub enforcement: Enforcement,
    /// Resource address, when the policy supplied one.
    pub address: Option<String>,
    pub message: String,
    /// `owner: reason (expires …)` of the exception that waives this finding.
    pub excepted_by: Option<String>,
}

impl Finding {
    /// Whether this finding counts toward the verdict: a non-excepted deny
    /// from a soft or hard mandatory set.
    pub fn blocks(&self) -> bool {
        self.severity == Severity::Deny
            && self.excepted_by.is_none()
            && self.enforcement != Enforcement::Advisory
    }
}

/// Outcome of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed,
    NeedsApproval,
    Denied,
}

/// Findings of every set plus the resulting verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub findings: Vec<Finding>,
    pub verdict: Verdict,
}

impl Decision {
    /// Builds a decision, deriving the verdict from the findings:
    /// Denied if any non-excepted deny from a hard_mandatory set, else
    /// NeedsApproval if any from a soft_mandatory set, else Allowed.
    pub fn from_findings(findings: Vec<Finding>) -> Decision {
        let verdict = verdict_of(&findings);
        Decision { findings, verdict }
    }

    /// Findings waived by an exception (reported separately, as conftest does).
    pub fn excepted(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.excepted_by.is_some())
    }
}

/// The verdict implied by a list of findings.
pub fn verdict_of(findings: &[Finding]) -> Verdict {
    let mut verdict = Verdict::Allowed;
    for f in findings.iter().filter(|f| f.blocks()) {
        let v = match f.enforcement {
            Enforcement::HardMandatory => Verdict::Denied,
            Enforcement::SoftMandatory => Verdict::NeedsApproval,
            Enforcement::Advisory => Verdict::Allowed,
        };
        verdict = verdict.max(v);
    }
    verdict
}

/// Everything that can go wrong loading or evaluating policy. Every variant
/// means "fail closed".
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(
        "policy exception for rule {rule} at {address} (owner {owner}) expired on {expires}; \
         renew or remove it"
    )]
    ExpiredException {
        rule: String,
        address: String,
        owner: String,
        expires: String,
    },
    #[error("policy set {set}: {message}")]
    Load { set: String, message: String },
    #[error("policy set {set}: evaluating {rule} failed: {message}")]
    Eval {
        set: String,
        rule: String,
        message: String,
    },
    #[error("policy evaluation exceeded its time limit of {limit:?} (after {elapsed:?}{})",
        rule.as_deref().map(|r| format!(", in {r}")).unwrap_or_default())]
    Timeout {
        limit: Duration,
        elapsed: Duration,
        rule: Option<String>,
    },
    #[error("policy input: {0}")]
    Input(String),
}
