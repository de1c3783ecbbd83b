//! `postgres.schema`: a schema in a database, with its owner.
//!
//! Inputs: `database`, `name`, `owner`. State: those as they really are,
//! plus `adopted`.

use std::sync::Arc;

use tokio_postgres::GenericClient;

use super::super::{Driver, DriverError, Found, Owner, Values};
use super::pool::{Conn, ConnectError, Pool};
use super::sql::{
    adopted, already_exists, check_marker, check_present, fail, found, marker, name, pg_message,
    quote_ident, quote_literal, unknown_inputs, unknown_keys,
};

const KIND: &str = "postgres.schema";
pub(super) const KEYS: &[&str] = &["database", "name", "owner"];

pub struct Schema {
    pool: Arc<Pool>,
}

struct Spec {
    database: String,
    name: String,
    owner: String,
}

fn spec(inputs: &Values) -> Result<Spec, String> {
    if let Some(first) = unknown_keys(inputs, KEYS).into_iter().next() {
        return Err(first);
    }
    Ok(Spec {
        database: name(inputs, "database")?,
        name: name(inputs, "name")?,
        owner: name(inputs, "owner")?,
    })
}

struct Row {
    name: String,
    owner: String,
    comment: Option<String>,
}

async fn fetch(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT n.nspname::text, pg_get_userbyid(n.nspowner)::text, obj_description(n.oid, 'pg_namespace')
               FROM pg_namespace n WHERE n.nspname = $1",
            &[&schema],
        )
        .await?;
    Ok(match row {
        None => None,
        Some(row) => Some(Row {
            name: row.try_get(0)?,
            owner: row.try_get(1)?,
            comment: row.try_get(2)?,
        }),
    })
}

/// `database` and `name` of a state (or of inputs).
fn identity(values: &Values) -> Result<(String, String), DriverError> {
    let database =
        name(values, "database").map_err(|m| DriverError::new(format!("{KIND}: {m}")))?;
    let schema = name(values, "name").map_err(|m| DriverError::new(format!("{KIND}: {m}")))?;
    Ok((database, schema))
}

fn state(database: &str, row: &Row, adopted: bool) -> Values {
    let mut state = Values::new();
    state.insert("database".into(), database.into());
    state.insert("name".into(), row.name.clone().into());
    state.insert("owner".into(), row.owner.clone().into());
    state.insert("adopted".into(), adopted.into());
    state
}

impl Schema {
    pub fn new(pool: Arc<Pool>) -> Schema {
        Schema { pool }
    }

    /// A connection to `database`; `None` when it does not exist.
    async fn connect(&self, database: &str) -> Result<Option<Conn>, DriverError> {
        match self.pool.get(database).await {
            Ok(conn) => Ok(Some(conn)),
            Err(ConnectError::NoDatabase) => Ok(None),
            Err(ConnectError::Other(error)) => Err(error),
        }
    }

    /// Writes `owner`'s marker on `schema` of `database`.
    async fn mark(&self, owner: &Owner, database: &str, schema: &str) -> Result<(), DriverError> {
        let mut conn = self.connect_existing(database, schema).await?;
        conn.client()?
            .batch_execute(&format!(
                "COMMENT ON SCHEMA {} IS {}",
                quote_ident(schema),
                quote_literal(&marker(owner))
            ))
            .await
            .map_err(|e| fail(KIND, schema, pg_message(&e)))
    }

    async fn connect_existing(&self, database: &str, schema: &str) -> Result<Conn, DriverError> {
        self.connect(database).await?.ok_or_else(|| {
            fail(
                KIND,
                schema,
                format!("database \"{database}\" does not exist"),
            )
        })
    }
}

/// Plan-time checks of the known evaluated inputs (those not yet known are
/// absent): the same rules as [`spec`], without a connection.
pub(super) fn validate(inputs: &Values) -> Vec<DriverError> {
    let mut errors = unknown_inputs(inputs, KEYS);
    for key in KEYS {
        check_present(&mut errors, inputs, key, name);
    }
    errors
}

#[async_trait::async_trait]
impl Driver for Schema {
    async fn create(&self, owner: &Owner, inputs: &Values) -> Result<Values, DriverError> {
        let spec = spec(inputs).map_err(|m| DriverError::new(format!("{KIND}: {m}")))?;
        let schema = spec.name.as_str();
        let db_error = |e: tokio_postgres::Error| fail(KIND, schema, pg_message(&e));
        // Idempotent for this resource's own schema (a re-run after a crash):
        // adopt and converge it; anything else by that name is refused.
        match self.find(owner, inputs).await? {
            Found::Missing => {}
            Found::Ours(state) | Found::OtherGeneration(state) | Found::Unfinished(state) => {
                self.mark(owner, &spec.database, schema).await?;
                return self.update(owner, &state, inputs).await;
            }
            Found::Foreign(why) => return Err(why),
        }
        let mut conn = self.connect_existing(&spec.database, schema).await?;
        let client = conn.client()?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA {} AUTHORIZATION {}",
            quote_ident(schema),
            quote_ident(&spec.owner)
        ))
        .await
        .map_err(db_error)?;
        tx.batch_execute(&format!(
            "COMMENT ON SCHEMA {} IS {}",
            quote_ident(schema),
            quote_literal(&marker(owner))
        ))
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let row = fetch(client, schema)
            .await
            .map_err(db_error)?
            .ok_or_else(|| {
                fail(
                    KIND,
                    schema,
                    "the schema vanished right after it was created",
                )
            })?;
        Ok(state(&spec.database, &row, false))
    }

    async fn read(&self, state_in: &Values) -> Result<Option<Values>, DriverError> {
        let (database, schema) = identity(state_in)?;
        let Some(mut conn) = self.connect(&database).await? else {
            return Ok(None);
        };
        let row = fetch(conn.client()?, &schema)
            .await
            .map_err(|e| fail(KIND, &schema, pg_message(&e)))?;
        Ok(row.map(|row| state(&database, &row, adopted(state_in))))
    }

    async fn update(
        &self,
        owner: &Owner,
        state_in: &Values,
        inputs: &Values,
    ) -> Result<Values, DriverError> {
        let (database, old) = identity(state_in)?;
        let spec = spec(inputs).map_err(|m| fail(KIND, &old, m))?;
        if spec.database != database {
            return Err(fail(
                KIND,
                &old,
                format!(
                    "a schema cannot move from database \"{database}\" to \"{}\"; replace it",
                    spec.database
                ),
            ));
        }
        let new = spec.name.as_str();
        let db_error = |e: tokio_postgres::Error| fail(KIND, &old, pg_message(&e));
        let mut conn = self.connect_existing(&database, &old).await?;
        let client = conn.client()?;
        let Some(row) = fetch(client, &old).await.map_err(db_error)? else {
            return Err(fail(
                KIND,
                &old,
                format!("schema \"{old}\" no longer exists"),
            ));
        };
        check_marker(
            KIND,
            "schema",
            &old,
            row.comment.as_deref(),
            owner,
            adopted(state_in),
        )?;
        if new != old && fetch(client, new).await.map_err(db_error)?.is_some() {
            return Err(already_exists(KIND, "schema", new));
        }
        let tx = client.transaction().await.map_err(db_error)?;
        if new != old {
            tx.batch_execute(&format!(
                "ALTER SCHEMA {} RENAME TO {}",
                quote_ident(&old),
                quote_ident(new)
            ))
            .await
            .map_err(db_error)?;
        }
        if row.owner != spec.owner {
            tx.batch_execute(&format!(
                "ALTER SCHEMA {} OWNER TO {}",
                quote_ident(new),
                quote_ident(&spec.owner)
            ))
            .await
            .map_err(db_error)?;
        }
        tx.batch_execute(&format!(
            "COMMENT ON SCHEMA {} IS {}",
            quote_ident(new),
            quote_literal(&marker(owner))
        ))
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let row = fetch(client, new)
            .await
            .map_err(db_error)?
            .ok_or_else(|| fail(KIND, new, "the schema vanished right after it was altered"))?;
        Ok(state(&database, &row, adopted(state_in)))
    }

    async fn delete(&self, owner: &Owner, state_in: &Values) -> Result<(), DriverError> {
        let (database, schema) = identity(state_in)?;
        let db_error = |e: tokio_postgres::Error| fail(KIND, &schema, pg_message(&e));
        let Some(mut conn) = self.connect(&database).await? else {
            return Ok(());
        };
        let client = conn.client()?;
        let Some(row) = fetch(client, &schema).await.map_err(db_error)? else {
            return Ok(());
        };
        check_marker(
            KIND,
            "schema",
            &schema,
            row.comment.as_deref(),
            owner,
            adopted(state_in),
        )?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote_ident(&schema)
            ))
            .await
            .map_err(db_error)
    }

    async fn find(&self, owner: &Owner, inputs: &Values) -> Result<Found, DriverError> {
        let (database, schema) = identity(inputs)?;
        let db_error = |e: tokio_postgres::Error| fail(KIND, &schema, pg_message(&e));
        let Some(mut conn) = self.connect(&database).await? else {
            return Ok(Found::Missing);
        };
        let Some(row) = fetch(conn.client()?, &schema).await.map_err(db_error)? else {
            return Ok(Found::Missing);
        };
        Ok(found(
            KIND,
            "schema",
            &schema,
            row.comment.as_deref(),
            owner,
            state(&database, &row, false),
        ))
    }

    async fn import(&self, owner: &Owner, inputs: &Values) -> Result<Option<Values>, DriverError> {
        let (database, schema) = identity(inputs)?;
        let db_error = |e: tokio_postgres::Error| fail(KIND, &schema, pg_message(&e));
        let Some(mut conn) = self.connect(&database).await? else {
            return Ok(None);
        };
        let client = conn.client()?;
        if fetch(client, &schema).await.map_err(db_error)?.is_none() {
            return Ok(None);
        }
        client
            .batch_execute(&format!(
                "COMMENT ON SCHEMA {} IS {}",
                quote_ident(&schema),
                quote_literal(&marker(owner))
            ))
            .await
            .map_err(db_error)?;
        let row = fetch(client, &schema).await.map_err(db_error)?;
        Ok(row.map(|row| state(&database, &row, true)))
    }
}
