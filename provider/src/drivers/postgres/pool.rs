//! Lazily made, pooled connections: at most [`PER_DATABASE`] in use at once
//! per database, and at most [`MAX_IDLE`] idle ones kept for reuse, all
//! managed databases together. The maintenance database (where roles and
//! databases are created) keeps up to [`PER_DATABASE`] idle connections of
//! its own: every role and database operation runs there, at Terraform's
//! parallelism, and closing all but four after each burst meant a new
//! connection (backend start and SCRAM exchange, milliseconds of CPU on both
//! sides) for most operations. (No global in-use cap: a database create holds a
//! maintenance connection while it connects into the new database, so a
//! global cap could deadlock; Terraform's parallelism bounds use instead.) The idle cap matters: schemas and
//! grants connect *into* each managed database, and keeping one idle
//! connection per database exhausted the server's `max_connections` at ~190
//! databases (found by bench/lifecycle.py).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

use super::super::DriverError;
use super::Settings;
use super::sql::{has_code, pg_message};
use super::tls::{Mode, Tls};

/// Connections per database at most.
pub const PER_DATABASE: usize = 10;
/// Idle connections kept, all databases together; the rest are closed.
pub const MAX_IDLE: usize = 4;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections of one [`super::Postgres`], by database name.
pub struct Pool {
    settings: Settings,
    /// The TLS side, from `settings` (an unusable setting fails every connect;
    /// ConfigureProvider reports it before that).
    tls: Result<Tls, String>,
    databases: Mutex<HashMap<String, Arc<DatabasePool>>>,
    idle_count: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections made so far (reuse shows as this staying small).
    connects: std::sync::atomic::AtomicUsize,
}

struct DatabasePool {
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Client>>,
    /// The maintenance database: its idle connections are capped at
    /// [`PER_DATABASE`] on their own, outside the shared [`MAX_IDLE`].
    own_idle_cap: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why no connection was had.
#[derive(Debug)]
pub enum ConnectError {
    /// The database does not exist (SQLSTATE 3D000).
    NoDatabase,
    Other(DriverError),
}

impl From<ConnectError> for DriverError {
    fn from(error: ConnectError) -> DriverError {
        match error {
            ConnectError::NoDatabase => DriverError::new("postgres: the database does not exist"),
            ConnectError::Other(error) => error,
        }
    }
}

/// A pooled connection; back to the pool when dropped (unless closed).
pub struct Conn {
    client: Option<Client>,
    home: Arc<DatabasePool>,
    idle_count: Arc<std::sync::atomic::AtomicUsize>,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// The client; `Some` from creation until drop.
    pub fn client(&mut self) -> Result<&mut Client, DriverError> {
        self.client
            .as_mut()
            .ok_or_else(|| DriverError::new("postgres: pooled connection used after release"))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let Some(client) = self.client.take() else {
            return;
        };
        if client.is_closed() {
            return;
        }
        if self.home.own_idle_cap {
            let mut idle = lock(&self.home.idle);
            if idle.len() < PER_DATABASE {
                idle.push(client);
            }
            return;
        }
        if self.idle_count.fetch_add(1, Ordering::AcqRel) < MAX_IDLE {
            lock(&self.home.idle).push(client);
        } else {
            // Over the idle cap: undo the count; dropping the client closes
            // the connection.
            self.idle_count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Pool {
    pub fn new(settings: Settings) -> Pool {
        let tls = Tls::from_settings(&settings).map_err(|error| format!("postgres: {error}"));
        Pool {
            settings,
            tls,
            databases: Mutex::new(HashMap::new()),
            idle_count: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            connects: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many connections this pool has made (all databases).
    pub fn connections_made(&self) -> usize {
        self.connects.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The database roles and databases are managed from.
    pub fn maintenance_database(&self) -> &str {
        self.settings.database_or_default()
    }

    /// A connection to `database`, reused or made.
    pub async fn get(&self, database: &str) -> Result<Conn, ConnectError> {
        let own_idle_cap = database == self.maintenance_database();
        let home = lock(&self.databases)
            .entry(database.to_owned())
            .or_insert_with(|| {
                Arc::new(DatabasePool {
                    permits: Arc::new(Semaphore::new(PER_DATABASE)),
                    idle: Mutex::new(Vec::new()),
                    own_idle_cap,
                })
            })
            .clone();
        let permit = home.permits.clone().acquire_owned().await.map_err(|_| {
            ConnectError::Other(DriverError::new("postgres: connection pool closed"))
        })?;
        let reused = {
            let mut idle = lock(&home.idle);
            let mut found = None;
            while let Some(client) = idle.pop() {
                if !home.own_idle_cap {
                    self.idle_count
                        .fetch_update(
                            std::sync::atomic::Ordering::AcqRel,
                            std::sync::atomic::Ordering::Acquire,
                            |n| Some(n.saturating_sub(1)),
                        )
                        .ok();
                }
                if !client.is_closed() {
                    found = Some(client);
                    break;
                }
            }
            found
        };
        let client = match reused {
            Some(client) => client,
            None => self.connect(database).await?,
        };
        Ok(Conn {
            client: Some(client),
            home,
            idle_count: self.idle_count.clone(),
            _permit: permit,
        })
    }

    /// A connection to the maintenance database.
    pub async fn maintenance(&self) -> Result<Conn, DriverError> {
        let database = self.maintenance_database().to_owned();
        self.get(&database).await.map_err(|error| match error {
            ConnectError::NoDatabase => DriverError::new(format!(
                "postgres: the maintenance database \"{database}\" does not exist (set `database` in the provider's postgres block or PGDATABASE)"
            )),
            ConnectError::Other(error) => error,
        })
    }

    /// Closes the idle connections to `database` (before it is dropped or renamed).
    pub fn forget(&self, database: &str) {
        let home = lock(&self.databases).get(database).cloned();
        if let Some(home) = home {
            let mut idle = lock(&home.idle);
            let n = if home.own_idle_cap { 0 } else { idle.len() };
            idle.clear();
            self.idle_count
                .fetch_update(
                    std::sync::atomic::Ordering::AcqRel,
                    std::sync::atomic::Ordering::Acquire,
                    |count| Some(count.saturating_sub(n)),
                )
                .ok();
        }
    }

    async fn connect(&self, database: &str) -> Result<Client, ConnectError> {
        self.connects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let settings = &self.settings;
        let host = settings.host_or_default();
        let port = settings.port_or_default();
        let user = settings
            .username
            .clone()
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "postgres".to_owned());
        let tls = self
            .tls
            .as_ref()
            .map_err(|error| ConnectError::Other(DriverError::new(error.clone())))?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(&user)
            .dbname(database)
            .application_name("terraform-provider-platform")
            .options("-c TimeZone=UTC")
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(password) = &settings.password {
            config.password(password);
        }
        let outcome = match tls.connector() {
            None => connect_with(config.ssl_mode(SslMode::Disable), NoTls).await,
            Some(connector) => match tls.mode {
                // libpq's `allow`: plain first; TLS when the server refuses that.
                Mode::Allow => match connect_with(config.ssl_mode(SslMode::Disable), NoTls).await {
                    Err(error)
                        if error.as_db_error().is_some()
                            && !has_code(&error, &SqlState::INVALID_CATALOG_NAME) =>
                    {
                        connect_with(config.ssl_mode(SslMode::Require), connector).await
                    }
                    other => other,
                },
                // libpq's `prefer`: TLS when the server offers it; when the
                // TLS attempt fails, plain again.
                Mode::Prefer => {
                    match connect_with(config.ssl_mode(SslMode::Prefer), connector.clone()).await {
                        Err(error)
                            if connector.handshake_attempted()
                                && !has_code(&error, &SqlState::INVALID_CATALOG_NAME) =>
                        {
                            tracing::debug!(error = %pg_message(&error), "postgres: TLS attempt failed; retrying without TLS (sslmode=prefer)");
                            connect_with(config.ssl_mode(SslMode::Disable), NoTls).await
                        }
                        other => other,
                    }
                }
                _ => connect_with(config.ssl_mode(SslMode::Require), connector).await,
            },
        };
        match outcome {
            Ok(client) => Ok(client),
            Err(error) if has_code(&error, &SqlState::INVALID_CATALOG_NAME) => {
                Err(ConnectError::NoDatabase)
            }
            Err(error) => Err(ConnectError::Other(DriverError::new(format!(
                "postgres: cannot connect to {host}:{port} as \"{user}\" (database \"{database}\", sslmode={}): {}",
                tls.mode.name(),
                connect_message(&error, host)
            )))),
        }
    }
}

/// Connects with `tls` and spawns the connection's I/O task.
async fn connect_with<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %pg_message(&error), "postgres connection ended");
        }
    });
    Ok(client)
}

/// [`pg_message`], with a certificate refusal in words.
fn connect_message(error: &tokio_postgres::Error, host: &str) -> String {
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        // tokio-rustls hands rustls errors over inside an io::Error, whose
        // source() skips the wrapped error.
        let rustls_error = inner.downcast_ref::<rustls::Error>().or_else(|| {
            inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|e| e.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(why)) = rustls_error {
            return super::tls::certificate_problem(why, host);
        }
        source = inner.source();
    }
    pg_message(error)
}
