//! Scenario 4: changes against a prior state, planned only. The state is
//! written by hand (format 4, as Terraform 1.0.3 writes it) for a
//! `platform_postgres_schema` instance of the example catalog: `database` is
//! `on_change = "reject"`, `name` is `on_change = "replace"`. Its private data
//! records no primitives, so ReadResource leaves it as it is and no PostgreSQL
//! is needed. (Destroy/update refusals without a driver: nodriver.rs; real
//! changes on PostgreSQL: postgres.rs.)

use crate::common::*;
use crate::harness::*;

const ADDR: &str = "platform_postgres_schema.tenant";

fn config(database: &str, name: &str) -> String {
    format!(
        r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "platform_postgres_schema" "tenant" {{
  database = "{database}"
  name     = "{name}"
}}
"#
    )
}

/// Every attribute of `platform_postgres_schema` 1.0.0 as an apply would have stored it.
fn state_attributes() -> serde_json::Value {
    serde_json::json!({
        "database": "shop",
        "id": "shop.tenant_a",
        "labels": null,
        "monthly_cost": 5,
        "name": "tenant_a",
        "offering_version": "1.0.0",
        "owner_role": "shop_tenant_a_owner",
        "readers": [],
        "secret_version": null,
        "status": "current",
        "team": "checkout",
        "tier": "shared",
    })
}

/// A work dir with the hand-made state, checked against the provider's schema.
fn workdir_with_state(bin: &std::path::Path, ctx: &str) -> Workdir {
    let wd = Workdir::dev_overrides();
    wd.write("main.tf", &config("shop", "tenant_a"));
    // The state must hold exactly the schema's attributes.
    let schema = platform_schema(&wd, bin, ctx);
    let mut expected: Vec<String> = state_attributes()
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    expected.sort();
    assert_eq!(
        schema_attribute_names(&schema, "platform_postgres_schema"),
        expected,
        "{ctx} the hand-made state no longer matches the schema"
    );
    let digest = catalog_digest(bin, ctx, &[]);
    write_state(
        &wd,
        &[StateInstance {
            type_name: "platform_postgres_schema",
            name: "tenant",
            attributes: state_attributes(),
            catalog_digest: &digest,
            offering_version: "1.0.0",
        }],
    );
    wd
}

#[test]
fn prior_state_unchanged_reject_and_replace() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("changes", |bin, ctx| {
        let wd = workdir_with_state(bin, ctx);

        // Nothing changed: no changes, no driver warnings (nothing to do).
        let same = wd.tf(bin, &["plan", "-input=false", "-detailed-exitcode"]);
        assert_no_crash(&same, ctx);
        assert!(
            same.status.code() == Some(0),
            "{ctx} unchanged config: expected exit 0 (no changes):\n{same}"
        );
        assert_contains(&same, "No changes.");
        assert!(
            !contains(&same, "Warning: No driver"),
            "{ctx} unexpected driver warning:\n{same}"
        );
        // A refresh leaves a state without recorded primitives as it is.
        // (Not -detailed-exitcode: a refresh-only plan exits 2 on a state
        // Terraform would rewrite, even when it reports no changes.)
        let refresh = wd.tf(bin, &["plan", "-input=false", "-refresh-only"]);
        assert_success(&refresh);
        assert_no_crash(&refresh, ctx);
        assert_contains(&refresh, "No changes.");
        assert!(
            !contains(&refresh, "changed outside of Terraform"),
            "{ctx} refresh of a hand-made state reported drift:\n{refresh}"
        );
        let listed = wd.tf(bin, &["state", "list"]);
        assert_success(&listed);
        assert!(listed.stdout.contains(ADDR), "{ctx}\n{listed}");

        // `database` is on_change = "reject": the plan fails naming attribute, old and new value.
        let tf = config("shop2", "tenant_a");
        wd.write("main.tf", &tf);
        let reject = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&reject);
        assert_no_crash(&reject, ctx);
        assert_contains(&reject, "Error: database cannot change this way");
        assert_contains_norm(
            &reject,
            ctx,
            r#"attribute "database" cannot change from "shop" to "shop2": it cannot be changed once created (on_change = "reject")"#,
        );
        let line = line_of(&tf, "database = \"shop2\"");
        assert_contains_norm(
            &reject,
            ctx,
            &format!(
                "on main.tf line {line}, in resource \"platform_postgres_schema\" \"tenant\":"
            ),
        );
        assert_eq!(count_errors(&reject), 1, "{ctx}\n{reject}");

        // `name` is on_change = "replace".
        wd.write("main.tf", &config("shop", "tenant_b"));
        let (replace, json) = plan_json(&wd, bin, ctx, &[]);
        assert_no_crash(&replace, ctx);
        assert_contains(&replace, &format!("# {ADDR} must be replaced"));
        assert_line(
            &replace,
            ctx,
            &[
                "~ name",
                "\"tenant_a\" -> \"tenant_b\"",
                "# forces replacement",
            ],
        );
        assert_contains(&replace, "Plan: 1 to add, 0 to change, 1 to destroy.");
        assert!(
            !contains(&replace, "No driver for"),
            "{ctx} unexpected driver warning:\n{replace}"
        );
        let change = resource_change(&json, ADDR);
        assert_eq!(
            change["change"]["actions"],
            serde_json::json!(["delete", "create"]),
            "{ctx} {change:#}"
        );
        // `replace_paths` exists since Terraform 1.2.
        let replace_paths = &change["change"]["replace_paths"];
        if !replace_paths.is_null() {
            assert_eq!(
                *replace_paths,
                serde_json::json!([["name"]]),
                "{ctx} {change:#}"
            );
        }
        let after = &change["change"]["after"];
        assert_eq!(after["name"], "tenant_b", "{ctx}");
        assert_eq!(after["database"], "shop", "{ctx}");
        assert_eq!(num(&after["monthly_cost"]), Some(5.0), "{ctx}");
        assert_eq!(
            change["change"]["after_unknown"]["id"], true,
            "{ctx} {change:#}"
        );

        // An in-place update: labels are on_change = update (reserved attribute).
        wd.write(
            "main.tf",
            &config("shop", "tenant_a").replace(
                "  name     = \"tenant_a\"\n",
                "  name     = \"tenant_a\"\n  labels   = { env = \"prod\" }\n",
            ),
        );
        let update = wd.tf(bin, &["plan", "-input=false"]);
        assert_success(&update);
        assert_no_crash(&update, ctx);
        assert_contains(&update, &format!("# {ADDR} will be updated in-place"));
        assert_contains(&update, "Plan: 0 to add, 1 to change, 0 to destroy.");
    });
}
