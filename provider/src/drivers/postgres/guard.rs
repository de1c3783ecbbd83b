//! Least privilege by construction: which roles a role may join (or a grant
//! may name) and which schemas a grant may touch. The catalog's patterns are
//! a convenience; this is the guarantee, checked by the drivers at apply
//! inside the transaction that grants.
//!
//! A role may be joined (`postgres.role` `member_of`, the ephemeral
//! credentials' `role`) or named by a grant (`postgres.grant` `roles`) only
//! when it carries the ownership marker or the provider block lists it in
//! `grantable_roles`, and never — allowlisted or not — when it, or any role
//! it is a member of (transitively), is the provider's own login role, a
//! superuser, a `pg_*` predefined role, `PUBLIC`, or has CREATEROLE,
//! REPLICATION or BYPASSRLS. A grant is made only on a schema that carries the
//! marker or that `grantable_schemas` lists as `database.schema`.

use tokio_postgres::GenericClient;

use super::super::DriverError;
use super::Settings;
use super::sql::{MARKER_PREFIX, fail, pg_message};

/// What a role name alone says against joining it (or granting to it): the
/// plan-time check, made again at apply.
pub fn static_role_refusal(settings: &Settings, role: &str) -> Option<String> {
    if role.starts_with("pg_") {
        return Some(format!(
            "\"{role}\" is a predefined PostgreSQL role (pg_*): those carry cluster-wide powers (reading every table, running server programs, ...) and are never handed out"
        ));
    }
    if role.eq_ignore_ascii_case("public") {
        return Some("PUBLIC is every role; it is never named".to_owned());
    }
    if settings.username.as_deref() == Some(role) {
        return Some(format!(
            "\"{role}\" is the role the provider connects as; handing it out would give its powers away"
        ));
    }
    None
}

/// One role (depth 0) and every role it is a member of, transitively: a
/// membership hands over what any of them can do.
const ANCESTRY: &str = "
WITH RECURSIVE up(oid, depth) AS (
    SELECT oid, 0 FROM pg_roles WHERE rolname = $1
  UNION
    SELECT m.roleid, up.depth + 1 FROM pg_auth_members m JOIN up ON m.member = up.oid
     WHERE up.depth < 64)
SELECT DISTINCT ON (r.oid) r.rolname::text, up.depth, r.rolsuper, r.rolcreaterole,
       r.rolreplication, r.rolbypassrls,
       r.rolname = current_user OR r.rolname = session_user,
       shobj_description(r.oid, 'pg_authid')
  FROM up JOIN pg_roles r ON r.oid = up.oid
 ORDER BY r.oid, up.depth";

/// Why `role` is refused: `None` when it may be joined / granted to.
/// A role that does not exist is not refused here (PostgreSQL says so).
pub async fn role_refusal(
    client: &impl GenericClient,
    settings: &Settings,
    role: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    if let Some(why) = static_role_refusal(settings, role) {
        return Ok(Some(why));
    }
    let rows = client.query(ANCESTRY, &[&role]).await?;
    let mut marked = false;
    let mut found = false;
    for row in &rows {
        let name: String = row.try_get(0)?;
        let depth: i32 = row.try_get(1)?;
        let flags = [
            (row.try_get::<_, bool>(2)?, "is a superuser"),
            (row.try_get::<_, bool>(3)?, "has CREATEROLE"),
            (row.try_get::<_, bool>(4)?, "has REPLICATION"),
            (row.try_get::<_, bool>(5)?, "has BYPASSRLS"),
            (
                row.try_get::<_, bool>(6)?,
                "is the role the provider connects as",
            ),
            (name.starts_with("pg_"), "is a predefined role (pg_*)"),
        ];
        let comment: Option<String> = row.try_get(7)?;
        if depth == 0 {
            found = true;
            marked = comment.is_some_and(|c| c.starts_with(MARKER_PREFIX));
        }
        if let Some((_, what)) = flags.iter().find(|(set, _)| *set) {
            return Ok(Some(if depth == 0 {
                format!("\"{name}\" {what}")
            } else {
                format!("\"{role}\" is a member of \"{name}\", which {what}")
            }));
        }
    }
    if found && !marked && !settings.grantable_roles.iter().any(|r| r == role) {
        return Ok(Some(format!(
            "\"{role}\" carries no ownership marker of this provider: only roles the platform created or imported, or that the provider block lists in postgres {{ grantable_roles = [...] }}, are handed out"
        )));
    }
    Ok(None)
}

/// Refuses the first of `roles` that may not be joined (`verb` = "join") or
/// granted to (`verb` = "grant to"); the error names `input`.
pub async fn check_roles(
    client: &impl GenericClient,
    settings: &Settings,
    kind: &str,
    label: &str,
    input: &str,
    verb: &str,
    roles: &[String],
) -> Result<(), DriverError> {
    for role in roles {
        let refusal = role_refusal(client, settings, role)
            .await
            .map_err(|e| fail(kind, label, pg_message(&e)))?;
        if let Some(why) = refusal {
            return Err(DriverError::at_input(
                format!(
                    "{kind} \"{label}\": input `{input}`: refused to {verb} role {role:?}: {why}"
                ),
                input,
            ));
        }
    }
    Ok(())
}

/// Refuses a grant on `schema` of `database` unless the schema carries the
/// ownership marker or `grantable_schemas` lists `database.schema`. A schema
/// that does not exist is not refused here.
pub async fn check_schema(
    client: &impl GenericClient,
    settings: &Settings,
    kind: &str,
    input: &str,
    database: &str,
    schema: &str,
) -> Result<(), DriverError> {
    let comment: Option<Option<String>> = client
        .query_opt(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await
        .and_then(|row| row.map(|row| row.try_get(0)).transpose())
        .map_err(|e| fail(kind, schema, pg_message(&e)))?;
    let Some(comment) = comment else {
        return Ok(());
    };
    let qualified = format!("{database}.{schema}");
    if comment.is_some_and(|c| c.starts_with(MARKER_PREFIX))
        || settings.grantable_schemas.contains(&qualified)
    {
        return Ok(());
    }
    Err(DriverError::at_input(
        format!(
            "{kind} \"{schema}\": input `{input}`: refused to grant on schema \"{schema}\" in database \"{database}\": it carries no ownership marker of this provider; grants are made only on schemas the platform created or imported, or that the provider block lists in postgres {{ grantable_schemas = [\"{qualified}\"] }}"
        ),
        input,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_refusals() {
        let settings = Settings {
            username: Some("platform".into()),
            ..Settings::default()
        };
        assert!(static_role_refusal(&settings, "pg_execute_server_program").is_some());
        assert!(static_role_refusal(&settings, "platform").is_some());
        assert!(static_role_refusal(&settings, "PUBLIC").is_some());
        assert!(static_role_refusal(&settings, "app_owner").is_none());
    }
}
