//! Helpers for the scenarios that provision on PostgreSQL for real: the test
//! cluster comes from the `PG*` variables (`scripts/test` starts one and exports
//! them; Terraform passes them on to the provider). The database is inspected
//! and altered with `psql` (on PATH), as the same superuser the provider uses.
//!
//! All the scenarios share ONE cluster and run in parallel threads, each over
//! every Terraform binary: every object name carries a per-test prefix and the
//! binary's version digits ([`version_tag`]), and each test first drops
//! whatever a crashed earlier run may have left under its names ([`drop_databases`],
//! [`drop_roles`]).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::harness::*;

/// The prefix every object the provider creates carries in its comment.
pub const MARKER_PREFIX: &str = "managed-by=terraform-provider-platform";

/// The ownership marker of one primitive of one resource.
pub fn marker(offering: &str, resource_id: &str, primitive: &str) -> String {
    format!("{MARKER_PREFIX} offering={offering} resource={resource_id} primitive={primitive}")
}

/// Whether `comment` is the ownership marker of that primitive of that
/// resource, of any instance (` generation=<12 hex digits>`, or none from
/// before generations).
pub fn is_marker(comment: &str, offering: &str, resource_id: &str, primitive: &str) -> bool {
    match comment.strip_prefix(&marker(offering, resource_id, primitive)) {
        Some("") => true,
        Some(rest) => rest.strip_prefix(" generation=").is_some_and(|g| {
            g.len() == 12
                && g.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }),
        None => false,
    }
}

/// Whether an instance `id` is resource `resource_id` (`orders~1f2e3d4c5b6a`).
pub fn is_instance_of(id: &str, resource_id: &str) -> bool {
    id.strip_prefix(resource_id)
        .and_then(|rest| rest.strip_prefix('~'))
        .is_some_and(|g| g.len() == 12)
}

/// True when acceptance tests are enabled AND a PostgreSQL is configured
/// (`PGHOST` set). Otherwise prints a loud SKIPPED notice; the caller returns.
pub fn pg_enabled() -> bool {
    if !acc_enabled() {
        return false;
    }
    if std::env::var("PGHOST").is_ok_and(|h| !h.is_empty()) {
        return true;
    }
    let name = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!();
    eprintln!("************************************************************");
    eprintln!("** SKIPPED: {name}");
    eprintln!("** SKIPPED: no PostgreSQL (scripts/test starts one)");
    eprintln!("************************************************************");
    false
}

/// The digits of a terraform binary's version ("1114" for v1.11.4), to make
/// object names unique per binary. Cached per binary.
pub fn version_tag(bin: &Path) -> String {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(tag) = cache.lock().expect("version cache").get(bin) {
        return tag.clone();
    }
    let out = Command::new(bin)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} version: {e}", bin.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    let tag: String = first
        .split_whitespace()
        .find(|w| w.starts_with('v'))
        .unwrap_or_else(|| panic!("no version in {first:?} from {}", bin.display()))
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    assert!(!tag.is_empty(), "no version digits in {first:?}");
    cache
        .lock()
        .expect("version cache")
        .insert(bin.to_path_buf(), tag.clone());
    tag
}

/// Runs `sql` with psql in database `db`; Ok(stdout: unaligned, tuples only,
/// `|`-separated) or Err(psql's output).
pub fn try_psql(db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql (is it on PATH?): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "psql -d {db} -c {sql:?} failed ({}):\n{stdout}{stderr}",
            out.status
        ))
    }
}

/// [`try_psql`], panicking on failure; the output trimmed.
#[track_caller]
pub fn psql(db: &str, sql: &str) -> String {
    match try_psql(db, sql) {
        Ok(out) => out.trim().to_owned(),
        Err(e) => panic!("{e}"),
    }
}

/// `'…'` SQL literal (names here are plain, but quote anyway).
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The maintenance database (`PGDATABASE`, else postgres).
pub fn maintenance_db() -> String {
    std::env::var("PGDATABASE")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "postgres".into())
}

/// One row of a query in the maintenance database, split on `|`; None when no row.
#[track_caller]
pub fn row(sql: &str) -> Option<Vec<String>> {
    let out = psql(&maintenance_db(), sql);
    out.lines()
        .next()
        .map(|l| l.split('|').map(str::to_owned).collect())
}

/// A role as pg_roles has it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleRow {
    pub can_login: bool,
    pub conn_limit: i64,
    pub comment: String,
}

#[track_caller]
pub fn role(name: &str) -> Option<RoleRow> {
    row(&format!(
        "SELECT rolcanlogin, rolconnlimit, coalesce(shobj_description(oid, 'pg_authid'), '') \
           FROM pg_roles WHERE rolname = {}",
        lit(name)
    ))
    .map(|r| RoleRow {
        can_login: r[0] == "t",
        conn_limit: r[1].parse().expect("rolconnlimit"),
        comment: r[2].clone(),
    })
}

/// A database as pg_database has it.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseRow {
    pub owner: String,
    pub conn_limit: i64,
    pub comment: String,
}

#[track_caller]
pub fn database(name: &str) -> Option<DatabaseRow> {
    row(&format!(
        "SELECT pg_get_userbyid(datdba), datconnlimit, coalesce(shobj_description(oid, 'pg_database'), '') \
           FROM pg_database WHERE datname = {}",
        lit(name)
    ))
    .map(|r| DatabaseRow {
        owner: r[0].clone(),
        conn_limit: r[1].parse().expect("datconnlimit"),
        comment: r[2].clone(),
    })
}

/// A schema of database `db` as pg_namespace has it: (owner, comment).
#[track_caller]
pub fn schema(db: &str, name: &str) -> Option<(String, String)> {
    let out = psql(
        db,
        &format!(
            "SELECT pg_get_userbyid(nspowner), coalesce(obj_description(oid, 'pg_namespace'), '') \
               FROM pg_namespace WHERE nspname = {}",
            lit(name)
        ),
    );
    out.lines().next().map(|l| {
        let mut parts = l.splitn(2, '|');
        (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        )
    })
}

/// Whether `role` holds `privilege` on schema `name` of database `db`.
#[track_caller]
pub fn has_schema_privilege(db: &str, role: &str, name: &str, privilege: &str) -> bool {
    psql(
        db,
        &format!(
            "SELECT has_schema_privilege({}, {}, {})",
            lit(role),
            lit(name),
            lit(privilege)
        ),
    ) == "t"
}

/// Roles and databases of the cluster whose comment marks them as the
/// provider's for a resource id (`resource=<id> `), as "role X" / "database X".
#[track_caller]
pub fn marked_objects(resource_id: &str) -> Vec<String> {
    let pattern = lit(&format!("%{MARKER_PREFIX}% resource={resource_id} %"));
    let out = psql(
        &maintenance_db(),
        &format!(
            "SELECT 'role ' || rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE {pattern} \
             UNION ALL \
             SELECT 'database ' || datname FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE {pattern}"
        ),
    );
    out.lines().map(str::to_owned).collect()
}

/// Schemas of database `db` marked as the provider's for a resource id.
#[track_caller]
pub fn marked_schemas(db: &str, resource_id: &str) -> Vec<String> {
    let pattern = lit(&format!("%{MARKER_PREFIX}% resource={resource_id} %"));
    psql(
        db,
        &format!(
            "SELECT nspname FROM pg_namespace WHERE obj_description(oid, 'pg_namespace') LIKE {pattern}"
        ),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Drops the databases if they exist (terminating their sessions).
#[track_caller]
pub fn drop_databases(names: &[&str]) {
    for name in names {
        psql(
            &maintenance_db(),
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        );
    }
}

/// Drops the roles if they exist (their databases must be gone first).
#[track_caller]
pub fn drop_roles(names: &[&str]) {
    for name in names {
        psql(
            &maintenance_db(),
            &format!("DROP ROLE IF EXISTS \"{name}\""),
        );
    }
}

/// `terraform state pull`, parsed.
#[track_caller]
pub fn state_pull(wd: &Workdir, bin: &Path, ctx: &str) -> serde_json::Value {
    let out = wd.tf(bin, &["state", "pull"]);
    if !out.success() {
        panic!("{ctx} state pull failed:\n{out}");
    }
    if out.stdout.trim().is_empty() {
        return serde_json::json!({});
    }
    stdout_json(&out)
}

/// Addresses in `terraform state list` (empty when there is no state).
#[track_caller]
pub fn state_list(wd: &Workdir, bin: &Path, ctx: &str) -> Vec<String> {
    let out = wd.tf(bin, &["state", "list"]);
    if !out.success() {
        // Terraform 1.0 fails `state list` without a state file; newer ones print nothing.
        if contains(&out, "No state file was found") {
            return Vec::new();
        }
        panic!("{ctx} state list failed:\n{out}");
    }
    out.stdout.lines().map(str::to_owned).collect()
}

/// The attributes of `address` in `terraform show -json` of the current state.
#[track_caller]
pub fn state_values(wd: &Workdir, bin: &Path, ctx: &str, address: &str) -> serde_json::Value {
    let show = wd.tf(bin, &["show", "-json"]);
    if !show.success() {
        panic!("{ctx} show -json failed:\n{show}");
    }
    let state = stdout_json(&show);
    state["values"]["root_module"]["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["address"] == address))
        .map(|r| r["values"].clone())
        .unwrap_or_else(|| panic!("{ctx} {address} not in state:\n{state:#}"))
}

/// `apply -auto-approve`, asserting success.
#[track_caller]
pub fn apply_ok(wd: &Workdir, bin: &Path, ctx: &str) -> Output {
    let out = wd.tf(bin, &["apply", "-input=false", "-auto-approve"]);
    if !out.success() {
        panic!("{ctx} apply failed:\n{out}");
    }
    crate::common::assert_no_crash(&out, ctx);
    out
}

/// `destroy -auto-approve`, asserting success.
#[track_caller]
pub fn destroy_ok(wd: &Workdir, bin: &Path, ctx: &str) -> Output {
    let out = wd.tf(bin, &["destroy", "-input=false", "-auto-approve"]);
    if !out.success() {
        panic!("{ctx} destroy failed:\n{out}");
    }
    crate::common::assert_no_crash(&out, ctx);
    out
}

/// `plan -detailed-exitcode` (plus `extra`): the output and its exit code
/// (0 no changes, 2 changes); panics on an error (exit 1).
#[track_caller]
pub fn plan_detailed(wd: &Workdir, bin: &Path, ctx: &str, extra: &[&str]) -> (Output, i32) {
    let mut args = vec!["plan", "-input=false", "-detailed-exitcode"];
    args.extend_from_slice(extra);
    let out = wd.tf(bin, &args);
    let code = out.status.code().unwrap_or(-1);
    if code != 0 && code != 2 {
        panic!("{ctx} plan {extra:?} failed:\n{out}");
    }
    crate::common::assert_no_crash(&out, ctx);
    (out, code)
}
