//! `platform-broker mirror serve DIR`: the network mirror over HTTPS.
//!
//! Routes (relative to the base URL a CLI configuration's `network_mirror`
//! names):
//!
//! - `GET HOST/NAMESPACE/TYPE/index.json` and `.../VERSION.json` (protocol);
//! - `GET HOST/NAMESPACE/TYPE/FILE.zip`, the archives those name;
//! - `GET releases/FILE`, the release's other files for installers (sums,
//!   signatures, the broker tarball, the public key): only names a sums
//!   file lists, the sums files themselves, their `.sig` and `*.asc`;
//! - `GET /`, what is served (a health check).
//!
//! Errors are `{"error": {"code", "message"}}`; HEAD works wherever GET does.
//! Every request is logged on stderr (method, path, status, milliseconds).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Source, index_json, scan, version_json};
use crate::http::json;

fn error(status: StatusCode, code: &'static str, message: &str) -> Response {
    crate::http::ApiError::new(status, code, message).into_response()
}

/// What to serve, where, and how.
pub struct Options {
    /// The release directory (`scripts/release --out DIR`).
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// PEM certificate chain and key; `None` serves plain HTTP (only behind
    /// a TLS-terminating proxy: Terraform requires `https:` mirror URLs).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub sources: Vec<Source>,
}

struct Mirror {
    dir: PathBuf,
    sources: Vec<Source>,
}

/// Serves until SIGINT or SIGTERM. `ready` is called with the bound address
/// once the listener accepts connections.
pub fn run(options: Options, ready: impl FnOnce(SocketAddr, &str)) -> Result<()> {
    let meta = std::fs::metadata(&options.dir)
        .with_context(|| format!("release directory {}", options.dir.display()))?;
    if !meta.is_dir() {
        bail!(
            "release directory {}: not a directory",
            options.dir.display()
        );
    }
    if options.sources.is_empty() {
        bail!("no provider source to serve (--source HOST/NAMESPACE/TYPE)");
    }
    // Refuse to start on a release directory that cannot be read: a typo'd
    // sums file is better found now than by every `terraform init`.
    let mut summary = Vec::new();
    for source in &options.sources {
        let releases = scan(&options.dir, &source.kind)?;
        let versions: Vec<String> = releases
            .iter()
            .map(|(v, archives)| {
                let platforms: Vec<&str> = archives.keys().map(String::as_str).collect();
                format!("{v} ({})", platforms.join(", "))
            })
            .collect();
        summary.push(format!(
            "{source}: {}",
            if versions.is_empty() {
                "no release yet".to_owned()
            } else {
                versions.join("; ")
            }
        ));
    }
    let tls = match &options.tls {
        Some((cert, key)) => Some(crate::http::tls_acceptor(cert, key)?),
        None => None,
    };
    let mirror = Arc::new(Mirror {
        dir: options.dir.clone(),
        sources: options.sources.clone(),
    });
    let app = router(mirror);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let bound = listener.local_addr()?;
        ready(bound, &summary.join("\n"));
        crate::http::serve(
            listener,
            tls,
            app,
            crate::http::shutdown_signal(),
            std::time::Duration::from_secs(5),
        )
        .await
    })
}

fn router(mirror: Arc<Mirror>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/releases/{file}", get(release_file))
        .route("/{host}/{namespace}/{kind}/{file}", get(protocol))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such path") })
        .with_state(mirror)
}

async fn root(State(mirror): State<Arc<Mirror>>) -> Response {
    let sources: Vec<String> = mirror.sources.iter().map(Source::to_string).collect();
    json(
        StatusCode::OK,
        &serde_json::json!({ "mirror": "terraform provider network mirror", "sources": sources }),
    )
}

/// `index.json`, `VERSION.json` or an archive of a served provider.
async fn protocol(
    State(mirror): State<Arc<Mirror>>,
    UrlPath((host, namespace, kind, file)): UrlPath<(String, String, String, String)>,
) -> Response {
    let Some(source) = mirror
        .sources
        .iter()
        .find(|s| s.matches(&host, &namespace, &kind))
    else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            "this mirror does not serve that provider",
        );
    };
    let dir = mirror.dir.clone();
    let kind = source.kind.clone();
    let scanned = tokio::task::spawn_blocking(move || scan(&dir, &kind)).await;
    let releases = match scanned {
        Ok(Ok(releases)) => releases,
        Ok(Err(e)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "bad_release",
                &crate::render_error(&e),
            );
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "scan failed"),
    };
    if file == "index.json" {
        return json(StatusCode::OK, &index_json(&releases));
    }
    if let Some(version) = file.strip_suffix(".json") {
        return match semver::Version::parse(version)
            .ok()
            .and_then(|v| releases.get(&v))
        {
            Some(archives) => json(StatusCode::OK, &version_json(archives)),
            None => error(
                StatusCode::NOT_FOUND,
                "unknown_version",
                "no such version of this provider",
            ),
        };
    }
    let listed = releases
        .values()
        .flat_map(|archives| archives.values())
        .any(|archive| archive.file == file);
    if !listed {
        return error(StatusCode::NOT_FOUND, "not_found", "no such archive");
    }
    send_file(&mirror.dir, &file).await
}

/// A release file for installers: what a sums file lists, the sums files,
/// their signatures and public keys; nothing else in the directory.
async fn release_file(
    State(mirror): State<Arc<Mirror>>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    let dir = mirror.dir.clone();
    let name = file.clone();
    let allowed = tokio::task::spawn_blocking(move || release_file_allowed(&dir, &name)).await;
    match allowed {
        Ok(true) => send_file(&mirror.dir, &file).await,
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such release file"),
    }
}

fn release_file_allowed(dir: &Path, name: &str) -> bool {
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\\') {
        return false;
    }
    let sums = |n: &str| n.ends_with("_SHA256SUMS");
    if sums(name) || name.strip_suffix(".sig").is_some_and(sums) || name.ends_with(".asc") {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let n = entry.file_name();
        let Some(n) = n.to_str() else { return false };
        sums(n)
            && std::fs::read_to_string(entry.path()).is_ok_and(|text| {
                text.lines().any(|line| {
                    line.split_once("  ")
                        .or_else(|| line.split_once(" *"))
                        .is_some_and(|(_, f)| f == name)
                })
            })
    })
}

async fn send_file(dir: &Path, name: &str) -> Response {
    let path = dir.join(name);
    // Regular files only (no symbolic link out of the directory).
    let is_file = tokio::fs::symlink_metadata(&path)
        .await
        .is_ok_and(|m| m.is_file());
    if !is_file {
        return error(StatusCode::NOT_FOUND, "not_found", "no such file");
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let kind = if name.ends_with(".zip") {
                "application/zip"
            } else if name.ends_with(".tar.gz") {
                "application/gzip"
            } else if name.ends_with(".json") {
                "application/json"
            } else if name.ends_with("_SHA256SUMS") || name.ends_with(".asc") {
                "text/plain; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            let mut response = Response::new(Body::from(bytes));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            response
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unreadable",
            "the file cannot be read",
        ),
    }
}
