//! The Redis driver under real Terraform, with the test catalog
//! `acceptance/catalogs/redis/` (offering `cache_user`: one `redis.acl_user`).
//! Against the redis-server `REDIS_URL` names (scripts/test starts one; without
//! it the test says it is skipped): create, a clean re-plan, a change made
//! behind Terraform's back shown by `plan` and undone by `apply`, an in-place
//! update that takes writes away, destroy, and nothing left on the server.

use std::process::Command;

use crate::common::*;
use crate::harness::*;

fn config(name: &str, writes: bool) -> String {
    let commands = if writes {
        r#"["+@read", "+@write", "+@connection"]"#
    } else {
        r#"["+@read", "+@connection"]"#
    };
    format!(
        "{REQUIRED_PLATFORM}\n{PROVIDER_BLOCK}\nresource \"platform_cache_user\" \"u\" {{\n  name     = \"{name}\"\n  commands = {commands}\n}}\n\noutput \"password\" {{\n  value     = platform_cache_user.u.password\n  sensitive = true\n}}\n"
    )
}

/// `redis-cli` against the test server as `user` (admin: the URL's own).
fn cli(user: Option<(&str, &str)>, args: &[&str]) -> String {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let url = match user {
        Some((name, password)) => {
            let host = url
                .rsplit_once('@')
                .map(|(_, h)| h.to_owned())
                .expect("host");
            format!("redis://{name}:{password}@{host}")
        }
        None => url,
    };
    let out = Command::new("redis-cli")
        .args(["--no-auth-warning", "-u", &url])
        .args(args)
        .output()
        .expect("redis-cli (Debian's redis-tools, with redis-server)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_owned()
}

#[test]
fn redis_acl_user_lifecycle_drift_and_destroy() {
    if !acc_enabled() {
        return;
    }
    if std::env::var_os("REDIS_URL").is_none() {
        eprintln!("SKIPPED: no Redis (scripts/test starts one)");
        return;
    }
    let mut run = 0;
    for_each_bin("redis", |bin, ctx| {
        run += 1;
        let name = format!("svc_{}_{run}", std::process::id());
        let wd = Workdir::dev_overrides().with_env("PLATFORM_CATALOG", test_catalog("redis"));
        wd.write("main.tf", &config(&name, true));

        let apply = wd.tf(bin, &["apply", "-input=false", "-auto-approve"]);
        assert_success(&apply);
        assert_no_crash(&apply, ctx);
        let out = wd.tf(bin, &["output", "-raw", "password"]);
        assert_success(&out);
        let password = out.stdout.trim().to_owned();
        assert!(password.len() >= 20, "{ctx} a generated password");
        assert!(
            !apply.stdout.contains(&password),
            "{ctx} the password is not printed"
        );
        let me = Some((name.as_str(), password.as_str()));
        let key = format!("{name}:k");
        assert_eq!(cli(me, &["SET", &key, "1"]), "OK", "{ctx}");
        assert!(
            cli(me, &["CONFIG", "GET", "maxmemory"]).contains("NOPERM"),
            "{ctx}"
        );
        assert!(
            cli(me, &["SET", "other:k", "1"]).contains("NOPERM"),
            "{ctx}"
        );

        let plan = wd.tf(bin, &["plan", "-input=false", "-detailed-exitcode"]);
        assert_eq!(
            plan.status.code(),
            Some(0),
            "{ctx} a clean re-plan:\n{plan}"
        );

        // Behind Terraform's back: admin powers. Plan shows it; apply undoes it.
        assert_eq!(
            cli(None, &["ACL", "SETUSER", &name, "+@admin"]),
            "OK",
            "{ctx}"
        );
        assert!(
            !cli(me, &["CONFIG", "GET", "maxmemory"]).contains("NOPERM"),
            "{ctx}"
        );
        let plan = wd.tf(bin, &["plan", "-input=false", "-detailed-exitcode"]);
        assert_eq!(
            plan.status.code(),
            Some(2),
            "{ctx} drift shows in plan:\n{plan}"
        );
        let apply = wd.tf(bin, &["apply", "-input=false", "-auto-approve"]);
        assert_success(&apply);
        assert!(
            cli(me, &["CONFIG", "GET", "maxmemory"]).contains("NOPERM"),
            "{ctx}"
        );
        let plan = wd.tf(bin, &["plan", "-input=false", "-detailed-exitcode"]);
        assert_eq!(
            plan.status.code(),
            Some(0),
            "{ctx} clean after the fix:\n{plan}"
        );

        // In place: writes taken away, same user and password.
        wd.write("main.tf", &config(&name, false));
        let apply = wd.tf(bin, &["apply", "-input=false", "-auto-approve"]);
        assert_success(&apply);
        assert_contains(&apply, "0 added, 1 changed, 0 destroyed");
        assert!(cli(me, &["SET", &key, "2"]).contains("NOPERM"), "{ctx}");
        assert_eq!(cli(me, &["GET", &key]), "1", "{ctx}");

        let destroy = wd.tf(bin, &["destroy", "-input=false", "-auto-approve"]);
        assert_success(&destroy);
        assert_eq!(
            cli(None, &["ACL", "GETUSER", &name]),
            "",
            "{ctx} the user is gone"
        );
        cli(None, &["DEL", &key]);
    });
}
