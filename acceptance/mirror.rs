//! Scenario 8: the provider installed from a filesystem mirror with an offline
//! `terraform init`, then the quickstart plan.

use crate::common::*;
use crate::harness::*;

#[test]
fn mirror_init_then_quickstart_plan() {
    if !acc_enabled() {
        return;
    }
    // The quickstart pins no version; mirror mode wants the mirrored one.
    let main_tf = quickstart_main_tf();
    assert!(
        main_tf.contains("source = \"platform/platform\""),
        "quickstart changed:\n{main_tf}"
    );
    let main_tf = main_tf.replacen(
        "source = \"platform/platform\"",
        "source  = \"platform/platform\"\n      version = \"0.1.0\"",
        1,
    );
    for_each_bin("mirror", |bin, ctx| {
        let wd = Workdir::mirror();
        wd.write("main.tf", &main_tf);
        let init = wd.init(bin);
        assert_no_crash(&init, ctx);
        assert!(
            contains(
                &init,
                &format!("Installed {PROVIDER_SOURCE} v{PROVIDER_VERSION}")
            ),
            "{ctx} init did not install the provider from the mirror:\n{init}"
        );
        assert!(
            !contains(&init, "Provider development overrides are in effect"),
            "{ctx} dev_overrides leaked into mirror mode:\n{init}"
        );
        let lock = wd.read(".terraform.lock.hcl");
        assert!(
            lock.contains(&format!("provider \"{PROVIDER_FQN}\"")) && lock.contains("\"0.1.0\""),
            "{ctx} lock file:\n{lock}"
        );

        let validate = wd.tf(bin, &["validate"]);
        assert_success(&validate);

        let (plan, json) = plan_json(&wd, bin, ctx, &[]);
        assert_no_crash(&plan, ctx);
        assert_line(&plan, ctx, &["+ connection_limit", "= 20"]);
        assert_line(&plan, ctx, &["+ monthly_cost", "= 25"]);
        assert_contains(&plan, "Plan: 1 to add, 0 to change, 0 to destroy.");
        assert!(
            !contains(&plan, "No driver for"),
            "{ctx} unexpected driver warning:\n{plan}"
        );
        let values = &planned_resource(&json, QUICKSTART_ADDR)["values"];
        assert_eq!(num(&values["monthly_cost"]), Some(25.0), "{ctx} {values:#}");
        eprintln!("{ctx} init {:.2?}, plan {:.2?}", init.elapsed, plan.elapsed);
    });
}
