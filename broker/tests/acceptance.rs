//! Acceptance tests of `platform-broker` against real Terraform (every binary
//! in `TF_ACC_TERRAFORM_BINS`), the repo's provider (through a filesystem
//! mirror) and a real PostgreSQL. Gated by `TF_ACC=1`; see `acc/mod.rs`.
//!
//! Run: `cargo build -p terraform-provider-platform && TF_ACC=1 cargo test -p platform-broker --test acceptance`

mod acc;
mod tour;

use acc::*;
use serde_json::Value as Json;

fn json(ctx: &str, text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{ctx}: not JSON ({e}):\n{text}"))
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Applying `run` (with `extra` flags) is refused with a message containing
/// `needle`; nothing applied.
#[track_caller]
fn assert_refused(w: &World, run: &str, extra: &[&str], needle: &str) -> Run {
    let mut args = vec!["apply", run];
    args.extend_from_slice(extra);
    let r = w.broker(&args);
    r.expect(&w.ctx, 1)
        .expect_contains(&w.ctx, "refusing to apply")
        .expect_contains(&w.ctx, needle);
    r
}

// ---------------------------------------------------------------------------
// 1. hard-mandatory deny

#[test]
fn hard_mandatory_deny() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("deny", &tf);
        let ctx = w.ctx.clone();
        w.write_config("standard", 20);
        let policy = write_policy(
            &w,
            "policy",
            &[
                ("hard", "hard_mandatory", &[("tier.rego", DENY_STANDARD)]),
                (
                    "soft",
                    "soft_mandatory",
                    &[("approval.rego", NEEDS_APPROVAL)],
                ),
            ],
        );
        let policy = policy.to_str().expect("utf8");
        let sarif = w.path("out/deny.sarif");
        let junit = w.path("out/deny.xml");
        std::fs::create_dir_all(w.path("out")).expect("mkdir");
        let r = w.plan(&[
            "--policy",
            policy,
            "--sarif",
            sarif.to_str().expect("utf8"),
            "--junit",
            junit.to_str().expect("utf8"),
        ]);
        r.expect(&ctx, 3);
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains("deny_standard_tier"))
            .unwrap_or_else(|| panic!("{ctx}: rule not named in stdout:\n{}", r.stdout));
        assert!(line.contains(ADDR), "{ctx}: address missing: {line}");
        assert!(
            line.contains("uses tier standard, which is forbidden here"),
            "{ctx}: message missing: {line}"
        );
        assert!(
            r.stdout.contains("Verdict: denied (exit 3)"),
            "{ctx}: {}",
            r.stdout
        );
        let run = r.run_id();

        let s = json(&ctx, &read(&sarif));
        let results = s["runs"][0]["results"].as_array().expect("results");
        let hit = results
            .iter()
            .find(|x| x["ruleId"] == "deny_standard_tier")
            .unwrap_or_else(|| panic!("{ctx}: SARIF lacks the rule: {s}"));
        assert_eq!(hit["level"], "error", "{ctx}: {hit}");
        assert_eq!(
            hit["locations"][0]["logicalLocations"][0]["fullyQualifiedName"], ADDR,
            "{ctx}: {hit}"
        );
        let rules = s["runs"][0]["tool"]["driver"]["rules"].to_string();
        assert!(rules.contains("deny_standard_tier"), "{ctx}: {rules}");
        let j = read(&junit);
        assert!(
            j.contains("deny_standard_tier") && j.contains("<failure"),
            "{ctx}: JUnit:\n{j}"
        );
        assert!(j.contains(ADDR), "{ctx}: JUnit lacks the address:\n{j}");

        let r = w.plan(&["--policy", policy, "--json"]);
        r.expect(&ctx, 3);
        let report = json(&ctx, &r.stdout);
        assert_eq!(report["verdict"], "denied", "{ctx}: {report}");
        assert_eq!(report["exit_code"], 3, "{ctx}: {report}");
        let findings = report["findings"].to_string();
        assert!(findings.contains("deny_standard_tier"), "{ctx}: {findings}");
        assert!(findings.contains(ADDR), "{ctx}: {findings}");

        // A denied bundle never applies; nor does leaving out --policy.
        assert_refused(&w, &run, &["--policy", policy], "policy denied");
        assert_refused(&w, &run, &[], "policy bundle changed");
        assert!(
            !database_exists(&w.db),
            "{ctx}: denied plan created {}",
            w.db
        );
    }
}

// ---------------------------------------------------------------------------
// 2. soft-mandatory: approval, then apply

#[test]
fn soft_mandatory_needs_approval() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("soft", &tf);
        let ctx = w.ctx.clone();
        w.write_config("standard", 20);
        let policy = write_policy(
            &w,
            "policy",
            &[(
                "soft",
                "soft_mandatory",
                &[("approval.rego", NEEDS_APPROVAL)],
            )],
        );
        let policy = policy.to_str().expect("utf8");
        let r = w.plan(&["--policy", policy, "--json"]);
        r.expect(&ctx, 4);
        let report = json(&ctx, &r.stdout);
        assert_eq!(report["verdict"], "needs_approval", "{ctx}: {report}");
        assert!(
            report["findings"]
                .to_string()
                .contains("deny_requires_approval"),
            "{ctx}: {report}"
        );
        let run = report["run"].as_str().expect("run").to_string();

        assert_refused(&w, &run, &["--policy", policy], "requires an approval");
        // Leaving out --policy does not skip the approval.
        assert_refused(&w, &run, &[], "policy bundle changed");
        assert!(
            !database_exists(&w.db),
            "{ctx}: refused apply created {}",
            w.db
        );

        w.broker(&["approve", &run, "--reason", "ok"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, "approved run");
        w.broker(&["apply", &run, "--policy", policy])
            .expect(&ctx, 0)
            .expect_contains(&ctx, &format!("applied run {run}"));
        assert!(database_exists(&w.db), "{ctx}: {} not in pg_database", w.db);
    }
}

// ---------------------------------------------------------------------------
// 3. drift

#[test]
fn drift_detect_and_acknowledge() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("drift", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let r = w.plan(&[]);
        r.expect(&ctx, 2);
        w.broker(&["apply", &r.run_id()]).expect(&ctx, 0);
        w.broker(&["drift"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, "No drift");

        psql(&format!(
            "ALTER ROLE \"{}_owner\" CONNECTION LIMIT 99",
            w.db
        ))
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let r = w.broker(&["drift"]);
        r.expect(&ctx, 2)
            .expect_contains(&ctx, &format!("{ADDR}.connection_limit"))
            .expect_contains(&ctx, "20 -> 99");
        let r = w.broker(&["drift", "--json"]);
        r.expect(&ctx, 2);
        let report = json(&ctx, &r.stdout);
        let items = report["drift"].as_array().expect("drift array");
        assert!(
            items
                .iter()
                .any(|d| d["address"] == ADDR && d["attribute"] == "connection_limit"),
            "{ctx}: {report}"
        );

        w.broker(&[
            "drift",
            "--ack",
            ADDR,
            "--until",
            "2099-12-31",
            "--reason",
            "x",
        ])
        .expect(&ctx, 0)
        .expect_contains(&ctx, "acknowledged drift");
        w.broker(&["drift"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, "[acknowledged: x]");
        // drift never writes state: the role still has the out-of-band value.
        assert_eq!(
            role_conn_limit(&format!("{}_owner", w.db)),
            Some(99),
            "{ctx}"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. audit log tamper evidence

fn verify_copy(w: &World, name: &str, edit: impl FnOnce(&mut Vec<String>)) -> Run {
    let copy = w.path(name);
    copy_tree(&w.home, &copy);
    let log = copy.join("audit.log");
    let text = read(&log);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    let mut out = lines.join("\n");
    if !lines.is_empty() {
        out.push('\n');
    }
    std::fs::write(&log, out).expect("write log");
    w.broker(&["--home", copy.to_str().expect("utf8"), "audit", "verify"])
}

#[test]
fn audit_verify_detects_tampering() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("audit", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let r = w.plan(&[]);
        r.expect(&ctx, 2);
        w.broker(&["apply", &r.run_id()]).expect(&ctx, 0);
        w.plan(&[]).expect(&ctx, 0);
        let lines = read(&w.home.join("audit.log")).lines().count();
        assert_eq!(lines, 4, "{ctx}: plan, apply.start, apply.end, plan");
        w.broker(&["audit", "verify"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, "4 events, chain intact");

        // (a) one byte inside line 2's data.
        let r = verify_copy(&w, "copy-edit", |lines| {
            let l = &mut lines[1];
            let data = l.find("\"data\"").expect("data");
            let at = data + l[data..].find("acc-tester").expect("actor in data");
            l.replace_range(at..at + 1, "b");
        });
        assert_ne!(r.code, 0, "{ctx}: edited log verified:\n{}", r.all());
        r.expect_contains(&ctx, "BROKEN at line 2");

        // (b) lines 2 and 3 swapped.
        let r = verify_copy(&w, "copy-swap", |lines| lines.swap(1, 2));
        assert_ne!(r.code, 0, "{ctx}: reordered log verified:\n{}", r.all());
        r.expect_contains(&ctx, "BROKEN at line 2");

        // (c) the last line cut.
        let r = verify_copy(&w, "copy-cut", |lines| {
            lines.pop();
        });
        assert_ne!(r.code, 0, "{ctx}: truncated log verified:\n{}", r.all());
        r.expect_contains(&ctx, "BROKEN at line 4");

        // The original is intact.
        w.broker(&["audit", "verify"]).expect(&ctx, 0);
    }
}

// ---------------------------------------------------------------------------
// 5. apply refusals

#[test]
fn refuse_altered_plan_file() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("tamper", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let r = w.plan(&[]);
        r.expect(&ctx, 2);
        let run = r.run_id();
        let planfile = w.run_dir(&run).join("plan.tfplan");
        let mut bytes = std::fs::read(&planfile).expect("plan file");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(&planfile, bytes).expect("write plan");
        assert_refused(&w, &run, &[], "plan file changed");
        assert!(!database_exists(&w.db), "{ctx}: tampered plan applied");
    }
}

#[test]
fn refuse_state_changed() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("stale", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        // Against an empty state.
        let first = w.plan(&[]);
        first.expect(&ctx, 2);
        let second = w.plan(&[]);
        second.expect(&ctx, 2);
        w.broker(&["apply", &second.run_id()]).expect(&ctx, 0);
        assert_refused(
            &w,
            &first.run_id(),
            &[],
            "empty state that has since been written",
        );

        // Against a written state.
        w.write_config("small", 30);
        let first = w.plan(&[]);
        first.expect(&ctx, 2);
        let second = w.plan(&[]);
        second.expect(&ctx, 2);
        w.broker(&["apply", &second.run_id()]).expect(&ctx, 0);
        assert_refused(&w, &first.run_id(), &[], "state changed");
        assert_eq!(
            role_conn_limit(&format!("{}_owner", w.db)),
            Some(30),
            "{ctx}"
        );
    }
}

#[test]
fn refuse_applied_twice() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("twice", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let r = w.plan(&[]);
        r.expect(&ctx, 2);
        let run = r.run_id();
        w.broker(&["apply", &run]).expect(&ctx, 0);
        assert_refused(&w, &run, &[], "already applied");
    }
}

#[test]
fn refuse_expired_bundle() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("expired", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let r = w.plan(&["--expires-hours", "0"]);
        r.expect(&ctx, 2);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_refused(&w, &r.run_id(), &[], "expired");
        assert!(!database_exists(&w.db), "{ctx}: expired bundle applied");
    }
}

#[test]
fn refuse_changed_policy_bundle() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("polchg", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let policy = write_policy(
            &w,
            "policy",
            &[("hard", "hard_mandatory", &[("tier.rego", DENY_STANDARD)])],
        );
        let policy = policy.to_str().expect("utf8");
        let r = w.plan(&["--policy", policy]);
        r.expect(&ctx, 2);
        let rego = w.path("policy/hard/tier.rego");
        let text = read(&rego);
        std::fs::write(&rego, format!("{text}\n# edited after the plan\n")).expect("edit rego");
        let r = w.broker(&["apply", &r.run_id(), "--policy", policy]);
        r.expect(&ctx, 1)
            .expect_contains(&ctx, "policy bundle changed");
        assert!(
            !database_exists(&w.db),
            "{ctx}: applied under a changed policy"
        );
    }
}

#[test]
fn concurrent_applies_one_wins() {
    require_acc!();
    for tf in terraform_bins() {
        let w = World::new("race", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let r = w.plan(&[]);
        r.expect(&ctx, 2);
        w.broker(&["apply", &r.run_id()]).expect(&ctx, 0);

        w.write_config("small", 30);
        let a = w.plan(&[]);
        a.expect(&ctx, 2);
        w.write_config("small", 40);
        let b = w.plan(&[]);
        b.expect(&ctx, 2);
        let (run_a, run_b) = (a.run_id(), b.run_id());

        let (ca, sa) = w.spawn(&["apply", &run_a]);
        let (cb, sb) = w.spawn(&["apply", &run_b]);
        let ra = finish(ca, sa);
        let rb = finish(cb, sb);
        let ok: Vec<&Run> = [&ra, &rb].into_iter().filter(|r| r.code == 0).collect();
        let refused: Vec<&Run> = [&ra, &rb].into_iter().filter(|r| r.code != 0).collect();
        assert_eq!(
            ok.len(),
            1,
            "{ctx}: exactly one apply must succeed:\nA exit {}: {}\nB exit {}: {}",
            ra.code,
            ra.all(),
            rb.code,
            rb.all()
        );
        let loser = refused[0];
        let why = loser.all();
        assert!(
            why.contains("refusing to apply")
                && (why.contains("locked by another apply") || why.contains("state changed")),
            "{ctx}: unexpected failure of the losing apply (exit {}):\n{why}",
            loser.code
        );
        eprintln!(
            "{ctx}: losing apply: {}",
            why.lines().find(|l| l.contains("refusing")).unwrap_or("")
        );
        let (winner, limit) = if ra.code == 0 {
            (&run_a, 30)
        } else {
            (&run_b, 40)
        };
        let applied: Vec<String> = [&run_a, &run_b]
            .iter()
            .filter(|run| {
                std::fs::read_to_string(w.run_dir(run).join("status"))
                    .is_ok_and(|s| s.trim() == "applied")
            })
            .map(|s| s.to_string())
            .collect();
        assert_eq!(applied, vec![winner.clone()], "{ctx}: runs marked applied");
        assert_eq!(
            role_conn_limit(&format!("{}_owner", w.db)),
            Some(limit),
            "{ctx}: the winner's connection_limit"
        );
        w.broker(&["audit", "verify"]).expect(&ctx, 0);
    }
}

// ---------------------------------------------------------------------------
// 6. a sensitive value never leaks into the broker's outputs

#[test]
fn canary_secret_never_leaks() {
    require_acc!();
    for tf in terraform_bins() {
        let mut w = World::new("canary", &tf);
        let ctx = w.ctx.clone();
        let canary = format!("CANARY-{}", random_hex());
        w.set_env("TF_VAR_canary", &canary);
        w.write_config("small", 20);
        let policy = write_policy(
            &w,
            "policy",
            &[("advisory", "advisory", &[("echo.rego", ECHO_LABELS)])],
        );
        let policy = policy.to_str().expect("utf8");
        let pricebook =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pricebooks/aws.hcl");
        let pricebook = pricebook.to_str().expect("utf8");
        std::fs::create_dir_all(w.path("out")).expect("mkdir");

        let mut outputs: Vec<(String, String)> = Vec::new();
        let mut files = Vec::new();
        let mut last_run = String::new();
        for (i, mode) in [None, Some("--json"), Some("--markdown")]
            .into_iter()
            .enumerate()
        {
            let sarif = w.path(&format!("out/{i}.sarif"));
            let junit = w.path(&format!("out/{i}.xml"));
            let mut args = vec![
                "--policy",
                policy,
                "--pricebook",
                pricebook,
                "--sarif",
                sarif.to_str().expect("utf8"),
                "--junit",
                junit.to_str().expect("utf8"),
            ];
            args.extend(mode);
            let r = w.plan(&args);
            r.expect(&ctx, 2);
            r.expect_contains(&ctx, "warn_labels");
            last_run = r.run_id();
            outputs.push((r.cmd.clone(), r.all()));
            files.push(sarif);
            files.push(junit);
        }
        let r = w.broker(&[
            "apply",
            &last_run,
            "--policy",
            policy,
            "--pricebook",
            pricebook,
        ]);
        r.expect(&ctx, 0);
        outputs.push((r.cmd.clone(), r.all()));
        for args in [
            &["drift"][..],
            &["drift", "--json"][..],
            &["audit", "verify"][..],
            &["audit", "tail", "-n", "100"][..],
            &["audit", "export"][..],
        ] {
            let r = w.broker(args);
            r.expect(&ctx, 0);
            outputs.push((r.cmd.clone(), r.all()));
        }
        // The canary is really in the plan and state (else the test proves nothing).
        let state = read(&w.work.join("terraform.tfstate"));
        assert!(state.contains(&canary), "{ctx}: canary not in the state");

        for (cmd, text) in &outputs {
            assert!(
                !text.contains(&canary),
                "{ctx}: canary leaked in the output of `{cmd}`:\n{text}"
            );
        }
        let home_files = files_under(&w.home);
        for name in ["report.json", "plan.redacted.json", "identity.json"] {
            assert!(
                home_files.iter().any(|f| f.ends_with(name)),
                "{ctx}: no {name} under {}",
                w.home.display()
            );
        }
        assert!(w.home.join("audit.log").is_file(), "{ctx}: no audit log");
        for f in home_files
            .iter()
            .filter(|f| f.extension().is_none_or(|e| e != "tfplan"))
            .chain(files.iter())
        {
            let bytes = std::fs::read(f).expect("read");
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&canary),
                "{ctx}: canary leaked into {}",
                f.display()
            );
        }
    }
}
