//! Values unknown at plan time (from another resource): guardrails wait for
//! them, the price does not need them, and `offering_version` must be known.
//! Uses hashicorp/null from the filesystem mirror, so this runs in mirror mode.

use crate::common::*;
use crate::harness::*;

fn config(extra: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    platform = {{ source = "platform/platform", version = "0.1.0" }}
    null     = {{ source = "hashicorp/null", version = "2.1.2" }}
  }}
}}

{PROVIDER_BLOCK}
resource "null_resource" "n" {{}}

resource "platform_postgres_database" "d" {{
  name             = "db_${{null_resource.n.id}}"
  connection_limit = length(null_resource.n.id)
  extensions       = ["pgcrypto", null_resource.n.id]
{extra}}}
"#
    )
}

#[test]
fn unknown_inputs_plan_and_unknown_version_fails() {
    if !acc_enabled() {
        return;
    }
    null_mirror();
    for_each_bin("unknowns", |bin, ctx| {
        let wd = Workdir::mirror();
        wd.write("main.tf", &config(""));
        wd.init(bin);
        let (plan, json) = plan_json(&wd, bin, ctx, &[]);
        assert_no_crash(&plan, ctx);
        assert_contains(&plan, "Plan: 2 to add, 0 to change, 0 to destroy.");
        let addr = "platform_postgres_database.d";
        let values = &planned_resource(&json, addr)["values"];
        assert_eq!(num(&values["monthly_cost"]), Some(25.0), "{ctx} {values:#}");
        assert_eq!(values["offering_version"], "1.2.0", "{ctx} {values:#}");
        let unknown = &resource_change(&json, addr)["change"]["after_unknown"];
        assert_eq!(unknown["name"], true, "{ctx} {unknown:#}");
        assert_eq!(unknown["connection_limit"], true, "{ctx} {unknown:#}");

        // offering_version decides the rules: it must be known at plan time.
        wd.remove("tfplan");
        wd.write(
            "main.tf",
            &config("  offering_version = null_resource.n.id\n"),
        );
        let out = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&out);
        assert_no_crash(&out, ctx);
        assert_contains(&out, "Error: offering_version must be known at plan time");
    });
}
