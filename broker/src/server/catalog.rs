//! The catalog as an API: offerings, their versions with lifecycle and
//! deprecation dates, tiers with prices, and the JSON Schema of each
//! version — what a portal needs to render a request form.
//!
//! A catalog is a directory named under the server's `DATA/config/`, the way
//! workspaces select theirs (`config_dir`): never a path of the caller's
//! choosing. It is loaded like every other catalog the broker reads
//! (`platform_catalog::load_dir`), and its JSON Schemas are the very
//! documents the provider's `docs --schemas` writes
//! (`platform_catalog::json_schema`).
//!
//! Parsed catalogs are cached per directory, keyed by a stamp of its files
//! (name, length, modification and change times, inode). A file changed
//! within the file system's timestamp granularity of the stamp could keep
//! it, so a catalog touched in the last [`RACY`] is re-read on every request
//! until it has been still that long: an edited catalog is never served
//! stale.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform_catalog::{Catalog, Offering, Status, Tier, Version};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::api::{ErrorBody, Principal, ok_json};
use super::config_dir;
use crate::http::ApiError;

type Shared = Arc<AppState>;

/// How long after its last change a catalog is re-read on every request (a
/// change within the timestamp granularity of some file systems, 2 s on
/// FAT, would not show in the stamp).
pub const RACY: Duration = Duration::from_secs(2);

/// At most this many catalogs are kept parsed (names only reach directories
/// under `DATA/config/`, so this is a safety net, not an eviction policy).
const MAX_CACHED: usize = 64;

/// A catalog as loaded: the model, or its diagnostics (`file:line:col:
/// error: …`, file names relative to the catalog's name).
type Loaded = Result<Arc<Catalog>, Arc<str>>;

/// Parsed catalogs, by canonical directory.
pub struct Cache {
    entries: Mutex<HashMap<PathBuf, Entry>>,
    racy: Duration,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache {
            entries: Mutex::default(),
            racy: RACY,
        }
    }
}

struct Entry {
    stamp: Stamp,
    /// Still long enough before it was stamped that the stamp can be trusted.
    settled: bool,
    /// Diagnostics still carry the name the catalog was asked by; another
    /// name for the same directory re-renders them.
    name: String,
    loaded: Loaded,
}

/// What changes when a catalog's files do: the directory and every `*.hcl`
/// file `load_dir` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp(Vec<FileStamp>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    name: OsString,
    len: u64,
    modified: Option<SystemTime>,
    /// Unix ctime, inode and device: a file replaced by one with the same
    /// length and modification time (`cp -p`, `rsync -t`) still shows.
    changed: (i64, i64),
    inode: (u64, u64),
}

impl FileStamp {
    fn of(name: OsString, meta: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let (changed, inode) = {
            use std::os::unix::fs::MetadataExt;
            ((meta.ctime(), meta.ctime_nsec()), (meta.dev(), meta.ino()))
        };
        #[cfg(not(unix))]
        let (changed, inode) = ((0, 0), (0, 0));
        FileStamp {
            name,
            len: meta.len(),
            modified: meta.modified().ok(),
            changed,
            inode,
        }
    }

    /// The latest of its modification and change times.
    fn latest(&self) -> Option<SystemTime> {
        let changed = u64::try_from(self.changed.0).ok().map(|secs| {
            SystemTime::UNIX_EPOCH + Duration::new(secs, u32::try_from(self.changed.1).unwrap_or(0))
        });
        match (self.modified, changed) {
            (Some(m), Some(c)) => Some(m.max(c)),
            (m, c) => m.or(c),
        }
    }
}

/// The stamp of `dir`, `None` when a file vanished while stamping (then the
/// catalog is loaded, not cached as settled).
fn stamp(dir: &Path) -> Option<Stamp> {
    let mut files = vec![FileStamp::of(
        OsString::new(),
        &std::fs::metadata(dir).ok()?,
    )];
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.extension().is_some_and(|ext| ext == "hcl") {
            let meta = std::fs::metadata(&path).ok()?;
            files.push(FileStamp::of(path.file_name()?.to_owned(), &meta));
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Some(Stamp(files))
}

impl Cache {
    /// The catalog in `dir` (canonical), asked for as `name`: from the cache
    /// when its files are as they were, else loaded afresh. Blocking.
    fn get(&self, dir: &Path, name: &str) -> Loaded {
        let now = SystemTime::now();
        let stamp = stamp(dir);
        if let Some(stamp) = &stamp
            && let Ok(entries) = self.entries.lock()
            && let Some(entry) = entries.get(dir)
            && entry.settled
            && entry.stamp == *stamp
            && (entry.loaded.is_ok() || entry.name == name)
        {
            return entry.loaded.clone();
        }
        // Stamped before reading: a change from now on changes the stamp.
        let (catalog, diags) = platform_catalog::load_dir(dir);
        let loaded: Loaded = if platform_catalog::has_errors(&diags) {
            Err(render_diagnostics(dir, name, &diags).into())
        } else {
            Ok(Arc::new(catalog))
        };
        if let Some(stamp) = stamp {
            let settled = stamp.0.iter().all(|file| {
                file.latest()
                    .is_some_and(|t| now.duration_since(t).is_ok_and(|age| age >= self.racy))
            });
            if let Ok(mut entries) = self.entries.lock() {
                if entries.len() >= MAX_CACHED && !entries.contains_key(dir) {
                    entries.clear();
                }
                entries.insert(
                    dir.to_owned(),
                    Entry {
                        stamp,
                        settled,
                        name: name.to_owned(),
                        loaded: loaded.clone(),
                    },
                );
            }
        }
        loaded
    }
}

/// Diagnostics as `file:line:col: error: …` lines, with the server's path
/// of the catalog replaced by the name it was asked by.
fn render_diagnostics(dir: &Path, name: &str, diags: &[platform_catalog::Diagnostic]) -> String {
    let real = dir.display().to_string();
    let lines: Vec<String> = diags
        .iter()
        .map(|diag| {
            diag.to_string()
                .replace(&format!("{real}/"), &format!("{name}/"))
                .replace(&real, name)
        })
        .collect();
    format!("catalog {name:?} is invalid:\n{}", lines.join("\n"))
}

/// Resolves and loads the catalog `name`, as the API answers when it cannot.
async fn catalog(state: &Shared, name: &str) -> Result<Arc<Catalog>, ApiError> {
    let (state, name) = (state.clone(), name.to_owned());
    tokio::task::spawn_blocking(move || {
        let data_dir = &state.data_dir;
        let dir = config_dir::resolve(data_dir, "catalog", &name).map_err(ApiError::not_found)?;
        // The config directory itself holds more than a catalog: not one.
        let root = config_dir::root(data_dir).canonicalize().ok();
        if !dir.is_dir() || root.as_deref() == Some(dir.as_path()) {
            return Err(ApiError::not_found(format!(
                "catalog {name:?} is not a directory in the server's config directory"
            )));
        }
        state.catalogs.get(&dir, &name).map_err(|diagnostics| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_catalog",
                diagnostics.to_string(),
            )
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(ApiError::internal(&anyhow::anyhow!(
            "loading a catalog: {e}"
        )))
    })
}

fn offering<'a>(catalog: &'a Catalog, name: &str, wanted: &str) -> Result<&'a Offering, ApiError> {
    catalog
        .offering(wanted)
        .ok_or_else(|| ApiError::not_found(format!("catalog {name:?} has no offering {wanted:?}")))
}

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A catalog's offerings.
#[derive(Serialize, ToSchema)]
pub struct OfferingList {
    /// The catalog's name, as asked.
    pub catalog: String,
    /// `sha256:<hex>` over the catalog's files: it changes when they do.
    pub digest: String,
    /// Resource types are `<provider_prefix>_<offering>`.
    pub provider_prefix: String,
    /// By name.
    pub offerings: Vec<OfferingInfo>,
}

/// One offering: a Terraform resource type, in versions.
#[derive(Serialize, ToSchema)]
pub struct OfferingInfo {
    /// `postgres_database`.
    pub name: String,
    /// The Terraform resource type: `platform_postgres_database`.
    pub resource_type: String,
    pub title: String,
    pub description: String,
    pub owner: OfferingOwner,
    /// The version a new instance gets when it names none (and whose inputs
    /// the provider's resource schema has): the highest current version,
    /// else preview, else deprecated, else retired.
    pub default_version: String,
    /// Every version, in the catalog's order.
    pub versions: Vec<VersionInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct OfferingOwner {
    pub team: String,
    /// How to reach the team (`#data-platform`).
    pub contact: Option<String>,
}

/// A version's lifecycle state.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    Preview,
    Current,
    Deprecated,
    Retired,
}

impl From<Status> for VersionStatus {
    fn from(status: Status) -> VersionStatus {
        match status {
            Status::Preview => VersionStatus::Preview,
            Status::Current => VersionStatus::Current,
            Status::Deprecated => VersionStatus::Deprecated,
            Status::Retired => VersionStatus::Retired,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct VersionInfo {
    /// A semantic version: `1.2.0`.
    pub version: String,
    pub status: VersionStatus,
    /// The dates of a deprecation, when the catalog sets any.
    pub deprecation: Option<DeprecationInfo>,
    /// In the catalog's order; the first is the default.
    pub tiers: Vec<TierInfo>,
    /// Where this version's JSON Schema (the request form) is served.
    pub json_schema: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeprecationInfo {
    /// Creating instances of this version is refused after this day.
    #[schema(format = Date)]
    pub create_until: Option<String>,
    /// Updating instances of this version is refused after this day.
    #[schema(format = Date)]
    pub update_until: Option<String>,
    /// The version to move to.
    pub successor: Option<String>,
}

/// A priced size of an offering.
#[derive(Serialize, ToSchema)]
pub struct TierInfo {
    pub name: String,
    pub price: PriceInfo,
    /// The monthly price, when it does not depend on inputs (no `quantity`).
    pub monthly_price: Option<f64>,
    /// The price in words, as the docs give it: `140 USD per month`.
    pub price_text: String,
    pub requires_approval: bool,
    /// The tiers an instance on this one may move to; null: any.
    pub transitions_to: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct PriceInfo {
    pub amount: f64,
    /// `month` or `hour` (730 hours a month).
    pub unit: String,
    /// `USD` unless the catalog says otherwise.
    pub currency: String,
    /// An expression over `input.*` the amount is multiplied by
    /// (`input.size`), when the price depends on the inputs.
    pub quantity: Option<String>,
}

fn tier_info(tier: &Tier) -> TierInfo {
    let monthly_price = match &tier.price.quantity {
        Some(_) => None,
        None => tier.monthly_price(&Default::default()).ok(),
    };
    TierInfo {
        name: tier.name.clone(),
        price: PriceInfo {
            amount: tier.price.amount,
            unit: tier.price.unit.clone(),
            currency: tier.price.currency.clone(),
            quantity: tier.price.quantity.as_ref().map(ToString::to_string),
        },
        monthly_price,
        price_text: platform_catalog::describe::price_text(tier),
        requires_approval: tier.requires_approval,
        transitions_to: tier.transitions_to.clone(),
    }
}

fn version_info(name: &str, offering: &Offering, version: &Version) -> VersionInfo {
    VersionInfo {
        version: version.version.clone(),
        status: version.status.into(),
        deprecation: version.deprecation.as_ref().map(|d| DeprecationInfo {
            create_until: d.create_until.map(|d| d.to_string()),
            update_until: d.update_until.map(|d| d.to_string()),
            successor: d.successor.clone(),
        }),
        tiers: version.tiers.iter().map(tier_info).collect(),
        json_schema: format!(
            "/v1/catalogs/{}/offerings/{}/versions/{}/schema",
            segment(name),
            segment(&offering.name),
            segment(&version.version)
        ),
    }
}

fn offering_info(name: &str, catalog: &Catalog, offering: &Offering) -> OfferingInfo {
    OfferingInfo {
        name: offering.name.clone(),
        resource_type: catalog.resource_type(offering),
        title: offering.title.clone(),
        description: offering.description.clone(),
        owner: OfferingOwner {
            team: offering.owner.team.clone(),
            contact: offering.owner.contact.clone(),
        },
        default_version: offering.current().version.clone(),
        versions: offering
            .versions
            .iter()
            .map(|v| version_info(name, offering, v))
            .collect(),
    }
}

/// The catalog's offerings, with their versions, lifecycle and tiers.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/offerings",
    params(
        ("catalog" = String, Path,
            description = "a catalog: a directory's name under the server's config directory"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = OfferingList),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody,
            description = "the catalog has errors: `file:line:col: error: …` in the message"),
    ))]
pub async fn list_offerings(
    State(state): State<Shared>,
    _who: Principal,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let catalog = match catalog(&state, &name).await {
        Ok(catalog) => catalog,
        Err(e) => return e.into_response(),
    };
    ok_json(
        StatusCode::OK,
        &OfferingList {
            catalog: name.clone(),
            digest: catalog.digest.clone(),
            provider_prefix: catalog.provider_prefix.clone(),
            offerings: catalog
                .offerings
                .iter()
                .map(|o| offering_info(&name, &catalog, o))
                .collect(),
        },
    )
}

/// One offering, with all its versions.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/offerings/{offering}",
    params(
        ("catalog" = String, Path,
            description = "a catalog: a directory's name under the server's config directory"),
        ("offering" = String, Path, description = "the offering's name"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = OfferingInfo),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody,
            description = "the catalog has errors: `file:line:col: error: …` in the message"),
    ))]
pub async fn get_offering(
    State(state): State<Shared>,
    _who: Principal,
    UrlPath((name, wanted)): UrlPath<(String, String)>,
) -> Response {
    let catalog = match catalog(&state, &name).await {
        Ok(catalog) => catalog,
        Err(e) => return e.into_response(),
    };
    match offering(&catalog, &name, &wanted) {
        Ok(offering) => ok_json(StatusCode::OK, &offering_info(&name, &catalog, offering)),
        Err(e) => e.into_response(),
    }
}

/// The JSON Schema (draft 2020-12) of an offering version: the request
/// form, with owner, lifecycle and tier prices under `x-platform`. The same
/// document `terraform-provider-platform docs --schemas` writes.
#[utoipa::path(get,
    path = "/v1/catalogs/{catalog}/offerings/{offering}/versions/{version}/schema",
    params(
        ("catalog" = String, Path,
            description = "a catalog: a directory's name under the server's config directory"),
        ("offering" = String, Path, description = "the offering's name"),
        ("version" = String, Path, description = "the version (`1.2.0`)"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, description = "a JSON Schema document (draft 2020-12)",
            content_type = "application/schema+json", body = Object),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody,
            description = "the catalog has errors: `file:line:col: error: …` in the message"),
    ))]
pub async fn schema(
    State(state): State<Shared>,
    _who: Principal,
    UrlPath((name, wanted, version)): UrlPath<(String, String, String)>,
) -> Response {
    let catalog = match catalog(&state, &name).await {
        Ok(catalog) => catalog,
        Err(e) => return e.into_response(),
    };
    let offering = match offering(&catalog, &name, &wanted) {
        Ok(offering) => offering,
        Err(e) => return e.into_response(),
    };
    let Some(found) = offering.version(&version) else {
        return ApiError::not_found(format!("offering {wanted:?} has no version {version:?}"))
            .into_response();
    };
    let text = platform_catalog::json_schema::version_schema(&catalog, offering, found).pretty();
    let mut response = (StatusCode::OK, text).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalogs/postgres.hcl"),
        )
        .expect("example catalog")
    }

    #[test]
    fn a_changed_catalog_is_never_served_stale() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonical");
        let file = dir.join("c.hcl");
        let text = example();
        std::fs::write(&file, &text).expect("write");
        // Just written: inside the racy window, read again every time.
        let cache = Cache::default();
        let first = cache.get(&dir, "c").expect("loads");
        let again = cache.get(&dir, "c").expect("loads");
        assert!(!Arc::ptr_eq(&first, &again));
        // Same length, within the same second: the stamp's finer parts (or
        // the racy window) tell the change.
        let edited = text.replacen("data-platform", "data-platfore", 1);
        assert_eq!(edited.len(), text.len());
        std::fs::write(&file, &edited).expect("write");
        let second = cache.get(&dir, "c").expect("loads");
        assert_ne!(first.digest, second.digest);
        // Broken: the diagnostics name the catalog, not the server's path.
        std::fs::write(&file, "offering {").expect("write");
        let error = cache.get(&dir, "c").expect_err("invalid");
        assert!(error.contains("\nc/c.hcl:1:"), "{error}");
        assert!(!error.contains(&*dir.to_string_lossy()), "{error}");
        // Asked by another name: the diagnostics say that one.
        let error = cache.get(&dir, "other").expect_err("invalid");
        assert!(error.contains("\nother/c.hcl:1:"), "{error}");
        // A new file, a removed one: both show.
        std::fs::write(&file, &text).expect("write");
        assert!(cache.get(&dir, "c").is_ok());
        std::fs::write(dir.join("d.hcl"), "offering {").expect("write");
        assert!(cache.get(&dir, "c").is_err());
        std::fs::remove_file(dir.join("d.hcl")).expect("remove");
        assert!(cache.get(&dir, "c").is_ok());
    }

    #[test]
    fn a_settled_catalog_is_parsed_once_per_change() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonical");
        let file = dir.join("c.hcl");
        let text = example();
        std::fs::write(&file, &text).expect("write");
        let cache = Cache {
            racy: Duration::ZERO,
            ..Cache::default()
        };
        let first = cache.get(&dir, "c").expect("loads");
        let again = cache.get(&dir, "c").expect("loads");
        assert!(Arc::ptr_eq(&first, &again), "not cached");
        // Another length: seen whatever the file system's timestamps.
        let edited = text.replacen("data-platform", "data-platform-team", 1);
        std::fs::write(&file, &edited).expect("write");
        let second = cache.get(&dir, "c").expect("loads");
        assert_ne!(first.digest, second.digest);
    }
}
