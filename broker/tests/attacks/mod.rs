//! Attacks on the broker's guarantee — what is applied is exactly what was
//! reviewed and allowed — by someone who can write the working directory
//! (and so the default broker home `DIR/.platform`) but does not hold the
//! broker key. Each test mounts one attack with real Terraform (every binary
//! of `terraform_bins()`) and asserts that the broker refuses it with a
//! clear message and that nothing was applied.
//!
//! Audit-log forgery (appended lines, a rewritten log and head) lives
//! elsewhere; here the log is only deleted (attack 2).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value as Json;

use super::{assert_refused, json, read};
use crate::acc::*;

/// A broker key for the keyed variants (at least 32 characters).
const KEY: &str = "attack-tests-broker-key-0123456789abcdef";

/// A world whose broker runs with `key` as `PLATFORM_BROKER_KEY`, or with
/// none at all (the variable removed, whatever the caller's environment).
fn world(test: &str, tf: &Path) -> World {
    let mut w = World::new(test, tf);
    w.unset_env("PLATFORM_BROKER_KEY");
    w
}

fn use_key(w: &mut World, key: Option<&str>) {
    match key {
        Some(key) => w.set_env("PLATFORM_BROKER_KEY", key),
        None => w.unset_env("PLATFORM_BROKER_KEY"),
    }
}

fn keyed(key: Option<&str>) -> &'static str {
    if key.is_some() {
        "with key"
    } else {
        "without key"
    }
}

/// The refusal an edited identity meets: without a key its digest no longer
/// matches its plan event in the audit log; with one its MAC fails.
fn edited_identity_refusal(key: Option<&str>) -> &'static str {
    match key {
        None => "differs from the one its plan event in the audit log recorded",
        Some(_) => "does not authenticate with the broker key",
    }
}

fn identity_path(w: &World, run: &str) -> PathBuf {
    w.run_dir(run).join("identity.json")
}

fn identity(w: &World, run: &str) -> Json {
    let path = identity_path(w, run);
    json(&path.display().to_string(), &read(&path))
}

/// Replaces `from` (which must be there) by `to` in `path`, as an attacker
/// with an editor would.
#[track_caller]
fn edit(path: &Path, from: &str, to: &str) {
    let text = read(path);
    assert!(
        text.contains(from),
        "{} lacks {from:?}:\n{text}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).expect("edit");
}

/// The audit log's events, parsed.
fn events(home: &Path) -> Vec<Json> {
    read(&home.join("audit.log"))
        .lines()
        .map(|l| json("audit.log", l))
        .collect()
}

/// The last audit event is the refusal of `run`.
#[track_caller]
fn assert_refusal_audited(w: &World, run: &str) {
    let events = events(&w.home);
    let last = events.last().expect("an event");
    assert_eq!(
        last["type"], "dev.platform.broker.apply.refused",
        "{}: {last}",
        w.ctx
    );
    assert_eq!(last["data"]["run"], run, "{}: {last}", w.ctx);
}

/// `terraform ARGS` in `dir`, with the world's CLI configuration and
/// variables (what the broker's terraform sees).
fn terraform(w: &World, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(&w.tf);
    cmd.args(args)
        .current_dir(dir)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .stdin(Stdio::null());
    w.isolate(&mut cmd);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{}: cannot run terraform: {e}", w.ctx));
    assert!(
        out.status.success(),
        "{}: terraform {args:?} failed:\n{}{}",
        w.ctx,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A configuration with the variables `limit` (number) and `canary`
/// (sensitive), the secret used twice (two labels) and as an output.
fn config_with_vars(db: &str, tier: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    platform = {{ source = "platform/platform", version = "{PROVIDER_VERSION}" }}
  }}
}}

provider "platform" {{
  default_team = "checkout"
}}

variable "canary" {{
  type      = string
  sensitive = true
}}

variable "limit" {{
  type    = number
  default = 20
}}

resource "platform_postgres_database" "db" {{
  name             = "{db}"
  tier             = "{tier}"
  connection_limit = var.limit
  labels = {{
    service = "broker-attacks"
    x       = var.canary
    y       = var.canary
  }}
}}

output "secret" {{
  value     = var.canary
  sensitive = true
}}
"#
    )
}

/// Every file under `dir` but plan files (Terraform's own format, which holds
/// variable values by design), checked for `needle`.
#[track_caller]
fn assert_nowhere_under(ctx: &str, dir: &Path, needle: &str) {
    let files = files_under(dir);
    assert!(!files.is_empty(), "{ctx}: nothing under {}", dir.display());
    for f in files
        .iter()
        .filter(|f| f.extension().is_none_or(|e| e != "tfplan"))
    {
        let bytes = std::fs::read(f).expect("read");
        assert!(
            !String::from_utf8_lossy(&bytes).contains(needle),
            "{ctx}: {needle:?} found in {}",
            f.display()
        );
    }
}

fn soft_policy(w: &World) -> String {
    write_policy(
        w,
        "policy",
        &[(
            "soft",
            "soft_mandatory",
            &[("approval.rego", NEEDS_APPROVAL)],
        )],
    )
    .to_str()
    .expect("utf8")
    .to_owned()
}

// ---------------------------------------------------------------------------
// 1. needs_approval edited to allowed

#[test]
fn attack_verdict_needs_approval_edited_to_allowed() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let mut w = world("atk_soft_edit", &tf);
        w.write_config("standard", 20);
        let policy = soft_policy(&w);
        for key in [None, Some(KEY)] {
            use_key(&mut w, key);
            let ctx = format!("{} {}", w.ctx, keyed(key));
            let r = w.plan(&["--policy", &policy]);
            r.expect(&ctx, 4);
            let run = r.run_id();
            edit(
                &identity_path(&w, &run),
                "\"verdict\": \"needs_approval\"",
                "\"verdict\": \"allowed\"",
            );
            assert_refused(
                &w,
                &run,
                &["--policy", &policy],
                edited_identity_refusal(key),
            );
            assert_refusal_audited(&w, &run);
            if key.is_some() {
                // Nor does removing the MAC help.
                let path = identity_path(&w, &run);
                let mut signed = identity(&w, &run);
                signed.as_object_mut().expect("object").remove("mac");
                std::fs::write(&path, serde_json::to_vec_pretty(&signed).expect("json"))
                    .expect("write");
                assert_refused(
                    &w,
                    &run,
                    &["--policy", &policy],
                    "the identity is not authenticated",
                );
            }
            assert!(!database_exists(&w.db), "{ctx}: edited verdict applied");
            assert!(
                !w.work.join("terraform.tfstate").exists(),
                "{ctx}: a state was written"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 2. denied edited to allowed (and the audit log deleted)

#[test]
fn attack_verdict_denied_edited_to_allowed() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let mut w = world("atk_deny_edit", &tf);
        w.write_config("standard", 20);
        let policy = write_policy(
            &w,
            "policy",
            &[("hard", "hard_mandatory", &[("tier.rego", DENY_STANDARD)])],
        );
        let policy = policy.to_str().expect("utf8");
        for key in [None, Some(KEY)] {
            use_key(&mut w, key);
            let ctx = format!("{} {}", w.ctx, keyed(key));
            let r = w.plan(&["--policy", policy]);
            r.expect(&ctx, 3);
            let run = r.run_id();
            edit(
                &identity_path(&w, &run),
                "\"verdict\": \"denied\"",
                "\"verdict\": \"allowed\"",
            );
            assert_refused(
                &w,
                &run,
                &["--policy", policy],
                edited_identity_refusal(key),
            );
            assert_refusal_audited(&w, &run);
            // The history removed as well: the log and its head deleted (the
            // broker starts a new log), so the run has no plan event.
            std::fs::remove_file(w.home.join("audit.log")).expect("rm log");
            std::fs::remove_file(w.home.join("audit.log.head")).expect("rm head");
            let needle = match key {
                None => "has no plan event for run",
                Some(_) => edited_identity_refusal(key),
            };
            assert_refused(&w, &run, &["--policy", policy], needle);
            assert!(!database_exists(&w.db), "{ctx}: denied plan applied");
            assert!(
                !w.work.join("terraform.tfstate").exists(),
                "{ctx}: a state was written"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 3. expiry extended

#[test]
fn attack_expiry_extended() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let mut w = world("atk_expiry", &tf);
        w.write_config("small", 20);
        for key in [None, Some(KEY)] {
            use_key(&mut w, key);
            let ctx = format!("{} {}", w.ctx, keyed(key));
            let r = w.plan(&["--expires-hours", "0"]);
            r.expect(&ctx, 2);
            let run = r.run_id();
            std::thread::sleep(std::time::Duration::from_millis(1100));
            let expires = identity(&w, &run)["expires_at"]
                .as_str()
                .expect("expires_at")
                .to_owned();
            edit(
                &identity_path(&w, &run),
                &format!("\"expires_at\": \"{expires}\""),
                "\"expires_at\": \"2099-12-31T00:00:00Z\"",
            );
            assert_refused(&w, &run, &[], edited_identity_refusal(key));
            assert_refusal_audited(&w, &run);
            assert!(!database_exists(&w.db), "{ctx}: expired bundle applied");
        }
    }
}

// ---------------------------------------------------------------------------
// 4. the plan file swapped for a destroy plan, its digest written in

#[test]
fn attack_plan_file_swapped_with_matching_digest() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let mut w = world("atk_swap", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let r = w.plan(&[]);
        r.expect(&ctx, 2);
        w.broker(&["apply", &r.run_id()]).expect(&ctx, 0);
        assert!(database_exists(&w.db), "{ctx}: the first apply did nothing");
        let owner = format!("{}_owner", w.db);

        let evil = w.path("evil.tfplan");
        let evil_arg = format!("-out={}", evil.display());
        for (key, limit) in [(None, 30), (Some(KEY), 40)] {
            use_key(&mut w, key);
            let ctx = format!("{ctx} {}", keyed(key));
            // A harmless, reviewed change...
            w.write_config("small", limit);
            let r = w.plan(&[]);
            r.expect(&ctx, 2);
            let run = r.run_id();
            // ...whose plan file is replaced by a destroy plan of the same
            // directory, state and configuration, with its digest.
            terraform(
                &w,
                &w.work,
                &["plan", "-destroy", "-input=false", "-no-color", &evil_arg],
            );
            let bytes = std::fs::read(&evil).expect("evil plan");
            std::fs::write(w.run_dir(&run).join("plan.tfplan"), &bytes).expect("swap");
            let old = identity(&w, &run)["plan_digest"]
                .as_str()
                .expect("plan_digest")
                .to_owned();
            assert_ne!(
                old,
                sha256(&bytes),
                "{ctx}: the destroy plan is the same file"
            );
            edit(
                &identity_path(&w, &run),
                &format!("\"plan_digest\": \"{old}\""),
                &format!("\"plan_digest\": \"{}\"", sha256(&bytes)),
            );
            assert_refused(&w, &run, &[], edited_identity_refusal(key));
            assert_refusal_audited(&w, &run);
            assert!(
                database_exists(&w.db),
                "{ctx}: the swapped destroy plan was applied"
            );
            assert_eq!(
                role_conn_limit(&owner),
                Some(20),
                "{ctx}: the state changed"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 5. a run applied to another directory

#[test]
fn attack_run_applied_to_another_directory() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let w = world("atk_otherdir", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let w1 = w.work.clone();
        let w2 = w.path("work2");
        std::fs::create_dir(&w2).expect("work2");
        std::fs::copy(w1.join("main.tf"), w2.join("main.tf")).expect("copy main.tf");
        let shared = w.path("shared-home");
        let shared = shared.to_str().expect("utf8");
        let w1s = w1.to_str().expect("utf8");

        // One broker home for both directories: the run of w2 is genuine
        // there, but it was not planned for w1.
        let r = w.broker(&["--home", shared, "plan", w2.to_str().expect("utf8")]);
        r.expect(&ctx, 2);
        let run = r.run_id();
        assert_refused(
            &w,
            &run,
            &["--home", shared, "--dir", w1s],
            "was planned for",
        );

        // w2's home copied whole (run, audit log, head) into w1's own home.
        copy_tree(Path::new(shared), &w.home);
        assert_refused(&w, &run, &["--dir", w1s], "was planned for");
        assert_refused(&w, &run, &[], "was planned for");

        assert!(
            !w1.join("terraform.tfstate").exists() && !w2.join("terraform.tfstate").exists(),
            "{ctx}: a state was written"
        );
        assert!(
            !database_exists(&w.db),
            "{ctx}: the other directory's run applied"
        );
    }
}

// ---------------------------------------------------------------------------
// 6. a var file changed after the plan; var values never recorded

#[test]
fn attack_var_file_changed_after_plan() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let w = world("atk_varfile", &tf);
        let ctx = w.ctx.clone();
        std::fs::write(w.work.join("main.tf"), config_with_vars(&w.db, "small")).expect("main.tf");
        let secret = format!("VARVALUE-{}", random_hex());
        let canary = format!("canary={secret}");

        // A var file outside the working directory.
        let outside = w.write("vars/limit.tfvars", "limit = 20\n");
        let outside_s = outside.to_str().expect("utf8");
        let r = w.plan(&["--var-file", outside_s, "--var", &canary]);
        r.expect(&ctx, 2);
        let run = r.run_id();
        assert!(
            !r.all().contains(&secret),
            "{ctx}: value in the output:\n{}",
            r.all()
        );
        let id = identity(&w, &run);
        let vars = &id["options"]["vars"];
        assert_eq!(vars.as_array().map(Vec::len), Some(1), "{ctx}: {id}");
        assert_eq!(vars[0]["name"], "canary", "{ctx}: {id}");
        assert!(
            vars[0]["digest"]
                .as_str()
                .is_some_and(|d| d.starts_with("keyed:")),
            "{ctx}: {id}"
        );
        let files = &id["options"]["var_files"];
        assert!(
            files[0]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("vars/limit.tfvars")),
            "{ctx}: {id}"
        );
        std::fs::write(&outside, "limit = 25\n").expect("edit var file");
        let refused = assert_refused(&w, &run, &[], "the var file");
        refused.expect_contains(&ctx, "changed since the plan");
        assert_refusal_audited(&w, &run);

        // A var file inside it (also part of the configuration's digest).
        std::fs::write(w.work.join("vars.tfvars"), "limit = 20\n").expect("vars.tfvars");
        let r = w.plan(&["--var-file", "vars.tfvars", "--var", &canary]);
        r.expect(&ctx, 2);
        let run = r.run_id();
        std::fs::write(w.work.join("vars.tfvars"), "limit = 25\n").expect("edit vars.tfvars");
        let refused = assert_refused(&w, &run, &[], "changed since the plan");
        assert!(
            refused.all().contains("var file") || refused.all().contains("configuration"),
            "{ctx}: {}",
            refused.all()
        );

        // The value is nowhere the broker writes, nor in what it prints.
        for args in [&["runs", "--json"][..], &["audit", "tail", "-n", "100"][..]] {
            let r = w.broker(args);
            r.expect(&ctx, 0);
            assert!(!r.all().contains(&secret), "{ctx}: value in `{}`", r.cmd);
        }
        assert_nowhere_under(&ctx, &w.home, &secret);
        assert!(
            !database_exists(&w.db),
            "{ctx}: applied with a changed var file"
        );
    }
}

// ---------------------------------------------------------------------------
// 7. twenty concurrent approvals, all kept

#[test]
fn attack_concurrent_approvals_all_kept() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let w = world("atk_approvals", &tf);
        let ctx = w.ctx.clone();
        w.write_config("standard", 20);
        let policy = soft_policy(&w);
        let r = w.plan(&["--policy", &policy]);
        r.expect(&ctx, 4);
        let run = r.run_id();
        let before = events(&w.home).len();

        let reasons: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
        let children: Vec<_> = reasons
            .iter()
            .map(|reason| w.spawn(&["approve", &run, "--reason", reason]))
            .collect();
        for (child, shown) in children {
            finish(child, shown)
                .expect(&ctx, 0)
                .expect_contains(&ctx, "approved run");
        }

        let approvals = json(&ctx, &read(&w.run_dir(&run).join("approvals.json")));
        let approvals = approvals.as_array().expect("a list of approvals");
        assert_eq!(approvals.len(), 20, "{ctx}: {approvals:?}");
        let mut got: Vec<String> = approvals
            .iter()
            .map(|a| a["reason"].as_str().expect("reason").to_owned())
            .collect();
        got.sort();
        let mut want = reasons.clone();
        want.sort();
        assert_eq!(got, want, "{ctx}: approvals lost or duplicated");

        let events = events(&w.home);
        let approves = events
            .iter()
            .filter(|e| e["type"] == "dev.platform.broker.approve")
            .count();
        assert_eq!(approves, 20, "{ctx}: approve events");
        assert_eq!(events.len(), before + 20, "{ctx}: other events appeared");
        w.broker(&["audit", "verify"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, "chain intact");
        w.broker(&["runs"]).expect(&ctx, 0);

        w.broker(&["apply", &run, "--policy", &policy])
            .expect(&ctx, 0)
            .expect_contains(&ctx, &format!("applied run {run}"));
        assert!(database_exists(&w.db), "{ctx}: approved run not applied");
    }
}

// ---------------------------------------------------------------------------
// 8. redaction markers: keyed per home, or by the broker key

/// The markers of labels x and y (both the secret) in a run's redacted plan.
fn label_markers(home: &Path, run: &str, ctx: &str) -> (String, String) {
    let plan = json(
        ctx,
        &read(&home.join("runs").join(run).join("plan.redacted.json")),
    );
    let rc = plan["resource_changes"]
        .as_array()
        .and_then(|a| a.iter().find(|rc| rc["address"] == ADDR))
        .unwrap_or_else(|| panic!("{ctx}: no {ADDR} in {plan}"));
    let labels = &rc["change"]["after"]["labels"];
    let get = |k: &str| {
        let m = labels[k]
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: labels.{k}: {labels}"))
            .to_owned();
        assert!(
            m.starts_with("(sensitive:") && m.ends_with(')') && m.len() == "(sensitive:)".len() + 8,
            "{ctx}: labels.{k} is not a marker: {m}"
        );
        m
    };
    (get("x"), get("y"))
}

#[test]
fn attack_redaction_markers_differ_between_homes() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let mut w = world("atk_markers", &tf);
        let ctx = w.ctx.clone();
        let secret = format!("MARKER-{}", random_hex());
        w.set_env("TF_VAR_canary", &secret);
        let config = config_with_vars(&w.db, "small");
        let w1 = w.work.clone();
        let w2 = w.path("work2");
        std::fs::create_dir(&w2).expect("work2");
        std::fs::write(w1.join("main.tf"), &config).expect("main.tf");
        std::fs::write(w2.join("main.tf"), &config).expect("main.tf");
        let h2 = w2.join(".platform");

        let mut unkeyed = None;
        for key in [None, Some(KEY)] {
            use_key(&mut w, key);
            let ctx = format!("{ctx} {}", keyed(key));
            let r1 = w.plan(&[]);
            r1.expect(&ctx, 2);
            let r2 = w.plan(&[w2.to_str().expect("utf8")]);
            r2.expect(&ctx, 2);
            let (x1, y1) = label_markers(&w.home, &r1.run_id(), &ctx);
            let (x2, y2) = label_markers(&h2, &r2.run_id(), &ctx);
            // Equal secrets in one run: equal markers.
            assert_eq!(x1, y1, "{ctx}");
            assert_eq!(x2, y2, "{ctx}");
            match key {
                // Each home its own salt: a marker from one home cannot be
                // matched against another's (or a guess).
                None => {
                    assert_ne!(x1, x2, "{ctx}: two homes marked the secret alike");
                    unkeyed = Some((x1, x2));
                }
                // The key derives them: every home with the key agrees.
                Some(_) => {
                    assert_eq!(x1, x2, "{ctx}: the key does not derive the markers");
                    let (u1, u2) = unkeyed.clone().expect("unkeyed markers");
                    assert!(
                        x1 != u1 && x1 != u2,
                        "{ctx}: keyed marker equals a salted one"
                    );
                }
            }
            for r in [&r1, &r2] {
                assert!(!r.all().contains(&secret), "{ctx}: secret in `{}`", r.cmd);
            }
        }
        assert_nowhere_under(&ctx, &w.home, &secret);
        assert_nowhere_under(&ctx, &h2, &secret);
    }
}

// ---------------------------------------------------------------------------
// 9. symlinks under the broker home

#[test]
fn attack_symlinks_in_home_refused() {
    crate::require_acc!();
    use std::os::unix::fs::symlink;
    for tf in terraform_bins() {
        let w = world("atk_symlink", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let reset_home = || {
            if w.home.symlink_metadata().is_ok() {
                if w.home
                    .symlink_metadata()
                    .expect("meta")
                    .file_type()
                    .is_symlink()
                {
                    std::fs::remove_file(&w.home).expect("rm home link");
                } else {
                    std::fs::remove_dir_all(&w.home).expect("rm home");
                }
            }
            std::fs::create_dir(&w.home).expect("home");
        };

        // (a) audit.log, and its head, pointing at files outside DIR: an
        // empty one (the broker would write its events there) and one with
        // content (it would be appended to or overwritten).
        for (name, content) in [
            ("audit.log", ""),
            ("audit.log", "precious\n"),
            ("audit.log.head", "precious\n"),
        ] {
            reset_home();
            let outside = w.write(&format!("outside/{name}-{}", content.len()), content);
            symlink(&outside, w.home.join(name)).expect("symlink");
            let r = w.plan(&[]);
            let case = format!("{ctx} (a) {name} -> a file of {} bytes", content.len());
            r.expect(&case, 1)
                .expect_contains(&case, "symbolic link")
                .expect_contains(&case, name);
            assert_eq!(
                read(&outside),
                content,
                "{case}: the outside file was written"
            );
        }

        // (b) runs pointing at a directory outside DIR.
        reset_home();
        let outside_runs = w.path("outside-runs");
        std::fs::create_dir(&outside_runs).expect("outside runs");
        symlink(&outside_runs, w.home.join("runs")).expect("symlink");
        let case = format!("{ctx} (b) runs -> a directory");
        w.plan(&[])
            .expect(&case, 1)
            .expect_contains(&case, "symbolic link")
            .expect_contains(&case, "runs");
        assert!(
            files_under(&outside_runs).is_empty()
                && std::fs::read_dir(&outside_runs)
                    .expect("dir")
                    .next()
                    .is_none(),
            "{case}: something was written outside"
        );

        // (c) DIR/.platform itself a symlink: refused, pointing at --home;
        // the same directory chosen explicitly with --home (through a
        // symlink) is the operator's choice and works.
        std::fs::remove_dir_all(&w.home).expect("rm home");
        let elsewhere = w.path("elsewhere-home");
        std::fs::create_dir(&elsewhere).expect("elsewhere");
        symlink(&elsewhere, &w.home).expect("symlink");
        let case = format!("{ctx} (c) .platform -> a directory");
        w.plan(&[])
            .expect(&case, 1)
            .expect_contains(&case, "symbolic link")
            .expect_contains(&case, "--home");
        assert!(
            std::fs::read_dir(&elsewhere).expect("dir").next().is_none(),
            "{case}: something was written through the link"
        );
        std::fs::remove_file(&w.home).expect("rm link");
        let link = w.path("home-link");
        symlink(&elsewhere, &link).expect("symlink");
        let link = link.to_str().expect("utf8");
        let r = w.plan(&["--home", link]);
        r.expect(&case, 2);
        assert!(
            elsewhere
                .join("runs")
                .join(r.run_id())
                .join("identity.json")
                .is_file(),
            "{case}: the explicit home was not used"
        );
        assert!(!w.home.exists(), "{case}: DIR/.platform was created");
        assert!(!database_exists(&w.db), "{ctx}: something was applied");
    }
}

// ---------------------------------------------------------------------------
// 10. usage errors exit 1 (never 0, 2, 3 or 4: a pipeline reads 2 as
// "changes allowed" and would run its apply job)

fn broker_in(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(broker_bin());
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PLATFORM_") {
            cmd.env_remove(&k);
        }
    }
    let out = cmd.output().expect("run the broker");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        cmd: format!("platform-broker {}", args.join(" ")),
    }
}

#[test]
fn usage_errors_exit_1_for_every_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let mut commands: Vec<Vec<&str>> = vec![
        vec![],
        vec!["plan"],
        vec!["apply"],
        vec!["approve"],
        vec!["drift"],
        vec!["runs"],
        vec!["policy"],
        vec!["policy", "test"],
        vec!["audit"],
        vec!["audit", "verify"],
        vec!["audit", "tail"],
        vec!["audit", "export"],
        vec!["audit", "flush"],
    ];
    let audit_help = broker_in(dir, &["audit", "--help"]);
    audit_help.expect("audit --help", 0);
    if audit_help
        .stdout
        .lines()
        .any(|l| l.trim_start().starts_with("repair"))
    {
        commands.push(vec!["audit", "repair"]);
    }
    let top_help = broker_in(dir, &["--help"]);
    for sub in [
        "plan", "apply", "approve", "runs", "drift", "policy", "audit",
    ] {
        assert!(
            top_help
                .stdout
                .lines()
                .any(|l| l.trim_start().starts_with(sub)),
            "--help does not list {sub}: update this test's list\n{}",
            top_help.stdout
        );
    }
    for command in &commands {
        let ctx = format!("`{}`", command.join(" "));
        let with = |extra: &[&str]| {
            let mut args = command.clone();
            args.extend_from_slice(extra);
            broker_in(dir, &args)
        };
        with(&["--no-such-flag"])
            .expect(&ctx, 1)
            .expect_contains(&ctx, "--no-such-flag");
        with(&["--no-such-flag=x", "--json"]).expect(&ctx, 1);
        let help = with(&["--help"]);
        help.expect(&ctx, 0);
        assert!(
            help.stdout.contains("Usage:"),
            "{ctx}: --help:\n{}",
            help.all()
        );
    }
    // Missing subcommands, missing and invalid values.
    for args in [
        &[][..],
        &["policy"][..],
        &["audit"][..],
        &["nonsense"][..],
        &["approve", "RUN"][..],
        &["policy", "test"][..],
        &["plan", "--expires-hours", "soon"][..],
        &["audit", "tail", "-n", "many"][..],
        &["plan", "--var", "no-equals-sign"][..],
    ] {
        broker_in(dir, args).expect(&format!("`{}`", args.join(" ")), 1);
    }
    // A malformed --var is not echoed: the value may be a credential.
    let r = broker_in(dir, &["plan", "--var", "hunter2-not-a-pair"]);
    r.expect("--var without =", 1)
        .expect_contains("--var without =", "expected NAME=VALUE");
    assert!(
        !r.all().contains("hunter2"),
        "a malformed --var was echoed:\n{}",
        r.all()
    );
    broker_in(dir, &["--version"]).expect("--version", 0);
    // A usage error does nothing: no broker home appeared.
    assert!(
        std::fs::read_dir(dir).expect("dir").next().is_none(),
        "usage errors wrote into the working directory"
    );
}

// ---------------------------------------------------------------------------
// 11. an approval is bound to the identity it approved

#[test]
fn attack_approval_of_another_run() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let mut w = world("atk_approval_bind", &tf);
        w.write_config("standard", 20);
        let policy = soft_policy(&w);
        let p = ["--policy", policy.as_str()];
        for key in [None, Some(KEY)] {
            use_key(&mut w, key);
            let ctx = format!("{} {}", w.ctx, keyed(key));
            let a = w.plan(&p);
            a.expect(&ctx, 4);
            let run_a = a.run_id();
            w.broker(&["approve", &run_a, "--reason", "A is fine"])
                .expect(&ctx, 0);
            // The same change, planned again: a new identity.
            let b = w.plan(&p);
            b.expect(&ctx, 4);
            let run_b = b.run_id();
            assert_refused(&w, &run_b, &p, "needs an approval");

            // A's approvals copied into B's run.
            let approvals = read(&w.run_dir(&run_a).join("approvals.json"));
            let b_approvals = w.run_dir(&run_b).join("approvals.json");
            std::fs::write(&b_approvals, &approvals).expect("copy approvals");
            assert_refused(&w, &run_b, &p, "needs an approval");

            if key.is_some() {
                // ...and rebound to B's identity digest: the MAC no longer
                // verifies. (Without a key approvals are not authenticated:
                // anyone who can write the home can approve, as the broker
                // warns.)
                let digest_a = &json(&ctx, &approvals)[0]["identity_digest"];
                let digest_a = digest_a.as_str().expect("digest");
                let digest_b = events(&w.home)
                    .iter()
                    .rev()
                    .find(|e| e["type"] == "dev.platform.broker.plan" && e["data"]["run"] == run_b)
                    .and_then(|e| e["data"]["identity_digest"].as_str().map(str::to_owned))
                    .expect("B's plan event");
                std::fs::write(&b_approvals, approvals.replace(digest_a, &digest_b))
                    .expect("rebind");
                assert_refused(&w, &run_b, &p, "needs an approval")
                    .expect_contains(&ctx, "does not authenticate with the broker key");
                assert!(!database_exists(&w.db), "{ctx}: B applied");
                // A's own approval still works (the control).
                w.broker(&["apply", &run_a, "--policy", &policy])
                    .expect(&ctx, 0);
                assert!(database_exists(&w.db), "{ctx}: A not applied");
            } else {
                assert!(!database_exists(&w.db), "{ctx}: B applied");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 12. a failed plan leaves an audit event

#[test]
fn failed_plans_leave_an_audit_event() {
    crate::require_acc!();
    for tf in terraform_bins() {
        let w = world("atk_planfail", &tf);
        let ctx = w.ctx.clone();
        let main = w.work.join("main.tf");

        // A syntax error: terraform fails before any run exists.
        std::fs::write(
            &main,
            "resource \"platform_postgres_database\" \"db\" {\n  name = \n",
        )
        .expect("main.tf");
        let r = w.plan(&[]);
        r.expect(&ctx, 1);
        let last = events(&w.home).pop().expect("an event");
        assert_eq!(
            last["type"], "dev.platform.broker.plan.failed",
            "{ctx}: {last}"
        );
        assert!(
            last["data"]["reason"]
                .as_str()
                .is_some_and(|s| !s.trim().is_empty()),
            "{ctx}: no reason: {last}"
        );
        w.broker(&["audit", "verify"]).expect(&ctx, 0);

        // A type error: terraform plan fails after the run was created.
        w.write_config("small", 20);
        edit(
            &main,
            "connection_limit = 20",
            "connection_limit = \"many\"",
        );
        let r = w.plan(&[]);
        r.expect(&ctx, 1);
        let events = events(&w.home);
        assert_eq!(events.len(), 2, "{ctx}: two failures, two events");
        let last = events.last().expect("an event");
        assert_eq!(
            last["type"], "dev.platform.broker.plan.failed",
            "{ctx}: {last}"
        );
        assert!(
            last["data"]["reason"]
                .as_str()
                .is_some_and(|s| !s.trim().is_empty()),
            "{ctx}: no reason: {last}"
        );
        let run = last["data"]["run"].as_str().expect("the failed run's id");
        assert!(
            !w.run_dir(run).join("identity.json").exists(),
            "{ctx}: a failed plan left an identity"
        );
        w.broker(&["apply", run])
            .expect(&ctx, 1)
            .expect_contains(&ctx, "refusing to apply");
        w.broker(&["audit", "verify"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, "3 events");
        assert!(!database_exists(&w.db), "{ctx}: something was applied");
    }
}
