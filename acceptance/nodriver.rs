//! The missing-driver path, with the test catalog `acceptance/catalogs/nodriver/`
//! (offering `cache`, one primitive with driver "redis.cache", which no build
//! has): plan warns and still stands; apply, import, destroy and update refuse,
//! naming the missing driver, and leave the state as it was.
//! Needs no PostgreSQL.

use std::path::Path;

use crate::common::*;
use crate::harness::*;

const ADDR: &str = "platform_cache.c";

fn config(memory_mb: Option<u32>) -> String {
    let memory = memory_mb
        .map(|m| format!("  memory_mb = {m}\n"))
        .unwrap_or_default();
    format!(
        "{REQUIRED_PLATFORM}\n{PROVIDER_BLOCK}\nresource \"platform_cache\" \"c\" {{\n  name      = \"sessions\"\n{memory}}}\n"
    )
}

fn workdir() -> Workdir {
    Workdir::dev_overrides().with_env("PLATFORM_CATALOG", test_catalog("nodriver"))
}

fn catalog_env() -> [(&'static str, String); 1] {
    [(
        "PLATFORM_CATALOG",
        test_catalog("nodriver").to_string_lossy().into_owned(),
    )]
}

#[test]
fn nodriver_plan_warns_apply_and_import_refuse() {
    if !acc_enabled() {
        return;
    }
    let tf = config(None);
    for_each_bin("nodriver", |bin, ctx| {
        let wd = workdir();
        wd.write("main.tf", &tf);

        // Plan: a warning naming the missing driver; the plan itself stands.
        let plan = wd.tf(bin, &["plan", "-input=false"]);
        assert_success(&plan);
        assert_no_crash(&plan, ctx);
        assert_contains(&plan, "Warning: No driver for redis.cache");
        assert_contains_norm(
            &plan,
            ctx,
            r#"cache composes primitive "cache" with driver "redis.cache", which this provider build does not have. The plan is shown, but apply will fail."#,
        );
        assert_line(&plan, ctx, &["+ monthly_cost", "= 15"]);
        assert_contains(&plan, "Plan: 1 to add, 0 to change, 0 to destroy.");

        // Apply: refused before anything is made; nothing in state.
        let apply = wd.tf(bin, &["apply", "-input=false", "-auto-approve"]);
        assert_failure(&apply);
        assert_no_crash(&apply, ctx);
        assert_contains(&apply, "Error: Cannot create cache: no driver");
        assert_contains_norm(
            &apply,
            ctx,
            r#"This provider build has no driver for it: primitive "cache" needs driver "redis.cache". Nothing was changed."#,
        );
        assert_eq!(count_errors(&apply), 1, "{ctx}\n{apply}");
        let list = wd.tf(bin, &["state", "list"]);
        assert!(
            !list.stdout.contains(ADDR),
            "{ctx} a refused create must leave nothing in state:\n{list}"
        );

        // Import reads through the drivers too.
        let import = wd.tf(bin, &["import", "-input=false", ADDR, "sessions"]);
        assert_failure(&import);
        assert_no_crash(&import, ctx);
        assert_contains(&import, "Error: Cannot import \"sessions\" as cache");
        assert_contains_norm(
            &import,
            ctx,
            "Import reads the object through its drivers, and this build lacks: redis.cache.",
        );
        let list = wd.tf(bin, &["state", "list"]);
        assert!(
            !list.stdout.contains(ADDR),
            "{ctx} a refused import must leave nothing in state:\n{list}"
        );
    });
}

/// Every attribute of `platform_cache` 1.0.0 as an apply would have stored it.
fn state_attributes() -> serde_json::Value {
    serde_json::json!({
        "endpoint": "redis://sessions:6379",
        "id": "sessions",
        "labels": null,
        "memory_mb": 256,
        "monthly_cost": 15,
        "name": "sessions",
        "offering_version": "1.0.0",
        "status": "current",
        "team": "checkout",
        "tier": "small",
    })
}

fn workdir_with_state(bin: &Path, ctx: &str) -> Workdir {
    let wd = workdir();
    wd.write("main.tf", &config(None));
    let schema = platform_schema(&wd, bin, ctx);
    let mut expected: Vec<String> = state_attributes()
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    expected.sort();
    assert_eq!(
        schema_attribute_names(&schema, "platform_cache"),
        expected,
        "{ctx} the hand-made state no longer matches the schema"
    );
    let env = catalog_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let digest = catalog_digest(bin, ctx, &env);
    write_state(
        &wd,
        &[StateInstance {
            type_name: "platform_cache",
            name: "c",
            attributes: state_attributes(),
            catalog_digest: &digest,
            offering_version: "1.0.0",
        }],
    );
    wd
}

/// An existing instance (hand-made state): an unchanged plan is quiet, and
/// destroy and update refuse without the driver, keeping the instance in state
/// as it was (nothing is forgotten).
#[test]
fn nodriver_existing_instance_destroy_and_update_refused() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("nodriver_existing", |bin, ctx| {
        let wd = workdir_with_state(bin, ctx);

        let same = wd.tf(bin, &["plan", "-input=false", "-detailed-exitcode"]);
        assert_no_crash(&same, ctx);
        assert!(
            same.status.code() == Some(0),
            "{ctx} unchanged config: expected exit 0 (no changes):\n{same}"
        );
        assert!(
            !contains(&same, "Warning: No driver"),
            "{ctx} nothing to do, yet a driver warning:\n{same}"
        );

        let destroy = wd.tf(bin, &["destroy", "-input=false", "-auto-approve"]);
        assert_failure(&destroy);
        assert_no_crash(&destroy, ctx);
        assert_contains(&destroy, "Error: Cannot destroy cache: no driver");
        let list = wd.tf(bin, &["state", "list"]);
        assert_success(&list);
        assert!(
            list.stdout.contains(ADDR),
            "{ctx} instance lost from state after a refused destroy:\n{list}"
        );

        wd.write("main.tf", &config(Some(512)));
        let update = wd.tf(bin, &["apply", "-input=false", "-auto-approve"]);
        assert_failure(&update);
        assert_no_crash(&update, ctx);
        assert_contains(&update, "Warning: No driver for redis.cache");
        assert_contains(&update, "Error: Cannot update cache: no driver");
        let show = wd.tf(bin, &["show", "-json"]);
        assert_success(&show);
        let state = stdout_json(&show);
        let res = state["values"]["root_module"]["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["address"] == ADDR))
            .unwrap_or_else(|| panic!("{ctx} {ADDR} not in state:\n{state:#}"));
        assert_eq!(
            num(&res["values"]["memory_mb"]),
            Some(256.0),
            "{ctx} state changed by a refused update: {res:#}"
        );
        assert_eq!(
            res["values"]["endpoint"], "redis://sessions:6379",
            "{ctx} {res:#}"
        );
    });
}
