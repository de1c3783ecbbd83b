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

use crate::drivers::Configured;
use crate::drivers::Registry;
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
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub default_team: Option<String>,
    /// Each backend's settings from its section of the block over its
    /// environment variables, in [`crate::drivers::backends`]'s order.
    pub backends: Vec<Arc<dyn Configured>>,
}

impl ProviderConfig {
    /// No provider block: every backend from its environment.
    fn from_env() -> ProviderConfig {
        ProviderConfig {
            default_team: None,
            backends: crate::drivers::backends()
                .iter()
                .map(|b| b.configure(None).0)
                .collect(),
        }
    }

    /// The settings of the backend `name`.
    pub fn backend(&self, name: &str) -> Option<&Arc<dyn Configured>> {
        crate::drivers::backends()
            .iter()
            .position(|b| b.name() == name)
            .and_then(|i| self.backends.get(i))
    }
}

/// Drivers connected, with the settings they were connected with.
type Connected = (Vec<Arc<dyn Configured>>, Arc<Registry>);

fn same_settings(a: &[Arc<dyn Configured>], b: &[Arc<dyn Configured>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y.as_ref()))
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
    drivers: RwLock<Option<Connected>>,
}

impl Engine {
    pub fn new(source: CatalogSource) -> Engine {
        Engine {
            source,
            loaded: OnceLock::new(),
            config: RwLock::new(ProviderConfig::from_env()),
            drivers: RwLock::new(None),
        }
    }

    /// The connected drivers for the current provider settings.
    pub fn registry(&self) -> Arc<Registry> {
        let settings = self.provider_config().backends;
        if let Ok(guard) = self.drivers.read()
            && let Some((built_for, registry)) = guard.as_ref()
            && same_settings(built_for, &settings)
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
        let default_team = match config.get_attr("default_team") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let mut diags = Vec::new();
        let mut backends = Vec::new();
        for backend in crate::drivers::backends() {
            let section = config.get_attr(backend.name()).filter(|b| !b.is_null());
            let (settings, mut found) = backend.configure(section);
            diags.append(&mut found);
            backends.push(settings);
        }
        let new = ProviderConfig {
            default_team,
            backends,
        };
        match self.config.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        diags
    }

    /// [`Engine::configure`], then each backend's configure-time checks
    /// that need the network ([`Configured::probe`]: PostgreSQL's TLS
    /// handshake for the sslmodes that verify the server's certificate), so
    /// `plan` stops before any resource is read. Skipped for a section that
    /// holds unknown values (they are known at apply).
    pub async fn configure_and_probe(&self, config: &Value) -> Vec<Diag> {
        let mut diags = self.configure(config);
        if has_errors(&diags) {
            return diags;
        }
        let settings = self.provider_config().backends;
        for (backend, settings) in crate::drivers::backends().iter().zip(&settings) {
            // A section with unknown values is known at apply: no probe now.
            if config
                .get_attr(backend.name())
                .is_some_and(contains_unknown)
            {
                continue;
            }
            diags.extend(settings.probe().await);
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
