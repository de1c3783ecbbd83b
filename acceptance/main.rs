//! Acceptance tests: real Terraform binaries (every one in TF_ACC_TERRAFORM_BINS)
//! against the provider. Run them with `scripts/test`, which installs the tools
//! and sets TF_ACC=1; under plain `cargo test` they print SKIPPED and pass.

mod harness;

mod catalog_errors;
mod changes;
mod common;
mod data_sources;
mod examples;
mod guardrails;
mod lifecycle;
mod mirror;
mod modules;
mod nodriver;
mod pg;
mod postgres;
mod privilege;
mod quickstart;
mod recovery;
mod redis;
mod schema;
mod tls;
mod tls_cluster;
mod unknowns;
mod validation;

use harness::*;

const NULL_ONLY_CONFIG: &str = r#"terraform {
  required_providers {
    null = { source = "hashicorp/null", version = "2.1.2" }
  }
}

resource "null_resource" "smoke" {
  triggers = { x = "1" }
}
"#;

/// Proves the harness itself: hashicorp/null 2.1.2 from the filesystem mirror,
/// offline `terraform init` + `plan`, in both CLI-config modes, for every
/// terraform binary. Does not start our provider.
#[test]
fn smoke_null_provider_via_filesystem_mirror() {
    if !acc_enabled() {
        return;
    }
    null_mirror(); // panics with a hint when scripts/setup has not run
    for bin in terraform_bins() {
        for mode in [CliMode::Mirror, CliMode::DevOverrides] {
            let wd = Workdir::new(mode);
            wd.write("main.tf", NULL_ONLY_CONFIG);
            let ctx = format!("[{} / {mode:?}]", bin_label(&bin));

            let init = wd.tf(&bin, &["init", "-input=false"]);
            assert_success(&init);
            assert!(
                contains(&init, "Installed hashicorp/null v2.1.2"),
                "{ctx} init did not install null from the mirror:\n{init}"
            );
            assert!(
                wd.path().join(".terraform.lock.hcl").is_file(),
                "{ctx} no lock file after init"
            );

            let plan = wd.tf(&bin, &["plan", "-input=false"]);
            assert_success(&plan);
            assert!(
                contains(&plan, "1 to add, 0 to change, 0 to destroy"),
                "{ctx} unexpected plan:\n{plan}"
            );
            eprintln!("{ctx} init {:.2?}, plan {:.2?}", init.elapsed, plan.elapsed);
        }
    }
}
