//! Real provisioning on PostgreSQL through the drivers, for each example
//! offering and every Terraform binary: create → check the catalogs and the
//! ownership markers → import into a fresh state (no changes) → update in place
//! → replace → out-of-band drift (refresh-only reports it, plan undoes it) →
//! destroy (nothing of ours left). Plus: a composition failing part-way leaves
//! no orphan, and a generated password never shows up in output or logs.
//!
//! Needs `PGHOST` & co. (scripts/test starts a cluster); without them each test
//! prints "SKIPPED: no PostgreSQL".

use crate::common::*;
use crate::harness::*;
use crate::pg::{self, *};

// ---------------------------------------------------------------------------
// platform_postgres_database

const DB_ADDR: &str = "platform_postgres_database.x";

fn db_config(name: &str, connection_limit: u32, labels: bool) -> String {
    let labels = if labels {
        "  labels = {\n    service = \"acceptance\"\n  }\n"
    } else {
        ""
    };
    format!(
        r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "platform_postgres_database" "x" {{
  name             = "{name}"
  tier             = "small"
  connection_limit = {connection_limit}
{labels}}}
"#
    )
}

/// Asserts the database `name` and its owner role exist as the provider makes
/// them for resource id `name`: markers, owner, limits.
#[track_caller]
fn assert_database_provisioned(ctx: &str, name: &str, role_limit: i64) {
    let owner = format!("{name}_owner");
    let role =
        pg::role(&owner).unwrap_or_else(|| panic!("{ctx} role {owner} missing from pg_roles"));
    assert!(role.can_login, "{ctx} role {owner} cannot log in: {role:?}");
    assert_eq!(role.conn_limit, role_limit, "{ctx} rolconnlimit of {owner}");
    assert!(
        is_marker(&role.comment, "postgres_database", name, "owner"),
        "{ctx} ownership marker of role {owner}"
    );
    let db = pg::database(name)
        .unwrap_or_else(|| panic!("{ctx} database {name} missing from pg_database"));
    assert_eq!(db.owner, owner, "{ctx} owner of database {name}");
    // tier "small": max_connections = 50.
    assert_eq!(db.conn_limit, 50, "{ctx} datconnlimit of {name}");
    assert!(
        is_marker(&db.comment, "postgres_database", name, "db"),
        "{ctx} ownership marker of database {name}"
    );
}

/// Nothing named `name` / `<name>_owner`, nor marked for resource `name`.
#[track_caller]
fn assert_database_gone(ctx: &str, name: &str) {
    let owner = format!("{name}_owner");
    assert_eq!(
        pg::database(name),
        None,
        "{ctx} database {name} still exists"
    );
    assert_eq!(pg::role(&owner), None, "{ctx} role {owner} still exists");
    let marked = marked_objects(name);
    assert!(
        marked.is_empty(),
        "{ctx} objects still marked for resource {name}: {marked:?}"
    );
}

fn drop_database_resource(names: &[&str]) {
    drop_databases(names);
    let roles: Vec<String> = names.iter().map(|n| format!("{n}_owner")).collect();
    drop_roles(&roles.iter().map(String::as_str).collect::<Vec<_>>());
}

/// "# ADDR has changed" (Terraform ≥ 1.2) or "# ADDR has been changed" (1.0/1.1).
#[track_caller]
fn assert_drift_reported(out: &Output, ctx: &str, addr: &str) {
    if !contains(out, &format!("# {addr} has changed"))
        && !contains(out, &format!("# {addr} has been changed"))
    {
        panic!("{ctx} expected the drift of {addr} to be reported:\n{out}");
    }
}

#[test]
fn postgres_database_lifecycle() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("pg_database", |bin, ctx| {
        let tag = version_tag(bin);
        let name = format!("acc_db_{tag}");
        let renamed = format!("acc_db2_{tag}");
        drop_database_resource(&[&name, &renamed]);

        // Create.
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &db_config(&name, 20, true));
        let apply = apply_ok(&wd, bin, ctx);
        assert_contains(
            &apply,
            "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.",
        );
        assert!(!contains(&apply, "No driver"), "{ctx}\n{apply}");
        assert_database_provisioned(ctx, &name, 20);
        let values = state_values(&wd, bin, ctx, DB_ADDR);
        assert!(
            is_instance_of(values["id"].as_str().unwrap_or_default(), &name),
            "{ctx} {values:#}"
        );
        assert_eq!(
            values["owner_role"],
            format!("{name}_owner").as_str(),
            "{ctx} {values:#}"
        );
        let (same, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(
            code, 0,
            "{ctx} plan right after apply is not empty:\n{same}"
        );

        // Import into a fresh work dir: the next plan shows no changes. (No
        // labels: import cannot recover them; team comes from default_team.)
        let fresh = Workdir::dev_overrides();
        fresh.write("main.tf", &db_config(&name, 20, false));
        let import = fresh.tf(bin, &["import", "-input=false", DB_ADDR, &name]);
        assert_success(&import);
        assert_no_crash(&import, ctx);
        assert_contains(&import, "Import successful!");
        let (after_import, code) = plan_detailed(&fresh, bin, ctx, &[]);
        assert_eq!(
            code, 0,
            "{ctx} plan after import should show no changes (exit 0):\n{after_import}"
        );
        assert_contains(&after_import, "No changes.");
        let imported = state_values(&fresh, bin, ctx, DB_ADDR);
        assert_eq!(imported["team"], "checkout", "{ctx} {imported:#}");
        assert_eq!(imported["tier"], "small", "{ctx} {imported:#}");
        assert_eq!(
            num(&imported["connection_limit"]),
            Some(20.0),
            "{ctx} {imported:#}"
        );
        // Import re-marks the objects for the same resource id, a new instance.
        assert_database_provisioned(ctx, &name, 20);
        // It took them over: the first state's instance may neither change
        // nor drop them any more, until it imports them back.
        wd.write("main.tf", &db_config(&name, 25, true));
        let refused = wd.tf(bin, &["apply", "-input=false", "-auto-approve"]);
        assert_failure(&refused);
        assert_no_crash(&refused, ctx);
        assert_contains_norm(
            &refused,
            ctx,
            "has been taken over by another instance of this resource",
        );
        assert_database_provisioned(ctx, &name, 20);
        assert_success(&wd.tf(bin, &["state", "rm", DB_ADDR]));
        assert_success(&wd.tf(bin, &["import", "-input=false", DB_ADDR, &name]));
        wd.write("main.tf", &db_config(&name, 20, true));
        apply_ok(&wd, bin, ctx);

        // Update in place: connection_limit 20 -> 30.
        wd.write("main.tf", &db_config(&name, 30, true));
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 2, "{ctx}\n{plan}");
        assert_contains(&plan, &format!("# {DB_ADDR} will be updated in-place"));
        assert_line(&plan, ctx, &["~ connection_limit", "20 -> 30"]);
        assert_contains(&plan, "Plan: 0 to add, 1 to change, 0 to destroy.");
        let apply = apply_ok(&wd, bin, ctx);
        assert_contains(&apply, "Resources: 0 added, 1 changed, 0 destroyed.");
        assert_database_provisioned(ctx, &name, 30);

        // Replace: a new name.
        wd.write("main.tf", &db_config(&renamed, 30, true));
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 2, "{ctx}\n{plan}");
        assert_contains(&plan, &format!("# {DB_ADDR} must be replaced"));
        assert_line(
            &plan,
            ctx,
            &[
                "~ name",
                &format!("\"{name}\" -> \"{renamed}\""),
                "# forces replacement",
            ],
        );
        assert_contains(&plan, "Plan: 1 to add, 0 to change, 1 to destroy.");
        let apply = apply_ok(&wd, bin, ctx);
        assert_contains(&apply, "Resources: 1 added, 0 changed, 1 destroyed.");
        assert_database_provisioned(ctx, &renamed, 30);
        // Checked last, so the later steps still run when the old objects
        // survived the replace (they are then dropped by hand).
        let orphans = orphans_of_replace(&marked_objects(&name), &apply);
        if !orphans.is_empty() {
            drop_database_resource(&[&name]);
        }

        // Out-of-band change: refresh-only reports it, plan undoes it.
        psql(
            &maintenance_db(),
            &format!("ALTER ROLE \"{renamed}_owner\" CONNECTION LIMIT 99"),
        );
        let refresh = wd.tf(bin, &["plan", "-input=false", "-refresh-only"]);
        assert_success(&refresh);
        assert_no_crash(&refresh, ctx);
        assert_drift_reported(&refresh, ctx, DB_ADDR);
        assert_line(&refresh, ctx, &["~ connection_limit", "30 -> 99"]);
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 2, "{ctx}\n{plan}");
        assert_contains(&plan, &format!("# {DB_ADDR} will be updated in-place"));
        assert_line(&plan, ctx, &["~ connection_limit", "99 -> 30"]);
        assert_contains(&plan, "Plan: 0 to add, 1 to change, 0 to destroy.");
        apply_ok(&wd, bin, ctx);
        assert_database_provisioned(ctx, &renamed, 30);

        // Destroy: nothing of ours left, by name or by marker.
        let destroy = destroy_ok(&wd, bin, ctx);
        assert_contains(&destroy, "Resources: 1 destroyed.");
        assert_database_gone(ctx, &renamed);
        assert_database_gone(ctx, &name);
        assert!(
            state_list(&wd, bin, ctx).is_empty(),
            "{ctx} state not empty after destroy"
        );
        assert!(
            orphans.is_empty(),
            "{ctx} the replace left the old objects behind: {orphans}"
        );
    });
}

/// After a replace: "" when nothing marked for the old resource is left,
/// else a message naming what is (with the apply's output).
fn orphans_of_replace(left: &[String], apply: &Output) -> String {
    if left.is_empty() {
        String::new()
    } else {
        format!(
            "{} (still in the cluster after the replace; dropped by hand so the test goes on)\n{apply}",
            left.join(", ")
        )
    }
}

// ---------------------------------------------------------------------------
// platform_postgres_schema

const SCHEMA_ADDR: &str = "platform_postgres_schema.x";

fn schema_config(database: &str, name: &str, readers: &[&str]) -> String {
    // Readers are made by hand (not ours): the provider block must list them.
    let (readers, provider) = if readers.is_empty() {
        (String::new(), PROVIDER_BLOCK.to_owned())
    } else {
        let list: Vec<String> = readers.iter().map(|r| format!("\"{r}\"")).collect();
        (
            format!("  readers  = [{}]\n", list.join(", ")),
            format!(
                "provider \"platform\" {{\n  default_team = \"checkout\"\n  postgres {{\n    grantable_roles = [{}]\n  }}\n}}\n",
                list.join(", ")
            ),
        )
    };
    format!(
        r#"{REQUIRED_PLATFORM}
{provider}
resource "platform_postgres_schema" "x" {{
  database = "{database}"
  name     = "{name}"
{readers}}}
"#
    )
}

/// Asserts schema `name` of `database` and its owner role exist as the
/// provider makes them for resource id `database/name`.
#[track_caller]
fn assert_schema_provisioned(ctx: &str, database: &str, name: &str) {
    let id = format!("{database}/{name}");
    let owner = format!("{database}_{name}_owner");
    let role =
        pg::role(&owner).unwrap_or_else(|| panic!("{ctx} role {owner} missing from pg_roles"));
    assert!(!role.can_login, "{ctx} role {owner} can log in: {role:?}");
    assert!(
        is_marker(&role.comment, "postgres_schema", &id, "owner"),
        "{ctx} ownership marker of role {owner}"
    );
    let (schema_owner, comment) = pg::schema(database, name)
        .unwrap_or_else(|| panic!("{ctx} schema {name} missing from {database}.pg_namespace"));
    assert_eq!(schema_owner, owner, "{ctx} owner of schema {name}");
    assert!(
        is_marker(&comment, "postgres_schema", &id, "schema"),
        "{ctx} ownership marker of schema {name}"
    );
}

#[track_caller]
fn assert_schema_gone(ctx: &str, database: &str, name: &str) {
    let id = format!("{database}/{name}");
    let owner = format!("{database}_{name}_owner");
    assert_eq!(
        pg::schema(database, name),
        None,
        "{ctx} schema {name} still exists in {database}"
    );
    assert_eq!(pg::role(&owner), None, "{ctx} role {owner} still exists");
    let marked = marked_objects(&id);
    assert!(marked.is_empty(), "{ctx} still marked for {id}: {marked:?}");
    let marked = marked_schemas(database, &id);
    assert!(
        marked.is_empty(),
        "{ctx} schemas still marked for {id}: {marked:?}"
    );
}

#[test]
fn postgres_schema_lifecycle() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("pg_schema", |bin, ctx| {
        let tag = version_tag(bin);
        let shared = format!("acc_sh_{tag}");
        let reader = format!("acc_rd_{tag}");
        let (first, second) = ("tenant_a", "tenant_b");
        // The shared database and the reader role are not ours: made by hand.
        drop_databases(&[&shared]);
        drop_roles(&[
            &reader,
            &format!("{shared}_{first}_owner"),
            &format!("{shared}_{second}_owner"),
        ]);
        psql(&maintenance_db(), &format!("CREATE DATABASE \"{shared}\""));
        psql(&maintenance_db(), &format!("CREATE ROLE \"{reader}\""));

        // Create (no readers yet).
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &schema_config(&shared, first, &[]));
        let apply = apply_ok(&wd, bin, ctx);
        assert_contains(
            &apply,
            "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.",
        );
        assert_schema_provisioned(ctx, &shared, first);
        let values = state_values(&wd, bin, ctx, SCHEMA_ADDR);
        assert!(
            is_instance_of(
                values["id"].as_str().unwrap_or_default(),
                &format!("{shared}/{first}")
            ),
            "{ctx} {values:#}"
        );

        // Import into a fresh work dir with id DATABASE/NAME: no changes.
        let fresh = Workdir::dev_overrides();
        fresh.write("main.tf", &schema_config(&shared, first, &[]));
        let id = format!("{shared}/{first}");
        let import = fresh.tf(bin, &["import", "-input=false", SCHEMA_ADDR, &id]);
        assert_success(&import);
        assert_no_crash(&import, ctx);
        assert_contains(&import, "Import successful!");
        let (after_import, code) = plan_detailed(&fresh, bin, ctx, &[]);
        assert_eq!(
            code, 0,
            "{ctx} plan after import should show no changes (exit 0):\n{after_import}"
        );
        assert_schema_provisioned(ctx, &shared, first);
        // The import made the fresh state the manager; the first takes them back.
        assert_success(&wd.tf(bin, &["state", "rm", SCHEMA_ADDR]));
        assert_success(&wd.tf(bin, &["import", "-input=false", SCHEMA_ADDR, &id]));

        // Update in place: a reader.
        wd.write("main.tf", &schema_config(&shared, first, &[&reader]));
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 2, "{ctx}\n{plan}");
        assert_contains(&plan, &format!("# {SCHEMA_ADDR} will be updated in-place"));
        assert_line(&plan, ctx, &["+", &format!("\"{reader}\"")]);
        assert_contains(&plan, "Plan: 0 to add, 1 to change, 0 to destroy.");
        apply_ok(&wd, bin, ctx);
        assert!(
            has_schema_privilege(&shared, &reader, first, "USAGE"),
            "{ctx} {reader} has no USAGE on {first} after the update"
        );

        // Replace: a new name.
        wd.write("main.tf", &schema_config(&shared, second, &[&reader]));
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 2, "{ctx}\n{plan}");
        assert_contains(&plan, &format!("# {SCHEMA_ADDR} must be replaced"));
        assert_line(
            &plan,
            ctx,
            &[
                "~ name",
                &format!("\"{first}\" -> \"{second}\""),
                "# forces replacement",
            ],
        );
        let apply = apply_ok(&wd, bin, ctx);
        assert_contains(&apply, "Resources: 1 added, 0 changed, 1 destroyed.");
        assert_schema_provisioned(ctx, &shared, second);
        // Checked last (see postgres_database_lifecycle).
        let old_id = format!("{shared}/{first}");
        let mut left = marked_objects(&old_id);
        left.extend(
            marked_schemas(&shared, &old_id)
                .into_iter()
                .map(|s| format!("schema {s}")),
        );
        let orphans = orphans_of_replace(&left, &apply);
        if !orphans.is_empty() {
            psql(
                &shared,
                &format!("DROP SCHEMA IF EXISTS \"{first}\" CASCADE"),
            );
            psql(
                &shared,
                &format!("DROP OWNED BY \"{shared}_{first}_owner\""),
            );
            drop_roles(&[&format!("{shared}_{first}_owner")]);
        }
        assert_schema_gone(ctx, &shared, first);
        assert!(
            has_schema_privilege(&shared, &reader, second, "USAGE"),
            "{ctx} {reader} has no USAGE on {second} after the replace"
        );

        // Out-of-band REVOKE: readers drift.
        psql(
            &shared,
            &format!("REVOKE USAGE ON SCHEMA \"{second}\" FROM \"{reader}\""),
        );
        let refresh = wd.tf(bin, &["plan", "-input=false", "-refresh-only"]);
        assert_success(&refresh);
        assert_no_crash(&refresh, ctx);
        assert_drift_reported(&refresh, ctx, SCHEMA_ADDR);
        assert_line(&refresh, ctx, &["~ readers"]);
        assert_line(&refresh, ctx, &["-", &format!("\"{reader}\"")]);
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 2, "{ctx}\n{plan}");
        assert_contains(&plan, &format!("# {SCHEMA_ADDR} will be updated in-place"));
        assert_line(&plan, ctx, &["+", &format!("\"{reader}\"")]);
        apply_ok(&wd, bin, ctx);
        assert!(
            has_schema_privilege(&shared, &reader, second, "USAGE"),
            "{ctx} the apply after drift did not grant USAGE back"
        );

        // Destroy: nothing of ours left; the shared database and the reader stay.
        let destroy = destroy_ok(&wd, bin, ctx);
        assert_contains(&destroy, "Resources: 1 destroyed.");
        assert_schema_gone(ctx, &shared, second);
        assert_schema_gone(ctx, &shared, first);
        assert!(
            pg::database(&shared).is_some(),
            "{ctx} destroy removed the shared database {shared}, which is not ours"
        );
        assert!(
            pg::role(&reader).is_some(),
            "{ctx} destroy removed the reader role {reader}, which is not ours"
        );
        assert!(
            state_list(&wd, bin, ctx).is_empty(),
            "{ctx} state not empty after destroy"
        );
        drop_databases(&[&shared]);
        drop_roles(&[&reader]);
        assert!(
            orphans.is_empty(),
            "{ctx} the replace left the old objects behind: {orphans}"
        );
    });
}

// ---------------------------------------------------------------------------
// Failure part-way through a composition

#[test]
fn postgres_failure_midway_undoes_and_names_the_cause() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("pg_midway", |bin, ctx| {
        let tag = version_tag(bin);
        let name = format!("acc_fail_{tag}");
        let owner = format!("{name}_owner");
        drop_database_resource(&[&name]);
        // Somebody else's database (unmarked) already has the name.
        psql(&maintenance_db(), &format!("CREATE DATABASE \"{name}\""));

        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &db_config(&name, 20, false));
        let apply = wd.tf(bin, &["apply", "-input=false", "-auto-approve"]);
        assert_failure(&apply);
        assert_no_crash(&apply, ctx);
        assert_contains(&apply, "Error: Cannot create postgres_database");
        assert_contains_norm(&apply, ctx, "primitive \"db\" (postgres.database)");
        assert_contains_norm(&apply, ctx, &format!("database \"{name}\" already exists"));
        assert_contains_norm(&apply, ctx, "undone: owner");
        assert_eq!(count_errors(&apply), 1, "{ctx}\n{apply}");

        // The role made first was undone; nothing in state; their database untouched.
        assert_eq!(
            pg::role(&owner),
            None,
            "{ctx} orphan role {owner} left after the failed create:\n{apply}"
        );
        assert!(
            marked_objects(&name).is_empty(),
            "{ctx} objects marked for {name} left: {:?}",
            marked_objects(&name)
        );
        assert!(
            state_list(&wd, bin, ctx).is_empty(),
            "{ctx} a failed create must leave the state empty"
        );
        let theirs = pg::database(&name)
            .unwrap_or_else(|| panic!("{ctx} the pre-existing database {name} was dropped"));
        assert_eq!(
            theirs.comment, "",
            "{ctx} the pre-existing database was marked"
        );

        // Once the name is free, the same config applies (nothing left in the way).
        drop_databases(&[&name]);
        apply_ok(&wd, bin, ctx);
        assert_database_provisioned(ctx, &name, 20);
        destroy_ok(&wd, bin, ctx);
        assert_database_gone(ctx, &name);
    });
}

// ---------------------------------------------------------------------------
// The generated password never shows

/// Panics, showing the offending lines, when `out` contains `secret`.
#[track_caller]
fn assert_no_secret(out: &Output, ctx: &str, what: &str, secret: &str) {
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| l.contains(secret))
        .collect();
    if !lines.is_empty() {
        panic!(
            "{ctx} the {what} appears in the output of `{}` ({} lines):\n{}",
            out.cmdline,
            lines.len(),
            lines.join("\n")
        );
    }
}

/// Tries `SELECT current_user` as `user` with `password` on database `db`.
fn login_works(user: &str, password: &str, db: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-d",
            db,
            "-c",
            "SELECT current_user",
        ])
        .env("PGUSER", user)
        .env("PGPASSWORD", password)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The password inside `postgres://user:password@…`.
fn password_of(uri: &str, user: &str) -> Option<String> {
    let rest = uri.strip_prefix(&format!("postgres://{user}:"))?;
    let at = rest.find('@')?;
    Some(rest[..at].to_owned())
}

#[test]
fn postgres_password_never_in_output_or_logs() {
    if !pg_enabled() {
        return;
    }
    let trace: &[(&str, &str)] = &[("TF_LOG", "TRACE"), ("TF_LOG_PROVIDER", "trace")];
    for_each_bin("pg_canary", |bin, ctx| {
        let tag = version_tag(bin);
        let name = format!("acc_pw_{tag}");
        let owner = format!("{name}_owner");
        drop_database_resource(&[&name]);
        let with_output = |limit: u32| {
            format!(
                "{}\noutput \"uri\" {{\n  value     = {DB_ADDR}.connection_uri\n  sensitive = true\n}}\n",
                db_config(&name, limit, true)
            )
        };
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &with_output(20));
        let mut outputs: Vec<(&str, Output)> = Vec::new();

        let apply = wd.tf_env(bin, &["apply", "-input=false", "-auto-approve"], trace);
        assert_success(&apply);
        assert!(
            apply.stderr.contains("[TRACE]"),
            "{ctx} TF_LOG=TRACE produced no trace log on stderr:\n{}",
            apply.stderr.lines().take(20).collect::<Vec<_>>().join("\n")
        );
        outputs.push(("apply (TRACE)", apply));

        // The canary: the generated password, from the state.
        let state = state_pull(&wd, bin, ctx);
        let uri = state["resources"]
            .as_array()
            .and_then(|rs| {
                rs.iter()
                    .find(|r| r["type"] == "platform_postgres_database")
            })
            .and_then(|r| r["instances"][0]["attributes"]["connection_uri"].as_str())
            .unwrap_or_else(|| panic!("{ctx} no connection_uri in state:\n{state:#}"))
            .to_owned();
        let password = password_of(&uri, &owner)
            .unwrap_or_else(|| panic!("{ctx} no password in connection_uri {uri:?}"));
        assert!(password.len() >= 16, "{ctx} short password {password:?}");
        assert_eq!(
            login_works(&owner, &password, &name).as_deref(),
            Ok(owner.as_str()),
            "{ctx} the password from the state does not log in as {owner}"
        );
        // Sanity: show -json holds it (as a sensitive value), so the needle is right.
        let show_json = wd.tf(bin, &["show", "-json"]);
        assert_success(&show_json);
        assert!(
            show_json.stdout.contains(&password),
            "{ctx} show -json lacks the password"
        );

        let plan = wd.tf_env(bin, &["plan", "-input=false"], trace);
        assert_success(&plan);
        outputs.push(("plan (TRACE)", plan));
        let refresh = wd.tf_env(bin, &["plan", "-input=false", "-refresh-only"], trace);
        assert_success(&refresh);
        outputs.push(("plan -refresh-only (TRACE)", refresh));
        let show = wd.tf(bin, &["show"]);
        assert_success(&show);
        assert_contains(&show, "connection_uri");
        outputs.push(("show", show));
        let output = wd.tf(bin, &["output"]);
        assert_success(&output);
        assert_contains(&output, "uri = <sensitive>");
        outputs.push(("output", output));

        // An update (the role is altered, the password kept).
        wd.write("main.tf", &with_output(21));
        let update = wd.tf_env(bin, &["apply", "-input=false", "-auto-approve"], trace);
        assert_success(&update);
        assert_eq!(pg::role(&owner).map(|r| r.conn_limit), Some(21), "{ctx}");
        outputs.push(("apply update (TRACE)", update));
        assert_eq!(
            login_works(&owner, &password, &name).as_deref(),
            Ok(owner.as_str()),
            "{ctx} the update changed the password"
        );

        // A diagnostic about the role: somebody else's marker makes the update fail.
        let ours = pg::role(&owner).map(|r| r.comment).unwrap_or_default();
        let foreign = marker("postgres_database", "someone_else", "owner");
        psql(
            &maintenance_db(),
            &format!("COMMENT ON ROLE \"{owner}\" IS {}", lit(&foreign)),
        );
        wd.write("main.tf", &with_output(22));
        let refused = wd.tf_env(bin, &["apply", "-input=false", "-auto-approve"], trace);
        assert_failure(&refused);
        assert_no_crash(&refused, ctx);
        assert_contains(&refused, "Error: Cannot update postgres_database");
        assert_contains_norm(&refused, ctx, "managed by another resource");
        outputs.push(("refused apply (TRACE)", refused));
        psql(
            &maintenance_db(),
            &format!("COMMENT ON ROLE \"{owner}\" IS {}", lit(&ours)),
        );

        let destroy = wd.tf_env(bin, &["destroy", "-input=false", "-auto-approve"], trace);
        assert_success(&destroy);
        outputs.push(("destroy (TRACE)", destroy));
        assert_database_gone(ctx, &name);

        let admin_password = std::env::var("PGPASSWORD").unwrap_or_default();
        for (what, out) in &outputs {
            assert_no_secret(
                out,
                &format!("{ctx} {what}:"),
                "generated password",
                &password,
            );
            if admin_password.len() >= 8 {
                assert_no_secret(
                    out,
                    &format!("{ctx} {what}:"),
                    "PGPASSWORD",
                    &admin_password,
                );
            }
        }
    });
}
