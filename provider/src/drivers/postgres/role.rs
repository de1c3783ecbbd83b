//! `postgres.role`: a role with a generated password when it can log in.
//!
//! Inputs: `name`, `login` (false), `connection_limit` (-1), `valid_until`
//! (timestamp or null), `member_of` ([]), `database` (only for `uri`; the
//! maintenance database by default). State: those as they really are, plus
//! `password`, `uri` (null unless `login`) and `adopted`.

use std::sync::Arc;

use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;

use super::super::{Driver, DriverError, Found, Owner, Values};
use super::guard::check_roles;
use super::pool::Pool;
use super::sql::{
    adopted, already_exists, boolean, check_marker, check_present, connection_limit,
    connection_uri, fail, found, generate_password, has_code, list_value, marker, name, names,
    opt_string_value, order_like, pg_message, quote_ident, quote_literal, scram_verifier,
    state_name, state_string, string, unknown_inputs, unknown_keys,
};

const KIND: &str = "postgres.role";
pub(super) const KEYS: &[&str] = &[
    "name",
    "login",
    "connection_limit",
    "valid_until",
    "member_of",
    "database",
];

pub struct Role {
    pool: Arc<Pool>,
}

struct Spec {
    name: String,
    login: bool,
    connection_limit: i32,
    valid_until: Option<String>,
    member_of: Vec<String>,
    database: Option<String>,
}

fn spec(inputs: &Values) -> Result<Spec, String> {
    let errors = unknown_keys(inputs, KEYS);
    if let Some(first) = errors.into_iter().next() {
        return Err(first);
    }
    Ok(Spec {
        name: name(inputs, "name")?,
        login: boolean(inputs, "login", false)?,
        connection_limit: connection_limit(inputs, "connection_limit")?,
        valid_until: string(inputs, "valid_until")?,
        member_of: names(inputs, "member_of")?,
        database: string(inputs, "database")?,
    })
}

/// A role as the catalogs say it is.
struct Row {
    name: String,
    login: bool,
    connection_limit: i32,
    /// RFC 3339 in UTC, or `infinity`.
    valid_until: Option<String>,
    comment: Option<String>,
    member_of: Vec<String>,
}

const FETCH: &str = r#"
SELECT r.rolname::text, r.rolcanlogin, r.rolconnlimit,
       CASE WHEN r.rolvaliduntil IS NULL THEN NULL
            WHEN NOT isfinite(r.rolvaliduntil) THEN r.rolvaliduntil::text
            ELSE to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
                 || CASE WHEN date_part('microseconds', r.rolvaliduntil)::bigint % 1000000 <> 0
                         THEN to_char(r.rolvaliduntil AT TIME ZONE 'UTC', '.US') ELSE '' END
                 || 'Z'
       END,
       shobj_description(r.oid, 'pg_authid'),
       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1)
  FROM pg_roles r WHERE r.rolname = $1"#;

async fn fetch(
    client: &impl GenericClient,
    role: &str,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let row = client.query_opt(FETCH, &[&role]).await?;
    Ok(match row {
        None => None,
        Some(row) => Some(Row {
            name: row.try_get(0)?,
            login: row.try_get(1)?,
            connection_limit: row.try_get(2)?,
            valid_until: row.try_get(3)?,
            comment: row.try_get(4)?,
            member_of: row.try_get(5)?,
        }),
    })
}

/// The instant as the user spelled it (`prior`) when it is the one the
/// server has, else the server's spelling; `infinity` (never expires) reads
/// as null when no expiry was asked for.
async fn spelled(
    client: &impl GenericClient,
    prior: Option<&str>,
    actual: Option<String>,
) -> Option<String> {
    let actual = actual?;
    match prior {
        None if actual == "infinity" => None,
        None => Some(actual),
        Some(prior) if prior == actual => Some(actual),
        Some(prior) => {
            let same = client
                .query_one(
                    "SELECT $1::text::timestamptz = $2::text::timestamptz",
                    &[&prior, &actual],
                )
                .await
                .ok()
                .and_then(|row| row.try_get::<_, Option<bool>>(0).ok().flatten());
            if same == Some(true) {
                Some(prior.to_owned())
            } else {
                Some(actual)
            }
        }
    }
}

/// Never lets the password reach a message.
fn scrub(error: DriverError, password: Option<&str>) -> DriverError {
    match password {
        Some(password) if !password.is_empty() && error.0.contains(password) => {
            DriverError(error.0.replace(password, "(redacted)"), error.1, error.2)
        }
        _ => error,
    }
}

impl Role {
    pub fn new(pool: Arc<Pool>) -> Role {
        Role { pool }
    }

    /// Writes `owner`'s marker on `role`.
    async fn mark(&self, owner: &Owner, role: &str) -> Result<(), DriverError> {
        let mut conn = self.pool.maintenance().await?;
        conn.client()?
            .batch_execute(&format!(
                "COMMENT ON ROLE {} IS {}",
                quote_ident(role),
                quote_literal(&marker(owner))
            ))
            .await
            .map_err(|e| fail(KIND, role, pg_message(&e)))
    }

    fn state(
        &self,
        row: &Row,
        valid_until: Option<String>,
        member_of: Vec<String>,
        password: Option<&str>,
        database: Option<&str>,
        adopted: bool,
    ) -> Values {
        let settings = self.pool.settings();
        let uri = row.login.then(|| {
            connection_uri(
                &row.name,
                password,
                settings.host_or_default(),
                settings.port_or_default(),
                database.unwrap_or(self.pool.maintenance_database()),
            )
        });
        let mut state = Values::new();
        state.insert("name".into(), row.name.clone().into());
        state.insert("login".into(), row.login.into());
        state.insert(
            "connection_limit".into(),
            i64::from(row.connection_limit).into(),
        );
        state.insert(
            "valid_until".into(),
            opt_string_value(valid_until.as_deref()),
        );
        state.insert("member_of".into(), list_value(&member_of));
        state.insert("database".into(), opt_string_value(database));
        state.insert("password".into(), opt_string_value(password));
        state.insert("uri".into(), opt_string_value(uri.as_deref()));
        state.insert("adopted".into(), adopted.into());
        state
    }
}

/// Plan-time checks of the known evaluated inputs (those not yet known are
/// absent): the same rules as [`spec`], without a connection.
pub(super) fn validate(inputs: &Values) -> Vec<DriverError> {
    let mut errors = unknown_inputs(inputs, KEYS);
    check_present(&mut errors, inputs, "name", name);
    check_present(&mut errors, inputs, "login", |v, k| boolean(v, k, false));
    check_present(&mut errors, inputs, "connection_limit", connection_limit);
    check_present(&mut errors, inputs, "valid_until", string);
    check_present(&mut errors, inputs, "member_of", names);
    check_present(&mut errors, inputs, "database", string);
    errors
}

#[async_trait::async_trait]
impl Driver for Role {
    async fn create(&self, owner: &Owner, inputs: &Values) -> Result<Values, DriverError> {
        let label = state_string(inputs, "name").unwrap_or_default();
        let spec = spec(inputs).map_err(|m| fail(KIND, &label, m))?;
        let role = spec.name.as_str();
        // Idempotent for this resource's own role (a re-run after a crash):
        // take it over and converge it; anything else by that name is refused.
        match self.find(owner, inputs).await? {
            Found::Missing => {}
            Found::Ours(state) | Found::OtherGeneration(state) | Found::Unfinished(state) => {
                self.mark(owner, role).await?;
                return self.update(owner, &state, inputs).await;
            }
            Found::Foreign(why) => return Err(why),
        }
        let mut conn = self.pool.maintenance().await?;
        let client = conn.client()?;
        let password = if spec.login {
            Some(generate_password()?)
        } else {
            None
        };
        let pw = password.as_deref();
        let db_error = |e: tokio_postgres::Error| scrub(fail(KIND, role, pg_message(&e)), pw);

        let mut sql = format!(
            "CREATE ROLE {} WITH {} CONNECTION LIMIT {}",
            quote_ident(role),
            if spec.login { "LOGIN" } else { "NOLOGIN" },
            spec.connection_limit
        );
        if let Some(valid_until) = &spec.valid_until {
            sql.push_str(" VALID UNTIL ");
            sql.push_str(&quote_literal(valid_until));
        }
        if let Some(password) = pw {
            sql.push_str(" PASSWORD ");
            sql.push_str(&quote_literal(&scram_verifier(password)?));
        }
        let tx = client.transaction().await.map_err(db_error)?;
        check_roles(
            &tx,
            self.pool.settings(),
            KIND,
            role,
            "member_of",
            "join",
            &spec.member_of,
        )
        .await?;
        tx.batch_execute(&sql).await.map_err(db_error)?;
        tx.batch_execute(&format!(
            "COMMENT ON ROLE {} IS {}",
            quote_ident(role),
            quote_literal(&marker(owner))
        ))
        .await
        .map_err(db_error)?;
        for group in &spec.member_of {
            tx.batch_execute(&format!(
                "GRANT {} TO {}",
                quote_ident(group),
                quote_ident(role)
            ))
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;

        let row = fetch(client, role)
            .await
            .map_err(db_error)?
            .ok_or_else(|| fail(KIND, role, "the role vanished right after it was created"))?;
        let valid_until =
            spelled(client, spec.valid_until.as_deref(), row.valid_until.clone()).await;
        let member_of = order_like(row.member_of.clone(), &spec.member_of);
        Ok(self.state(
            &row,
            valid_until,
            member_of,
            pw,
            spec.database.as_deref(),
            false,
        ))
    }

    async fn read(&self, state: &Values) -> Result<Option<Values>, DriverError> {
        let role = state_name(KIND, state)?;
        let password = state_string(state, "password");
        let mut conn = self.pool.maintenance().await?;
        let client = conn.client()?;
        let db_error = |e: tokio_postgres::Error| {
            scrub(fail(KIND, &role, pg_message(&e)), password.as_deref())
        };
        let Some(row) = fetch(client, &role).await.map_err(db_error)? else {
            return Ok(None);
        };
        let prior_valid_until = state_string(state, "valid_until");
        let valid_until = spelled(
            client,
            prior_valid_until.as_deref(),
            row.valid_until.clone(),
        )
        .await;
        let prior_members = names(state, "member_of").unwrap_or_default();
        let member_of = order_like(row.member_of.clone(), &prior_members);
        let database = state_string(state, "database");
        Ok(Some(self.state(
            &row,
            valid_until,
            member_of,
            password.as_deref(),
            database.as_deref(),
            adopted(state),
        )))
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
        let old_password = state_string(state, "password").filter(|p| !p.is_empty());
        let new_password = if spec.login && old_password.is_none() {
            Some(generate_password()?)
        } else {
            None
        };
        let password = new_password.clone().or(old_password);
        let pw = password.as_deref();
        let db_error = |e: tokio_postgres::Error| scrub(fail(KIND, &old, pg_message(&e)), pw);

        let mut conn = self.pool.maintenance().await?;
        let client = conn.client()?;
        let Some(row) = fetch(client, &old).await.map_err(db_error)? else {
            return Err(fail(KIND, &old, format!("role \"{old}\" no longer exists")));
        };
        check_marker(
            KIND,
            "role",
            &old,
            row.comment.as_deref(),
            owner,
            adopted(state),
        )?;
        if new != old && fetch(client, new).await.map_err(db_error)?.is_some() {
            return Err(already_exists(KIND, "role", new));
        }

        let tx = client.transaction().await.map_err(db_error)?;
        // Only memberships this update adds: one granted earlier was checked then.
        let joining: Vec<String> = spec
            .member_of
            .iter()
            .filter(|g| !row.member_of.contains(g))
            .cloned()
            .collect();
        check_roles(
            &tx,
            self.pool.settings(),
            KIND,
            &old,
            "member_of",
            "join",
            &joining,
        )
        .await?;
        if new != old {
            tx.batch_execute(&format!(
                "ALTER ROLE {} RENAME TO {}",
                quote_ident(&old),
                quote_ident(new)
            ))
            .await
            .map_err(db_error)?;
        }
        let mut sql = format!(
            "ALTER ROLE {} WITH {} CONNECTION LIMIT {}",
            quote_ident(new),
            if spec.login { "LOGIN" } else { "NOLOGIN" },
            spec.connection_limit
        );
        match (&spec.valid_until, &row.valid_until) {
            (Some(valid_until), _) => {
                sql.push_str(" VALID UNTIL ");
                sql.push_str(&quote_literal(valid_until));
            }
            // No expiry asked for: 'infinity' is how PostgreSQL spells "never".
            (None, Some(_)) => sql.push_str(" VALID UNTIL 'infinity'"),
            (None, None) => {}
        }
        if let Some(password) = &new_password {
            sql.push_str(" PASSWORD ");
            sql.push_str(&quote_literal(&scram_verifier(password)?));
        }
        tx.batch_execute(&sql).await.map_err(db_error)?;
        for group in row.member_of.iter().filter(|g| !spec.member_of.contains(g)) {
            tx.batch_execute(&format!(
                "REVOKE {} FROM {}",
                quote_ident(group),
                quote_ident(new)
            ))
            .await
            .map_err(db_error)?;
        }
        for group in spec.member_of.iter().filter(|g| !row.member_of.contains(g)) {
            tx.batch_execute(&format!(
                "GRANT {} TO {}",
                quote_ident(group),
                quote_ident(new)
            ))
            .await
            .map_err(db_error)?;
        }
        tx.batch_execute(&format!(
            "COMMENT ON ROLE {} IS {}",
            quote_ident(new),
            quote_literal(&marker(owner))
        ))
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;

        let row = fetch(client, new)
            .await
            .map_err(db_error)?
            .ok_or_else(|| fail(KIND, new, "the role vanished right after it was altered"))?;
        let valid_until =
            spelled(client, spec.valid_until.as_deref(), row.valid_until.clone()).await;
        let member_of = order_like(row.member_of.clone(), &spec.member_of);
        Ok(self.state(
            &row,
            valid_until,
            member_of,
            pw,
            spec.database.as_deref(),
            adopted(state),
        ))
    }

    async fn delete(&self, owner: &Owner, state: &Values) -> Result<(), DriverError> {
        let role = state_name(KIND, state)?;
        let mut conn = self.pool.maintenance().await?;
        let client = conn.client()?;
        let db_error = |e: tokio_postgres::Error| fail(KIND, &role, pg_message(&e));
        let Some(row) = fetch(client, &role).await.map_err(db_error)? else {
            return Ok(());
        };
        check_marker(
            KIND,
            "role",
            &role,
            row.comment.as_deref(),
            owner,
            adopted(state),
        )?;
        match client
            .batch_execute(&format!("DROP ROLE {}", quote_ident(&role)))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if has_code(&e, &SqlState::UNDEFINED_OBJECT) => Ok(()),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn find(&self, owner: &Owner, inputs: &Values) -> Result<Found, DriverError> {
        let label = state_string(inputs, "name").unwrap_or_default();
        let role = name(inputs, "name").map_err(|m| fail(KIND, &label, m))?;
        let mut conn = self.pool.maintenance().await?;
        let client = conn.client()?;
        let db_error = |e: tokio_postgres::Error| fail(KIND, &role, pg_message(&e));
        let Some(row) = fetch(client, &role).await.map_err(db_error)? else {
            return Ok(Found::Missing);
        };
        let wanted_valid_until = string(inputs, "valid_until").ok().flatten();
        let valid_until = spelled(
            client,
            wanted_valid_until.as_deref(),
            row.valid_until.clone(),
        )
        .await;
        let wanted_members = names(inputs, "member_of").unwrap_or_default();
        let member_of = order_like(row.member_of.clone(), &wanted_members);
        let database = string(inputs, "database").ok().flatten();
        let state = self.state(
            &row,
            valid_until,
            member_of,
            None,
            database.as_deref(),
            false,
        );
        Ok(found(
            KIND,
            "role",
            &role,
            row.comment.as_deref(),
            owner,
            state,
        ))
    }

    fn forget_secrets(&self, state: &mut Values) -> bool {
        state.insert("password".into(), hcl::Value::Null);
        true
    }

    async fn import(&self, owner: &Owner, inputs: &Values) -> Result<Option<Values>, DriverError> {
        let label = state_string(inputs, "name").unwrap_or_default();
        let role = name(inputs, "name").map_err(|m| fail(KIND, &label, m))?;
        let mut conn = self.pool.maintenance().await?;
        let client = conn.client()?;
        let db_error = |e: tokio_postgres::Error| fail(KIND, &role, pg_message(&e));
        if fetch(client, &role).await.map_err(db_error)?.is_none() {
            return Ok(None);
        }
        client
            .batch_execute(&format!(
                "COMMENT ON ROLE {} IS {}",
                quote_ident(&role),
                quote_literal(&marker(owner))
            ))
            .await
            .map_err(db_error)?;
        let Some(row) = fetch(client, &role).await.map_err(db_error)? else {
            return Ok(None);
        };
        let wanted_valid_until = string(inputs, "valid_until").ok().flatten();
        let valid_until = spelled(
            client,
            wanted_valid_until.as_deref(),
            row.valid_until.clone(),
        )
        .await;
        let wanted_members = names(inputs, "member_of").unwrap_or_default();
        let member_of = order_like(row.member_of.clone(), &wanted_members);
        let database = string(inputs, "database").ok().flatten();
        Ok(Some(self.state(
            &row,
            valid_until,
            member_of,
            None,
            database.as_deref(),
            true,
        )))
    }
}
