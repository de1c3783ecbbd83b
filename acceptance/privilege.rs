//! Least privilege by construction (issue 13): through a deliberately loose
//! catalog (`acceptance/catalogs/loose`, no name patterns), every escalation
//! is refused by the drivers — joining the provider's own role, a `pg_*` role,
//! a superuser, a CREATEROLE role, a marked role that is a member of a
//! superuser, an unmarked role (unless `grantable_roles` lists it), and a
//! grant on an unmarked schema (unless `grantable_schemas` lists it). A
//! refusal leaves nothing behind. And the provider dies with Terraform:
//! `kill -9` of `terraform apply` leaves no provider process.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::harness::*;
use crate::pg::{self, *};

fn config(
    provider_extra: &str,
    schema: &str,
    name: &str,
    access: &str,
    member_of: &[&str],
) -> String {
    let member_of: Vec<String> = member_of.iter().map(|r| format!("{r:?}")).collect();
    let db = maintenance_db();
    format!(
        r#"{REQUIRED_PLATFORM}
provider "platform" {{
  default_team = "checkout"
{provider_extra}}}

resource "platform_loose_access" "x" {{
  database  = "{db}"
  schema    = "{schema}"
  name      = "{name}"
  access    = "{access}"
  member_of = [{}]
  tier      = "included"
}}
"#,
        member_of.join(", ")
    )
}

fn workdir() -> Workdir {
    Workdir::dev_overrides().with_env("PLATFORM_CATALOG", test_catalog("loose"))
}

/// Applies `main_tf`, expects a refusal naming `needle` at the `member_of`
/// or `schema` attribute (`attribute`), and that the role was not left behind.
#[track_caller]
fn assert_refused(bin: &Path, ctx: &str, main_tf: &str, role: &str, attribute: &str, needle: &str) {
    let wd = workdir();
    wd.write("main.tf", main_tf);
    let out = wd.tf(bin, &["apply", "-auto-approve", "-input=false"]);
    assert_failure(&out);
    assert_no_crash(&out, ctx);
    assert_contains_norm(&out, ctx, needle);
    // The diagnostic points at the attribute: Terraform quotes its line.
    assert_contains_norm(&out, ctx, &format!("{attribute} ="));
    assert_eq!(
        pg::role(role),
        None,
        "{ctx} role {role} was left behind:\n{out}"
    );
}

struct Fixture {
    tag: String,
    marked_schema: String,
    hand_schema: String,
    superuser: String,
    createrole: String,
    plain: String,
    indirect: String,
}

impl Fixture {
    /// `test` keeps the names of tests running in parallel apart.
    fn new(bin: &Path, test: &str) -> Fixture {
        let tag = format!("{test}_{}", version_tag(bin));
        let f = Fixture {
            marked_schema: format!("acc_priv_marked_{tag}"),
            hand_schema: format!("acc_priv_hand_{tag}"),
            superuser: format!("acc_priv_su_{tag}"),
            createrole: format!("acc_priv_cr_{tag}"),
            plain: format!("acc_priv_plain_{tag}"),
            indirect: format!("acc_priv_indirect_{tag}"),
            tag,
        };
        f.drop();
        let db = maintenance_db();
        let marker = lit(&pg::marker("postgres_schema", &f.marked_schema, "schema"));
        let role_marker = lit(&pg::marker("postgres_schema", &f.indirect, "owner"));
        psql(
            &db,
            &format!(
                "CREATE SCHEMA \"{m}\"; COMMENT ON SCHEMA \"{m}\" IS {marker};
                 CREATE TABLE \"{m}\".t (x int); INSERT INTO \"{m}\".t VALUES (1);
                 CREATE SCHEMA \"{h}\"; CREATE TABLE \"{h}\".t (x int); INSERT INTO \"{h}\".t VALUES (1);
                 CREATE ROLE \"{su}\" SUPERUSER NOLOGIN;
                 CREATE ROLE \"{cr}\" CREATEROLE NOLOGIN;
                 CREATE ROLE \"{plain}\" NOLOGIN;
                 CREATE ROLE \"{ind}\" NOLOGIN IN ROLE \"{su}\"; COMMENT ON ROLE \"{ind}\" IS {role_marker};",
                m = f.marked_schema,
                h = f.hand_schema,
                su = f.superuser,
                cr = f.createrole,
                plain = f.plain,
                ind = f.indirect,
            ),
        );
        f
    }

    fn role(&self) -> String {
        format!("acc_priv_app_{}", self.tag)
    }

    fn drop(&self) {
        let db = maintenance_db();
        psql(
            &db,
            &format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE; DROP SCHEMA IF EXISTS \"{}\" CASCADE;",
                self.marked_schema, self.hand_schema
            ),
        );
        let role = self.role();
        drop_roles(&[
            role.as_str(),
            self.indirect.as_str(),
            self.superuser.as_str(),
            self.createrole.as_str(),
            self.plain.as_str(),
        ]);
    }
}

#[test]
fn escalations_are_refused_by_the_drivers() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("privilege", |bin, ctx| {
        let f = Fixture::new(bin, "esc");
        let role = f.role();
        let me = std::env::var("PGUSER").unwrap_or_else(|_| "platform".into());
        let m = f.marked_schema.as_str();

        // Refused at plan from the name alone: the provider's own login role
        // (a superuser here) and a pg_* role.
        assert_refused(
            bin,
            ctx,
            &config("", m, &role, "read", &[&me]),
            &role,
            "member_of",
            &format!("refused to join role {me:?}"),
        );
        assert_refused(
            bin,
            ctx,
            &config("", m, &role, "read", &["pg_execute_server_program"]),
            &role,
            "member_of",
            "refused to join role \"pg_execute_server_program\": \"pg_execute_server_program\" is a predefined PostgreSQL role",
        );
        // Refused at apply by the driver, from pg_roles: even when allowlisted.
        let allow_all = format!(
            "  postgres {{\n    grantable_roles = [{:?}, {:?}, {:?}, {:?}]\n  }}\n",
            f.superuser, f.createrole, f.indirect, "pg_execute_server_program"
        );
        assert_refused(
            bin,
            ctx,
            &config(&allow_all, m, &role, "read", &[&f.superuser]),
            &role,
            "member_of",
            &format!("\"{}\" is a superuser", f.superuser),
        );
        assert_refused(
            bin,
            ctx,
            &config(&allow_all, m, &role, "read", &[&f.createrole]),
            &role,
            "member_of",
            &format!("\"{}\" has CREATEROLE", f.createrole),
        );
        assert_refused(
            bin,
            ctx,
            &config(&allow_all, m, &role, "read", &[&f.indirect]),
            &role,
            "member_of",
            &format!(
                "\"{}\" is a member of \"{}\", which is a superuser",
                f.indirect, f.superuser
            ),
        );
        assert_refused(
            bin,
            ctx,
            &config(&allow_all, m, &role, "read", &["pg_execute_server_program"]),
            &role,
            "member_of",
            "predefined PostgreSQL role",
        );
        // An ordinary unmarked role: refused unless allowlisted.
        assert_refused(
            bin,
            ctx,
            &config("", m, &role, "read", &[&f.plain]),
            &role,
            "member_of",
            &format!("\"{}\" carries no ownership marker", f.plain),
        );
        // A schema made by hand: refused, even for a clean role.
        assert_refused(
            bin,
            ctx,
            &config("", &f.hand_schema, &role, "write", &[]),
            &role,
            "schema",
            &format!("refused to grant on schema \"{}\"", f.hand_schema),
        );
        assert!(
            !pg::has_schema_privilege(&maintenance_db(), &f.plain, &f.hand_schema, "USAGE"),
            "{ctx} hand schema touched"
        );

        // Allowlisted: the plain role may be joined, the hand schema granted on.
        let allow = format!(
            "  postgres {{\n    grantable_roles   = [{:?}]\n    grantable_schemas = [\"{}.{}\"]\n  }}\n",
            f.plain,
            maintenance_db(),
            f.hand_schema
        );
        let wd = workdir();
        wd.write(
            "main.tf",
            &config(&allow, &f.hand_schema, &role, "write", &[&f.plain]),
        );
        let apply = apply_ok(&wd, bin, ctx);
        assert_contains(&apply, "Apply complete! Resources: 1 added");
        let member = psql(
            &maintenance_db(),
            &format!(
                "SELECT pg_has_role({}, {}, 'MEMBER')",
                lit(&role),
                lit(&f.plain)
            ),
        );
        assert_eq!(member, "t", "{ctx} {role} is not a member of {}", f.plain);
        let delete = psql(
            &maintenance_db(),
            &format!(
                "SELECT has_table_privilege({}, {}, 'DELETE')",
                lit(&role),
                lit(&format!("{}.t", f.hand_schema))
            ),
        );
        assert_eq!(
            delete, "t",
            "{ctx} write was not granted on the allowlisted schema"
        );
        destroy_ok(&wd, bin, ctx);
        assert_eq!(pg::role(&role), None, "{ctx} role left after destroy");
        f.drop();
    });
}

/// Pids of the live (not zombie) children of `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is still a live (not zombie) process.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(|s| s != "Z"))
        })
        .unwrap_or(false)
}

#[cfg(target_os = "linux")]
#[test]
fn provider_dies_with_terraform() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("pdeathsig", |bin, ctx| {
        let f = Fixture::new(bin, "pds");
        let role = f.role();
        // Hold the grant driver's schema lock so the apply stops inside the
        // provider, in the middle of its grant transaction.
        let lock = format!(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext('platform-provider.postgres.grant'), hashtext({})); SELECT pg_sleep(60);",
            lit(&f.marked_schema)
        );
        let mut holder = std::process::Command::new("psql")
            .args(["-X", "-q", "-d", &maintenance_db(), "-c", &lock])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("psql holds the lock");
        std::thread::sleep(Duration::from_millis(500));

        let wd = workdir();
        wd.write("main.tf", &config("", &f.marked_schema, &role, "read", &[]));
        let mut terraform = wd
            .tf_command(
                bin,
                &[
                    "apply".into(),
                    "-auto-approve".into(),
                    "-input=false".into(),
                    "-no-color".into(),
                ],
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("terraform starts");
        // Wait until the provider waits on the lock (its role exists).
        let start = Instant::now();
        while pg::role(&role).is_none() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            pg::role(&role).is_some(),
            "{ctx} the apply never reached the grant"
        );
        // Terraform < 1.1 re-executes itself (panicwrap): the provider is a
        // child of that inner terraform, which is the one to kill.
        let mut providers: Vec<(u32, u32)> = Vec::new(); // (pid, parent)
        let mut generation = vec![terraform.id()];
        while !generation.is_empty() {
            let mut next = Vec::new();
            for parent in generation {
                for pid in children(parent) {
                    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                        .map(|e| e.display().to_string())
                        .unwrap_or_default();
                    if exe.contains("terraform-provider-platform") {
                        providers.push((pid, parent));
                    } else {
                        next.push(pid);
                    }
                }
            }
            generation = next;
        }
        assert!(
            !providers.is_empty(),
            "{ctx} no provider process under terraform {}",
            terraform.id()
        );
        for (_, parent) in &providers {
            let killed = std::process::Command::new("kill")
                .args(["-9", &parent.to_string()])
                .status()
                .expect("kill -9");
            assert!(killed.success(), "{ctx} kill -9 {parent}");
        }
        let providers: Vec<u32> = providers.iter().map(|(pid, _)| *pid).collect();
        terraform.kill().expect("kill -9 terraform"); // SIGKILL
        let _ = terraform.wait();
        std::thread::sleep(Duration::from_secs(1));
        let left: Vec<u32> = providers
            .iter()
            .copied()
            .filter(|pid| alive(*pid))
            .collect();
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(
            left.is_empty(),
            "{ctx} provider processes outlived terraform: {left:?}"
        );
        // Its grant transaction never committed: PostgreSQL rolled it back
        // when the connection dropped.
        let start = Instant::now();
        while pg::has_schema_privilege(&maintenance_db(), &role, &f.marked_schema, "USAGE")
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !pg::has_schema_privilege(&maintenance_db(), &role, &f.marked_schema, "USAGE"),
            "{ctx} the interrupted grant was committed"
        );
        f.drop();
    });
}

/// The attacks of issue 13 through the example catalog itself (compiled in):
/// joining the provider's own role is refused at plan, a pg_* role by the
/// catalog's pattern, and write access to a schema made by hand at apply.
#[test]
fn example_catalog_attacks_refused() {
    if !pg_enabled() {
        return;
    }
    for_each_bin("privilege_example", |bin, ctx| {
        let f = Fixture::new(bin, "exm");
        let db = maintenance_db();
        let name = format!("acc_exm_{}", version_tag(bin));
        let role = format!("{db}_{name}");
        drop_roles(&[role.as_str()]);
        let me = std::env::var("PGUSER").unwrap_or_else(|_| "platform".into());
        let access = |schema: &str, member_of: &str| {
            format!(
                r#"{REQUIRED_PLATFORM}
{PROVIDER_BLOCK}
resource "platform_postgres_access" "x" {{
  database  = "{db}"
  schema    = "{schema}"
  name      = "{name}"
  access    = "write"
  member_of = [{member_of}]
}}
"#
            )
        };
        for (main_tf, needle) in [
            (
                access(&f.marked_schema, &format!("{me:?}")),
                format!("refused to join role {me:?}"),
            ),
            (
                access(&f.marked_schema, "\"pg_execute_server_program\""),
                "pg_execute_server_program".to_owned(),
            ),
            (
                access(&f.hand_schema, ""),
                format!("refused to grant on schema \"{}\"", f.hand_schema),
            ),
        ] {
            let wd = Workdir::dev_overrides();
            wd.write("main.tf", &main_tf);
            let out = wd.tf(bin, &["apply", "-auto-approve", "-input=false"]);
            assert_failure(&out);
            assert_no_crash(&out, ctx);
            assert_contains_norm(&out, ctx, &needle);
            assert_eq!(
                pg::role(&role),
                None,
                "{ctx} role {role} left behind:\n{out}"
            );
        }
        f.drop();
    });
}
