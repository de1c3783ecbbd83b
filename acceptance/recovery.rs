//! Replace and recovery never orphan (issue 13): what a taint, a crash or a
//! half-made composition leaves is found again by its ownership marker, and
//! nothing without that marker is ever taken over.
//!
//! - taint → apply replaces cleanly (Terraform plans a tainted object's
//!   replacement without its private data: the delete half finds the objects
//!   from the state's attributes);
//! - objects a crashed apply left half made (this resource's marker, no
//!   state) are adopted and completed by the next apply, the role with a new
//!   password; a database left unmarked between CREATE DATABASE and its
//!   COMMENT is recognised by its owner role's marker;
//! - a second state with the same names takes the objects over openly (a new
//!   generation in the markers, a new password); the first state's instance
//!   then neither changes nor drops them;
//! - import of a half-made resource works, the next apply makes the rest, and
//!   `secret_version` gives the imported role a password;
//! - `kill -9` of terraform in the middle of an apply, then apply again:
//!   converged, no orphan, nothing lost (the bench `bench/faults.py` runs
//!   many trials; this is its smoke).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::harness::*;
use crate::pg::{self, *};

const ADDR: &str = "platform_postgres_database.x";

fn config(name: &str, secret_version: Option<u32>) -> String {
    let rotation = secret_version
        .map(|v| format!("  secret_version = {v}\n"))
        .unwrap_or_default();
    format!(
        r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "platform_postgres_database" "x" {{
  name             = "{name}"
  tier             = "small"
  connection_limit = 20
{rotation}}}

output "uri" {{
  value     = {ADDR}.connection_uri
  sensitive = true
}}
"#
    )
}

fn drop_resource(name: &str) {
    drop_databases(&[name]);
    drop_roles(&[format!("{name}_owner").as_str()]);
}

/// Asserts the database and its role exist, both marked for resource `name`.
#[track_caller]
fn assert_provisioned(ctx: &str, name: &str) {
    let owner = format!("{name}_owner");
    let role = pg::role(&owner).unwrap_or_else(|| panic!("{ctx} role {owner} missing"));
    assert!(
        is_marker(&role.comment, "postgres_database", name, "owner"),
        "{ctx} marker of {owner}"
    );
    let db = pg::database(name).unwrap_or_else(|| panic!("{ctx} database {name} missing"));
    assert_eq!(db.owner, owner, "{ctx} owner of {name}");
    assert!(
        is_marker(&db.comment, "postgres_database", name, "db"),
        "{ctx} marker of database {name}"
    );
}

#[track_caller]
fn assert_gone(ctx: &str, name: &str) {
    assert_eq!(pg::database(name), None, "{ctx} database {name} left");
    assert_eq!(
        pg::role(&format!("{name}_owner")),
        None,
        "{ctx} role {name}_owner left"
    );
    let marked = marked_objects(name);
    assert!(
        marked.is_empty(),
        "{ctx} orphans marked for {name}: {marked:?}"
    );
}

/// The password in the state's `connection_uri` (`postgres://user:pw@…`).
fn state_password(wd: &Workdir, bin: &std::path::Path, ctx: &str, user: &str) -> Option<String> {
    let values = state_values(wd, bin, ctx, ADDR);
    let uri = values["connection_uri"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let rest = uri.strip_prefix(&format!("postgres://{user}:"))?;
    Some(rest[..rest.find('@')?].to_owned())
}

/// Whether `user` can log in with `password` (over TCP to the test cluster).
fn login_works(user: &str, password: &str, db: &str) -> bool {
    std::process::Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-d", db, "-c", "SELECT 1"])
        .env("PGUSER", user)
        .env("PGPASSWORD", password)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(wd: &Workdir, bin: &std::path::Path, args: &[&str]) -> Output {
    wd.tf(bin, args)
}

#[test]
fn taint_then_apply_replaces_cleanly() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("taint", |bin, ctx| {
        let name = format!("acc_taint_{}", version_tag(bin));
        let owner = format!("{name}_owner");
        drop_resource(&name);
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &config(&name, None));
        apply_ok(&wd, bin, ctx);
        let before = state_password(&wd, bin, ctx, &owner).expect("password after create");

        let taint = run(&wd, bin, &["taint", ADDR]);
        assert_success(&taint);
        let apply = apply_ok(&wd, bin, ctx);
        assert_contains(&apply, "Resources: 1 added, 0 changed, 1 destroyed.");
        assert!(
            !contains(&apply, "Nothing recorded") && !contains(&apply, "already exists"),
            "{ctx}\n{apply}"
        );
        assert_provisioned(ctx, &name);
        let after = state_password(&wd, bin, ctx, &owner).expect("password after replace");
        assert_ne!(before, after, "{ctx} the replaced role kept its password");
        assert!(login_works(&owner, &after, &name), "{ctx} new password");
        assert!(!login_works(&owner, &before, &name), "{ctx} old password");
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 0, "{ctx} plan after the replace:\n{plan}");

        destroy_ok(&wd, bin, ctx);
        assert_gone(ctx, &name);
    });
}

#[test]
fn half_made_objects_are_adopted_only_with_this_resources_marker() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("adopt", |bin, ctx| {
        let name = format!("acc_adopt_{}", version_tag(bin));
        let owner = format!("{name}_owner");
        let admin = maintenance_db();

        // 1. What a crash after the role and before the database leaves.
        drop_resource(&name);
        psql(
            &admin,
            &format!(
                "CREATE ROLE \"{owner}\" LOGIN PASSWORD 'leftover'; COMMENT ON ROLE \"{owner}\" IS {}",
                lit(&marker("postgres_database", &name, "owner"))
            ),
        );
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &config(&name, None));
        let apply = apply_ok(&wd, bin, ctx);
        assert_contains(&apply, "Resources: 1 added, 0 changed, 0 destroyed.");
        assert_provisioned(ctx, &name);
        let password = state_password(&wd, bin, ctx, &owner).expect("a new password");
        assert!(login_works(&owner, &password, &name), "{ctx} adopted role");
        assert!(
            !login_works(&owner, "leftover", &name),
            "{ctx} the leftover password still works"
        );
        destroy_ok(&wd, bin, ctx);
        assert_gone(ctx, &name);

        // 2. A crash between CREATE DATABASE and its COMMENT: the database is
        // unmarked, but owned by this resource's own (marked) role.
        psql(
            &admin,
            &format!(
                "CREATE ROLE \"{owner}\" LOGIN; COMMENT ON ROLE \"{owner}\" IS {}",
                lit(&marker("postgres_database", &name, "owner"))
            ),
        );
        psql(
            &admin,
            &format!("CREATE DATABASE \"{name}\" OWNER \"{owner}\" TEMPLATE template0"),
        );
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &config(&name, None));
        apply_ok(&wd, bin, ctx);
        assert_provisioned(ctx, &name);
        destroy_ok(&wd, bin, ctx);
        assert_gone(ctx, &name);

        // 3. Another resource's role, and an unmarked one: never taken.
        for comment in [
            Some(marker("postgres_database", "someone_else", "owner")),
            None,
        ] {
            drop_resource(&name);
            psql(
                &admin,
                &format!("CREATE ROLE \"{owner}\" LOGIN PASSWORD 'theirs'"),
            );
            if let Some(comment) = &comment {
                psql(
                    &admin,
                    &format!("COMMENT ON ROLE \"{owner}\" IS {}", lit(comment)),
                );
            }
            let wd = Workdir::dev_overrides();
            wd.write("main.tf", &config(&name, None));
            let apply = run(&wd, bin, &["apply", "-input=false", "-auto-approve"]);
            assert_failure(&apply);
            assert_no_crash(&apply, ctx);
            let needle = if comment.is_some() {
                "is managed by another resource"
            } else {
                "already exists; import it"
            };
            assert_contains_norm(&apply, ctx, needle);
            assert_eq!(
                pg::role(&owner).map(|r| r.comment),
                Some(comment.clone().unwrap_or_default()),
                "{ctx} the foreign role was changed"
            );
            assert!(
                login_works(&owner, "theirs", &admin),
                "{ctx} password changed"
            );
            assert_eq!(pg::database(&name), None, "{ctx}");
            assert!(state_list(&wd, bin, ctx).is_empty(), "{ctx}");
        }

        // 4. A create that takes a leftover role over and then fails (somebody
        // else's database has the name) keeps the role, tracked and tainted:
        // it is this resource's now, and nothing it took over is dropped on
        // the spot. Once the name is free, apply replaces it cleanly.
        drop_resource(&name);
        psql(
            &admin,
            &format!(
                "CREATE ROLE \"{owner}\" LOGIN; COMMENT ON ROLE \"{owner}\" IS {}",
                lit(&marker("postgres_database", &name, "owner"))
            ),
        );
        psql(&admin, &format!("CREATE DATABASE \"{name}\""));
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &config(&name, None));
        let apply = run(&wd, bin, &["apply", "-input=false", "-auto-approve"]);
        assert_failure(&apply);
        assert_no_crash(&apply, ctx);
        assert_contains_norm(&apply, ctx, &format!("database \"{name}\" already exists"));
        assert_contains_norm(
            &apply,
            ctx,
            "kept owner (they existed before and were taken over",
        );
        let role = pg::role(&owner).expect("the taken-over role is kept");
        assert!(
            is_marker(&role.comment, "postgres_database", &name, "owner")
                && role.comment.contains(" generation="),
            "{ctx} {role:?}"
        );
        assert_eq!(state_list(&wd, bin, ctx), [ADDR], "{ctx}");
        drop_databases(&[name.as_str()]);
        let apply = apply_ok(&wd, bin, ctx);
        assert_contains(&apply, "Resources: 1 added, 0 changed, 1 destroyed.");
        assert_provisioned(ctx, &name);
        destroy_ok(&wd, bin, ctx);
        assert_gone(ctx, &name);
    });
}

/// A second state declaring the same names (or an apply re-run whose first
/// run's state was lost) takes the objects over openly: the creating instance
/// is a new generation, the role gets a new password, and the first state's
/// instance may neither change nor drop them any more (its destroy leaves them,
/// with a warning).
#[test]
fn a_second_state_takes_over_and_the_first_lets_go() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("takeover", |bin, ctx| {
        let name = format!("acc_twice_{}", version_tag(bin));
        let owner = format!("{name}_owner");
        drop_resource(&name);
        let first = Workdir::dev_overrides();
        first.write("main.tf", &config(&name, None));
        apply_ok(&first, bin, ctx);
        let old_password = state_password(&first, bin, ctx, &owner).expect("password");
        let old_id = state_values(&first, bin, ctx, ADDR)["id"].clone();

        let second = Workdir::dev_overrides();
        second.write("main.tf", &config(&name, None));
        let apply = apply_ok(&second, bin, ctx);
        assert_contains(&apply, "Resources: 1 added, 0 changed, 0 destroyed.");
        assert_provisioned(ctx, &name);
        let new_id = state_values(&second, bin, ctx, ADDR)["id"].clone();
        assert_ne!(old_id, new_id, "{ctx} a new instance has a new generation");
        let password = state_password(&second, bin, ctx, &owner).expect("password");
        assert!(login_works(&owner, &password, &name), "{ctx}");
        assert!(
            !login_works(&owner, &old_password, &name),
            "{ctx} the first state's password still works"
        );

        // The first state's instance lets go.
        first.write("main.tf", &config(&name, Some(1)));
        let refused = run(&first, bin, &["apply", "-input=false", "-auto-approve"]);
        assert_failure(&refused);
        assert_no_crash(&refused, ctx);
        assert_contains_norm(
            &refused,
            ctx,
            "has been taken over by another instance of this resource",
        );
        let destroy = destroy_ok(&first, bin, ctx);
        assert_contains_norm(&destroy, ctx, "another instance of this resource");
        assert_contains_norm(&destroy, ctx, "left in place");
        assert_provisioned(ctx, &name);
        assert!(
            login_works(&owner, &password, &name),
            "{ctx} after the first state's destroy"
        );

        destroy_ok(&second, bin, ctx);
        assert_gone(ctx, &name);
    });
}

#[test]
fn import_of_a_half_made_resource_then_secret_rotation() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("import_half", |bin, ctx| {
        let name = format!("acc_half_{}", version_tag(bin));
        let owner = format!("{name}_owner");
        drop_resource(&name);
        // The role a crashed apply made; its database never was.
        psql(
            &maintenance_db(),
            &format!(
                "CREATE ROLE \"{owner}\" LOGIN CONNECTION LIMIT 20 PASSWORD 'lost'; COMMENT ON ROLE \"{owner}\" IS {}",
                lit(&marker("postgres_database", &name, "owner"))
            ),
        );
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &config(&name, None));
        let import = run(&wd, bin, &["import", "-input=false", ADDR, &name]);
        assert_success(&import);
        assert_no_crash(&import, ctx);
        assert_contains_norm(&import, ctx, "is only partly made");
        assert_contains_norm(&import, ctx, "The next apply creates them");
        assert_contains_norm(&import, ctx, "cannot be imported");
        assert_contains_norm(&import, ctx, "secret_version = 1");

        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(
            code, 2,
            "{ctx} the missing database must be planned:\n{plan}"
        );
        assert_contains(&plan, &format!("# {ADDR} will be updated in-place"));
        assert_contains_norm(&plan, ctx, "The state records no db; apply creates it.");
        apply_ok(&wd, bin, ctx);
        assert_provisioned(ctx, &name);
        assert_eq!(
            state_password(&wd, bin, ctx, &owner),
            None,
            "{ctx} an imported role has no known password"
        );
        assert!(login_works(&owner, "lost", &name), "{ctx} not rotated yet");

        // The rotation the import warning offers.
        wd.write("main.tf", &config(&name, Some(1)));
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 2, "{ctx}\n{plan}");
        assert_line(&plan, ctx, &["+ secret_version", "= 1"]);
        apply_ok(&wd, bin, ctx);
        let password = state_password(&wd, bin, ctx, &owner).expect("a rotated password");
        assert!(
            login_works(&owner, &password, &name),
            "{ctx} rotated password"
        );
        assert!(!login_works(&owner, "lost", &name), "{ctx} old password");
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 0, "{ctx} plan after the rotation:\n{plan}");

        destroy_ok(&wd, bin, ctx);
        assert_gone(ctx, &name);
    });
}

/// Smoke of `bench/faults.py`: kill -9 terraform (its whole process group)
/// part-way through an apply of several databases, apply again, destroy.
#[test]
fn kill_during_apply_then_apply_converges() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("kill_apply", |bin, ctx| {
        let tag = version_tag(bin);
        let names: Vec<String> = (0..6).map(|i| format!("acc_kill{i}_{tag}")).collect();
        for name in &names {
            drop_resource(name);
        }
        let mut main_tf = format!("{REQUIRED_PLATFORM}\n{PROVIDER_BLOCK}\n");
        for (i, name) in names.iter().enumerate() {
            main_tf.push_str(&format!(
                "resource \"platform_postgres_database\" \"d{i}\" {{\n  name = \"{name}\"\n  tier = \"small\"\n}}\n"
            ));
        }
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &main_tf);
        let mut cmd = wd.tf_command(
            bin,
            &[
                "apply".into(),
                "-auto-approve".into(),
                "-input=false".into(),
                "-no-color".into(),
                "-parallelism=3".into(),
            ],
        );
        use std::os::unix::process::CommandExt;
        let mut child = cmd
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("terraform starts");
        // Kill once the first objects exist: the apply is then in flight.
        let start = Instant::now();
        while names
            .iter()
            .all(|n| pg::role(&format!("{n}_owner")).is_none())
            && start.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The system call, not `kill -9 -PGID`: some procps-ng releases
        // signal every process they may for that.
        let group = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
        rustix::process::kill_process_group(group, rustix::process::Signal::KILL)
            .expect("kill -9 the apply's process group");
        let _ = child.wait();

        let again = run(&wd, bin, &["apply", "-input=false", "-auto-approve"]);
        assert_success(&again);
        for name in &names {
            assert_provisioned(ctx, name);
        }
        let (plan, code) = plan_detailed(&wd, bin, ctx, &[]);
        assert_eq!(code, 0, "{ctx} plan after recovery:\n{plan}");
        assert_eq!(state_list(&wd, bin, ctx).len(), names.len(), "{ctx}");
        destroy_ok(&wd, bin, ctx);
        for name in &names {
            assert_gone(ctx, name);
        }
    });
}
