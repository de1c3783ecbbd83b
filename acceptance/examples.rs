//! The registry-docs examples under `examples/resources/<type>/`: each
//! `resource.tf` applies (with a terraform/provider block prepended) and
//! destroys on PostgreSQL, and the id in its `import.sh` imports what it made.
//! The examples' names are made unique per Terraform binary by replacing their
//! literals, which must therefore stay as the table below says.

use std::path::Path;

use crate::common::*;
use crate::harness::*;
use crate::pg::{self, *};

struct Example {
    type_name: &'static str,
    /// Literal in resource.tf and import.sh -> prefix of its per-binary replacement.
    names: &'static [(&'static str, &'static str)],
}

const EXAMPLES: &[Example] = &[
    Example {
        type_name: "platform_postgres_database",
        names: &[("orders", "acc_ex_db")],
    },
    Example {
        type_name: "platform_postgres_schema",
        names: &[("shared", "acc_ex_sh"), ("analyst", "acc_ex_rd")],
    },
    Example {
        type_name: "platform_postgres_access",
        names: &[("orders", "acc_ex_ac")],
    },
];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Replaces every literal with its replacement, asserting each literal is there.
fn substitute(text: &str, file: &str, names: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (literal, replacement) in names {
        assert!(
            out.contains(literal),
            "{file} no longer contains {literal:?}: update acceptance/examples.rs"
        );
        out = out.replace(literal, replacement);
    }
    out
}

/// The `terraform import ADDR ID` line of an import.sh: (ADDR, ID).
fn import_line(script: &str, file: &str) -> (String, String) {
    let line = script
        .lines()
        .find(|l| l.trim_start().starts_with("terraform import "))
        .unwrap_or_else(|| panic!("{file} has no `terraform import` line:\n{script}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words.len(),
        4,
        "{file}: expected `terraform import ADDR ID`, got {line:?}"
    );
    (words[2].to_owned(), words[3].to_owned())
}

#[test]
fn examples_resources_apply_import_destroy() {
    if !pg_enabled() {
        return;
    }
    let dir = repo_root().join("examples/resources");
    for example in EXAMPLES {
        let base = dir.join(example.type_name);
        let resource_file = base.join("resource.tf");
        let import_file = base.join("import.sh");
        let resource_tf = read(&resource_file);
        let import_sh = read(&import_file);
        let address = format!("{}.example", example.type_name);
        assert!(
            resource_tf.contains(&format!("resource \"{}\" \"example\"", example.type_name)),
            "{} does not declare {address}",
            resource_file.display()
        );
        let (import_addr, import_id) = import_line(&import_sh, &import_file.display().to_string());
        assert_eq!(
            import_addr,
            address,
            "{} imports another address",
            import_file.display()
        );

        for_each_bin(&format!("examples/{}", example.type_name), |bin, ctx| {
            let tag = version_tag(bin);
            let names: Vec<(&str, String)> = example
                .names
                .iter()
                .map(|(literal, prefix)| (*literal, format!("{prefix}_{tag}")))
                .collect();
            let config = format!(
                "{REQUIRED_PLATFORM}\n{}\n{}",
                provider_block(example.type_name, &names),
                substitute(&resource_tf, "resource.tf", &names)
            );
            let mut id = import_id.clone();
            for (literal, replacement) in &names {
                id = id.replace(literal, replacement);
            }
            assert_ne!(
                id, import_id,
                "{ctx} import.sh's id names none of {names:?}"
            );

            prepare(ctx, example.type_name, &names, &id);
            let wd = Workdir::dev_overrides();
            wd.write("main.tf", &config);
            let apply = apply_ok(&wd, bin, ctx);
            assert_contains(
                &apply,
                "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.",
            );
            check_made(ctx, example.type_name, &names, &id);

            // import.sh's id imports what resource.tf made (in a fresh state).
            let fresh = Workdir::dev_overrides();
            fresh.write("main.tf", &config);
            let import = fresh.tf(bin, &["import", "-input=false", &address, &id]);
            assert_success(&import);
            assert_no_crash(&import, ctx);
            assert_contains(&import, "Import successful!");

            // The import made the fresh state's instance the manager (a new
            // generation in the markers): it destroys them.
            let destroy = destroy_ok(&fresh, bin, ctx);
            assert_contains(&destroy, "Resources: 1 destroyed.");
            check_gone(ctx, example.type_name, &names, &id);
        });
    }
}

/// The provider block: what `prepare` made by hand is not the platform's, so
/// the examples that use it need it allowlisted (as their comments say).
fn provider_block(type_name: &str, names: &[(&str, String)]) -> String {
    let allow = match type_name {
        "platform_postgres_schema" => format!("grantable_roles = [{:?}]", names[1].1),
        "platform_postgres_access" => format!("grantable_schemas = [\"{}.app\"]", names[0].1),
        _ => return PROVIDER_BLOCK.to_owned(),
    };
    format!(
        "provider \"platform\" {{\n  default_team = \"checkout\"\n  postgres {{\n    {allow}\n  }}\n}}\n"
    )
}

/// What each example needs beforehand (made by hand: not ours), after
/// dropping the leftovers of an earlier crashed run.
fn prepare(ctx: &str, type_name: &str, names: &[(&str, String)], id: &str) {
    match type_name {
        "platform_postgres_database" => {
            drop_databases(&[id]);
            drop_roles(&[&format!("{id}_owner")]);
        }
        "platform_postgres_schema" => {
            let (shared, reader) = (&names[0].1, &names[1].1);
            assert_eq!(id, format!("{shared}/tenant_a"), "{ctx} import id");
            drop_databases(&[shared]);
            drop_roles(&[reader, &format!("{shared}_tenant_a_owner")]);
            psql(&maintenance_db(), &format!("CREATE DATABASE \"{shared}\""));
            psql(&maintenance_db(), &format!("CREATE ROLE \"{reader}\""));
        }
        "platform_postgres_access" => {
            let db = &names[0].1;
            assert_eq!(id, format!("{db}/app/reporting"), "{ctx} import id");
            drop_databases(&[db]);
            drop_roles(&[&format!("{db}_reporting")]);
            psql(&maintenance_db(), &format!("CREATE DATABASE \"{db}\""));
            psql(db, "CREATE SCHEMA app");
        }
        other => panic!("no preparation for example {other}"),
    }
}

/// The objects exist after apply, marked as ours.
#[track_caller]
fn check_made(ctx: &str, type_name: &str, names: &[(&str, String)], id: &str) {
    match type_name {
        "platform_postgres_database" => {
            let db = pg::database(id)
                .unwrap_or_else(|| panic!("{ctx} database {id} missing after apply"));
            assert!(
                is_marker(&db.comment, "postgres_database", id, "db"),
                "{ctx}"
            );
            assert_eq!(db.owner, format!("{id}_owner"), "{ctx}");
            assert!(
                pg::role(&format!("{id}_owner")).is_some(),
                "{ctx} owner role missing"
            );
            let ext = psql(
                id,
                "SELECT extname FROM pg_extension WHERE extname = 'pgcrypto'",
            );
            assert_eq!(
                ext, "pgcrypto",
                "{ctx} extension pgcrypto not installed in {id}"
            );
        }
        "platform_postgres_schema" => {
            let (shared, reader) = (&names[0].1, &names[1].1);
            let (owner, comment) = pg::schema(shared, "tenant_a")
                .unwrap_or_else(|| panic!("{ctx} schema tenant_a missing in {shared}"));
            assert_eq!(owner, format!("{shared}_tenant_a_owner"), "{ctx}");
            assert!(
                is_marker(&comment, "postgres_schema", id, "schema"),
                "{ctx}"
            );
            assert!(
                has_schema_privilege(shared, reader, "tenant_a", "USAGE"),
                "{ctx} reader {reader} has no USAGE on tenant_a"
            );
        }
        "platform_postgres_access" => {
            let db = &names[0].1;
            let role = format!("{db}_reporting");
            let row = pg::role(&role).unwrap_or_else(|| panic!("{ctx} role {role} missing"));
            assert!(row.can_login, "{ctx} {role} cannot log in");
            assert!(
                is_marker(&row.comment, "postgres_access", id, "role"),
                "{ctx}"
            );
            assert!(
                has_schema_privilege(db, &role, "app", "USAGE"),
                "{ctx} {role} has no USAGE on app"
            );
            assert!(
                !has_schema_privilege(db, &role, "app", "CREATE"),
                "{ctx} {role} may create in app"
            );
        }
        other => panic!("no checks for example {other}"),
    }
}

/// Nothing of ours is left after destroy (and what was made by hand is dropped).
#[track_caller]
fn check_gone(ctx: &str, type_name: &str, names: &[(&str, String)], id: &str) {
    match type_name {
        "platform_postgres_database" => {
            assert_eq!(pg::database(id), None, "{ctx} database {id} left");
            assert_eq!(
                pg::role(&format!("{id}_owner")),
                None,
                "{ctx} owner role left"
            );
        }
        "platform_postgres_schema" => {
            let (shared, reader) = (&names[0].1, &names[1].1);
            assert_eq!(pg::schema(shared, "tenant_a"), None, "{ctx} schema left");
            assert_eq!(
                pg::role(&format!("{shared}_tenant_a_owner")),
                None,
                "{ctx} owner role left"
            );
            assert!(marked_schemas(shared, id).is_empty(), "{ctx}");
            drop_databases(&[shared]);
            drop_roles(&[reader]);
        }
        "platform_postgres_access" => {
            let db = &names[0].1;
            assert_eq!(
                pg::role(&format!("{db}_reporting")),
                None,
                "{ctx} role left"
            );
            drop_databases(&[db]);
        }
        other => panic!("no checks for example {other}"),
    }
    let marked = marked_objects(id);
    assert!(marked.is_empty(), "{ctx} still marked for {id}: {marked:?}");
}
