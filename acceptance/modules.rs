//! The golden-path modules under `modules/`: every module is `terraform fmt`
//! clean and `terraform validate` clean, and every module's `examples/basic`
//! applies and destroys on PostgreSQL with every Terraform binary, leaving
//! nothing behind. The examples' database names are made unique per binary by
//! replacing their quoted literal (the table below), which must therefore stay.
//!
//! Modules need `terraform init` (even local ones), so these tests use the
//! filesystem-mirror mode; the whole `modules/` tree is copied so that the
//! examples' `source = "../.."` resolves.

use std::path::Path;

use crate::common::*;
use crate::harness::*;
use crate::pg::{self, *};

const MODULES: &[&str] = &["service-database", "team-tenant", "read-access"];

/// `terraform <args>` in `work/<dir>` (relative), with `-no-color`.
fn tf_in(wd: &Workdir, bin: &Path, dir: &str, args: &[&str]) -> Output {
    let chdir = format!("-chdir={dir}");
    let mut all = vec![chdir.as_str(), args[0], "-no-color"];
    all.extend_from_slice(&args[1..]);
    wd.tf(bin, &all)
}

#[track_caller]
fn ok(out: Output, ctx: &str) -> Output {
    if !out.success() {
        panic!("{ctx} command failed:\n{out}");
    }
    assert_no_crash(&out, ctx);
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        // A developer's local init must not leak into the test.
        if name == ".terraform" || name == ".terraform.lock.hcl" || name == "terraform.tfstate" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).expect("copy");
        }
    }
}

/// A mirror-mode work dir holding a copy of `modules/`.
fn modules_workdir() -> Workdir {
    let wd = Workdir::mirror();
    copy_tree(&repo_root().join("modules"), &wd.path().join("modules"));
    wd
}

#[test]
fn modules_fmt_and_validate() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("modules fmt+validate", |bin, ctx| {
        let wd = modules_workdir();
        let fmt = wd.tf(bin, &["fmt", "-check", "-recursive", "-diff", "modules"]);
        if !fmt.success() {
            panic!("{ctx} modules/ is not `terraform fmt` clean:\n{fmt}");
        }
        for module in MODULES {
            let dir = format!("modules/{module}");
            for required in [
                "README.md",
                "examples/basic/main.tf",
                "variables.tf",
                "outputs.tf",
            ] {
                assert!(
                    wd.path().join(&dir).join(required).is_file(),
                    "{ctx} {dir}/{required} missing"
                );
            }
            ok(tf_in(&wd, bin, &dir, &["init", "-backend=false"]), ctx);
            let validate = ok(tf_in(&wd, bin, &dir, &["validate"]), ctx);
            assert_contains(&validate, "The configuration is valid");
        }
    });
}

/// Roles whose name starts with `prefix`.
fn roles_like(prefix: &str) -> Vec<String> {
    psql(
        &maintenance_db(),
        &format!(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, {}) ORDER BY 1",
            lit(prefix)
        ),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Drops what a crashed earlier run may have left under `prefix`.
fn clean(db: &str) {
    drop_databases(&[db]);
    let roles = roles_like(db);
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    drop_roles(&roles);
}

fn privilege(db: &str, sql: &str) -> bool {
    psql(db, &format!("SELECT {sql}")) == "t"
}

/// Applies `modules/<module>/examples/basic` with `literal` replaced by a
/// per-binary database name, runs `check` on the result, re-plans (no
/// changes), destroys and checks that nothing under that name is left.
fn apply_destroy(module: &str, literal: &str, prefix: &str, check: impl Fn(&str, &str, &Output)) {
    if !pg_enabled() {
        return;
    }
    let example = format!("modules/{module}/examples/basic");
    for_each_bin(&example, |bin, ctx| {
        let db = format!("{prefix}_{}", version_tag(bin));
        clean(&db);
        let wd = modules_workdir();
        let main_tf = wd.read(&format!("{example}/main.tf"));
        let quoted = format!("\"{literal}\"");
        assert!(
            main_tf.contains(&quoted),
            "{ctx} {example}/main.tf no longer contains {quoted}: update acceptance/modules.rs"
        );
        wd.write(
            &format!("{example}/main.tf"),
            &main_tf.replace(&quoted, &format!("\"{db}\"")),
        );

        ok(tf_in(&wd, bin, &example, &["init", "-input=false"]), ctx);
        let apply = ok(
            tf_in(
                &wd,
                bin,
                &example,
                &["apply", "-input=false", "-auto-approve"],
            ),
            ctx,
        );
        assert_contains(&apply, "Apply complete!");
        for secret in ["postgres://", "postgresql://", "password="] {
            assert!(
                !contains(&apply, secret),
                "{ctx} apply printed a secret ({secret}):\n{apply}"
            );
        }
        check(ctx, &db, &apply);

        let replan = tf_in(
            &wd,
            bin,
            &example,
            &["plan", "-input=false", "-detailed-exitcode"],
        );
        assert_eq!(
            replan.status.code(),
            Some(0),
            "{ctx} a plan right after apply proposes changes:\n{replan}"
        );

        let destroy = ok(
            tf_in(
                &wd,
                bin,
                &example,
                &["destroy", "-input=false", "-auto-approve"],
            ),
            ctx,
        );
        assert_contains(&destroy, "Destroy complete!");
        assert_eq!(pg::database(&db), None, "{ctx} database {db} left behind");
        assert_eq!(
            roles_like(&db),
            Vec::<String>::new(),
            "{ctx} roles left behind"
        );
    });
}

#[test]
fn modules_service_database_example() {
    apply_destroy("service-database", "orders", "acc_msd", |ctx, db, apply| {
        assert_contains(apply, "Resources: 4 added");
        assert_contains(apply, "read_write_connection_uri = <sensitive>");
        let d = pg::database(db).unwrap_or_else(|| panic!("{ctx} no database {db}"));
        assert_eq!(d.owner, format!("{db}_owner"), "{ctx}");
        let (owner, _) = pg::schema(db, "app").unwrap_or_else(|| panic!("{ctx} no schema app"));
        assert_eq!(owner, format!("{db}_app_owner"), "{ctx}");
        for suffix in ["owner", "app_owner", "rw", "ro"] {
            assert!(
                pg::role(&format!("{db}_{suffix}")).is_some(),
                "{ctx} role {db}_{suffix} missing"
            );
        }
        let (rw, ro, app_owner) = (
            format!("{db}_rw"),
            format!("{db}_ro"),
            format!("{db}_app_owner"),
        );
        // read_write_runs_migrations: rw is a member of the schema owner.
        assert!(
            privilege(
                db,
                &format!("pg_has_role({}, {}, 'MEMBER')", lit(&rw), lit(&app_owner))
            ),
            "{ctx} {rw} is not a member of {app_owner}"
        );
        assert!(has_schema_privilege(db, &ro, "app", "USAGE"), "{ctx}");
        // A table the schema owner creates later is granted by default privileges.
        psql(
            db,
            &format!("SET ROLE \"{app_owner}\"; CREATE TABLE app.acc_t (x int)"),
        );
        let table = |role: &str, p: &str| {
            privilege(
                db,
                &format!(
                    "has_table_privilege({}, 'app.acc_t', {})",
                    lit(role),
                    lit(p)
                ),
            )
        };
        assert!(
            table(&rw, "INSERT") && table(&rw, "DELETE"),
            "{ctx} rw cannot write"
        );
        assert!(table(&ro, "SELECT"), "{ctx} ro cannot read");
        assert!(!table(&ro, "INSERT"), "{ctx} ro can write");
        psql(db, "DROP TABLE app.acc_t");
    });
}

#[test]
fn modules_team_tenant_example() {
    apply_destroy("team-tenant", "tenants", "acc_mtt", |ctx, db, apply| {
        assert_contains(apply, "Resources: 7 added");
        assert!(pg::database(db).is_some(), "{ctx} no shared database {db}");
        for schema in ["checkout_carts", "checkout_payments"] {
            let (owner, comment) =
                pg::schema(db, schema).unwrap_or_else(|| panic!("{ctx} no schema {schema}"));
            assert_eq!(owner, format!("{db}_{schema}_owner"), "{ctx}");
            assert!(comment.starts_with(MARKER_PREFIX), "{ctx} {comment}");
            let (rw, ro) = (format!("{db}_{schema}_rw"), format!("{db}_{schema}_ro"));
            assert!(has_schema_privilege(db, &rw, schema, "USAGE"), "{ctx} {rw}");
            assert!(has_schema_privilege(db, &ro, schema, "USAGE"), "{ctx} {ro}");
            assert!(
                !has_schema_privilege(db, &ro, schema, "CREATE"),
                "{ctx} {ro} may create"
            );
            let login = psql(
                &maintenance_db(),
                &format!(
                    "SELECT rolcanlogin FROM pg_roles WHERE rolname = {}",
                    lit(&rw)
                ),
            );
            assert_eq!(login, "t", "{ctx} {rw} cannot log in");
        }
        // Tenants are isolated: one schema's roles have no access to the other.
        assert!(
            !has_schema_privilege(
                db,
                &format!("{db}_checkout_carts_ro"),
                "checkout_payments",
                "USAGE"
            ),
            "{ctx} carts reader can use payments"
        );
    });
}

#[test]
fn modules_read_access_example() {
    apply_destroy("read-access", "orders", "acc_mra", |ctx, db, apply| {
        assert_contains(apply, "Resources: 3 added");
        let role = format!("{db}_analytics_app_ro");
        assert!(pg::role(&role).is_some(), "{ctx} no role {role}");
        assert!(has_schema_privilege(db, &role, "app", "USAGE"), "{ctx}");
        assert!(!has_schema_privilege(db, &role, "app", "CREATE"), "{ctx}");
        assert_line(apply, ctx, &["\"orders\" = ", &role]);
    });
}
