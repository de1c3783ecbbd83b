//! The broker's operations, independent of any front end: `plan`, `apply`,
//! `approve`, `drift`, `runs`. The CLI (`cli.rs`) parses arguments, calls one
//! of these and prints what it returns; the broker server will be a second
//! front end on the same functions.
//!
//! The key decision: **files under the broker home are caches, not
//! authorities.** `apply` re-derives everything that decides whether a plan
//! may be applied from the plan file it is about to apply (`show -json`,
//! redaction, cost, policy, budget) and refuses on any mismatch with the
//! reviewed identity; with a broker key (`key.rs`) the identity, approvals
//! and audit events are also authenticated, so no edit under the working
//! directory can make the broker apply what was not reviewed and allowed.
//!
//! Nothing here prints: progress goes to the caller's `say` callback,
//! results come back as values, errors as `anyhow::Error` (already audited
//! where the command had started).

pub mod apply;
pub mod approve;
pub mod audit;
pub mod derive;
pub mod drift;
pub mod eval;
pub mod input;
pub mod plan;
pub mod runs;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::Value as Json;

use crate::audit::{AuditLog, Webhook};
use crate::bundle::Home;
use crate::config::BrokerConfig;
use crate::cost::PriceBook;
use crate::key::Trust;
use crate::policy::{Policies, PolicyConfig};

/// Exit codes: the pipeline contract (README).
pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;
pub const EXIT_DENIED: u8 = 3;
pub const EXIT_NEEDS_APPROVAL: u8 = 4;

/// What every operation needs besides its own request: which terraform, which
/// broker home, the configuration and who is acting.
#[derive(Debug, Clone)]
pub struct Context {
    pub terraform: Option<PathBuf>,
    /// An explicitly chosen broker home (`--home`, `PLATFORM_BROKER_HOME`);
    /// else `DIR/.platform`.
    pub home: Option<PathBuf>,
    pub config: BrokerConfig,
    /// Who is acting (recorded in identities, approvals and audit events).
    pub actor: String,
    /// Where the current state's lineage and serial come from when the
    /// front end knows them first hand (the server is the workspace's state
    /// backend); `None`: the state file, or `terraform state pull`.
    pub state: Option<StateSource>,
}

/// Reads the lineage and serial of the state Terraform would pull, without a
/// Terraform process (`state pull` costs one, ~0.15 s, twice per run).
#[derive(Clone)]
pub struct StateSource(
    pub std::sync::Arc<dyn Fn() -> Result<Option<crate::tf::StateMeta>> + Send + Sync>,
);

impl std::fmt::Debug for StateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateSource")
    }
}

/// Policy, price book and catalog for a run (`None`: the default).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub policy: Option<PathBuf>,
    pub pricebook: Option<PathBuf>,
    pub catalog: Option<PathBuf>,
}

/// The actor from the environment: `PLATFORM_ACTOR`, then the CI's user
/// variables, then `USER`.
pub fn actor_from_env() -> String {
    std::env::var("PLATFORM_ACTOR")
        .or_else(|_| std::env::var("GITHUB_ACTOR"))
        .or_else(|_| std::env::var("GITLAB_USER_LOGIN"))
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// One working directory opened for a command: its canonical path, its broker
/// home (checked: no symlinks), the key and fingerprint, and the warnings the
/// front end should print once.
pub struct Session {
    pub dir: PathBuf,
    pub home: Home,
    pub trust: Trust,
    pub warnings: Vec<String>,
}

impl Context {
    /// Lineage and serial of the current state: from the front end's
    /// [`StateSource`] when it has one, else from terraform's backend.
    pub fn state_meta(&self, tf: &crate::tf::Terraform) -> Result<Option<crate::tf::StateMeta>> {
        match &self.state {
            Some(source) => (source.0)(),
            None => Ok(tf.state_meta()?),
        }
    }

    /// Opens `dir` for a command. The default home (`DIR/.platform`) must not
    /// be a symlink (anyone who can write DIR could point it anywhere); an
    /// explicitly configured home is resolved first and then trusted as a
    /// location.
    pub fn session(&self, dir: &Path) -> Result<Session> {
        let dir = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
        let root = match &self.home {
            Some(home) => {
                std::fs::create_dir_all(home)
                    .with_context(|| format!("broker home {}", home.display()))?;
                std::fs::canonicalize(home)
                    .with_context(|| format!("broker home {}", home.display()))?
            }
            None => {
                let root = dir.join(".platform");
                crate::fsx::ensure_dir(&root, 0o700).with_context(|| {
                    format!(
                        "broker home {} (to keep it elsewhere, set --home or PLATFORM_BROKER_HOME)",
                        root.display()
                    )
                })?;
                root
            }
        };
        let home = Home::new(root);
        let trust = Trust::load(&self.config.trust, &dir, &home.root)?;
        let mut warnings = Vec::new();
        if trust.key.is_none() {
            warnings.push(Trust::UNKEYED_WARNING.to_owned());
        }
        Ok(Session {
            dir,
            home,
            trust,
            warnings,
        })
    }

    /// The configured webhooks, ready to deliver (secrets read from the
    /// environment).
    pub fn webhooks(&self, home: &Home) -> Result<Vec<Webhook>> {
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

    /// The audit log with the configured sinks: the file is written (and
    /// fsynced) first, then stdout and webhooks get the line. Its warnings
    /// (events beyond the head, ...) join the session's.
    pub fn audit(&self, session: &mut Session) -> Result<AuditLog> {
        let webhooks = self.webhooks(&session.home)?;
        let mut audit = AuditLog::open_with(&session.home.audit_log(), session.trust.key.clone())
            .map_err(|error| {
                let hint = match error.kind() {
                    crate::audit::ErrorKind::TornTail | crate::audit::ErrorKind::Tampered => {
                        " (`platform-broker audit verify` says more; `platform-broker audit \
                         repair` adopts what a crash left, `audit repair --cut` removes it)"
                    }
                    _ => "",
                };
                anyhow::anyhow!("{error}{hint}")
            })?
            .with_stdout(self.config.audit.stdout);
        for warning in audit.warnings() {
            session.warnings.push(warning.clone());
        }
        for webhook in webhooks {
            audit.add_sink(Box::new(webhook));
        }
        Ok(audit)
    }
}

/// The workspace terraform uses in `dir`: `TF_WORKSPACE`, else the one
/// `terraform workspace select` recorded, else `default`.
pub fn workspace(dir: &Path) -> String {
    std::env::var("TF_WORKSPACE").ok().unwrap_or_else(|| {
        std::fs::read_to_string(dir.join(".terraform/environment"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "default".to_owned())
    })
}

/// The catalog the broker prices and labels platform resources with.
pub fn load_catalog(dir: Option<&Path>) -> Result<platform_catalog::Catalog> {
    let (catalog, diags) = match dir {
        Some(dir) => platform_catalog::load_dir(dir),
        None => platform_catalog::load_sources(vec![platform_catalog::Source {
            name: "examples/catalogs/postgres.hcl".into(),
            text: include_str!("../../../examples/catalogs/postgres.hcl").into(),
        }]),
    };
    if platform_catalog::has_errors(&diags) {
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        bail!("invalid catalog:\n{}", lines.join("\n"));
    }
    Ok(catalog)
}

/// Catalog, price book and policy, loaded and digested.
pub struct Loaded {
    pub catalog: platform_catalog::Catalog,
    pub book: PriceBook,
    pub book_digest: Option<String>,
    pub policy: Option<(PolicyConfig, Policies)>,
}

impl Loaded {
    pub fn load(inputs: &Inputs) -> Result<Loaded> {
        let catalog = load_catalog(inputs.catalog.as_deref())?;
        let (book, book_digest) = match &inputs.pricebook {
            Some(path) => (PriceBook::load(path)?, crate::bundle::file_digest(path)?),
            None => (PriceBook::default(), None),
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
            book_digest,
            policy,
        })
    }

    pub fn policy_digest(&self) -> Option<String> {
        self.policy.as_ref().map(|(_, p)| p.digest())
    }
}

/// A short, single-line reason for an audit event: the first line of the
/// error chain, cut to 500 bytes (terraform's stderr tails can be long).
pub(crate) fn reason(error: &anyhow::Error) -> String {
    let text = crate::render_error(error);
    let line = text.lines().next().unwrap_or_default();
    let cut = crate::floor_char_boundary(line, 500);
    line[..cut].to_owned()
}

/// Appends a failure event if an audit log could be opened; a failure to
/// audit the failure is added to the error, never hides it.
pub(crate) fn audit_failure(
    audit: Option<&mut AuditLog>,
    event_type: &str,
    workspace: Option<&str>,
    mut data: Json,
    error: anyhow::Error,
) -> anyhow::Error {
    let Some(audit) = audit else {
        return error;
    };
    if let Some(object) = data.as_object_mut() {
        object.insert("reason".into(), Json::String(reason(&error)));
    }
    match audit.append(event_type, workspace, data) {
        Ok(_) => error,
        Err(audit_error) => error.context(format!(
            "(and the failure could not be audited: {audit_error})"
        )),
    }
}
