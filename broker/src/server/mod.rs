//! `platform-broker serve`: the control plane's HTTP API, a second front end
//! next to the CLI (runs will go through the same `run` layer). So far:
//! workspaces in the store, health, and the OpenAPI document generated from
//! the handlers (`/openapi.json`).
//!
//! Every handler takes a `Principal`: who is asking. Until verified
//! identities land, the only way to get one is `--insecure-dev-auth`, which
//! trusts the `x-platform-dev-user` header and is refused unless the server
//! listens on loopback; without it the server does not start.

pub mod api;
pub mod catalog;
pub mod config_dir;
pub mod drift;
pub mod notify;
pub mod runs;
pub mod state;
pub mod variables;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::store::Store;

/// How long interrupted terraform gets, at least, to stop after a
/// shutdown's grace.
const INTERRUPT_WAIT: Duration = Duration::from_secs(30);

/// The data directory's id (`DATA/server-id`, made at first start): the
/// runs a server plans are applied by a server with the same data directory,
/// where their plan bundles are.
fn server_id(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join("server-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if uuid::Uuid::parse_str(text.trim()).is_ok() => Ok(text.trim().to_owned()),
        Ok(_) => bail!(
            "{}: not a server id (a UUID); remove it to make a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            match crate::fsx::create_new(&path, format!("{id}\n").as_bytes(), 0o600) {
                Ok(()) => Ok(id),
                // Another server on this directory made it first.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(std::fs::read_to_string(&path)?.trim().to_owned())
                }
                Err(e) => Err(anyhow::anyhow!("cannot write {}: {e}", path.display())),
            }
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// How `serve` was asked to run.
pub struct Options {
    pub listen: SocketAddr,
    /// `--store URL`; `None`: SQLite under `data_dir`.
    pub store: Option<String>,
    pub data_dir: PathBuf,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub insecure_dev_auth: bool,
    /// How long open requests get to finish after SIGTERM.
    pub grace: Duration,
    /// Workers executing runs in this process (0: this server only serves
    /// the API; another one executes).
    pub workers: usize,
    /// The terraform the workers run (default: `terraform` on PATH).
    pub terraform: Option<PathBuf>,
    /// A worker's lease on a run (renewed every quarter of it).
    pub lease: Duration,
    /// `--notify-webhook URL`: new drift as a signed CloudEvent.
    pub notify_webhook: Option<String>,
    /// `--notify-slack URL`: new drift as a Slack message.
    pub notify_slack: Option<String>,
}

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub dev_auth: bool,
    /// Set on SIGTERM: workers claim nothing more.
    pub draining: std::sync::atomic::AtomicBool,
    /// Runs executing in this process.
    pub busy: std::sync::atomic::AtomicUsize,
    /// `--data-dir`: catalogs are named under its `config/`.
    pub data_dir: PathBuf,
    /// Parsed catalogs (`GET /v1/catalogs/…`).
    pub catalogs: catalog::Cache,
    /// Rung when this server queued or approved a run, or a run ended:
    /// idle workers claim at once instead of at their next poll.
    pub wake: tokio::sync::Notify,
}

/// Runs the server until SIGINT/SIGTERM. `ready` gets the bound address and
/// a one-line description of the store once requests are accepted.
pub fn run(options: Options, ready: impl FnOnce(SocketAddr, &str)) -> Result<()> {
    if !options.insecure_dev_auth {
        bail!(
            "no way to authenticate callers yet: start with --insecure-dev-auth (development \
             only, loopback only: trusts the x-platform-dev-user header)"
        );
    }
    if options.insecure_dev_auth && !options.listen.ip().is_loopback() {
        bail!(
            "--insecure-dev-auth trusts a header anyone can send: it is refused unless --listen \
             is a loopback address (got {})",
            options.listen
        );
    }
    std::fs::create_dir_all(&options.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            options.data_dir.display()
        )
    })?;
    let server_id = server_id(&options.data_dir)?;
    let notifier = Arc::new(notify::Notifier::new(
        &options.data_dir,
        options.notify_webhook.as_deref(),
        options.notify_slack.as_deref(),
    )?);
    let tls = match &options.tls {
        Some((cert, key)) => Some(crate::http::tls_acceptor(cert, key)?),
        None => None,
    };
    let url = match &options.store {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&options.data_dir).with_context(|| {
                format!(
                    "cannot create the data directory {}",
                    options.data_dir.display()
                )
            })?;
            let dir = options.data_dir.canonicalize()?;
            format!("sqlite://{}", dir.join("platform.db").display())
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    // The broker key (PLATFORM_BROKER_KEY) seals the audit chain; a key file
    // under the data directory is refused, as under a working directory.
    let key = crate::key::load(&Default::default(), &[options.data_dir.as_path()])?;
    if key.is_none() {
        eprintln!(
            "warning: no broker key (PLATFORM_BROKER_KEY): the audit chain is not authenticated"
        );
    }
    runtime.block_on(async move {
        let store = Store::open(&url).await?.with_key(key);
        let described = format!(
            "store {} ({:?}, schema {})",
            crate::store::redact_url(&url),
            store.dialect(),
            store.schema_version().await?
        );
        let state = Arc::new(AppState {
            store: store.clone(),
            dev_auth: options.insecure_dev_auth,
            draining: Default::default(),
            busy: Default::default(),
            data_dir: options.data_dir.clone(),
            catalogs: Default::default(),
            wake: tokio::sync::Notify::new(),
        });
        let app = api::router(state.clone());
        let (listener, bound) = crate::http::bind(options.listen).await?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let host = if bound.ip().is_unspecified() {
            std::net::SocketAddr::new([127, 0, 0, 1].into(), bound.port())
        } else {
            bound
        };
        worker::spawn(
            state.clone(),
            worker::WorkerConfig {
                data_dir: options.data_dir.clone(),
                self_url: format!("{scheme}://{host}/"),
                terraform: options.terraform.clone(),
                lease: options.lease,
                notifier: notifier.clone(),
                server_id: server_id.clone(),
            },
            options.workers,
        );
        ready(bound, &described);
        // On SIGTERM: claim nothing more, and keep serving — the runs in
        // flight talk to this server's state endpoints — until they are done
        // or the grace period is over; then stop accepting. A run still
        // executing after that is left to its lease (errored by the next
        // reaper, never retried).
        let drain = {
            let state = state.clone();
            let grace = options.grace;
            async move {
                crate::http::shutdown_signal().await;
                state.draining.store(true, std::sync::atomic::Ordering::SeqCst);
                let deadline = tokio::time::Instant::now() + grace;
                while state.busy.load(std::sync::atomic::Ordering::SeqCst) > 0
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Grace is over: terraform still running gets SIGINT and
                // stops gracefully (in-flight operations finish, state is
                // written and unlocked through this server, still serving),
                // and its run reports as errored. One more grace at most.
                if state.busy.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                    let asked = crate::tf::interrupt(None);
                    eprintln!("grace is over: interrupted {asked} terraform process(es)");
                    let deadline = tokio::time::Instant::now() + grace.max(INTERRUPT_WAIT);
                    while state.busy.load(std::sync::atomic::Ordering::SeqCst) > 0
                        && tokio::time::Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                let left = state.busy.load(std::sync::atomic::Ordering::SeqCst);
                if left > 0 {
                    eprintln!(
                        "shutting down with {left} run(s) still executing: their leases will run out"
                    );
                }
            }
        };
        crate::http::serve(listener, tls, app, drain, Duration::from_secs(2)).await?;
        store.close().await;
        Ok(())
    })
}
