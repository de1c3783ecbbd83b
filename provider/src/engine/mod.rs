//! Validate, plan and apply on native types: catalog in, Terraform values
//! out. Nothing here knows gRPC or protobuf (`crate::server` does the wire).

mod apply;
pub mod compose;
pub mod convert;
mod data;
mod driver_check;
pub mod ephemeral;
pub mod plan;
pub mod schema;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use platform_catalog::Catalog;
use platform_value::{Path, Value};

use crate::drivers::Registry;
use crate::drivers::postgres::Settings as PostgresSettings;
use crate::drivers::postgres::tls;
pub use apply::{ApplyRequest, ApplyResponse, Imported};
pub use compose::ResourcePrivate;
pub use plan::{PlanRequest, PlanResponse};
use schema::Schemas;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A diagnostic on its way to Terraform; `path` points at the attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Diag {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub path: Option<Path>,
}

impl Diag {
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            path: None,
        }
    }
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Warning,
            ..Diag::error(summary, detail)
        }
    }
    pub fn at(mut self, path: Path) -> Diag {
        self.path = Some(path);
        self
    }
}

pub fn has_errors(diags: &[Diag]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}

/// Where the catalog comes from.
#[derive(Debug, Clone)]
pub enum CatalogSource {
    /// A directory of `*.hcl` files (`PLATFORM_CATALOG`).
    Dir(PathBuf),
    /// The examples catalog compiled into the binary.
    Embedded,
}

impl CatalogSource {
    pub fn from_env() -> CatalogSource {
        match std::env::var_os("PLATFORM_CATALOG") {
            Some(dir) if !dir.is_empty() => CatalogSource::Dir(PathBuf::from(dir)),
            _ => CatalogSource::Embedded,
        }
    }
}

/// The examples catalog, compiled in: Terraform asks for the schema before it
/// sends any provider configuration, so the catalog cannot come from there.
const EMBEDDED: &[(&str, &str)] = &[(
    "examples/catalogs/postgres.hcl",
    include_str!("../../../examples/catalogs/postgres.hcl"),
)];

/// A loaded catalog and the schemas derived from it.
#[derive(Debug)]
pub struct Loaded {
    pub catalog: Catalog,
    pub schemas: Schemas,
}

/// Settings from the provider block.
#[derive(Debug, Clone, Default)]
pub struct ProviderConfig {
    pub default_team: Option<String>,
    /// The `postgres { … }` block over the PG* environment variables.
    pub postgres: PostgresSettings,
}

pub struct Engine {
    source: CatalogSource,
    /// Parsed once per process, on first use: a provider process that only
    /// answers Shutdown never pays for the catalog.
    loaded: OnceLock<Result<Arc<Loaded>, Vec<Diag>>>,
    config: RwLock<ProviderConfig>,
    /// Drivers connected with the settings they were built from; rebuilt
    /// only when a ConfigureProvider brings different settings (reattach
    /// mode configures the same process many times).
    drivers: RwLock<Option<(PostgresSettings, Arc<Registry>)>>,
}

impl Engine {
    pub fn new(source: CatalogSource) -> Engine {
        Engine {
            source,
            loaded: OnceLock::new(),
            config: RwLock::new(ProviderConfig {
                default_team: None,
                postgres: PostgresSettings::from_env(),
            }),
            drivers: RwLock::new(None),
        }
    }

    /// The connected drivers for the current provider settings.
    pub fn registry(&self) -> Arc<Registry> {
        let settings = self.provider_config().postgres;
        if let Ok(guard) = self.drivers.read()
            && let Some((built_for, registry)) = guard.as_ref()
            && *built_for == settings
        {
            return registry.clone();
        }
        let registry = Arc::new(Registry::connect(&settings));
        if let Ok(mut guard) = self.drivers.write() {
            *guard = Some((settings, registry.clone()));
        }
        registry
    }

    /// The catalog and schemas, or the catalog's diagnostics rendered as
    /// `file:line:col: error: …`. A bad catalog never yields a half schema.
    pub fn loaded(&self) -> Result<Arc<Loaded>, Vec<Diag>> {
        self.loaded.get_or_init(|| load(&self.source)).clone()
    }

    pub fn configure(&self, config: &Value) -> Vec<Diag> {
        let string = |value: Option<&Value>| match value {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let strings = |value: Option<&Value>| match value {
            Some(Value::List(items) | Value::Set(items)) => items
                .iter()
                .filter_map(|item| match item {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let default_team = string(config.get_attr("default_team"));
        let mut diags = Vec::new();
        let block = config.get_attr("postgres").filter(|b| !b.is_null());
        let port = match block.and_then(|b| b.get_attr("port")) {
            Some(Value::Number(n)) => match n.as_i64().and_then(|p| u16::try_from(p).ok()) {
                Some(port) => Some(port),
                None => {
                    diags.push(
                        Diag::error("Invalid port", format!("{n} is not a TCP port."))
                            .at(Path::root().attr("postgres").attr("port")),
                    );
                    None
                }
            },
            _ => None,
        };
        let explicit = PostgresSettings {
            host: string(block.and_then(|b| b.get_attr("host"))),
            port,
            username: string(block.and_then(|b| b.get_attr("username"))),
            password: string(block.and_then(|b| b.get_attr("password"))),
            database: string(block.and_then(|b| b.get_attr("database"))),
            sslmode: string(block.and_then(|b| b.get_attr("sslmode"))),
            sslrootcert: string(block.and_then(|b| b.get_attr("sslrootcert"))),
            sslcert: string(block.and_then(|b| b.get_attr("sslcert"))),
            sslkey: string(block.and_then(|b| b.get_attr("sslkey"))),
            grantable_roles: strings(block.and_then(|b| b.get_attr("grantable_roles"))),
            grantable_schemas: strings(block.and_then(|b| b.get_attr("grantable_schemas"))),
        };
        for (i, entry) in explicit.grantable_schemas.iter().enumerate() {
            if entry.split('.').count() != 2 || entry.split('.').any(str::is_empty) {
                diags.push(
                    Diag::error(
                        "Invalid grantable_schemas entry",
                        format!("{entry:?} is not of the form \"database.schema\"."),
                    )
                    .at(Path::root()
                        .attr("postgres")
                        .attr("grantable_schemas")
                        .index(i as i64)),
                );
            }
        }
        // Which TLS settings the block sets (the rest come from PG* variables).
        let set_in_block = [
            (tls::Field::Sslmode, explicit.sslmode.is_some()),
            (tls::Field::Sslrootcert, explicit.sslrootcert.is_some()),
            (tls::Field::Sslcert, explicit.sslcert.is_some()),
            (tls::Field::Sslkey, explicit.sslkey.is_some()),
        ];
        let postgres = explicit.merged_over(PostgresSettings::from_env());
        // TLS settings are checked here (mode, PEM files), not at the first
        // connection: a bad one is reported at plan, before anything changes.
        if let Err(error) = tls::Tls::from_settings(&postgres) {
            let in_block = set_in_block.contains(&(error.field, true));
            diags.push(if in_block {
                Diag::error("Invalid PostgreSQL TLS setting", error.message)
                    .at(Path::root().attr("postgres").attr(error.field.attribute()))
            } else {
                Diag::error(
                    "Invalid PostgreSQL TLS setting",
                    format!(
                        "{} (from the environment variable {}; the provider's postgres block does not set {})",
                        error.message,
                        error.field.env_var(),
                        error.field.attribute()
                    ),
                )
            });
        }
        let new = ProviderConfig {
            default_team,
            postgres,
        };
        match self.config.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        diags
    }

    /// [`Engine::configure`], then — for the sslmodes that verify the
    /// server's certificate — one TLS handshake with the server
    /// ([`tls::probe`]): a certificate the settings refuse (wrong host name
    /// for verify-full, unknown issuer) is an error of ConfigureProvider, so
    /// `plan` stops before any resource is read. The probe is the PostgreSQL
    /// SSLRequest and the TLS handshake only: no startup message, no
    /// password. A server that cannot be reached within
    /// [`tls::PROBE_TIMEOUT`] is NOT an error here (connections are lazy;
    /// `plan` with nothing to refresh must keep working offline): it is
    /// logged, and the first real connection reports it. Skipped when the
    /// postgres block holds unknown values (they are known at apply).
    pub async fn configure_and_probe(&self, config: &Value) -> Vec<Diag> {
        let mut diags = self.configure(config);
        let block_unknown = config.get_attr("postgres").is_some_and(contains_unknown);
        if has_errors(&diags) || block_unknown {
            return diags;
        }
        let settings = self.provider_config().postgres;
        let Ok(tls) = tls::Tls::from_settings(&settings) else {
            return diags;
        };
        let started = std::time::Instant::now();
        let outcome = tls::probe(&settings, &tls, tls::PROBE_TIMEOUT).await;
        tracing::debug!(elapsed = ?started.elapsed(), ?outcome, "postgres TLS probe");
        let target = format!(
            "{}:{}",
            settings.host_or_default(),
            settings.port_or_default()
        );
        match outcome {
            tls::Probe::Skipped | tls::Probe::Verified => {}
            tls::Probe::Refused(why) => diags.push(Diag::error(
                "PostgreSQL server certificate refused",
                format!(
                    "{why}. (sslmode={}; found by a TLS handshake with {target} when the provider was configured, before any connection.)",
                    tls.mode.name()
                ),
            )),
            tls::Probe::NoTls => diags.push(Diag::error(
                "PostgreSQL server does not accept TLS",
                format!(
                    "sslmode={} needs TLS, and the server at {target} answered that it does not support it.",
                    tls.mode.name()
                ),
            )),
            tls::Probe::Unknown(why) => {
                tracing::info!(%why, "postgres TLS probe inconclusive; the first connection will tell");
            }
        }
        diags
    }

    pub fn provider_config(&self) -> ProviderConfig {
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn contains_unknown(value: &Value) -> bool {
    match value {
        Value::Unknown(_) => true,
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            items.iter().any(contains_unknown)
        }
        Value::Object(fields) | Value::Map(fields) => fields.values().any(contains_unknown),
        Value::Dynamic(_, inner) => contains_unknown(inner),
        _ => false,
    }
}

/// Loads a catalog and builds its schemas; errors are the catalog's
/// diagnostics as `file:line:col: error: …` summaries.
pub fn load(source: &CatalogSource) -> Result<Arc<Loaded>, Vec<Diag>> {
    let (catalog, mut diagnostics) = match source {
        CatalogSource::Dir(dir) => platform_catalog::load_dir(dir),
        CatalogSource::Embedded => platform_catalog::load_sources(
            EMBEDDED
                .iter()
                .map(|(name, text)| platform_catalog::Source {
                    name: (*name).to_owned(),
                    text: (*text).to_owned(),
                })
                .collect(),
        ),
    };
    let where_from = match source {
        CatalogSource::Dir(dir) => format!("PLATFORM_CATALOG={}", dir.display()),
        CatalogSource::Embedded => "the catalog compiled into the provider".to_owned(),
    };
    // Primitive inputs no driver would take: the catalog cannot know which
    // exist, the drivers of this build do.
    diagnostics.extend(driver_check::undeclared_inputs(&catalog));
    if platform_catalog::has_errors(&diagnostics) {
        // One Terraform diagnostic per catalog problem, its summary already in
        // `file:line:col: error: …` form so editors and CI logs can jump to it.
        return Err(diagnostics
            .iter()
            .filter(|d| d.severity == platform_catalog::Severity::Error)
            .map(|d| {
                Diag::error(
                    format!("{}:{}:{}: error: {}", d.file, d.line, d.col, d.summary),
                    d.detail.clone().unwrap_or_default(),
                )
            })
            .collect());
    }
    for warning in &diagnostics {
        tracing::warn!(catalog = %where_from, "{warning}");
    }
    let schemas = Schemas::build(&catalog);
    Ok(Arc::new(Loaded { catalog, schemas }))
}

/// Today's date for deprecation rules. `PLATFORM_TODAY=YYYY-MM-DD` pins it
/// (tests, and "what will happen on date X" previews).
pub fn today() -> time::Date {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    #[cfg(test)]
    if let Some(date) = TODAY_OVERRIDE.lock().ok().and_then(|d| d.clone())
        && let Ok(date) = time::Date::parse(&date, &format)
    {
        return date;
    }
    std::env::var("PLATFORM_TODAY")
        .ok()
        .and_then(|text| time::Date::parse(text.trim(), &format).ok())
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().date())
}

/// Tests pin the date here instead of mutating the process environment.
#[cfg(test)]
static TODAY_OVERRIDE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

#[cfg(test)]
pub(crate) fn set_today_override(date: Option<String>) {
    if let Ok(mut guard) = TODAY_OVERRIDE.lock() {
        *guard = date;
    }
}

#[cfg(test)]
mod tests;
