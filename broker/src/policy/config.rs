//! The policy configuration file (HCL).
//!
//! ```hcl
//! timeout = "2s"
//!
//! policy_set "platform-hard" {
//!   path        = "hard"            # relative to this file
//!   enforcement = "hard_mandatory"  # advisory | soft_mandatory | hard_mandatory
//!   syntax      = "v1"              # v1 (default) | v0 (older conftest syntax)
//! }
//!
//! exception {
//!   rule    = "deny_premium_tier"
//!   address = "module.billing.platform_postgres_database.*"
//!   owner   = "team-billing"
//!   reason  = "JIRA-123: migration window"
//!   expires = "2026-12-31"
//! }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl::{Body, Expression};

use super::{Enforcement, Exception, PolicyError, PolicySet};
use crate::dates::{format_date, parse_date, parse_duration, today_utc};

/// Per-run evaluation time limit when the file sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Policy sets, exceptions and the evaluation time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    pub sets: Vec<PolicySet>,
    pub exceptions: Vec<Exception>,
    /// Wall-clock limit for one whole evaluation (all sets); default 2s.
    pub timeout: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            sets: Vec::new(),
            exceptions: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl PolicyConfig {
    /// Reads an HCL policy configuration; set paths are relative to the file.
    /// An exception whose expiry date lies before today (UTC) is an error.
    pub fn load(path: &Path) -> Result<PolicyConfig, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let config = Self::parse(&text, base, path)?;
        config.check_exceptions(today_utc())?;
        Ok(config)
    }

    /// Parses configuration text without checking exception expiry.
    /// `base` resolves relative set paths; `origin` names the file in errors.
    pub fn parse(text: &str, base: &Path, origin: &Path) -> Result<PolicyConfig, PolicyError> {
        let err = |message: String| PolicyError::Config {
            path: origin.to_path_buf(),
            message,
        };
        platform_catalog::check_nesting(text).map_err(|too_deep| err(too_deep.to_string()))?;
        let body: Body = hcl::parse(text).map_err(|e| err(e.to_string()))?;
        let mut config = PolicyConfig::default();

        for attr in body.attributes() {
            match attr.key() {
                "timeout" => {
                    let s = expect_string(attr.expr(), "timeout").map_err(err)?;
                    config.timeout = parse_duration(&s).map_err(err)?;
                }
                other => return Err(err(format!("unknown attribute `{other}`"))),
            }
        }

        for block in body.blocks() {
            match block.identifier() {
                "policy_set" => {
                    let [label] = block.labels() else {
                        return Err(err("policy_set needs exactly one label (its name)".into()));
                    };
                    let name = label.as_str().to_string();
                    let set = parse_set(&name, block.body(), base)
                        .map_err(|m| err(format!("policy_set \"{name}\": {m}")))?;
                    if config.sets.iter().any(|s| s.name == set.name) {
                        return Err(err(format!("policy_set \"{name}\" is declared twice")));
                    }
                    config.sets.push(set);
                }
                "exception" => {
                    let n = config.exceptions.len() + 1;
                    let ex = parse_exception(block.body())
                        .map_err(|m| err(format!("exception #{n}: {m}")))?;
                    config.exceptions.push(ex);
                }
                other => return Err(err(format!("unknown block `{other}`"))),
            }
        }
        if config.sets.is_empty() {
            return Err(err("no policy_set declared".into()));
        }
        Ok(config)
    }

    /// Fails loudly on the first exception that has expired on `today`.
    pub fn check_exceptions(&self, today: time::Date) -> Result<(), PolicyError> {
        match self.exceptions.iter().find(|e| e.is_expired(today)) {
            Some(e) => Err(PolicyError::ExpiredException {
                rule: e.rule.clone(),
                address: e.address.clone(),
                owner: e.owner.clone(),
                expires: format_date(e.expires),
            }),
            None => Ok(()),
        }
    }
}

fn parse_set(name: &str, body: &Body, base: &Path) -> Result<PolicySet, String> {
    if name.trim().is_empty() {
        return Err("empty name".into());
    }
    let mut path: Option<PathBuf> = None;
    let mut enforcement: Option<Enforcement> = None;
    let mut rego_v0 = false;
    for attr in body.attributes() {
        let value = expect_string(attr.expr(), attr.key())?;
        match attr.key() {
            "path" => path = Some(base.join(value)),
            "enforcement" => enforcement = Some(Enforcement::parse(&value).ok_or_else(|| {
                format!(
                    "enforcement \"{value}\" is not one of advisory, soft_mandatory, hard_mandatory"
                )
            })?),
            "syntax" => {
                rego_v0 = match value.as_str() {
                    "v1" => false,
                    "v0" => true,
                    other => return Err(format!("syntax \"{other}\" is not one of v1, v0")),
                }
            }
            other => return Err(format!("unknown attribute `{other}`")),
        }
    }
    if body.blocks().next().is_some() {
        return Err("unexpected nested block".into());
    }
    Ok(PolicySet {
        name: name.to_string(),
        dir: path.ok_or("missing `path`")?,
        // No silent default: the enforcement level is a deliberate choice.
        enforcement: enforcement.ok_or("missing `enforcement`")?,
        rego_v0,
    })
}

fn parse_exception(body: &Body) -> Result<Exception, String> {
    let (mut rule, mut address, mut owner, mut reason, mut expires) =
        (None, None, None, None, None);
    for attr in body.attributes() {
        let value = expect_string(attr.expr(), attr.key())?;
        match attr.key() {
            "rule" => rule = Some(value),
            "address" => address = Some(value),
            "owner" => owner = Some(value),
            "reason" => reason = Some(value),
            "expires" => expires = Some(parse_date(&value)?),
            other => return Err(format!("unknown attribute `{other}`")),
        }
    }
    let nonempty = |v: Option<String>, key: &str| -> Result<String, String> {
        match v {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(format!("missing `{key}`")),
        }
    };
    let rule = nonempty(rule, "rule")?;
    if !(rule.starts_with("deny_") || rule.starts_with("warn_")) {
        return Err(format!("rule \"{rule}\" is not a deny_/warn_ rule id"));
    }
    let address = nonempty(address, "address")?;
    if address.trim_end_matches('*').contains('*') {
        return Err(format!(
            "address \"{address}\": `*` is only allowed at the end"
        ));
    }
    Ok(Exception {
        rule,
        address,
        owner: nonempty(owner, "owner")?,
        reason: nonempty(reason, "reason")?,
        expires: expires.ok_or("missing `expires` (YYYY-MM-DD)")?,
    })
}

fn expect_string(expr: &Expression, key: &str) -> Result<String, String> {
    match expr {
        Expression::String(s) => Ok(s.clone()),
        _ => Err(format!("`{key}` must be a plain string")),
    }
}
