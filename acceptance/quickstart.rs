//! Scenario 1: `validate` and `plan` of examples/quickstart, as text and as JSON.
//! (Plan only: applying it for real is covered by postgres.rs and examples.rs.)

use crate::common::*;
use crate::harness::*;

#[test]
fn quickstart_validate_and_plan() {
    if !acc_enabled() {
        return;
    }
    let main_tf = quickstart_main_tf();
    for_each_bin("quickstart", |bin, ctx| {
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &main_tf);

        let validate = wd.tf(bin, &["validate"]);
        assert_success(&validate);
        assert_contains(&validate, "The configuration is valid");
        assert_no_crash(&validate, ctx);

        let (plan, json) = plan_json(&wd, bin, ctx, &[]);
        assert_no_crash(&plan, ctx);
        // Planned defaults, price and version, in Terraform's own rendering.
        assert_line(
            &plan,
            ctx,
            &["+ resource \"platform_postgres_database\" \"orders\""],
        );
        assert_line(&plan, ctx, &["+ connection_limit", "= 20"]);
        assert_line(&plan, ctx, &["+ extensions", "= []"]);
        assert_line(&plan, ctx, &["+ monthly_cost", "= 25"]);
        assert_line(&plan, ctx, &["+ offering_version", "= \"1.2.0\""]);
        assert_line(&plan, ctx, &["+ name", "= \"orders\""]);
        assert_line(&plan, ctx, &["+ team", "= \"checkout\""]);
        assert_line(&plan, ctx, &["+ tier", "= \"small\""]);
        assert_line(&plan, ctx, &["+ status", "= \"current\""]);
        assert_line(&plan, ctx, &["+ id", "(known after apply)"]);
        assert_line(&plan, ctx, &["+ connection_uri", "(sensitive value)"]);
        // The outputs: the cost and the tier prices from the data source.
        assert_line(&plan, ctx, &["+ orders_monthly_cost", "= 25"]);
        assert_line(&plan, ctx, &["+ postgres_tier_prices", "= {"]);
        assert_line(&plan, ctx, &["small", "= 25"]);
        assert_line(&plan, ctx, &["standard", "= 140"]);
        assert_contains(&plan, "Plan: 1 to add, 0 to change, 0 to destroy.");
        // This build has the postgres drivers: no driver warnings (the
        // missing-driver path is covered by nodriver.rs).
        assert!(
            !contains(&plan, "No driver for"),
            "{ctx} unexpected driver warning:\n{plan}"
        );

        // The same plan as JSON.
        let res = planned_resource(&json, QUICKSTART_ADDR);
        let values = &res["values"];
        assert_eq!(res["type"], "platform_postgres_database", "{ctx}");
        assert_eq!(num(&values["monthly_cost"]), Some(25.0), "{ctx} {values:#}");
        assert_eq!(
            num(&values["connection_limit"]),
            Some(20.0),
            "{ctx} {values:#}"
        );
        assert_eq!(
            values["extensions"],
            serde_json::json!([]),
            "{ctx} {values:#}"
        );
        assert_eq!(values["offering_version"], "1.2.0", "{ctx} {values:#}");
        assert_eq!(values["status"], "current", "{ctx} {values:#}");
        assert_eq!(values["tier"], "small", "{ctx} {values:#}");
        assert_eq!(values["team"], "checkout", "{ctx} {values:#}");
        assert_eq!(
            values["labels"],
            serde_json::json!({"service": "orders-api"}),
            "{ctx}"
        );
        let change = resource_change(&json, QUICKSTART_ADDR);
        assert_eq!(
            change["change"]["actions"],
            serde_json::json!(["create"]),
            "{ctx}"
        );
        let unknown = &change["change"]["after_unknown"];
        for computed in ["id", "connection_uri", "owner_role"] {
            assert_eq!(
                unknown[computed], true,
                "{ctx} {computed} should be unknown: {unknown:#}"
            );
        }
        let outputs = &json["planned_values"]["outputs"];
        assert_eq!(
            num(&outputs["orders_monthly_cost"]["value"]),
            Some(25.0),
            "{ctx} {outputs:#}"
        );
        let prices = &outputs["postgres_tier_prices"]["value"];
        assert_eq!(num(&prices["small"]), Some(25.0), "{ctx} {outputs:#}");
        assert_eq!(num(&prices["standard"]), Some(140.0), "{ctx} {outputs:#}");
    });
}
