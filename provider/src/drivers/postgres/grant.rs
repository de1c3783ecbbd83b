//! `postgres.grant`: privileges of roles on a schema and its tables.
//!
//! Inputs: `database`, `schema`, `roles` (role names), `privileges`:
//! `"read"` (USAGE on the schema, SELECT on its tables), `"write"` (read plus
//! INSERT, UPDATE, DELETE) or a list of privilege names; USAGE and CREATE go
//! on the schema, table privileges (SELECT, INSERT, UPDATE, DELETE, TRUNCATE,
//! REFERENCES, TRIGGER) on all its tables and, as default privileges of the
//! schema's owner, on the tables it will create.
//!
//! State: the inputs, with `roles` read back as those of them that hold all
//! the privileges right now (so an out-of-band REVOKE shows as a missing
//! role), plus `adopted`. A grant carries no marker: it belongs to its schema.

use std::sync::Arc;

use tokio_postgres::GenericClient;

use super::super::{Driver, DriverError, Found, Owner, Values};
use super::guard::{check_roles, check_schema};
use super::pool::{Conn, ConnectError, Pool};
use super::sql::{
    adopted, check_present, fail, list_value, name, names, order_like, pg_message, present,
    quote_ident, unknown_inputs, unknown_keys,
};

const KIND: &str = "postgres.grant";
pub(super) const KEYS: &[&str] = &["database", "schema", "roles", "privileges"];

const SCHEMA_PRIVILEGES: &[&str] = &["USAGE", "CREATE"];
const TABLE_PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
];

pub struct Grant {
    pool: Arc<Pool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Privileges {
    schema: Vec<&'static str>,
    table: Vec<&'static str>,
}

impl Privileges {
    fn minus(&self, other: &Privileges) -> Privileges {
        Privileges {
            schema: self
                .schema
                .iter()
                .filter(|p| !other.schema.contains(p))
                .copied()
                .collect(),
            table: self
                .table
                .iter()
                .filter(|p| !other.table.contains(p))
                .copied()
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.schema.is_empty() && self.table.is_empty()
    }
}

fn privileges(values: &Values, key: &str) -> Result<Privileges, String> {
    let usage = format!(
        "input `{key}` must be \"read\", \"write\" or a list of privileges such as [\"USAGE\", \"SELECT\"]"
    );
    match present(values, key) {
        None => Err(usage),
        Some(hcl::Value::String(word)) => match word.to_ascii_lowercase().as_str() {
            "read" => Ok(Privileges {
                schema: vec!["USAGE"],
                table: vec!["SELECT"],
            }),
            "write" => Ok(Privileges {
                schema: vec!["USAGE"],
                table: vec!["SELECT", "INSERT", "UPDATE", "DELETE"],
            }),
            _ => Err(usage),
        },
        Some(hcl::Value::Array(items)) => {
            let mut out = Privileges::default();
            for item in items {
                let hcl::Value::String(word) = item else {
                    return Err(usage);
                };
                let word = word.to_ascii_uppercase();
                if let Some(p) = SCHEMA_PRIVILEGES.iter().find(|p| **p == word) {
                    if !out.schema.contains(p) {
                        out.schema.push(p);
                    }
                } else if let Some(p) = TABLE_PRIVILEGES.iter().find(|p| **p == word) {
                    if !out.table.contains(p) {
                        out.table.push(p);
                    }
                } else {
                    return Err(format!(
                        "input `{key}`: unknown privilege {word:?} (schema: {}; tables: {})",
                        SCHEMA_PRIVILEGES.join(", "),
                        TABLE_PRIVILEGES.join(", ")
                    ));
                }
            }
            if out.is_empty() {
                return Err(format!("input `{key}` must name at least one privilege"));
            }
            Ok(out)
        }
        Some(_) => Err(usage),
    }
}

struct Spec {
    database: String,
    schema: String,
    roles: Vec<String>,
    privileges: Privileges,
    /// `privileges` as given, kept in the state.
    privileges_value: hcl::Value,
}

fn spec(values: &Values) -> Result<Spec, String> {
    if let Some(first) = unknown_keys(values, KEYS).into_iter().next() {
        return Err(first);
    }
    Ok(Spec {
        database: name(values, "database")?,
        schema: name(values, "schema")?,
        roles: names(values, "roles")?,
        privileges: privileges(values, "privileges")?,
        privileges_value: values
            .get("privileges")
            .cloned()
            .unwrap_or(hcl::Value::Null),
    })
}

/// Which of `roles` hold every privilege directly (ACLs, not membership).
const HOLDERS: &str = "
WITH n AS (SELECT oid, nspacl FROM pg_namespace WHERE nspname = $1),
     r AS (SELECT ro.oid, ro.rolname::text AS rolname, u.ord
             FROM unnest($2::text[]) WITH ORDINALITY AS u(name, ord)
             JOIN pg_roles ro ON ro.rolname = u.name)
SELECT r.rolname FROM r, n
 WHERE NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS sp(p)
                    WHERE NOT EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a
                                       WHERE a.grantee = r.oid AND a.privilege_type = sp.p))
   AND NOT EXISTS (SELECT 1 FROM pg_class c, unnest($4::text[]) AS tp(p)
                    WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                      AND NOT EXISTS (SELECT 1 FROM aclexplode(c.relacl) a
                                       WHERE a.grantee = r.oid AND a.privilege_type = tp.p))
   AND NOT EXISTS (SELECT 1 FROM unnest($4::text[]) AS tp(p)
                    WHERE NOT EXISTS (SELECT 1 FROM pg_default_acl d, aclexplode(d.defaclacl) a
                                       WHERE d.defaclnamespace = n.oid AND d.defaclobjtype = 'r'
                                         AND a.grantee = r.oid AND a.privilege_type = tp.p))
 ORDER BY r.ord";

async fn holders(
    client: &impl GenericClient,
    schema: &str,
    roles: &[String],
    privileges: &Privileges,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            HOLDERS,
            &[&schema, &roles, &privileges.schema, &privileges.table],
        )
        .await?;
    rows.iter().map(|row| row.try_get::<_, String>(0)).collect()
}

/// The schema's owner; `None` when there is no such schema.
async fn schema_owner(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    client
        .query_opt(
            "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()
}

async fn existing_roles(
    client: &impl GenericClient,
    roles: &[String],
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname::text = ANY($1)",
            &[&roles],
        )
        .await?;
    let found: Vec<String> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(roles
        .iter()
        .filter(|r| found.contains(r))
        .cloned()
        .collect())
}

/// GRANT (or REVOKE) `privileges` on `schema` to (from) `role`.
/// Serialises grant changes on one schema: two resources granting on the same
/// schema at once (Terraform applies them in parallel) would otherwise both
/// update its ACL and default-privilege rows, and one would fail with "tuple
/// concurrently updated". Held until the transaction ends.
async fn lock_schema(
    client: &impl GenericClient,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext('platform-provider.postgres.grant'), hashtext($1))",
            &[&schema],
        )
        .await
        .map(|_| ())
}

fn statements(
    schema: &str,
    owner: &str,
    role: &str,
    privileges: &Privileges,
    grant: bool,
) -> Vec<String> {
    let (verb, to) = if grant {
        ("GRANT", "TO")
    } else {
        ("REVOKE", "FROM")
    };
    let (schema, owner, role) = (quote_ident(schema), quote_ident(owner), quote_ident(role));
    let mut out = Vec::new();
    if !privileges.schema.is_empty() {
        out.push(format!(
            "{verb} {} ON SCHEMA {schema} {to} {role}",
            privileges.schema.join(", ")
        ));
    }
    if !privileges.table.is_empty() {
        let list = privileges.table.join(", ");
        out.push(format!(
            "{verb} {list} ON ALL TABLES IN SCHEMA {schema} {to} {role}"
        ));
        out.push(format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} {verb} {list} ON TABLES {to} {role}"
        ));
    }
    out
}

fn state(
    spec_database: &str,
    schema: &str,
    roles: &[String],
    privileges: &hcl::Value,
    adopted: bool,
) -> Values {
    let mut state = Values::new();
    state.insert("database".into(), spec_database.into());
    state.insert("schema".into(), schema.into());
    state.insert("roles".into(), list_value(roles));
    state.insert("privileges".into(), privileges.clone());
    state.insert("adopted".into(), adopted.into());
    state
}

impl Grant {
    pub fn new(pool: Arc<Pool>) -> Grant {
        Grant { pool }
    }

    async fn connect(&self, database: &str) -> Result<Option<Conn>, DriverError> {
        match self.pool.get(database).await {
            Ok(conn) => Ok(Some(conn)),
            Err(ConnectError::NoDatabase) => Ok(None),
            Err(ConnectError::Other(error)) => Err(error),
        }
    }

    /// The state of the grant `spec` describes; `None` when its database or
    /// schema is gone.
    async fn read_back(&self, spec: &Spec, adopted: bool) -> Result<Option<Values>, DriverError> {
        let Some(mut conn) = self.connect(&spec.database).await? else {
            return Ok(None);
        };
        let client = conn.client()?;
        let db_error = |e: tokio_postgres::Error| fail(KIND, &spec.schema, pg_message(&e));
        if schema_owner(client, &spec.schema)
            .await
            .map_err(db_error)?
            .is_none()
        {
            return Ok(None);
        }
        let held = holders(client, &spec.schema, &spec.roles, &spec.privileges)
            .await
            .map_err(db_error)?;
        let roles = order_like(held, &spec.roles);
        Ok(Some(state(
            &spec.database,
            &spec.schema,
            &roles,
            &spec.privileges_value,
            adopted,
        )))
    }

    /// Revokes `spec`'s privileges from its roles; nothing when gone.
    async fn revoke_all(&self, spec: &Spec) -> Result<(), DriverError> {
        let Some(mut conn) = self.connect(&spec.database).await? else {
            return Ok(());
        };
        let client = conn.client()?;
        let db_error = |e: tokio_postgres::Error| fail(KIND, &spec.schema, pg_message(&e));
        let Some(owner) = schema_owner(client, &spec.schema).await.map_err(db_error)? else {
            return Ok(());
        };
        let roles = existing_roles(client, &spec.roles)
            .await
            .map_err(db_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        lock_schema(&tx, &spec.schema).await.map_err(db_error)?;
        for role in &roles {
            for sql in statements(&spec.schema, &owner, role, &spec.privileges, false) {
                tx.batch_execute(&sql).await.map_err(db_error)?;
            }
        }
        tx.commit().await.map_err(db_error)
    }

    /// Grants `spec`'s privileges to its roles, first revoking `revoke` from
    /// `revoke_from`.
    async fn apply(
        &self,
        spec: &Spec,
        revoke_from: &[(String, Privileges)],
    ) -> Result<(), DriverError> {
        let db_error = |e: tokio_postgres::Error| fail(KIND, &spec.schema, pg_message(&e));
        let mut conn = self.connect(&spec.database).await?.ok_or_else(|| {
            fail(
                KIND,
                &spec.schema,
                format!("database \"{}\" does not exist", spec.database),
            )
        })?;
        let client = conn.client()?;
        let owner = schema_owner(client, &spec.schema)
            .await
            .map_err(db_error)?
            .ok_or_else(|| {
                fail(
                    KIND,
                    &spec.schema,
                    format!(
                        "schema \"{}\" does not exist in database \"{}\"",
                        spec.schema, spec.database
                    ),
                )
            })?;
        let revoke_names: Vec<String> = revoke_from.iter().map(|(role, _)| role.clone()).collect();
        let still_there = existing_roles(client, &revoke_names)
            .await
            .map_err(db_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        lock_schema(&tx, &spec.schema).await.map_err(db_error)?;
        let settings = self.pool.settings();
        check_schema(&tx, settings, KIND, "schema", &spec.database, &spec.schema).await?;
        check_roles(
            &tx,
            settings,
            KIND,
            &spec.schema,
            "roles",
            "grant to",
            &spec.roles,
        )
        .await?;
        for (role, privileges) in revoke_from
            .iter()
            .filter(|(role, _)| still_there.contains(role))
        {
            for sql in statements(&spec.schema, &owner, role, privileges, false) {
                tx.batch_execute(&sql).await.map_err(db_error)?;
            }
        }
        for role in &spec.roles {
            for sql in statements(&spec.schema, &owner, role, &spec.privileges, true) {
                tx.batch_execute(&sql).await.map_err(db_error)?;
            }
        }
        tx.commit().await.map_err(db_error)
    }
}

fn state_spec(state: &Values) -> Result<Spec, DriverError> {
    let label = match state.get("schema") {
        Some(hcl::Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let mut clean = state.clone();
    clean.shift_remove("adopted");
    spec(&clean).map_err(|m| fail(KIND, &label, format!("state: {m}")))
}

/// Plan-time checks of the known evaluated inputs (those not yet known are
/// absent): the same rules as [`spec`], without a connection.
pub(super) fn validate(inputs: &Values) -> Vec<DriverError> {
    let mut errors = unknown_inputs(inputs, KEYS);
    check_present(&mut errors, inputs, "database", name);
    check_present(&mut errors, inputs, "schema", name);
    check_present(&mut errors, inputs, "roles", names);
    check_present(&mut errors, inputs, "privileges", privileges);
    errors
}

#[async_trait::async_trait]
impl Driver for Grant {
    async fn create(&self, _owner: &Owner, inputs: &Values) -> Result<Values, DriverError> {
        let spec = spec(inputs).map_err(|m| DriverError::new(format!("{KIND}: {m}")))?;
        self.apply(&spec, &[]).await?;
        self.read_back(&spec, false).await?.ok_or_else(|| {
            fail(
                KIND,
                &spec.schema,
                "the schema vanished right after the grant",
            )
        })
    }

    async fn read(&self, state_in: &Values) -> Result<Option<Values>, DriverError> {
        let spec = state_spec(state_in)?;
        self.read_back(&spec, adopted(state_in)).await
    }

    async fn update(
        &self,
        _owner: &Owner,
        state_in: &Values,
        inputs: &Values,
    ) -> Result<Values, DriverError> {
        let old = state_spec(state_in)?;
        let new = spec(inputs).map_err(|m| fail(KIND, &old.schema, m))?;
        if new.database != old.database || new.schema != old.schema {
            self.revoke_all(&old).await?;
            self.apply(&new, &[]).await?;
        } else {
            let dropped = old.privileges.minus(&new.privileges);
            let revoke: Vec<(String, Privileges)> = old
                .roles
                .iter()
                .map(|role| {
                    if new.roles.contains(role) {
                        (role.clone(), dropped.clone())
                    } else {
                        (role.clone(), old.privileges.clone())
                    }
                })
                .filter(|(_, privileges)| !privileges.is_empty())
                .collect();
            self.apply(&new, &revoke).await?;
        }
        self.read_back(&new, adopted(state_in))
            .await?
            .ok_or_else(|| {
                fail(
                    KIND,
                    &new.schema,
                    "the schema vanished right after the grant",
                )
            })
    }

    async fn delete(&self, _owner: &Owner, state_in: &Values) -> Result<(), DriverError> {
        let spec = state_spec(state_in)?;
        self.revoke_all(&spec).await
    }

    /// A grant carries no marker (it belongs to its schema): it is found when
    /// some of its roles hold all its privileges. Granting is idempotent, so
    /// `create` needs no adoption.
    async fn find(&self, _owner: &Owner, inputs: &Values) -> Result<Found, DriverError> {
        let spec = spec(inputs).map_err(|m| DriverError::new(format!("{KIND}: {m}")))?;
        Ok(match self.read_back(&spec, false).await? {
            Some(state) if !names(&state, "roles").unwrap_or_default().is_empty() => {
                Found::Ours(state)
            }
            _ => Found::Missing,
        })
    }

    async fn import(&self, _owner: &Owner, inputs: &Values) -> Result<Option<Values>, DriverError> {
        let spec = spec(inputs).map_err(|m| DriverError::new(format!("{KIND}: {m}")))?;
        self.read_back(&spec, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(privileges: hcl::Value) -> Values {
        let mut v = Values::new();
        v.insert("privileges".into(), privileges);
        v
    }

    #[test]
    fn privilege_words() {
        let read = privileges(&values("read".into()), "privileges").expect("read");
        assert_eq!(read.schema, ["USAGE"]);
        assert_eq!(read.table, ["SELECT"]);
        let write = privileges(&values("WRITE".into()), "privileges").expect("write");
        assert_eq!(write.table, ["SELECT", "INSERT", "UPDATE", "DELETE"]);
        let list = privileges(
            &values(vec!["usage", "SELECT", "create"].into()),
            "privileges",
        )
        .expect("list");
        assert_eq!(list.schema, ["USAGE", "CREATE"]);
        assert_eq!(list.table, ["SELECT"]);
        assert!(privileges(&values(vec!["SELECT; DROP TABLE x"].into()), "privileges").is_err());
        assert!(privileges(&values("admin".into()), "privileges").is_err());
        assert_eq!(write.minus(&read).table, ["INSERT", "UPDATE", "DELETE"]);
    }
}
