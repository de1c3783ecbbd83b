//! `postgres.database`: a database with its owner, encoding, connection
//! limit and extensions.
//!
//! Inputs: `name`, `owner`, `encoding` ("UTF8"), `connection_limit` (-1),
//! `extensions` ([]; `plpgsql` is left alone unless asked for). State: those
//! as they really are, plus `adopted`. Databases are created from template0,
//! so they hold what the catalog declares and nothing added to template1.

use std::sync::Arc;

use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;

use super::super::{Driver, DriverError, Found, Owner, Values};
use super::pool::{ConnectError, Pool};
use super::sql::{
    adopted, already_exists, check_marker, check_present, connection_limit, fail, found, has_code,
    list_value, marker, name, names, names_resource, order_like, pg_message, quote_ident,
    quote_literal, state_name, state_string, string, unknown_inputs, unknown_keys,
};

const KIND: &str = "postgres.database";
pub(super) const KEYS: &[&str] = &[
    "name",
    "owner",
    "encoding",
    "connection_limit",
    "extensions",
];

pub struct Database {
    pool: Arc<Pool>,
}

struct Spec {
    name: String,
    owner: String,
    encoding: String,
    connection_limit: i32,
    extensions: Vec<String>,
}

fn spec(inputs: &Values) -> Result<Spec, String> {
    if let Some(first) = unknown_keys(inputs, KEYS).into_iter().next() {
        return Err(first);
    }
    Ok(Spec {
        name: name(inputs, "name")?,
        owner: name(inputs, "owner")?,
        encoding: string(inputs, "encoding")?.unwrap_or_else(|| "UTF8".to_owned()),
        connection_limit: connection_limit(inputs, "connection_limit")?,
        extensions: names(inputs, "extensions")?,
    })
}

struct Row {
    name: String,
    owner: String,
    encoding: String,
    /// Whether the encoding asked for (as spelled) is the database's.
    encoding_matches: bool,
    connection_limit: i32,
    comment: Option<String>,
}

const FETCH: &str = "
SELECT d.datname::text, pg_get_userbyid(d.datdba)::text, pg_encoding_to_char(d.encoding)::text,
       coalesce(pg_char_to_encoding($2) = d.encoding, false), d.datconnlimit,
       shobj_description(d.oid, 'pg_database')
  FROM pg_database d WHERE d.datname = $1";

async fn fetch(
    client: &impl GenericClient,
    database: &str,
    encoding: &str,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let row = client.query_opt(FETCH, &[&database, &encoding]).await?;
    Ok(match row {
        None => None,
        Some(row) => Some(Row {
            name: row.try_get(0)?,
            owner: row.try_get(1)?,
            encoding: row.try_get(2)?,
            encoding_matches: row.try_get(3)?,
            connection_limit: row.try_get(4)?,
            comment: row.try_get(5)?,
        }),
    })
}

/// The comment (ownership marker) of role `role`.
async fn role_comment(
    client: &impl GenericClient,
    role: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}

impl Database {
    pub fn new(pool: Arc<Pool>) -> Database {
        Database { pool }
    }

    /// Writes `owner`'s marker on `database`.
    async fn mark(&self, database: &str, owner: &Owner) -> Result<(), DriverError> {
        let mut conn = self.pool.maintenance().await?;
        conn.client()?
            .batch_execute(&format!(
                "COMMENT ON DATABASE {} IS {}",
                quote_ident(database),
                quote_literal(&marker(owner))
            ))
            .await
            .map_err(|e| fail(KIND, database, pg_message(&e)))
    }

    /// Extensions installed in `database`; `None` when it is gone.
    async fn extensions(&self, database: &str) -> Result<Option<Vec<String>>, DriverError> {
        let mut conn = match self.pool.get(database).await {
            Ok(conn) => conn,
            Err(ConnectError::NoDatabase) => return Ok(None),
            Err(ConnectError::Other(error)) => return Err(error),
        };
        installed_extensions(conn.client()?, database)
            .await
            .map(Some)
    }

    /// Makes the installed extensions exactly `wanted` (plpgsql aside), over
    /// one connection into `database`; returns what is installed afterwards.
    async fn converge_extensions(
        &self,
        database: &str,
        wanted: &[String],
    ) -> Result<Vec<String>, DriverError> {
        let mut conn = match self.pool.get(database).await {
            Ok(conn) => conn,
            Err(ConnectError::NoDatabase) => {
                return Err(fail(
                    KIND,
                    database,
                    format!("database \"{database}\" does not exist"),
                ));
            }
            Err(ConnectError::Other(error)) => return Err(error),
        };
        let client = conn.client()?;
        let installed = installed_extensions(client, database).await?;
        let mut now: Vec<String> = Vec::with_capacity(wanted.len() + 1);
        for extension in &installed {
            if wanted.contains(extension) || extension == "plpgsql" {
                now.push(extension.clone());
                continue;
            }
            client
                .batch_execute(&format!(
                    "DROP EXTENSION IF EXISTS {}",
                    quote_ident(extension)
                ))
                .await
                .map_err(|e| {
                    fail(
                        KIND,
                        database,
                        format!("extension \"{extension}\": {}", pg_message(&e)),
                    )
                })?;
        }
        for extension in wanted.iter().filter(|e| !installed.contains(e)) {
            client
                .batch_execute(&format!(
                    "CREATE EXTENSION IF NOT EXISTS {}",
                    quote_ident(extension)
                ))
                .await
                .map_err(|e| {
                    fail(
                        KIND,
                        database,
                        format!("extension \"{extension}\": {}", pg_message(&e)),
                    )
                })?;
            now.push(extension.clone());
        }
        now.sort();
        Ok(now)
    }

    /// The state of `database`; `None` when it is gone.
    /// `known_extensions`: what is installed when the caller has just made
    /// it so (create, update), saving a connection into the database.
    async fn read_back(
        &self,
        database: &str,
        encoding: &str,
        prior_extensions: &[String],
        adopted: bool,
        known_extensions: Option<Vec<String>>,
    ) -> Result<Option<Values>, DriverError> {
        let row = {
            let mut conn = self.pool.maintenance().await?;
            fetch(conn.client()?, database, encoding)
                .await
                .map_err(|e| fail(KIND, database, pg_message(&e)))?
        };
        let Some(row) = row else { return Ok(None) };
        let installed = match known_extensions {
            Some(known) => known,
            None => match self.extensions(database).await? {
                Some(installed) => installed,
                None => return Ok(None),
            },
        };
        let installed: Vec<String> = installed
            .into_iter()
            .filter(|e| e != "plpgsql" || prior_extensions.contains(e))
            .collect();
        let mut state = Values::new();
        state.insert("name".into(), row.name.clone().into());
        state.insert("owner".into(), row.owner.clone().into());
        let encoding = if row.encoding_matches {
            encoding.to_owned()
        } else {
            row.encoding.clone()
        };
        state.insert("encoding".into(), encoding.into());
        state.insert(
            "connection_limit".into(),
            i64::from(row.connection_limit).into(),
        );
        state.insert(
            "extensions".into(),
            list_value(&order_like(installed, prior_extensions)),
        );
        state.insert("adopted".into(), adopted.into());
        Ok(Some(state))
    }

    async fn drop_database(&self, database: &str) -> Result<(), DriverError> {
        let db_error = |e: tokio_postgres::Error| fail(KIND, database, pg_message(&e));
        self.pool.forget(database);
        let mut conn = self.pool.maintenance().await?;
        let client = conn.client()?;
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(db_error)?
            .try_get(0)
            .map_err(db_error)?;
        let force = if version >= 130000 {
            " WITH (FORCE)"
        } else {
            ""
        };
        match client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {}{force}",
                quote_ident(database)
            ))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if has_code(&e, &SqlState::INVALID_CATALOG_NAME) => Ok(()),
            Err(e) => Err(db_error(e)),
        }
    }
}

/// The extensions installed in the database `client` is connected to.
async fn installed_extensions(
    client: &tokio_postgres::Client,
    database: &str,
) -> Result<Vec<String>, DriverError> {
    let rows = client
        .query("SELECT extname::text FROM pg_extension ORDER BY 1", &[])
        .await
        .map_err(|e| fail(KIND, database, pg_message(&e)))?;
    rows.iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(KIND, database, pg_message(&e)))
}

/// Plan-time checks of the known evaluated inputs (those not yet known are
/// absent): the same rules as [`spec`], without a connection.
pub(super) fn validate(inputs: &Values) -> Vec<DriverError> {
    let mut errors = unknown_inputs(inputs, KEYS);
    check_present(&mut errors, inputs, "name", name);
    check_present(&mut errors, inputs, "owner", name);
    check_present(&mut errors, inputs, "encoding", string);
    check_present(&mut errors, inputs, "connection_limit", connection_limit);
    check_present(&mut errors, inputs, "extensions", names);
    errors
}

#[async_trait::async_trait]
impl Driver for Database {
    async fn create(&self, owner: &Owner, inputs: &Values) -> Result<Values, DriverError> {
        let label = state_string(inputs, "name").unwrap_or_default();
        let spec = spec(inputs).map_err(|m| fail(KIND, &label, m))?;
        let database = spec.name.as_str();
        let db_error = |e: tokio_postgres::Error| fail(KIND, database, pg_message(&e));
        // Idempotent for this resource's own database (a re-run after a
        // crash): adopt and converge it; anything else by that name is refused.
        match self.find(owner, inputs).await? {
            Found::Missing => {}
            Found::Ours(state) | Found::OtherGeneration(state) | Found::Unfinished(state) => {
                self.mark(database, owner).await?;
                return self.update(owner, &state, inputs).await;
            }
            Found::Foreign(why) => return Err(why),
        }
        {
            let mut conn = self.pool.maintenance().await?;
            let client = conn.client()?;
            // Always from template0: the database holds what the catalog
            // declares and nothing a DBA added to template1, any encoding the
            // cluster's locale allows works, and with no extensions asked for
            // its contents are known without connecting into it.
            let sql = format!(
                "CREATE DATABASE {} OWNER {} ENCODING {} CONNECTION LIMIT {} TEMPLATE template0",
                quote_ident(database),
                quote_ident(&spec.owner),
                quote_literal(&spec.encoding),
                spec.connection_limit
            );
            if let Err(e) = client.batch_execute(&sql).await {
                // Made meanwhile: most often by the session of a provider
                // killed a moment ago, whose CREATE DATABASE the server
                // finished after the client was gone. Look again.
                if !has_code(&e, &SqlState::DUPLICATE_DATABASE)
                    && !has_code(&e, &SqlState::UNIQUE_VIOLATION)
                {
                    return Err(db_error(e));
                }
                drop(conn);
                return match self.find(owner, inputs).await? {
                    Found::Ours(state)
                    | Found::OtherGeneration(state)
                    | Found::Unfinished(state) => {
                        self.mark(database, owner).await?;
                        self.update(owner, &state, inputs).await
                    }
                    Found::Foreign(why) => Err(why),
                    Found::Missing => Err(db_error(e)),
                };
            }
        }
        // template0 holds plpgsql alone (it does not accept connections, so it
        // stays as initdb made it): nothing to converge when no extension is
        // asked for.
        let converged = if spec.extensions.is_empty() {
            Ok(vec!["plpgsql".to_owned()])
        } else {
            self.converge_extensions(database, &spec.extensions).await
        };
        // The marker goes on last: a database without it, owned by this
        // resource's role, is one whose create was cut short (`find` says
        // `Unfinished`), and the next create completes it.
        let marked = match converged {
            Ok(installed) => self.mark(database, owner).await.map(|()| installed),
            Err(error) => Err(error),
        };
        let installed = match marked {
            Ok(installed) => installed,
            Err(error) => {
                // Leave nothing half made behind: the engine has no state for it.
                if let Err(cleanup) = self.drop_database(database).await {
                    tracing::warn!(database, error = %cleanup, "postgres: cannot drop half-made database");
                }
                return Err(error);
            }
        };
        self.read_back(
            database,
            &spec.encoding,
            &spec.extensions,
            false,
            Some(installed),
        )
        .await?
        .ok_or_else(|| {
            fail(
                KIND,
                database,
                "the database vanished right after it was created",
            )
        })
    }

    async fn read(&self, state: &Values) -> Result<Option<Values>, DriverError> {
        let database = state_name(KIND, state)?;
        let encoding = state_string(state, "encoding").unwrap_or_else(|| "UTF8".to_owned());
        let prior = names(state, "extensions").unwrap_or_default();
        self.read_back(&database, &encoding, &prior, adopted(state), None)
            .await
    }

    async fn update(
        &self,
        owner: &Owner,
        state: &Values,
        inputs: &Values,
    ) -> Result<Values, DriverError> {
        let old = state_name(KIND, state)?;
        let spec = spec(inputs).map_err(|m| fail(KIND, &old, m))?;
        let new = spec.name.as_str();
        let db_error = |e: tokio_postgres::Error| fail(KIND, &old, pg_message(&e));
        {
            let mut conn = self.pool.maintenance().await?;
            let client = conn.client()?;
            let Some(row) = fetch(client, &old, &spec.encoding)
                .await
                .map_err(db_error)?
            else {
                return Err(fail(
                    KIND,
                    &old,
                    format!("database \"{old}\" no longer exists"),
                ));
            };
            check_marker(
                KIND,
                "database",
                &old,
                row.comment.as_deref(),
                owner,
                adopted(state),
            )?;
            if !row.encoding_matches {
                return Err(fail(
                    KIND,
                    &old,
                    format!(
                        "the encoding of a database cannot change in place (it is {}, {} was asked for); replace the database",
                        row.encoding, spec.encoding
                    ),
                ));
            }
            if new != old {
                if fetch(client, new, &spec.encoding)
                    .await
                    .map_err(db_error)?
                    .is_some()
                {
                    return Err(already_exists(KIND, "database", new));
                }
                self.pool.forget(&old);
                client
                    .batch_execute(&format!(
                        "ALTER DATABASE {} RENAME TO {}",
                        quote_ident(&old),
                        quote_ident(new)
                    ))
                    .await
                    .map_err(db_error)?;
            }
            if row.owner != spec.owner {
                client
                    .batch_execute(&format!(
                        "ALTER DATABASE {} OWNER TO {}",
                        quote_ident(new),
                        quote_ident(&spec.owner)
                    ))
                    .await
                    .map_err(db_error)?;
            }
            if row.connection_limit != spec.connection_limit {
                client
                    .batch_execute(&format!(
                        "ALTER DATABASE {} WITH CONNECTION LIMIT {}",
                        quote_ident(new),
                        spec.connection_limit
                    ))
                    .await
                    .map_err(db_error)?;
            }
            client
                .batch_execute(&format!(
                    "COMMENT ON DATABASE {} IS {}",
                    quote_ident(new),
                    quote_literal(&marker(owner))
                ))
                .await
                .map_err(db_error)?;
        }
        let installed = self.converge_extensions(new, &spec.extensions).await?;
        self.read_back(
            new,
            &spec.encoding,
            &spec.extensions,
            adopted(state),
            Some(installed),
        )
        .await?
        .ok_or_else(|| {
            fail(
                KIND,
                new,
                "the database vanished right after it was altered",
            )
        })
    }

    async fn delete(&self, owner: &Owner, state: &Values) -> Result<(), DriverError> {
        let database = state_name(KIND, state)?;
        let db_error = |e: tokio_postgres::Error| fail(KIND, &database, pg_message(&e));
        {
            let mut conn = self.pool.maintenance().await?;
            let Some(row) = fetch(conn.client()?, &database, "")
                .await
                .map_err(db_error)?
            else {
                return Ok(());
            };
            check_marker(
                KIND,
                "database",
                &database,
                row.comment.as_deref(),
                owner,
                adopted(state),
            )?;
        }
        self.drop_database(&database).await
    }

    async fn find(&self, owner: &Owner, inputs: &Values) -> Result<Found, DriverError> {
        let label = state_string(inputs, "name").unwrap_or_default();
        let database = name(inputs, "name").map_err(|m| fail(KIND, &label, m))?;
        let encoding = string(inputs, "encoding")
            .ok()
            .flatten()
            .unwrap_or_else(|| "UTF8".to_owned());
        let wanted = names(inputs, "extensions").unwrap_or_default();
        let db_error = |e: tokio_postgres::Error| fail(KIND, &database, pg_message(&e));
        let (comment, unfinished) = {
            let mut conn = self.pool.maintenance().await?;
            let client = conn.client()?;
            let Some(row) = fetch(client, &database, &encoding)
                .await
                .map_err(db_error)?
            else {
                return Ok(Found::Missing);
            };
            // CREATE DATABASE cannot share a transaction with its COMMENT
            // (written last, after the extensions): a crash in between leaves
            // the database unmarked. It is still this resource's when its
            // owner is this resource's own role (which carries the marker and
            // was made first).
            let unfinished = row.comment.is_none()
                && names_resource(
                    role_comment(client, &row.owner)
                        .await
                        .map_err(db_error)?
                        .as_deref(),
                    owner,
                );
            (row.comment, unfinished)
        };
        let Some(state) = self
            .read_back(&database, &encoding, &wanted, unfinished, None)
            .await?
        else {
            return Ok(Found::Missing);
        };
        Ok(if unfinished {
            Found::Unfinished(state)
        } else {
            found(
                KIND,
                "database",
                &database,
                comment.as_deref(),
                owner,
                state,
            )
        })
    }

    async fn import(&self, owner: &Owner, inputs: &Values) -> Result<Option<Values>, DriverError> {
        let label = state_string(inputs, "name").unwrap_or_default();
        let database = name(inputs, "name").map_err(|m| fail(KIND, &label, m))?;
        let encoding = string(inputs, "encoding")
            .ok()
            .flatten()
            .unwrap_or_else(|| "UTF8".to_owned());
        let wanted = names(inputs, "extensions").unwrap_or_default();
        let db_error = |e: tokio_postgres::Error| fail(KIND, &database, pg_message(&e));
        {
            let mut conn = self.pool.maintenance().await?;
            let client = conn.client()?;
            if fetch(client, &database, &encoding)
                .await
                .map_err(db_error)?
                .is_none()
            {
                return Ok(None);
            }
            client
                .batch_execute(&format!(
                    "COMMENT ON DATABASE {} IS {}",
                    quote_ident(&database),
                    quote_literal(&marker(owner))
                ))
                .await
                .map_err(db_error)?;
        }
        self.read_back(&database, &encoding, &wanted, true, None)
            .await
    }
}
