//! Scenario 3: the dated deprecation state machine, with the test catalog
//! `acceptance/catalogs/lifecycle/` (offering `queue`: 2.0.0 preview — the schema
//! version —, 1.0.0 deprecated until 2030-01-01 / 2031-01-01, 0.9.0 retired).

use crate::common::*;
use crate::harness::*;

const ADDR: &str = "platform_queue.q";

fn config(offering_version: Option<&str>, retention: Option<u32>) -> String {
    let mut body = String::from("  name             = \"orders\"\n");
    if let Some(v) = offering_version {
        body.push_str(&format!("  offering_version = \"{v}\"\n"));
    }
    if let Some(r) = retention {
        body.push_str(&format!("  retention_hours  = {r}\n"));
    }
    format!(
        "{REQUIRED_PLATFORM}\n{PROVIDER_BLOCK}\nresource \"platform_queue\" \"q\" {{\n{body}}}\n"
    )
}

fn workdir(today: &str) -> Workdir {
    Workdir::dev_overrides()
        .with_env("PLATFORM_CATALOG", test_catalog("lifecycle"))
        .with_env("PLATFORM_TODAY", today)
}

#[test]
fn deprecated_version_warns_then_refuses_new_instances() {
    if !acc_enabled() {
        return;
    }
    let tf = config(Some("1.0.0"), None);
    let version_line = line_of(&tf, "offering_version = \"1.0.0\"");
    for_each_bin("lifecycle_deprecated", |bin, ctx| {
        // Before create_until: a warning with the dates and the successor, at the attribute.
        let wd = workdir("2029-06-01");
        wd.write("main.tf", &tf);
        let (plan, json) = plan_json(&wd, bin, ctx, &[]);
        assert_no_crash(&plan, ctx);
        assert_contains(&plan, "Warning: queue 1.0.0 is deprecated");
        assert_contains_norm(
            &plan,
            ctx,
            "It accepts new instances until 2030-01-01, updates until 2031-01-01. Move to version 2.0.0.",
        );
        assert_contains_norm(
            &plan,
            ctx,
            &format!("on main.tf line {version_line}, in resource \"platform_queue\" \"q\":"),
        );
        assert_contains(&plan, "Plan: 1 to add, 0 to change, 0 to destroy.");
        let values = &planned_resource(&json, ADDR)["values"];
        assert_eq!(values["offering_version"], "1.0.0", "{ctx} {values:#}");
        assert_eq!(values["status"], "deprecated", "{ctx} {values:#}");
        assert_eq!(num(&values["monthly_cost"]), Some(10.0), "{ctx} {values:#}");
        assert_eq!(
            num(&values["retention_hours"]),
            Some(24.0),
            "{ctx} {values:#}"
        );

        // After create_until: no new instances.
        let wd = workdir("2030-06-01");
        wd.write("main.tf", &tf);
        let late = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&late);
        assert_no_crash(&late, ctx);
        assert_contains(&late, "Error: queue 1.0.0 no longer accepts new instances");
        assert_contains_norm(
            &late,
            ctx,
            "New instances were accepted until 2030-01-01. Move to version 2.0.0.",
        );
        assert_contains_norm(
            &late,
            ctx,
            &format!("on main.tf line {version_line}, in resource \"platform_queue\" \"q\":"),
        );
    });
}

#[test]
fn retired_version_and_preview_schema_version() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("lifecycle_retired", |bin, ctx| {
        // Retired: the plan fails whatever the date.
        let tf = config(Some("0.9.0"), None);
        let wd = workdir("2020-01-01");
        wd.write("main.tf", &tf);
        let retired = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&retired);
        assert_no_crash(&retired, ctx);
        assert_contains(&retired, "Error: queue 0.9.0 is retired");
        assert_contains_norm(
            &retired,
            ctx,
            "Retired versions can only be destroyed. Move to version 2.0.0.",
        );
        let line = line_of(&tf, "offering_version = \"0.9.0\"");
        assert_contains_norm(&retired, ctx, &format!("on main.tf line {line},"));

        // An unknown version is an error too.
        wd.write("main.tf", &config(Some("3.0.0"), None));
        let unknown = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&unknown);
        assert_no_crash(&unknown, ctx);
        assert_contains(&unknown, "Error: Unknown offering version");
        assert_contains_norm(
            &unknown,
            ctx,
            r#"queue has no version "3.0.0"; versions: 2.0.0, 1.0.0, 0.9.0."#,
        );

        // No offering_version: the schema version (the highest preview) with a preview warning.
        wd.write("main.tf", &config(None, None));
        let (preview, json) = plan_json(&wd, bin, ctx, &[]);
        assert_no_crash(&preview, ctx);
        assert_contains(&preview, "Warning: queue 2.0.0 is a preview");
        let values = &planned_resource(&json, ADDR)["values"];
        assert_eq!(values["offering_version"], "2.0.0", "{ctx} {values:#}");
        assert_eq!(values["status"], "preview", "{ctx} {values:#}");
    });
}

/// Updates of a deprecated version: allowed (with a warning) until update_until,
/// refused after it; an unchanged instance is never an error.
#[test]
fn deprecated_version_refuses_updates_after_update_until() {
    if !acc_enabled() {
        return;
    }
    let attributes = serde_json::json!({
        "id": "queue-orders",
        "labels": null,
        "monthly_cost": 10,
        "name": "orders",
        "offering_version": "1.0.0",
        "retention_hours": 24,
        "status": "deprecated",
        "team": "checkout",
        "tier": "basic",
        "url": "amqp://queues/orders",
    });
    for_each_bin("lifecycle_updates", |bin, ctx| {
        let catalog = test_catalog("lifecycle");
        let catalog = catalog.to_string_lossy();
        let digest = catalog_digest(bin, ctx, &[("PLATFORM_CATALOG", &catalog)]);
        let state = |wd: &Workdir| {
            write_state(
                wd,
                &[StateInstance {
                    type_name: "platform_queue",
                    name: "q",
                    attributes: attributes.clone(),
                    catalog_digest: &digest,
                    offering_version: "1.0.0",
                }],
            )
        };

        // Unchanged, long after update_until: no changes, no error.
        let wd = workdir("2032-01-01");
        wd.write("main.tf", &config(None, None));
        state(&wd);
        let same = wd.tf(bin, &["plan", "-input=false", "-detailed-exitcode"]);
        assert_no_crash(&same, ctx);
        assert!(
            same.status.code() == Some(0),
            "{ctx} expected no changes:\n{same}"
        );
        assert_contains(&same, "No changes.");

        // Growing retention_hours (grow_only) after update_until: refused.
        wd.write("main.tf", &config(None, Some(48)));
        let late = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&late);
        assert_no_crash(&late, ctx);
        assert_contains(&late, "Error: queue 1.0.0 no longer accepts updates");
        assert_contains_norm(
            &late,
            ctx,
            "Updates were accepted until 2031-01-01; only destroy is possible now. Move to version 2.0.0.",
        );

        // The same update before update_until (but after create_until): a warning.
        let wd = workdir("2030-06-01");
        wd.write("main.tf", &config(None, Some(48)));
        state(&wd);
        let update = wd.tf(bin, &["plan", "-input=false"]);
        assert_success(&update);
        assert_no_crash(&update, ctx);
        assert_contains(&update, "Warning: queue 1.0.0 is deprecated");
        assert_contains(&update, "# platform_queue.q will be updated in-place");
        assert_line(&update, ctx, &["~ retention_hours", "24 -> 48"]);

        // Shrinking a grow_only input: refused, naming old and new value.
        wd.write("main.tf", &config(None, Some(12)));
        let shrink = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&shrink);
        assert_no_crash(&shrink, ctx);
        assert_contains(&shrink, "Error: retention_hours cannot change this way");
        assert_contains_norm(
            &shrink,
            ctx,
            r#"attribute "retention_hours" cannot change from 24 to 12: it may only grow (on_change = "grow_only")"#,
        );
    });
}
