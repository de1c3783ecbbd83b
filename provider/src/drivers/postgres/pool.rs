//! Lazily made, pooled connections: per database name, at most
//! [`PER_DATABASE`] connections at once, idle ones kept for reuse.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::super::DriverError;
use super::Settings;
use super::sql::{has_code, pg_message};

/// Connections per database at most.
pub const PER_DATABASE: usize = 10;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections of one [`super::Postgres`], by database name.
pub struct Pool {
    settings: Settings,
    databases: Mutex<HashMap<String, Arc<DatabasePool>>>,
}

struct DatabasePool {
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Client>>,
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
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            lock(&self.home.idle).push(client);
        }
    }
}

impl Pool {
    pub fn new(settings: Settings) -> Pool {
        Pool {
            settings,
            databases: Mutex::new(HashMap::new()),
        }
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
        let home = lock(&self.databases)
            .entry(database.to_owned())
            .or_insert_with(|| {
                Arc::new(DatabasePool {
                    permits: Arc::new(Semaphore::new(PER_DATABASE)),
                    idle: Mutex::new(Vec::new()),
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
            _permit: permit,
        })
    }

    /// A connection to the maintenance database.
    pub async fn maintenance(&self) -> Result<Conn, DriverError> {
        let database = self.maintenance_database().to_owned();
        self.get(&database).await.map_err(|error| match error {
            ConnectError::NoDatabase => DriverError(format!(
                "postgres: the maintenance database \"{database}\" does not exist (set `database` in the provider's postgres block or PGDATABASE)"
            )),
            ConnectError::Other(error) => error,
        })
    }

    /// Closes the idle connections to `database` (before it is dropped or renamed).
    pub fn forget(&self, database: &str) {
        let home = lock(&self.databases).get(database).cloned();
        if let Some(home) = home {
            lock(&home.idle).clear();
        }
    }

    async fn connect(&self, database: &str) -> Result<Client, ConnectError> {
        let settings = &self.settings;
        let host = settings.host_or_default();
        let port = settings.port_or_default();
        let user = settings
            .username
            .clone()
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "postgres".to_owned());
        match settings.sslmode.as_deref() {
            None | Some("disable" | "allow" | "prefer") => {}
            Some(mode @ ("require" | "verify-ca" | "verify-full")) => {
                return Err(ConnectError::Other(DriverError(format!(
                    "postgres: sslmode={mode}: TLS to PostgreSQL is not supported yet (use sslmode=disable or prefer, over a trusted network or a unix socket)"
                ))));
            }
            Some(other) => {
                return Err(ConnectError::Other(DriverError(format!(
                    "postgres: unknown sslmode {other:?} (disable, allow, prefer, require, verify-ca, verify-full)"
                ))));
            }
        }
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(&user)
            .dbname(database)
            .application_name("terraform-provider-platform")
            .options("-c TimeZone=UTC")
            .connect_timeout(CONNECT_TIMEOUT)
            .ssl_mode(SslMode::Disable);
        if let Some(password) = &settings.password {
            config.password(password);
        }
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(error = %pg_message(&error), "postgres connection ended");
                    }
                });
                Ok(client)
            }
            Err(error) if has_code(&error, &SqlState::INVALID_CATALOG_NAME) => {
                Err(ConnectError::NoDatabase)
            }
            Err(error) => Err(ConnectError::Other(DriverError(format!(
                "postgres: cannot connect to {host}:{port} as \"{user}\" (database \"{database}\"): {}",
                pg_message(&error)
            )))),
        }
    }
}
