//! The PostgreSQL backend on the driver seam ([`crate::drivers::Backend`]):
//! its provider block section, settings, kinds, the plan-time refusal of
//! handed-on roles, the configure-time TLS probe, and the short-lived
//! credentials ephemeral resource.

use std::collections::BTreeMap;
use std::sync::Arc;

use platform_value::{Path, Type, Value};

use super::{Postgres, Settings, credentials, database, grant, guard, role, schema, tls};
use crate::drivers::{Backend, Configured, Connection, Driver, Ephemeral, Handover, Kind, Opened};
use crate::engine::Diag;
use crate::engine::schema::{AttrKind, AttrSchema, BlockSchema, Flags};

pub struct PostgresBackend;

/// The backend, as [`crate::drivers::backends`] lists it.
pub static BACKEND: PostgresBackend = PostgresBackend;

static KINDS: &[Kind] = &[
    Kind {
        name: "postgres.role",
        inputs: role::KEYS,
        makes_secrets: true,
        validate: role::validate,
    },
    Kind {
        name: "postgres.database",
        inputs: database::KEYS,
        makes_secrets: false,
        validate: database::validate,
    },
    Kind {
        name: "postgres.schema",
        inputs: schema::KEYS,
        makes_secrets: false,
        validate: schema::validate,
    },
    Kind {
        name: "postgres.grant",
        inputs: grant::KEYS,
        makes_secrets: false,
        validate: grant::validate,
    },
];

static HANDOVERS: &[Handover] = &[
    Handover {
        kind: "postgres.role",
        input: "member_of",
        verb: "join",
    },
    Handover {
        kind: "postgres.grant",
        input: "roles",
        verb: "grant to",
    },
];

static EPHEMERALS: &[Ephemeral] = &[Ephemeral {
    suffix: "postgres_credentials",
    schema: credentials_schema,
}];

impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn kinds(&self) -> &'static [Kind] {
        KINDS
    }

    fn section(&self) -> BlockSchema {
        let optional = |name: &str, ty: Type, description: &str| {
            AttrSchema::new(
                name,
                ty,
                Flags::Optional,
                AttrKind::Input,
                description.to_owned(),
            )
        };
        let mut password = optional(
            "password",
            Type::String,
            "Password of that role (else PGPASSWORD).",
        );
        password.sensitive = true;
        BlockSchema {
            description:
                "Connection to the PostgreSQL cluster the postgres.* drivers provision on. \
                          Unset fields fall back to the PG* environment variables."
                    .into(),
            attributes: vec![
                optional(
                    "database",
                    Type::String,
                    "Maintenance database to connect to (else PGDATABASE, else postgres).",
                ),
                optional(
                    "grantable_roles",
                    Type::List(Box::new(Type::String)),
                    "Existing roles without the platform's ownership marker that roles may join (member_of) \
                     and grants may name. Empty by default. Never widens past the hard refusals: the \
                     provider's own role, superusers, pg_* roles and roles with CREATEROLE, REPLICATION or \
                     BYPASSRLS (or members of those) are refused regardless.",
                ),
                optional(
                    "grantable_schemas",
                    Type::List(Box::new(Type::String)),
                    "Existing schemas without the ownership marker, as \"database.schema\", that grants \
                     may be made on. Empty by default.",
                ),
                optional(
                    "host",
                    Type::String,
                    "Host name, IP address or unix socket directory (else PGHOST).",
                ),
                password,
                optional("port", Type::Number, "Port (else PGPORT, else 5432)."),
                optional(
                    "sslcert",
                    Type::String,
                    "PEM file of a client certificate to present (with sslkey; else PGSSLCERT).",
                ),
                optional(
                    "sslkey",
                    Type::String,
                    "PEM file of the private key of sslcert, unencrypted (else PGSSLKEY).",
                ),
                optional(
                    "sslmode",
                    Type::String,
                    "TLS, as libpq: disable, allow, prefer, require, verify-ca or verify-full (else \
                     PGSSLMODE, else prefer). require with an sslrootcert behaves as verify-ca. With \
                     verify-ca / verify-full the provider checks the server's certificate with one TLS \
                     handshake when it is configured (an unreachable server is not an error there).",
                ),
                optional(
                    "sslrootcert",
                    Type::String,
                    "PEM file of the root certificates the server's certificate must chain to \
                     (verify-ca, verify-full; with require it makes require verify-ca, as libpq); unset: the \
                     system's roots; \"system\": the system's roots, and only with verify-full, as libpq \
                     (else PGSSLROOTCERT).",
                ),
                optional(
                    "username",
                    Type::String,
                    "Role the provider connects as; it needs CREATEROLE and CREATEDB (else PGUSER).",
                ),
            ],
            blocks: Vec::new(),
        }
    }

    fn configure(&self, section: Option<&Value>) -> (Arc<dyn Configured>, Vec<Diag>) {
        let (settings, diags) = configure(section);
        (Arc::new(settings), diags)
    }

    fn handovers(&self) -> &'static [Handover] {
        HANDOVERS
    }

    fn ephemerals(&self) -> &'static [Ephemeral] {
        EPHEMERALS
    }

    fn validate_ephemeral(&self, _suffix: &str, config: &Value) -> Vec<Diag> {
        match config.get_attr("ttl") {
            Some(Value::String(_)) => ttl(config).err().into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// The `postgres { … }` section over the PG* environment variables.
fn configure(block: Option<&Value>) -> (Settings, Vec<Diag>) {
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
    let mut diags = Vec::new();
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
    let explicit = Settings {
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
    let settings = explicit.merged_over(Settings::from_env());
    // TLS settings are checked here (mode, PEM files), not at the first
    // connection: a bad one is reported at plan, before anything changes.
    if let Err(error) = tls::Tls::from_settings(&settings) {
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
    (settings, diags)
}

#[async_trait::async_trait]
impl Configured for Settings {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn same(&self, other: &dyn Configured) -> bool {
        other.as_any().downcast_ref::<Settings>() == Some(self)
    }

    /// For the sslmodes that verify the server's certificate: one TLS
    /// handshake with the server ([`tls::probe`]), so a certificate the
    /// settings refuse (wrong host name for verify-full, unknown issuer) is an
    /// error of ConfigureProvider and `plan` stops before any resource is
    /// read. The SSLRequest and the handshake only: no startup message, no
    /// password. A server that cannot be reached within
    /// [`tls::PROBE_TIMEOUT`] is NOT an error (connections are lazy; `plan`
    /// with nothing to refresh must keep working offline): it is logged, and
    /// the first real connection reports it.
    async fn probe(&self) -> Vec<Diag> {
        let Ok(tls) = tls::Tls::from_settings(self) else {
            return Vec::new();
        };
        let started = std::time::Instant::now();
        let outcome = tls::probe(self, &tls, tls::PROBE_TIMEOUT).await;
        tracing::debug!(elapsed = ?started.elapsed(), ?outcome, "postgres TLS probe");
        let target = format!("{}:{}", self.host_or_default(), self.port_or_default());
        match outcome {
            tls::Probe::Skipped | tls::Probe::Verified => Vec::new(),
            tls::Probe::Refused(why) => vec![Diag::error(
                "PostgreSQL server certificate refused",
                format!(
                    "{why}. (sslmode={}; found by a TLS handshake with {target} when the provider was configured, before any connection.)",
                    tls.mode.name()
                ),
            )],
            tls::Probe::NoTls => vec![Diag::error(
                "PostgreSQL server does not accept TLS",
                format!(
                    "sslmode={} needs TLS, and the server at {target} answered that it does not support it.",
                    tls.mode.name()
                ),
            )],
            tls::Probe::Unknown(why) => {
                tracing::info!(%why, "postgres TLS probe inconclusive; the first connection will tell");
                Vec::new()
            }
        }
    }

    fn refuses(&self, name: &str) -> Option<String> {
        guard::static_role_refusal(self, name)
    }

    fn connect(&self) -> Arc<dyn Connection> {
        Arc::new(Postgres::new(self.clone()))
    }
}

#[async_trait::async_trait]
impl Connection for Postgres {
    fn drivers(&self) -> Vec<(&'static str, Arc<dyn Driver>)> {
        Postgres::drivers(self)
    }

    async fn open_ephemeral(&self, _suffix: &str, config: &Value) -> Result<Opened, Vec<Diag>> {
        let ttl = ttl(config).map_err(|d| vec![d])?;
        let (Some(role), Some(database)) =
            (string_attr(config, "role"), string_attr(config, "database"))
        else {
            return Err(vec![Diag::error(
                "role and database must be known",
                "Short-lived credentials are opened with known values only.",
            )]);
        };
        let opened = credentials::open(self.pool(), &role, &database, ttl)
            .await
            .map_err(|e| {
                let diag = Diag::error("Cannot open PostgreSQL credentials", e.to_string());
                vec![match &e.1 {
                    Some(input) => diag.at(Path::root().attr(input)),
                    None => diag,
                }]
            })?;
        let mut attrs: BTreeMap<String, Value> = BTreeMap::new();
        attrs.insert("role".into(), Value::String(role));
        attrs.insert("database".into(), Value::String(database));
        attrs.insert(
            "ttl".into(),
            config.get_attr("ttl").cloned().unwrap_or(Value::Null),
        );
        attrs.insert("username".into(), Value::String(opened.username.clone()));
        attrs.insert("password".into(), Value::String(opened.password.clone()));
        attrs.insert("uri".into(), Value::String(opened.uri.clone()));
        attrs.insert(
            "expires_at".into(),
            Value::String(opened.expires_at.clone()),
        );
        Ok(Opened {
            result: Value::Object(attrs),
            private: serde_json::json!({ "username": opened.username })
                .to_string()
                .into_bytes(),
        })
    }

    async fn close_ephemeral(&self, _suffix: &str, private: &[u8]) -> Vec<Diag> {
        let username = serde_json::from_slice::<serde_json::Value>(private)
            .ok()
            .and_then(|v| {
                v.get("username")
                    .and_then(|u| u.as_str())
                    .map(str::to_owned)
            });
        let Some(username) = username else {
            return vec![Diag::error(
                "Cannot close credentials",
                "The ephemeral resource carries no role name.",
            )];
        };
        match credentials::close(self.pool(), &username).await {
            Ok(()) => Vec::new(),
            Err(e) => vec![Diag::error(
                "Cannot close PostgreSQL credentials",
                e.to_string(),
            )],
        }
    }
}

fn credentials_schema() -> BlockSchema {
    let attr = |name: &str, flags: Flags, sensitive: bool, description: &str| AttrSchema {
        name: name.to_owned(),
        ty: Type::String,
        flags,
        sensitive,
        description: description.to_owned(),
        kind: AttrKind::Reserved,
    };
    BlockSchema {
        description: "Short-lived PostgreSQL credentials: a login role that is a member of `role` and \
                      expires after `ttl`, created when Terraform opens it and dropped when it closes. \
                      Never stored in state (Terraform 1.10 or newer)."
            .into(),
        attributes: vec![
            attr("database", Flags::Required, false, "Database the connection URI points at."),
            attr("expires_at", Flags::Computed, false, "When PostgreSQL stops accepting the login (UTC)."),
            attr("password", Flags::Computed, true, "Generated password."),
            attr("role", Flags::Required, false, "Existing role the credentials act as, e.g. a database's `owner_role`."),
            attr("ttl", Flags::Optional, false, "Lifetime such as 30m, 1h or 2h30m (1m to 7d). Default 1h."),
            attr("uri", Flags::Computed, true, "postgres:// connection URI with the password."),
            attr("username", Flags::Computed, false, "Generated login role."),
        ],
        blocks: Vec::new(),
    }
}

fn string_attr(config: &Value, name: &str) -> Option<String> {
    match config.get_attr(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn ttl(config: &Value) -> Result<std::time::Duration, Diag> {
    let text = string_attr(config, "ttl").unwrap_or_else(|| "1h".to_owned());
    credentials::parse_ttl(&text)
        .map_err(|e| Diag::error("Invalid ttl", e).at(Path::root().attr("ttl")))
}
