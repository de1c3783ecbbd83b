//! Driver validation before apply (issue 13): what a driver would refuse at
//! apply — a fractional connection limit, a name templated past PostgreSQL's
//! 63 bytes, a primitive input the driver does not have — fails `terraform
//! plan` or `terraform validate` instead, pointing at the attribute (or the
//! catalog line) responsible. Values unknown at plan still plan and are
//! checked at apply.

use crate::common::*;
use crate::harness::*;
use crate::pg::{self, *};

const DERIVED: &str = "platform_derived_roles";

fn derived(name: &str, limit: &str) -> String {
    format!(
        r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "{DERIVED}" "x" {{
  name  = "{name}"
  limit = {limit}
}}
"#
    )
}

#[test]
fn plan_refuses_what_the_drivers_would() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("validation_plan", |bin, ctx| {
        // The example catalog: connection_limit (1..500) lets 1.5 through;
        // the role driver takes whole numbers only.
        let wd = Workdir::dev_overrides();
        wd.write(
            "main.tf",
            &format!(
                r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "platform_postgres_database" "d" {{
  name             = "orders"
  connection_limit = 1.5
}}
"#
            ),
        );
        let out = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&out);
        assert_no_crash(&out, ctx);
        assert_contains_norm(
            &out,
            ctx,
            "Error: Invalid input for primitive \"owner\" (postgres.role)",
        );
        assert_contains_norm(
            &out,
            ctx,
            "postgres_database composes primitive \"owner\" with driver postgres.role, which refuses it: input `connection_limit` must be a whole number.",
        );
        // At the attribute: Terraform quotes its line.
        assert_contains_norm(&out, ctx, "connection_limit = 1.5");
        assert_eq!(count_errors(&out), 1, "{ctx}\n{out}");

        // A loose catalog: `<name>_owner` is past 63 bytes although `name` is not.
        let wd = Workdir::dev_overrides().with_env("PLATFORM_CATALOG", test_catalog("derived"));
        let sixty = "a".repeat(60);
        wd.write("main.tf", &derived(&sixty, "-1"));
        let out = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&out);
        assert_no_crash(&out, ctx);
        assert_contains_norm(
            &out,
            ctx,
            &format!(
                "input `name` \"{sixty}_owner\" is 66 bytes long; PostgreSQL names have at most 63."
            ),
        );
        // Not an attribute's own value: the diagnostic is the resource's.
        assert_contains_norm(&out, ctx, &format!("with {DERIVED}.x,"));
        assert_eq!(count_errors(&out), 1, "{ctx}\n{out}");

        // The same catalog, a fractional limit: at `limit`, which feeds it.
        wd.write("main.tf", &derived("app", "2.5"));
        let out = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&out);
        assert_contains_norm(&out, ctx, "input `connection_limit` must be a whole number");
        assert_contains_norm(&out, ctx, "limit = 2.5");

        // `terraform validate` sees literal values too.
        let out = wd.tf(bin, &["validate"]);
        assert_failure(&out);
        assert_contains_norm(&out, ctx, "input `connection_limit` must be a whole number");

        // Fine values plan.
        wd.write("main.tf", &derived("app", "3"));
        let out = wd.tf(bin, &["plan", "-input=false"]);
        assert_success(&out);
        assert_contains(&out, "Plan: 1 to add, 0 to change, 0 to destroy.");
    });
}

#[test]
fn undeclared_primitive_input_fails_validate() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("validation_catalog", |bin, ctx| {
        let dir = test_catalog("undeclared");
        let file = dir.join("role.hcl");
        let text = std::fs::read_to_string(&file).expect("catalog");
        let line = line_of(&text, "superuser = true");
        let col = text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.find("superuser"))
            .map_or(0, |c| c + 1);
        let wd = Workdir::dev_overrides().with_env("PLATFORM_CATALOG", &dir);
        wd.write(
            "main.tf",
            &format!(
                r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "platform_undeclared_role" "x" {{
  name = "r"
}}
"#
            ),
        );
        let out = wd.tf(bin, &["validate"]);
        assert_failure(&out);
        assert_no_crash(&out, ctx);
        assert_contains_norm(
            &out,
            ctx,
            &format!(
                "{}:{line}:{col}: error: primitive \"owner\": driver postgres.role has no input \"superuser\"",
                file.display()
            ),
        );
        assert_contains_norm(
            &out,
            ctx,
            "postgres.role accepts: name, login, connection_limit, valid_until, member_of, database.",
        );
    });
}

/// A name from another resource's output is unknown at plan: the plan
/// succeeds, and the driver refuses the over-long derived name at apply,
/// leaving nothing behind.
#[test]
fn unknown_names_are_checked_at_apply() {
    if !pg_enabled() {
        return;
    }
    null_mirror();
    for_each_bin("validation_apply", |bin, ctx| {
        // null_resource ids are 19 digits or so: `<prefix><id>_owner` is
        // past 63 bytes, `<prefix><id>` is not.
        let prefix = format!("acc_val_{}_{}", version_tag(bin), "p".repeat(28));
        let wd = Workdir::mirror().with_env("PLATFORM_CATALOG", test_catalog("derived"));
        wd.write(
            "main.tf",
            &format!(
                r#"terraform {{
  required_providers {{
    platform = {{ source = "platform/platform", version = "0.1.0" }}
    null     = {{ source = "hashicorp/null", version = "2.1.2" }}
  }}
}}

{PROVIDER_BLOCK}
resource "null_resource" "n" {{}}

resource "{DERIVED}" "x" {{
  name = "{prefix}${{null_resource.n.id}}"
}}
"#
            ),
        );
        wd.init(bin);
        let plan = wd.tf(bin, &["plan", "-input=false"]);
        assert_success(&plan);
        assert_contains(&plan, "Plan: 2 to add, 0 to change, 0 to destroy.");
        let out = wd.tf(bin, &["apply", "-auto-approve", "-input=false"]);
        assert_failure(&out);
        assert_no_crash(&out, ctx);
        assert_contains_norm(&out, ctx, "PostgreSQL names have at most 63");
        let leftover = pg::row(&format!(
            "SELECT rolname FROM pg_roles WHERE left(rolname, {}) = {}",
            prefix.len(),
            lit(&prefix)
        ));
        assert_eq!(leftover, None, "{ctx} left behind\n{out}");
        let _ = wd.tf(bin, &["destroy", "-auto-approve", "-input=false"]);
    });
}
