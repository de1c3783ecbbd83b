//! The broker configuration file (HCL): Cost Explorer access, budgets per
//! team, and audit sinks. See `docs/broker-config.md`.
//!
//! ```hcl
//! cost_explorer {
//!   region   = "us-east-1"
//!   endpoint = "http://127.0.0.1:5000"   # optional: tests point this at moto
//!   profile  = "billing"                 # optional: else the default AWS chain
//!   team_tag = "team"                    # the cost-allocation tag key
//!   timeout  = "5s"
//! }
//!
//! budget "checkout" {
//!   monthly = 1000
//!   threshold {
//!     at          = "80%"                # or a dollar amount: at = 1200
//!     enforcement = "advisory"
//!   }
//! }
//!
//! audit {
//!   stdout = true
//!   webhook "siem" {
//!     url        = "https://siem.example.com/hooks/platform"
//!     secret_env = "PLATFORM_AUDIT_WEBHOOK_SECRET"
//!   }
//! }
//! ```
//!
//! The key decision: the file never holds a secret. AWS credentials come from
//! the standard chain (environment, profile, SSO cache, instance role); the
//! webhook's HMAC secret from the environment variable the file names. So the
//! file can be committed and reviewed like any other code.
//!
//! Errors name the file and the line (`broker.hcl:12: …`) and stop at the
//! first problem: the file is small and a partial configuration is useless.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl_edit::Span;
use hcl_edit::structure::{Attribute, Block, Body, Structure};

use crate::policy::Enforcement;

/// Cost Explorer's default per-run deadline: a plan is never held up longer.
pub const DEFAULT_CE_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-request deadline of a webhook delivery attempt.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);
/// Delivery attempts per event and run before it stays in the spool.
pub const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 3;

/// A configuration problem, with the file and (where known) the line.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// The whole broker configuration. `Default` is what the broker does without
/// a file: no budgets, the file audit log only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerConfig {
    pub cost_explorer: Option<CostExplorerConfig>,
    pub budgets: Vec<Budget>,
    pub audit: AuditConfig,
    pub trust: TrustConfig,
}

/// The `trust` block: where the broker key comes from and whether one is
/// required. The key itself is never in this file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustConfig {
    /// A file holding the broker key (read when `PLATFORM_BROKER_KEY` is
    /// unset). Must not lie under the working directory or the broker home.
    pub key_file: Option<PathBuf>,
    /// A missing key is an error instead of a warning.
    pub require_key: bool,
}

/// Where and how to ask AWS Cost Explorer for actual spend.
#[derive(Debug, Clone, PartialEq)]
pub struct CostExplorerConfig {
    /// Signing region; Cost Explorer is served from us-east-1.
    pub region: String,
    /// Another endpoint than AWS's (moto in tests, a VPC endpoint or proxy).
    pub endpoint: Option<String>,
    /// A named profile of the shared AWS config; else the default chain.
    pub profile: Option<String>,
    /// The cost-allocation tag that carries the team name (the `team`
    /// attribute of platform resources is propagated into it).
    pub team_tag: String,
    /// `UnblendedCost` (default), `BlendedCost`, `AmortizedCost`,
    /// `NetUnblendedCost` or `NetAmortizedCost`.
    pub metric: String,
    /// Deadline for the whole lookup; past it the budget check is skipped.
    pub timeout: Duration,
    /// Ask GetCostForecast (default); `false` always projects linearly.
    pub forecast: bool,
}

/// The metrics Cost Explorer can both report and forecast.
pub const METRICS: [&str; 5] = [
    "UnblendedCost",
    "BlendedCost",
    "AmortizedCost",
    "NetUnblendedCost",
    "NetAmortizedCost",
];

/// A team's monthly budget and the thresholds checked against it.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub team: String,
    /// The monthly amount, in the Cost Explorer unit (USD).
    pub monthly: f64,
    pub thresholds: Vec<Threshold>,
    /// 1-based line of the `budget` block, for messages.
    pub line: usize,
}

/// A level of projected month-end spend and what reaching it means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub at: Level,
    pub enforcement: Enforcement,
}

/// A threshold level: an absolute amount or a percentage of the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Level {
    Amount(f64),
    Percent(f64),
}

impl Level {
    /// The level in money for a budget of `monthly`.
    pub fn amount(self, monthly: f64) -> f64 {
        match self {
            Level::Amount(amount) => amount,
            Level::Percent(pct) => monthly * pct / 100.0,
        }
    }

    /// `80%` or `$1200.00`, as written in reports.
    pub fn describe(self) -> String {
        match self {
            Level::Amount(amount) => format!("${amount:.2}"),
            Level::Percent(pct) => format!("{pct}%"),
        }
    }
}

/// Audit sinks besides the file log, which is always written first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditConfig {
    pub stdout: bool,
    pub webhooks: Vec<WebhookConfig>,
}

/// An HTTP endpoint that receives every audit event, signed.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    /// Name of the environment variable holding the HMAC secret.
    pub secret_env: String,
    /// Spool directory; default `<broker home>/audit-spool/<name>`.
    pub spool: Option<PathBuf>,
    pub timeout: Duration,
    /// Attempts per event and run (with backoff) before it stays spooled.
    pub attempts: u32,
}

/// Environment variable naming the configuration file (`--config` wins).
pub const ENV_VAR: &str = "PLATFORM_BROKER_CONFIG";

impl BrokerConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<BrokerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {error}"),
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, base, path)
    }

    /// Parses configuration text; `base` resolves relative spool paths and
    /// `origin` names the file in errors.
    pub fn parse(text: &str, base: &Path, origin: &Path) -> Result<BrokerConfig, ConfigError> {
        let parser = Parser { text, origin };
        platform_catalog::check_nesting(text)
            .map_err(|too_deep| parser.error_at(too_deep.offset, too_deep.message))?;
        let body = hcl_edit::parser::parse_body(text).map_err(|error| {
            parser.error_at(
                error.location().offset(),
                format!("syntax error: {}", error.message()),
            )
        })?;
        let mut config = BrokerConfig::default();
        let mut seen_audit = false;
        let mut seen_trust = false;
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    return Err(parser.error(
                        attr,
                        format!(
                            "unknown top-level attribute `{}`; expected the blocks cost_explorer, budget, audit, trust",
                            attr.key.as_str()
                        ),
                    ));
                }
                Structure::Block(block) => match block.ident.as_str() {
                    "cost_explorer" => {
                        parser.no_labels(block)?;
                        if config.cost_explorer.is_some() {
                            return Err(parser.error(block, "cost_explorer is declared twice"));
                        }
                        config.cost_explorer = Some(parser.cost_explorer(&block.body)?);
                    }
                    "budget" => {
                        let budget = parser.budget(block)?;
                        if let Some(first) = config.budgets.iter().find(|b| b.team == budget.team) {
                            return Err(parser.error(
                                block,
                                format!(
                                    "budget \"{}\" is declared twice (first at line {})",
                                    budget.team, first.line
                                ),
                            ));
                        }
                        config.budgets.push(budget);
                    }
                    "audit" => {
                        parser.no_labels(block)?;
                        if seen_audit {
                            return Err(parser.error(block, "audit is declared twice"));
                        }
                        seen_audit = true;
                        config.audit = parser.audit(&block.body, base)?;
                    }
                    "trust" => {
                        parser.no_labels(block)?;
                        if seen_trust {
                            return Err(parser.error(block, "trust is declared twice"));
                        }
                        seen_trust = true;
                        config.trust = parser.trust(&block.body, base)?;
                    }
                    other => {
                        return Err(parser.error(
                            block,
                            format!(
                                "unknown block `{other}`; expected cost_explorer, budget, audit or trust"
                            ),
                        ));
                    }
                },
            }
        }
        if !config.budgets.is_empty() && config.cost_explorer.is_none() {
            let line = config.budgets[0].line;
            return Err(ConfigError {
                path: origin.to_path_buf(),
                line: Some(line),
                message: "budgets need actual spend: add a cost_explorer block".into(),
            });
        }
        Ok(config)
    }
}

/// A literal value of an attribute.
enum Literal {
    String(String),
    Number(f64),
    Bool(bool),
}

struct Parser<'a> {
    text: &'a str,
    origin: &'a Path,
}

impl Parser<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.origin.to_path_buf(),
            line: Some(self.line_of(offset)),
            message: message.into(),
        }
    }

    fn error(&self, node: &impl Span, message: impl Into<String>) -> ConfigError {
        let offset = node.span().map_or(0, |span| span.start);
        self.error_at(offset, message)
    }

    fn no_labels(&self, block: &Block) -> Result<(), ConfigError> {
        if block.labels.is_empty() {
            Ok(())
        } else {
            Err(self.error(block, format!("{} takes no label", block.ident.as_str())))
        }
    }

    fn literal(&self, attr: &Attribute) -> Result<Literal, ConfigError> {
        use hcl::eval::Evaluate;
        let expr = hcl::Expression::from(attr.value.clone());
        // `1/0` would trip a debug assertion inside hcl's arithmetic.
        platform_catalog::check_arithmetic(&expr, &hcl::eval::Context::new()).map_err(|why| {
            self.error(
                attr,
                format!("`{}` must be a constant: {why}", attr.key.as_str()),
            )
        })?;
        let value = expr.evaluate(&hcl::eval::Context::new()).map_err(|error| {
            self.error(
                attr,
                format!(
                    "`{}` must be a constant: {}",
                    attr.key.as_str(),
                    error.kind()
                ),
            )
        })?;
        match value {
            hcl::Value::String(s) => Ok(Literal::String(s)),
            hcl::Value::Bool(b) => Ok(Literal::Bool(b)),
            hcl::Value::Number(n) => n.as_f64().map(Literal::Number).ok_or_else(|| {
                self.error(attr, format!("`{}` is not a number", attr.key.as_str()))
            }),
            _ => Err(self.error(
                attr,
                format!("`{}` must be a string, number or bool", attr.key.as_str()),
            )),
        }
    }

    fn string(&self, attr: &Attribute) -> Result<String, ConfigError> {
        match self.literal(attr)? {
            Literal::String(s) if !s.trim().is_empty() => Ok(s),
            Literal::String(_) => {
                Err(self.error(attr, format!("`{}` must not be empty", attr.key.as_str())))
            }
            _ => Err(self.error(attr, format!("`{}` must be a string", attr.key.as_str()))),
        }
    }

    fn bool(&self, attr: &Attribute) -> Result<bool, ConfigError> {
        match self.literal(attr)? {
            Literal::Bool(b) => Ok(b),
            _ => Err(self.error(
                attr,
                format!("`{}` must be true or false", attr.key.as_str()),
            )),
        }
    }

    fn duration(&self, attr: &Attribute) -> Result<Duration, ConfigError> {
        let text = self.string(attr)?;
        crate::dates::parse_duration(&text).map_err(|message| self.error(attr, message))
    }

    /// The attributes of a body, each known key at most once; nested blocks
    /// only where `blocks` names them.
    fn fields<'b>(
        &self,
        body: &'b Body,
        what: &str,
        keys: &[&str],
        blocks: &[&str],
    ) -> Result<(Vec<&'b Attribute>, Vec<&'b Block>), ConfigError> {
        let mut attrs: Vec<&Attribute> = Vec::new();
        let mut nested = Vec::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let key = attr.key.as_str();
                    if !keys.contains(&key) {
                        return Err(self.error(
                            attr,
                            format!(
                                "unknown attribute `{key}` in {what}; expected one of: {}",
                                keys.join(", ")
                            ),
                        ));
                    }
                    if attrs.iter().any(|a| a.key.as_str() == key) {
                        return Err(self.error(attr, format!("`{key}` is set twice in {what}")));
                    }
                    attrs.push(attr);
                }
                Structure::Block(block) => {
                    if !blocks.contains(&block.ident.as_str()) {
                        return Err(self.error(
                            block,
                            format!("unexpected block `{}` in {what}", block.ident.as_str()),
                        ));
                    }
                    nested.push(block);
                }
            }
        }
        Ok((attrs, nested))
    }

    fn trust(&self, body: &Body, base: &Path) -> Result<TrustConfig, ConfigError> {
        let (attrs, _) = self.fields(body, "trust", &["key_file", "require_key"], &[])?;
        let mut config = TrustConfig::default();
        for attr in attrs {
            match attr.key.as_str() {
                "key_file" => config.key_file = Some(base.join(self.string(attr)?)),
                _ => config.require_key = self.bool(attr)?,
            }
        }
        Ok(config)
    }

    fn cost_explorer(&self, body: &Body) -> Result<CostExplorerConfig, ConfigError> {
        let what = "cost_explorer";
        let (attrs, _) = self.fields(
            body,
            what,
            &[
                "region", "endpoint", "profile", "team_tag", "metric", "timeout", "forecast",
            ],
            &[],
        )?;
        let mut config = CostExplorerConfig {
            region: "us-east-1".into(),
            endpoint: None,
            profile: None,
            team_tag: String::new(),
            metric: "UnblendedCost".into(),
            timeout: DEFAULT_CE_TIMEOUT,
            forecast: true,
        };
        for attr in attrs {
            match attr.key.as_str() {
                "region" => config.region = self.string(attr)?,
                "endpoint" => {
                    let url = self.string(attr)?;
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(self.error(
                            attr,
                            format!("endpoint \"{url}\" must start with http:// or https://"),
                        ));
                    }
                    config.endpoint = Some(url);
                }
                "profile" => config.profile = Some(self.string(attr)?),
                "team_tag" => config.team_tag = self.string(attr)?,
                "metric" => {
                    let metric = self.string(attr)?;
                    if !METRICS.contains(&metric.as_str()) {
                        return Err(self.error(
                            attr,
                            format!("metric \"{metric}\" is not one of {}", METRICS.join(", ")),
                        ));
                    }
                    config.metric = metric;
                }
                "timeout" => config.timeout = self.duration(attr)?,
                "forecast" => config.forecast = self.bool(attr)?,
                _ => {}
            }
        }
        if config.team_tag.is_empty() {
            let offset = body.span().map_or(0, |s| s.start);
            return Err(self.error_at(
                offset,
                "cost_explorer needs `team_tag`, the cost-allocation tag key that names the team",
            ));
        }
        Ok(config)
    }

    fn budget(&self, block: &Block) -> Result<Budget, ConfigError> {
        let team = match block.labels.as_slice() {
            [label] if !label.as_str().trim().is_empty() => label.as_str().to_owned(),
            _ => {
                return Err(self.error(
                    block,
                    "budget needs exactly one label, the team: budget \"checkout\" { … }",
                ));
            }
        };
        let what = format!("budget \"{team}\"");
        let (attrs, blocks) = self.fields(&block.body, &what, &["monthly"], &["threshold"])?;
        let mut monthly = None;
        for attr in attrs {
            match self.literal(attr)? {
                Literal::Number(n) if n.is_finite() && n > 0.0 => monthly = Some(n),
                _ => {
                    return Err(
                        self.error(attr, format!("{what}: monthly must be a positive amount"))
                    );
                }
            }
        }
        let monthly = monthly.ok_or_else(|| {
            self.error(block, format!("{what} needs `monthly`, the monthly amount"))
        })?;
        let mut thresholds = Vec::new();
        for nested in blocks {
            if !nested.labels.is_empty() {
                return Err(self.error(nested, "threshold takes no label"));
            }
            thresholds.push(self.threshold(nested, &what)?);
        }
        if thresholds.is_empty() {
            return Err(self.error(
                block,
                format!(
                    "{what} has no threshold: add threshold {{ at = \"100%\", enforcement = \"hard_mandatory\" }}"
                ),
            ));
        }
        let line = self.line_of(block.span().map_or(0, |s| s.start));
        Ok(Budget {
            team,
            monthly,
            thresholds,
            line,
        })
    }

    fn threshold(&self, block: &Block, what: &str) -> Result<Threshold, ConfigError> {
        let what = format!("a threshold of {what}");
        let (attrs, _) = self.fields(&block.body, &what, &["at", "enforcement"], &[])?;
        let mut at = None;
        let mut enforcement = None;
        for attr in attrs {
            match attr.key.as_str() {
                "at" => at = Some(self.level(attr)?),
                "enforcement" => {
                    let value = self.string(attr)?;
                    enforcement = Some(Enforcement::parse(&value).ok_or_else(|| {
                        self.error(
                            attr,
                            format!(
                                "enforcement \"{value}\" is not one of advisory, soft_mandatory, hard_mandatory"
                            ),
                        )
                    })?);
                }
                _ => {}
            }
        }
        Ok(Threshold {
            at: at.ok_or_else(|| self.error(block, format!("{what} needs `at`")))?,
            // No silent default: what a breach does is a deliberate choice.
            enforcement: enforcement
                .ok_or_else(|| self.error(block, format!("{what} needs `enforcement`")))?,
        })
    }

    fn level(&self, attr: &Attribute) -> Result<Level, ConfigError> {
        let bad = |text: &str| {
            self.error(
                attr,
                format!(
                    "threshold at {text} is neither an amount (1200, \"$1200\") nor a percentage (\"80%\")"
                ),
            )
        };
        let level = match self.literal(attr)? {
            Literal::Number(n) => Level::Amount(n),
            Literal::String(s) => {
                let t = s.trim();
                if let Some(pct) = t.strip_suffix('%') {
                    Level::Percent(pct.trim().parse().map_err(|_| bad(&s))?)
                } else {
                    let amount = t.strip_prefix('$').unwrap_or(t).replace(',', "");
                    Level::Amount(amount.trim().parse().map_err(|_| bad(&s))?)
                }
            }
            Literal::Bool(b) => return Err(bad(&b.to_string())),
        };
        let value = match level {
            Level::Amount(v) | Level::Percent(v) => v,
        };
        if !value.is_finite() || value <= 0.0 {
            return Err(self.error(attr, "a threshold must be above zero"));
        }
        Ok(level)
    }

    fn audit(&self, body: &Body, base: &Path) -> Result<AuditConfig, ConfigError> {
        let (attrs, blocks) = self.fields(body, "audit", &["stdout"], &["webhook"])?;
        let mut config = AuditConfig::default();
        for attr in attrs {
            config.stdout = self.bool(attr)?;
        }
        for block in blocks {
            let webhook = self.webhook(block, base)?;
            if config.webhooks.iter().any(|w| w.name == webhook.name) {
                return Err(self.error(
                    block,
                    format!("webhook \"{}\" is declared twice", webhook.name),
                ));
            }
            config.webhooks.push(webhook);
        }
        Ok(config)
    }

    fn webhook(&self, block: &Block, base: &Path) -> Result<WebhookConfig, ConfigError> {
        let name = match block.labels.as_slice() {
            [label] => label.as_str().to_owned(),
            _ => {
                return Err(self.error(
                    block,
                    "webhook needs exactly one label, its name: webhook \"siem\" { … }",
                ));
            }
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(self.error(
                block,
                format!("webhook name \"{name}\" may only use letters, digits, - and _ (it names its spool directory)"),
            ));
        }
        let what = format!("webhook \"{name}\"");
        let (attrs, _) = self.fields(
            &block.body,
            &what,
            &[
                "url",
                "secret_env",
                "secret",
                "spool",
                "timeout",
                "attempts",
            ],
            &[],
        )?;
        let mut url = None;
        let mut secret_env = None;
        let mut spool = None;
        let mut timeout = DEFAULT_WEBHOOK_TIMEOUT;
        let mut attempts = DEFAULT_WEBHOOK_ATTEMPTS;
        for attr in attrs {
            match attr.key.as_str() {
                "url" => {
                    let value = self.string(attr)?;
                    if !(value.starts_with("http://") || value.starts_with("https://")) {
                        return Err(self.error(
                            attr,
                            format!("{what}: url must start with http:// or https://"),
                        ));
                    }
                    url = Some(value);
                }
                "secret_env" => {
                    let value = self.string(attr)?;
                    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(self.error(
                            attr,
                            format!("{what}: secret_env must name an environment variable"),
                        ));
                    }
                    secret_env = Some(value);
                }
                // The value is deliberately not read, so it cannot be echoed.
                "secret" => {
                    return Err(self.error(
                        attr,
                        format!(
                            "{what}: the secret never goes in this file; set secret_env to the name of an environment variable that holds it"
                        ),
                    ));
                }
                "spool" => spool = Some(base.join(self.string(attr)?)),
                "timeout" => timeout = self.duration(attr)?,
                "attempts" => match self.literal(attr)? {
                    Literal::Number(n) if (1.0..=10.0).contains(&n) && n.fract() == 0.0 => {
                        attempts = n as u32;
                    }
                    _ => {
                        return Err(self.error(
                            attr,
                            format!("{what}: attempts must be a whole number from 1 to 10"),
                        ));
                    }
                },
                _ => {}
            }
        }
        Ok(WebhookConfig {
            url: url.ok_or_else(|| self.error(block, format!("{what} needs `url`")))?,
            secret_env: secret_env.ok_or_else(|| {
                self.error(
                    block,
                    format!("{what} needs `secret_env`, the environment variable holding the HMAC secret"),
                )
            })?,
            name,
            spool,
            timeout,
            attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::parse(text, Path::new("/etc/platform"), Path::new("broker.hcl"))
    }

    /// Parses `text` and renders the error (or "ok") for comparison.
    fn check_err(text: &str, expect: &str) {
        let got = match parse(text) {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.to_string(),
        };
        assert_eq!(got, expect, "{text}");
    }

    const CE: &str = "cost_explorer {\n  team_tag = \"team\"\n}\n";

    #[test]
    fn full_example_parses() {
        let config = parse(
            r#"
cost_explorer {
  region   = "us-east-1"
  endpoint = "http://127.0.0.1:5000"
  profile  = "billing"
  team_tag = "team"
  metric   = "AmortizedCost"
  timeout  = "2s"
  forecast = false
}

budget "checkout" {
  monthly = 1000
  threshold {
    at          = "80%"
    enforcement = "advisory"
  }
  threshold {
    at          = "$1,200"
    enforcement = "hard_mandatory"
  }
  threshold {
    at          = 1100
    enforcement = "soft_mandatory"
  }
}

audit {
  stdout = true
  webhook "siem" {
    url        = "https://siem.example.com/hook"
    secret_env = "SIEM_SECRET"
    spool      = "spool/siem"
    timeout    = "1500ms"
    attempts   = 5
  }
}
"#,
        )
        .expect("parses");
        let ce = config.cost_explorer.expect("cost_explorer");
        assert_eq!(ce.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(ce.profile.as_deref(), Some("billing"));
        assert_eq!(ce.metric, "AmortizedCost");
        assert_eq!(ce.timeout, Duration::from_secs(2));
        assert!(!ce.forecast);
        let budget = &config.budgets[0];
        assert_eq!(budget.team, "checkout");
        assert_eq!(budget.line, 12);
        assert_eq!(
            budget.thresholds,
            vec![
                Threshold {
                    at: Level::Percent(80.0),
                    enforcement: Enforcement::Advisory
                },
                Threshold {
                    at: Level::Amount(1200.0),
                    enforcement: Enforcement::HardMandatory
                },
                Threshold {
                    at: Level::Amount(1100.0),
                    enforcement: Enforcement::SoftMandatory
                },
            ]
        );
        assert!(config.audit.stdout);
        let hook = &config.audit.webhooks[0];
        assert_eq!(hook.secret_env, "SIEM_SECRET");
        assert_eq!(
            hook.spool.as_deref(),
            Some(Path::new("/etc/platform/spool/siem"))
        );
        assert_eq!(hook.timeout, Duration::from_millis(1500));
        assert_eq!(hook.attempts, 5);
    }

    #[test]
    fn defaults() {
        let config = parse(CE).expect("parses");
        let ce = config.cost_explorer.expect("ce");
        assert_eq!(ce.region, "us-east-1");
        assert_eq!(ce.metric, "UnblendedCost");
        assert_eq!(ce.timeout, DEFAULT_CE_TIMEOUT);
        assert!(ce.forecast);
        assert_eq!(parse("").expect("empty"), BrokerConfig::default());
    }

    #[test]
    fn errors_name_file_and_line() {
        check_err(
            "cost_explorer {\n  team_tag = \"team\"\n  regoin = \"x\"\n}\n",
            "broker.hcl:3: unknown attribute `regoin` in cost_explorer; expected one of: region, endpoint, profile, team_tag, metric, timeout, forecast",
        );
        check_err(
            "cost_explorer {\n}\n",
            "broker.hcl:1: cost_explorer needs `team_tag`, the cost-allocation tag key that names the team",
        );
        check_err(
            "budget \"a\" {\n  monthly = 10\n  threshold {\n    at = \"80%\"\n    enforcement = \"advisory\"\n  }\n}\n",
            "broker.hcl:1: budgets need actual spend: add a cost_explorer block",
        );
        check_err(
            &format!("{CE}budget \"a\" {{\n  monthly = 10\n}}\n"),
            "broker.hcl:4: budget \"a\" has no threshold: add threshold { at = \"100%\", enforcement = \"hard_mandatory\" }",
        );
        check_err(
            &format!("{CE}budget \"a\" {{\n  monthly = -5\n}}\n"),
            "broker.hcl:5: budget \"a\": monthly must be a positive amount",
        );
        check_err(
            &format!(
                "{CE}budget \"a\" {{\n  monthly = 5\n  threshold {{\n    at = \"lots\"\n    enforcement = \"advisory\"\n  }}\n}}\n"
            ),
            "broker.hcl:7: threshold at lots is neither an amount (1200, \"$1200\") nor a percentage (\"80%\")",
        );
        check_err(
            &format!(
                "{CE}budget \"a\" {{\n  monthly = 5\n  threshold {{\n    at = \"50%\"\n    enforcement = \"strict\"\n  }}\n}}\n"
            ),
            "broker.hcl:8: enforcement \"strict\" is not one of advisory, soft_mandatory, hard_mandatory",
        );
        check_err(
            &format!(
                "{CE}budget \"a\" {{\n  monthly = 5\n  threshold {{\n    at = \"50%\"\n  }}\n}}\n"
            ),
            "broker.hcl:6: a threshold of budget \"a\" needs `enforcement`",
        );
        check_err(
            &format!(
                "{CE}budget \"a\" {{\n  monthly = 5\n  threshold {{\n    at = 0\n    enforcement = \"advisory\"\n  }}\n}}\n"
            ),
            "broker.hcl:7: a threshold must be above zero",
        );
        check_err(
            "cost_explorer {\n  team_tag = \"t\"\n}\ncost_explorer {\n  team_tag = \"t\"\n}\n",
            "broker.hcl:4: cost_explorer is declared twice",
        );
        check_err(
            "budgets = 1\n",
            "broker.hcl:1: unknown top-level attribute `budgets`; expected the blocks cost_explorer, budget, audit, trust",
        );
        check_err(
            "cost_explorer {\n  team_tag = \"t\"\n  metric = \"Cost\"\n}\n",
            "broker.hcl:3: metric \"Cost\" is not one of UnblendedCost, BlendedCost, AmortizedCost, NetUnblendedCost, NetAmortizedCost",
        );
        check_err(
            "cost_explorer {\n  team_tag = \"t\"\n  timeout = \"soon\"\n}\n",
            "broker.hcl:3: duration \"soon\" is not like 500ms, 2s or 1m",
        );
        check_err(
            "cost_explorer {\n  team_tag = \"t\"\n  endpoint = \"localhost:5000\"\n}\n",
            "broker.hcl:3: endpoint \"localhost:5000\" must start with http:// or https://",
        );
    }

    #[test]
    fn duplicate_budget_names_the_first() {
        let budget = "budget \"a\" {\n  monthly = 5\n  threshold {\n    at = 5\n    enforcement = \"advisory\"\n  }\n}\n";
        check_err(
            &format!("{CE}{budget}{budget}"),
            "broker.hcl:11: budget \"a\" is declared twice (first at line 4)",
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = parse("cost_explorer {\n  team_tag = \n}\n").expect_err("syntax");
        assert_eq!(err.line, Some(2), "{err}");
        assert!(
            err.to_string().starts_with("broker.hcl:2: syntax error"),
            "{err}"
        );
    }

    #[test]
    fn webhook_errors_and_the_secret_is_never_in_the_file() {
        let canary = "s3cr3t-canary-value";
        let err = parse(&format!(
            "audit {{\n  webhook \"siem\" {{\n    url = \"https://x\"\n    secret = \"{canary}\"\n  }}\n}}\n"
        ))
        .expect_err("secret in file");
        let text = err.to_string();
        assert!(
            text.starts_with("broker.hcl:4: webhook \"siem\": the secret never goes in this file"),
            "{text}"
        );
        assert!(!text.contains(canary), "{text}");
        check_err(
            "audit {\n  webhook \"siem\" {\n    url = \"https://x\"\n  }\n}\n",
            "broker.hcl:2: webhook \"siem\" needs `secret_env`, the environment variable holding the HMAC secret",
        );
        check_err(
            "audit {\n  webhook \"siem\" {\n    url = \"ftp://x\"\n    secret_env = \"S\"\n  }\n}\n",
            "broker.hcl:3: webhook \"siem\": url must start with http:// or https://",
        );
        check_err(
            "audit {\n  webhook \"../x\" {\n    url = \"https://x\"\n    secret_env = \"S\"\n  }\n}\n",
            "broker.hcl:2: webhook name \"../x\" may only use letters, digits, - and _ (it names its spool directory)",
        );
        check_err(
            "audit {\n  webhook \"a\" {\n    url = \"https://x\"\n    secret_env = \"S\"\n    attempts = 0\n  }\n}\n",
            "broker.hcl:5: webhook \"a\": attempts must be a whole number from 1 to 10",
        );
    }

    #[test]
    fn levels_in_money() {
        assert_eq!(Level::Percent(80.0).amount(1000.0), 800.0);
        assert_eq!(Level::Amount(1200.0).amount(1000.0), 1200.0);
        assert_eq!(Level::Percent(80.0).describe(), "80%");
        assert_eq!(Level::Amount(1200.0).describe(), "$1200.00");
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/broker/broker.hcl");
        let config = BrokerConfig::load(&path).expect("loads");
        assert!(config.cost_explorer.is_some());
        assert!(!config.budgets.is_empty());
        assert!(!config.audit.webhooks.is_empty());
        assert!(config.trust.require_key && config.trust.key_file.is_none());
    }

    #[test]
    fn arithmetic_without_a_finite_result_is_an_error_not_a_panic() {
        // Found by the broker_config fuzz target (fuzz/regressions/).
        for expr in ["1/0", "0/0", "5 % 0", "1e308 * 10", "(2 + 1/0) * 3"] {
            let text = format!("budget \"x\" {{\n  monthly = {expr}\n}}\n");
            let error = BrokerConfig::parse(&text, Path::new("."), Path::new("broker.hcl"))
                .expect_err(expr);
            assert!(
                error.to_string().contains("no finite result"),
                "{expr}: {error}"
            );
        }
        // Whole numbers are computed in 64-bit integers by hcl: an overflow
        // panicked with overflow checks (found by the fuzz target) and gives a
        // wrong number without them.
        for expr in [
            "626666666666666666*60",
            "9223372036854775807 + 1",
            "-9223372036854775807 - 2",
            "18446744073709551615 / 3",
        ] {
            let text = format!("budget \"x\" {{\n  monthly = {expr}\n}}\n");
            let error = BrokerConfig::parse(&text, Path::new("."), Path::new("broker.hcl"))
                .expect_err(expr);
            assert!(
                error.to_string().contains("overflows a 64-bit integer"),
                "{expr}: {error}"
            );
        }
        let regression = include_bytes!(
            "../../fuzz/regressions/broker_config/crash-6ac75a08dc5f75e9f4c8fde954bc02b1a5dbabf7"
        );
        let text = String::from_utf8_lossy(regression);
        assert!(BrokerConfig::parse(&text, Path::new("."), Path::new("broker.hcl")).is_err());
        let fine = format!(
            "{CE}budget \"x\" {{\n  monthly = 1000 * 12 - 500\n  threshold {{\n    at = \"100%\"\n    enforcement = \"hard_mandatory\"\n  }}\n}}\n"
        );
        let parsed = BrokerConfig::parse(&fine, Path::new("."), Path::new("broker.hcl"));
        assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
    }

    #[test]
    fn trust_block() {
        let config = BrokerConfig::parse(
            "trust {\n  key_file = \"keys/broker.key\"\n  require_key = true\n}\n",
            Path::new("/etc/platform"),
            Path::new("broker.hcl"),
        )
        .expect("parses");
        assert_eq!(
            config.trust.key_file.as_deref(),
            Some(Path::new("/etc/platform/keys/broker.key"))
        );
        assert!(config.trust.require_key);
        let error = BrokerConfig::parse(
            "trust {\n  key = \"hunter2hunter2hunter2\"\n}\n",
            Path::new("."),
            Path::new("broker.hcl"),
        )
        .expect_err("a key in the file");
        assert!(
            error
                .to_string()
                .starts_with("broker.hcl:2: unknown attribute `key`"),
            "{error}"
        );
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let error = BrokerConfig::parse("trust {}\ntrust {}\n", Path::new("."), Path::new("b.hcl"))
            .expect_err("twice");
        assert!(
            error.to_string().contains("trust is declared twice"),
            "{error}"
        );
    }
}
