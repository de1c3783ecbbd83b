//! Scenario 2: guardrail violations are reported at the exact file and line of
//! the offending attribute, and every violation is reported.

use crate::common::*;
use crate::harness::*;

/// One resource per guardrail, plus one resource violating all three.
/// Line numbers are found by `line_of`, so editing the config stays safe.
fn config() -> String {
    format!(
        r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "platform_postgres_database" "pattern" {{
  name = "Bad-Name"
}}

resource "platform_postgres_database" "enum" {{
  name       = "enum_ok"
  extensions = ["postgis"]
}}

resource "platform_postgres_database" "min" {{
  name             = "min_ok"
  connection_limit = 0
}}
"#
    )
}

fn all_three() -> String {
    format!(
        r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "platform_postgres_database" "bad" {{
  name             = "Bad-Name"
  connection_limit = 0
  extensions       = ["pgcrypto", "postgis"]
}}
"#
    )
}

/// `on main.tf line N, in resource "platform_postgres_database" "<name>"` and the
/// offending attribute, for every terraform.
#[track_caller]
fn assert_at(out: &Output, ctx: &str, tf: &str, needle: &str, resource: &str, summary: &str) {
    let line = line_of(tf, needle);
    assert_contains_norm(
        out,
        ctx,
        &format!(
            "on main.tf line {line}, in resource \"platform_postgres_database\" \"{resource}\":"
        ),
    );
    // Terraform quotes the source line under the location: `12:   name = "Bad-Name"`.
    assert_contains_norm(out, ctx, &format!("{line}: {needle}"));
    assert_contains(out, &format!("Error: {summary}"));
}

#[test]
fn guardrails_point_at_the_offending_line() {
    if !acc_enabled() {
        return;
    }
    let tf = config();
    for_each_bin("guardrails", |bin, ctx| {
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &tf);
        for cmd in ["validate", "plan"] {
            let args: &[&str] = if cmd == "plan" {
                &["plan", "-input=false"]
            } else {
                &["validate"]
            };
            let out = wd.tf(bin, args);
            assert_failure(&out);
            assert_no_crash(&out, ctx);
            let ctx = format!("{ctx} {cmd}");
            assert_at(
                &out,
                &ctx,
                &tf,
                "name = \"Bad-Name\"",
                "pattern",
                "Invalid value for name",
            );
            assert_at(
                &out,
                &ctx,
                &tf,
                "extensions = [\"postgis\"]",
                "enum",
                "Invalid value for extensions",
            );
            assert_at(
                &out,
                &ctx,
                &tf,
                "connection_limit = 0",
                "min",
                "Invalid value for connection_limit",
            );
            assert_contains_norm(
                &out,
                &ctx,
                r#""Bad-Name" does not match the pattern ^[a-z][a-z0-9_]{2,40}$"#,
            );
            assert_contains_norm(
                &out,
                &ctx,
                r#""postgis" is not one of "pgcrypto", "citext", "pg_trgm""#,
            );
            assert_contains_norm(&out, &ctx, "0 is less than the minimum of 1");
            assert_eq!(
                count_errors(&out),
                3,
                "{ctx}: expected exactly 3 errors:\n{out}"
            );
        }
    });
}

#[test]
fn guardrails_all_problems_in_one_resource() {
    if !acc_enabled() {
        return;
    }
    let tf = all_three();
    for_each_bin("guardrails_all", |bin, ctx| {
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &tf);
        let out = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&out);
        assert_no_crash(&out, ctx);
        assert_at(
            &out,
            ctx,
            &tf,
            "name             = \"Bad-Name\"",
            "bad",
            "Invalid value for name",
        );
        assert_at(
            &out,
            ctx,
            &tf,
            "connection_limit = 0",
            "bad",
            "Invalid value for connection_limit",
        );
        assert_at(
            &out,
            ctx,
            &tf,
            "extensions       = [\"pgcrypto\", \"postgis\"]",
            "bad",
            "Invalid value for extensions",
        );
        assert_eq!(
            count_errors(&out),
            3,
            "{ctx}: expected exactly 3 errors:\n{out}"
        );
        assert!(!contains(&out, "Plan:"), "{ctx}: no plan expected:\n{out}");
    });
}

/// `team` is required unless the provider block sets `default_team`; `tier`
/// must name a tier of the version.
#[test]
fn team_and_tier_are_checked() {
    if !acc_enabled() {
        return;
    }
    let no_team = format!(
        r#"{REQUIRED_PLATFORM}
resource "platform_postgres_database" "orphan" {{
  name = "orphan"
}}
"#
    );
    let bad_tier = format!(
        r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "platform_postgres_database" "big" {{
  name = "big_db"
  tier = "huge"
}}
"#
    );
    for_each_bin("team_and_tier", |bin, ctx| {
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &no_team);
        let out = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&out);
        assert_no_crash(&out, ctx);
        assert_contains(&out, "Error: Missing team");
        assert_contains_norm(
            &out,
            ctx,
            "Every postgres_database needs an owning team: set `team` on the resource, or `default_team` in the provider block.",
        );

        // With `team` on the resource instead, the plan works.
        wd.write(
            "main.tf",
            &no_team.replace(
                "  name = \"orphan\"\n",
                "  name = \"orphan\"\n  team = \"payments\"\n",
            ),
        );
        let (plan, json) = plan_json(&wd, bin, ctx, &[]);
        assert_no_crash(&plan, ctx);
        let values = &planned_resource(&json, "platform_postgres_database.orphan")["values"];
        assert_eq!(values["team"], "payments", "{ctx} {values:#}");

        wd.remove("tfplan");
        wd.write("main.tf", &bad_tier);
        let out = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&out);
        assert_no_crash(&out, ctx);
        assert_contains(&out, "Error: Unknown tier");
        assert_contains_norm(
            &out,
            ctx,
            r#"Tier "huge" does not exist in version 1.2.0; choose one of: small, standard."#,
        );
        let line = line_of(&bad_tier, "tier = \"huge\"");
        assert_contains_norm(
            &out,
            ctx,
            &format!("on main.tf line {line}, in resource \"platform_postgres_database\" \"big\":"),
        );
    });
}
