//! PostgreSQL: roles, databases, schemas and grants.
//!
//! One [`Postgres`] per provider configuration: it holds the settings and a
//! small pool of connections per database, made lazily on first use. Every
//! object created carries an ownership marker (its comment); see
//! [`sql::check_marker`].

mod backend;
pub mod credentials;
mod database;
mod grant;
pub mod guard;
pub mod pool;
mod role;
mod schema;
pub mod sql;
pub mod tls;

use std::sync::Arc;

use super::Driver;

pub use backend::BACKEND;
pub use pool::Pool;

/// Connection settings: the provider block's `postgres { … }`, else `PG*`
/// environment variables, else libpq's defaults.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
    pub sslmode: Option<String>,
    /// PEM file of the roots the server's certificate must chain to
    /// (`verify-ca`, `verify-full`); unset or `system`: the system's roots.
    pub sslrootcert: Option<String>,
    /// PEM client certificate (with `sslkey`).
    pub sslcert: Option<String>,
    /// PEM private key of `sslcert`.
    pub sslkey: Option<String>,
    /// Unmarked roles a role may join or a grant may name (`grantable_roles`).
    /// Never widens past [`guard`]'s hard refusals.
    pub grantable_roles: Vec<String>,
    /// Unmarked schemas, as `database.schema`, grants may be made on
    /// (`grantable_schemas`).
    pub grantable_schemas: Vec<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(redacted)"))
            .field("database", &self.database)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("grantable_roles", &self.grantable_roles)
            .field("grantable_schemas", &self.grantable_schemas)
            .finish()
    }
}

impl Settings {
    /// `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
    /// `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY` (empty ones count as unset; an unparsable `PGPORT` is ignored with a
    /// warning).
    pub fn from_env() -> Settings {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Settings::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Settings {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let port = get("PGPORT").and_then(|text| match text.parse::<u16>() {
            Ok(port) => Some(port),
            Err(_) => {
                tracing::warn!(PGPORT = %text, "PGPORT is not a port number; ignored");
                None
            }
        });
        Settings {
            host: get("PGHOST"),
            port,
            username: get("PGUSER"),
            password: get("PGPASSWORD"),
            database: get("PGDATABASE"),
            sslmode: get("PGSSLMODE"),
            sslrootcert: get("PGSSLROOTCERT"),
            sslcert: get("PGSSLCERT"),
            sslkey: get("PGSSLKEY"),
            grantable_roles: Vec::new(),
            grantable_schemas: Vec::new(),
        }
    }

    /// These settings, each unset field taken from `env` (explicit wins).
    pub fn merged_over(self, env: Settings) -> Settings {
        Settings {
            host: self.host.or(env.host),
            port: self.port.or(env.port),
            username: self.username.or(env.username),
            password: self.password.or(env.password),
            database: self.database.or(env.database),
            sslmode: self.sslmode.or(env.sslmode),
            sslrootcert: self.sslrootcert.or(env.sslrootcert),
            sslcert: self.sslcert.or(env.sslcert),
            sslkey: self.sslkey.or(env.sslkey),
            // Allowlists come from the provider block only.
            grantable_roles: self.grantable_roles,
            grantable_schemas: self.grantable_schemas,
        }
    }

    /// Host to connect to (a path for a unix-socket directory); `localhost`.
    pub fn host_or_default(&self) -> &str {
        self.host.as_deref().unwrap_or("localhost")
    }

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(5432)
    }

    /// The maintenance database roles and databases are managed from; `postgres`.
    pub fn database_or_default(&self) -> &str {
        self.database.as_deref().unwrap_or("postgres")
    }
}

/// The PostgreSQL backend of one provider configuration.
pub struct Postgres {
    pool: Arc<Pool>,
}

impl Postgres {
    /// Does not connect: connections are made on first use.
    pub fn new(settings: Settings) -> Self {
        Postgres {
            pool: Arc::new(Pool::new(settings)),
        }
    }

    /// The connection pool (shared by the drivers).
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// One driver per kind of [`KINDS`], sharing the pool.
    pub fn drivers(&self) -> Vec<(&'static str, Arc<dyn Driver>)> {
        vec![
            (
                "postgres.role",
                Arc::new(role::Role::new(self.pool.clone())) as Arc<dyn Driver>,
            ),
            (
                "postgres.database",
                Arc::new(database::Database::new(self.pool.clone())),
            ),
            (
                "postgres.schema",
                Arc::new(schema::Schema::new(self.pool.clone())),
            ),
            (
                "postgres.grant",
                Arc::new(grant::Grant::new(self.pool.clone())),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_merge() {
        let env = Settings::from_lookup(|name| match name {
            "PGHOST" => Some("/run/pg".into()),
            "PGPORT" => Some("nope".into()),
            "PGUSER" => Some("envuser".into()),
            "PGDATABASE" => Some(String::new()),
            _ => None,
        });
        assert_eq!(env.host.as_deref(), Some("/run/pg"));
        assert_eq!(env.port, None);
        assert_eq!(env.database, None);
        let explicit = Settings {
            username: Some("me".into()),
            port: Some(6543),
            ..Settings::default()
        };
        let merged = explicit.merged_over(env);
        assert_eq!(merged.username.as_deref(), Some("me"));
        assert_eq!(merged.host.as_deref(), Some("/run/pg"));
        assert_eq!(merged.port_or_default(), 6543);
        assert_eq!(merged.database_or_default(), "postgres");
    }

    use crate::drivers::{Backend, Registry, Values};

    #[test]
    fn kinds_match_drivers() {
        let pg = Postgres::new(Settings::default());
        let names: Vec<&str> = pg.drivers().iter().map(|(name, _)| *name).collect();
        let kinds: Vec<&str> = BACKEND.kinds().iter().map(|k| k.name).collect();
        assert_eq!(names, kinds);
    }

    #[test]
    fn every_kind_declares_and_validates_inputs() {
        for kind in BACKEND.kinds().iter().map(|k| k.name) {
            assert!(
                Registry::inputs_of(kind)
                    .is_some_and(|keys| keys.contains(&"name") || keys.contains(&"schema")),
                "{kind}"
            );
            assert!(
                Registry::validate(kind, &Values::new()).is_empty(),
                "{kind}"
            );
        }
        assert_eq!(Registry::inputs_of("postgres.nope"), None);
    }

    #[test]
    fn validation_names_the_input() {
        let mut inputs = Values::new();
        inputs.insert("name".into(), "x".repeat(64).into());
        inputs.insert("connection_limit".into(), hcl::Value::from(1.5));
        inputs.insert("superuser".into(), true.into());
        inputs.insert("valid_until".into(), "2030\0".into());
        let errors = Registry::validate("postgres.role", &inputs);
        let long_name = format!(
            "input `name` {:?} is 64 bytes long; PostgreSQL names have at most 63",
            "x".repeat(64)
        );
        let got: Vec<(Option<&str>, &str)> = errors
            .iter()
            .map(|e| (e.1.as_deref(), e.0.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some("superuser"),
                    "unknown input `superuser` (known: name, login, connection_limit, valid_until, member_of, database)"
                ),
                (Some("name"), long_name.as_str()),
                (
                    Some("connection_limit"),
                    "input `connection_limit` must be a whole number"
                ),
                (
                    Some("valid_until"),
                    "input `valid_until` must not contain a NUL character"
                ),
            ]
        );
        let mut grant = Values::new();
        grant.insert("roles".into(), hcl::Value::Array(vec!["a\0b".into()]));
        grant.insert("privileges".into(), "everything".into());
        let errors = Registry::validate("postgres.grant", &grant);
        let inputs: Vec<Option<&str>> = errors.iter().map(|e| e.1.as_deref()).collect();
        assert_eq!(inputs, [Some("roles"), Some("privileges")]);
    }

    #[test]
    fn debug_redacts_password() {
        let settings = Settings {
            password: Some("hunter2".into()),
            ..Settings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
