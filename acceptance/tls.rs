//! TLS to PostgreSQL through real Terraform (issue 13, item 6): against a
//! TLS-only cluster of its own (`tls_cluster.rs`: plain TCP is rejected by
//! pg_hba, the server certificate names `localhost` only), a provider block
//! with `sslmode = "verify-full"` applies and destroys a database; the same
//! block pointed at `127.0.0.1` (a name the certificate does not carry) is
//! refused by `terraform plan` at ConfigureProvider, before any resource is
//! read, with the reason.

use crate::common::*;
use crate::harness::*;
use crate::pg::{apply_ok, destroy_ok, pg_enabled};
use crate::tls_cluster::TlsCluster;

fn config(c: &TlsCluster, host: &str, name: &str) -> String {
    format!(
        r#"{REQUIRED_PLATFORM}
provider "platform" {{
  default_team = "checkout"
  postgres {{
    host        = "{host}"
    port        = {port}
    username    = "platform"
    database    = "postgres"
    sslmode     = "verify-full"
    sslrootcert = "{root}"
  }}
}}

resource "platform_postgres_database" "x" {{
  name             = "{name}"
  tier             = "small"
  connection_limit = 5
}}
"#,
        port = c.port,
        root = TlsCluster::path(&c.ca),
    )
}

#[test]
fn postgres_tls_verify_full_applies_and_wrong_host_is_refused_at_plan() {
    if !pg_enabled() {
        return;
    }
    let cluster = TlsCluster::start(&repo_root());
    for_each_bin("pg_tls", |bin, ctx| {
        let name = format!("acc_tls_{}", crate::pg::version_tag(bin));
        // The password from the environment, as users keep it.
        let wd = Workdir::dev_overrides().with_env("PGPASSWORD", &cluster.password);
        wd.write("main.tf", &config(&cluster, "localhost", &name));
        apply_ok(&wd, bin, ctx);
        let db = cluster.psql(&format!(
            "SELECT datname FROM pg_database WHERE datname = '{name}'"
        ));
        assert_eq!(db, name, "{ctx} database {name} not created over TLS");

        // The certificate names localhost only: verify-full to 127.0.0.1 is
        // refused when the provider is configured, so plan fails before reading.
        wd.write("main.tf", &config(&cluster, "127.0.0.1", &name));
        let plan = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&plan);
        assert_no_crash(&plan, ctx);
        assert_contains_norm(&plan, ctx, "PostgreSQL server certificate refused");
        assert_contains_norm(
            &plan,
            ctx,
            "the server's certificate is not valid for the host name \"127.0.0.1\"",
        );

        wd.write("main.tf", &config(&cluster, "localhost", &name));
        destroy_ok(&wd, bin, ctx);
        let db = cluster.psql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        ));
        assert_eq!(db, "0", "{ctx} database {name} left behind");
    });
}
