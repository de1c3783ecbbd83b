//! Acceptance tests of `platform-broker` against real Terraform (every binary
//! in `TF_ACC_TERRAFORM_BINS`), the repo's provider (through a filesystem
//! mirror) and a real PostgreSQL. Gated by `TF_ACC=1`; see `acc/mod.rs`.
//!
//! Run: `cargo build -p terraform-provider-platform && TF_ACC=1 cargo test -p platform-broker --test acceptance`
//!
//! Also holds the differential test against real OPA (`opa/`), which needs
//! no Terraform but OPA (`OPA_PYTHONPATH`, from `scripts/setup --test`).

mod acc;
mod attacks;
mod mirror;
mod opa;
mod sarif;
mod server;
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
        // The block that declares it: main.tf of the directory planned
        // (the working directory, so the URI is just the file name).
        let physical = &hit["locations"][0]["physicalLocation"];
        assert_eq!(
            physical["artifactLocation"],
            serde_json::json!({ "uri": "main.tf", "uriBaseId": "%SRCROOT%" }),
            "{ctx}: {hit}"
        );
        let main_tf = read(&w.work.join("main.tf"));
        assert_eq!(
            physical["region"]["startLine"],
            sarif::line_of(&main_tf, r#"resource "platform_postgres_database" "db""#),
            "{ctx}: {hit}"
        );
        assert_eq!(physical["region"]["startColumn"], 1, "{ctx}: {hit}");
        sarif::assert_valid(&s);
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
        assert_eq!(report["format_version"], "1.0", "{ctx}: {report}");
        assert_eq!(report["exit_code"], 3, "{ctx}: {report}");
        let findings = report["findings"].to_string();
        assert!(findings.contains("deny_standard_tier"), "{ctx}: {findings}");
        assert!(findings.contains(ADDR), "{ctx}: {findings}");

        // `policy eval` on the same plan, saved as `terraform show -json`:
        // the same verdict and findings, exit 3, no terraform run; from a
        // file and from standard input. Not a plan: exit 1, said clearly.
        let json_run = report["run"].as_str().expect("run id");
        let mut show = std::process::Command::new(&w.tf);
        show.arg("show")
            .arg("-json")
            .arg(w.run_dir(json_run).join("plan.tfplan"))
            .current_dir(&w.work)
            .stdin(std::process::Stdio::null());
        w.isolate(&mut show);
        let shown = show.output().expect("terraform show");
        assert!(shown.status.success(), "{ctx}: terraform show -json failed");
        let plan_json = w.path("out/plan.json");
        std::fs::write(&plan_json, &shown.stdout).expect("write plan.json");
        let plan_json = plan_json.to_str().expect("utf8");
        let r = w.broker(&[
            "policy", "eval", "--plan", plan_json, "--policy", policy, "--json",
        ]);
        r.expect(&ctx, 3);
        let evaluated = json(&ctx, &r.stdout);
        assert_eq!(evaluated["verdict"], "denied", "{ctx}: {evaluated}");
        assert_eq!(evaluated["format_version"], "1.0", "{ctx}: {evaluated}");
        assert_eq!(
            evaluated["findings"], report["findings"],
            "{ctx}: {evaluated}"
        );
        assert_eq!(evaluated["cost"], report["cost"], "{ctx}: {evaluated}");
        let mut stdin_eval = std::process::Command::new(env!("CARGO_BIN_EXE_platform-broker"));
        stdin_eval
            .args(["policy", "eval", "--plan", "-", "--policy", policy])
            .current_dir(&w.work)
            .stdin(std::fs::File::open(plan_json).expect("open plan.json"));
        w.isolate(&mut stdin_eval);
        let out = stdin_eval.output().expect("policy eval from stdin");
        assert_eq!(out.status.code(), Some(3), "{ctx}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("deny_standard_tier"),
            "{ctx}: {out:?}"
        );
        let not_a_plan = w.write("out/not-a-plan.json", "{\"hello\": 1}");
        let r = w.broker(&[
            "policy",
            "eval",
            "--plan",
            not_a_plan.to_str().expect("utf8"),
            "--policy",
            policy,
        ]);
        r.expect(&ctx, 1)
            .expect_contains(&ctx, "not a `terraform show -json` plan document");
        // The plan's audit event says where the time went.
        let log = read(&w.home.join("audit.log"));
        let event = json(&ctx, log.lines().last().expect("an event"));
        let d = &event["data"]["durations_ms"];
        let ms = |k: &str| {
            d[k].as_f64()
                .unwrap_or_else(|| panic!("{ctx}: durations_ms.{k} missing: {event}"))
        };
        assert!(
            ms("terraform_plan") > 0.0 && ms("policy") > 0.0,
            "{ctx}: {d}"
        );
        let parts =
            ms("terraform_init") + ms("terraform_plan") + ms("terraform_show") + ms("broker");
        assert!(
            (parts - ms("total")).abs() < 1.0,
            "{ctx}: parts do not add up: {d}"
        );

        // A denied bundle never applies; nor does leaving out --policy.
        assert_refused(&w, &run, &["--policy", policy], "this plan was denied");
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

        assert_refused(&w, &run, &["--policy", policy], "needs an approval");
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
        // One shape whatever the number of directories, with a format version.
        assert_eq!(report["format_version"], "1.0", "{ctx}: {report}");
        assert_eq!(report["exit_code"], 2, "{ctx}: {report}");
        let items = report["dirs"][0]["drift"].as_array().expect("drift array");
        assert!(
            items
                .iter()
                .any(|d| d["address"] == ADDR && d["attribute"] == "connection_limit"),
            "{ctx}: {report}"
        );

        let ack = [
            "drift",
            "--ack",
            ADDR,
            "--until",
            "2099-12-31",
            "--reason",
            "x",
        ];
        w.broker(&ack)
            .expect(&ctx, 0)
            .expect_contains(&ctx, "acknowledged drift");
        // A date in the past, or not a date, is refused before terraform runs.
        for (until, words) in [
            ("2001-01-01", "is in the past"),
            ("2099-13-01", "is not a date of the form YYYY-MM-DD"),
        ] {
            w.broker(&["drift", "--ack", ADDR, "--until", until, "--reason", "x"])
                .expect(&ctx, 1)
                .expect_contains(&ctx, words);
        }
        w.broker(&["drift"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, "[acknowledged: x]");
        // Several directories: each is checked and reported, a failing one
        // does not hide the others, and the exit code is the worst.
        let missing = w.path("no-such-dir");
        let missing = missing.to_str().expect("utf8");
        let r = w.broker(&["drift", ".", missing]);
        r.expect(&ctx, 1)
            .expect_contains(&ctx, "== . ==")
            .expect_contains(&ctx, "[acknowledged: x]")
            .expect_contains(&ctx, &format!("{missing}: "));
        let r = w.broker(&["drift", "--json", ".", "."]);
        r.expect(&ctx, 0);
        let report = json(&ctx, &r.stdout);
        let dirs = report["dirs"].as_array().expect("dirs array");
        assert_eq!(dirs.len(), 2, "{ctx}: {report}");
        assert!(
            dirs.iter().all(
                |d| d["exit_code"] == 0 && d["drift"].as_array().is_some_and(|a| !a.is_empty())
            ),
            "{ctx}: {report}"
        );
        w.broker(&[&ack[..], &[".", "."]].concat())
            .expect(&ctx, 1)
            .expect_contains(&ctx, "exactly one DIR");
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

        // Two reviewed runs of the same configuration: both are valid until
        // one of them changes the state.
        w.write_config("small", 40);
        let a = w.plan(&[]);
        a.expect(&ctx, 2);
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
            (&run_a, 40)
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

// ---------------------------------------------------------------------------
// 7. budgets against Cost Explorer (moto's server on loopback)

/// A broker configuration with one budget for `checkout`: $1000 a month,
/// advisory at 50%, soft at 90%, hard at $1100.
fn budget_config(w: &World, name: &str, endpoint: &str, tag_key: &str) -> String {
    let path = w.write(
        &format!("{name}.hcl"),
        &format!(
            r#"cost_explorer {{
  endpoint = "{endpoint}"
  team_tag = "{tag_key}"
  timeout  = "10s"
}}

budget "checkout" {{
  monthly = 1000
  threshold {{
    at          = "50%"
    enforcement = "advisory"
  }}
  threshold {{
    at          = "90%"
    enforcement = "soft_mandatory"
  }}
  threshold {{
    at          = 1100
    enforcement = "hard_mandatory"
  }}
}}
"#
        ),
    );
    path.to_str().expect("utf8").to_owned()
}

/// Dummy credentials only moto accepts, and a pinned date: 2026-11-10 is day
/// 10 of a 30-day month, so the linear projection is exactly 3 × actual.
fn use_moto_credentials(w: &mut World) {
    w.set_env("AWS_ACCESS_KEY_ID", "testing");
    w.set_env("AWS_SECRET_ACCESS_KEY", "testing");
    w.set_env("AWS_SESSION_TOKEN", "testing");
    w.set_env("AWS_EC2_METADATA_DISABLED", "true");
    w.set_env("PLATFORM_TODAY", "2026-11-10");
    w.unset_env("AWS_PROFILE");
}

/// Advisory: reports what policies see of the budget check.
const ECHO_BUDGET: &str = r#"package platform.budget

warn_budget_seen contains finding if {
	some check in input.cost.budgets.checks
	finding := {
		"msg": sprintf("budget %s: %s projected %v breach %s", [input.cost.budgets.status, check.team, check.projected, check.breach]),
	}
}
"#;

#[test]
fn budget_denies_over_and_passes_under() {
    require_acc!();
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    for tf in terraform_bins() {
        let mut w = World::new("budget", &tf);
        let ctx = w.ctx.clone();
        use_moto_credentials(&mut w);
        // The database costs $140/month (tier standard) for team checkout
        // (the provider's default_team).
        w.write_config("standard", 20);
        // (seeded month-to-date, exit code, breach, rule): projected = 3 ×
        // actual + 140.
        let cases = [
            ("330", 3, "hard_mandatory", "deny_budget_checkout"), // 1130 ≥ 1100
            ("280", 4, "soft_mandatory", "deny_budget_checkout"), // 980 ≥ 900
            ("200", 2, "advisory", "warn_budget_checkout"),       // 740 ≥ 500
            ("100", 2, "", ""),                                   // 440
        ];
        for (actual, code, breach, rule) in cases {
            // moto hands out queued results per distinct request, so each
            // case groups by its own tag key.
            let tag_key = format!("team_{}_{}", version_tag(&tf), random_hex());
            seed_team_spend(&endpoint, &tag_key, "checkout", actual);
            let config = budget_config(&w, &format!("broker-{actual}"), &endpoint, &tag_key);
            let r = w.plan(&["--config", &config, "--json"]);
            r.expect(&ctx, code);
            let report = json(&ctx, &r.stdout);
            let budget = &report["budget"];
            assert_eq!(budget["status"], "checked", "{ctx}: {budget}");
            let check = &budget["checks"][0];
            assert_eq!(check["team"], "checkout", "{ctx}: {check}");
            let actual: f64 = actual.parse().expect("number");
            assert_eq!(check["actual_mtd"].as_f64(), Some(actual), "{ctx}: {check}");
            // moto serves no GetCostForecast: the linear projection is used
            // and labelled as such.
            assert_eq!(check["estimate_source"], "projection", "{ctx}: {check}");
            assert_eq!(
                check["month_end_estimate"].as_f64(),
                Some(actual * 3.0),
                "{ctx}: {check}"
            );
            assert_eq!(check["plan_delta"].as_f64(), Some(140.0), "{ctx}: {check}");
            assert_eq!(
                check["projected"].as_f64(),
                Some(actual * 3.0 + 140.0),
                "{ctx}: {check}"
            );
            if breach.is_empty() {
                assert!(check["breach"].is_null(), "{ctx}: {check}");
                assert_eq!(report["findings"], serde_json::json!([]), "{ctx}");
            } else {
                assert_eq!(check["breach"], breach, "{ctx}: {check}");
                let finding = &report["findings"][0];
                assert_eq!(finding["rule"], rule, "{ctx}: {finding}");
                assert_eq!(finding["set"], "budget", "{ctx}: {finding}");
            }
        }

        // The text report names the numbers and the projection; a denied
        // budget bundle never applies.
        let tag_key = format!("team_{}_{}", version_tag(&tf), random_hex());
        seed_team_spend(&endpoint, &tag_key, "checkout", "330");
        let config = budget_config(&w, "broker-text", &endpoint, &tag_key);
        // Policies see the same numbers as input.cost.budgets.
        let policy = write_policy(
            &w,
            "policy",
            &[("advisory", "advisory", &[("budget.rego", ECHO_BUDGET)])],
        );
        let policy = policy.to_str().expect("utf8");
        let r = w.plan(&["--config", &config, "--policy", policy]);
        r.expect(&ctx, 3)
            .expect_contains(&ctx, "team checkout: actual $330.00 + rest of month (projection) = $990.00, plan +$140.00 -> projected $1130.00 of $1000.00 budget — BREACH (hard_mandatory)")
            .expect_contains(&ctx, "deny_budget_checkout")
            .expect_contains(&ctx, "budget checked: checkout projected 1130 breach hard_mandatory")
            .expect_contains(&ctx, "Verdict: denied (exit 3)");
        let run = r.run_id();
        assert_refused(&w, &run, &["--policy", policy], "denied");
        assert!(
            !database_exists(&w.db),
            "{ctx}: denied plan created {}",
            w.db
        );
        // The plan's audit event (before the refusal's) records the budget.
        let tail = w.broker(&["audit", "tail", "-n", "2"]);
        tail.expect(&ctx, 0)
            .expect_contains(&ctx, "\"budget\":{")
            .expect_contains(&ctx, "\"breach\":\"hard_mandatory\"");
    }
}

#[test]
fn budget_without_access_warns_and_skips() {
    require_acc!();
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    for tf in terraform_bins() {
        let mut w = World::new("budget_noaccess", &tf);
        let ctx = w.ctx.clone();
        use_moto_credentials(&mut w);
        w.write_config("standard", 20);

        // Endpoint unreachable: a loopback port nothing listens on.
        let port = closed_port();
        let config = budget_config(&w, "down", &format!("http://127.0.0.1:{port}"), "team");
        let started = std::time::Instant::now();
        let r = w.plan(&["--config", &config]);
        r.expect(&ctx, 2)
            .expect_contains(&ctx, "Budget: WARNING: budget check skipped: actual spend is unavailable (GetCostAndUsage failed")
            .expect_contains(&ctx, "platform-broker: warning: budget check skipped");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{ctx}: a down endpoint held the plan up"
        );
        let r = w.plan(&["--config", &config, "--json"]);
        r.expect(&ctx, 2);
        let report = json(&ctx, &r.stdout);
        assert_eq!(report["budget"]["status"], "skipped", "{ctx}: {report}");
        assert_eq!(report["budget"]["checks"], serde_json::json!([]), "{ctx}");

        // No credentials at all (none in the environment, no files, no
        // instance metadata): the same warning, never a crash.
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            w.unset_env(var);
        }
        let nowhere = w.path("no-aws-files");
        let nowhere = nowhere.to_str().expect("utf8");
        w.set_env("AWS_CONFIG_FILE", &format!("{nowhere}/config"));
        w.set_env(
            "AWS_SHARED_CREDENTIALS_FILE",
            &format!("{nowhere}/credentials"),
        );
        let config = budget_config(&w, "nocreds", &endpoint, "team");
        let r = w.plan(&["--config", &config]);
        r.expect(&ctx, 2)
            .expect_contains(&ctx, "budget check skipped: actual spend is unavailable");
    }
}

// ---------------------------------------------------------------------------
// 8. the webhook audit sink through the CLI: spooled while down, flushed later

#[test]
fn webhook_spools_while_down_and_flush_delivers_in_order() {
    require_acc!();
    for tf in terraform_bins() {
        let mut w = World::new("webhook", &tf);
        let ctx = w.ctx.clone();
        let secret = format!("whsec-{}", random_hex());
        w.set_env("PLATFORM_ACC_WEBHOOK_SECRET", &secret);
        w.write_config("small", 20);
        let port = closed_port();
        let config = w.write(
            "broker-webhook.hcl",
            &format!(
                r#"audit {{
  webhook "siem" {{
    url        = "http://127.0.0.1:{port}/hooks/audit"
    secret_env = "PLATFORM_ACC_WEBHOOK_SECRET"
    attempts   = 2
    timeout    = "2s"
  }}
}}
"#
            ),
        );
        let config = config.to_str().expect("utf8");

        // Down: the plan still succeeds (the file log is the record) and says
        // where the event waits.
        let r = w.plan(&["--config", config]);
        r.expect(&ctx, 2)
            .expect_contains(&ctx, "audit webhook \"siem\"")
            .expect_contains(&ctx, "1 event(s) kept in the spool");
        let r = w.broker(&["--config", config, "audit", "flush"]);
        r.expect(&ctx, 1)
            .expect_contains(&ctx, "delivered 0, 1 pending");
        // Without its secret the webhook is a configuration error that
        // names the variable, not a value.
        w.unset_env("PLATFORM_ACC_WEBHOOK_SECRET");
        let r = w.broker(&["--config", config, "audit", "flush"]);
        r.expect(&ctx, 1).expect_contains(
            &ctx,
            "PLATFORM_ACC_WEBHOOK_SECRET (its HMAC secret) is not set",
        );
        w.set_env("PLATFORM_ACC_WEBHOOK_SECRET", &secret);

        // Up: `audit flush` delivers the backlog; the next plan's event goes
        // straight through, after it.
        let server = HookServer::start(port);
        let r = w.broker(&["--config", config, "audit", "flush"]);
        r.expect(&ctx, 0)
            .expect_contains(&ctx, "delivered 1, 0 pending");
        w.plan(&["--config", config]).expect(&ctx, 2);

        let received = server.received.lock().expect("lock").clone();
        let log = read(&w.home.join("audit.log"));
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(received.len(), 2, "{ctx}: {received:?}");
        assert_eq!(lines.len(), 2, "{ctx}: {log}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        for ((headers, body), line) in received.iter().zip(&lines) {
            assert_eq!(
                body,
                line.as_bytes(),
                "{ctx}: delivered out of order or altered"
            );
            let signature = headers
                .iter()
                .find(|(k, _)| k == "x-platform-signature")
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{ctx}: unsigned: {headers:?}"));
            let hex = signature.strip_prefix("sha256=").expect("sha256=");
            let tag: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            ring::hmac::verify(&key, body, &tag)
                .unwrap_or_else(|_| panic!("{ctx}: signature does not verify"));
        }
        // The secret is nowhere the broker writes.
        for f in files_under(&w.home) {
            let bytes = std::fs::read(&f).expect("read");
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&secret),
                "{ctx}: secret in {}",
                f.display()
            );
        }
        w.broker(&["audit", "verify"]).expect(&ctx, 0);
    }
}

// ---------------------------------------------------------------------------
// The README's development route: provider dev_overrides, no init needed

/// With `dev_overrides` Terraform says to skip `init` ("not necessary and may
/// error unexpectedly"), and an `init` of a configuration whose only provider
/// is overridden fails offline. The broker goes on as plain terraform would:
/// plan and apply work, and the note says why.
#[test]
fn works_with_dev_overrides_where_init_fails() {
    require_acc!();
    for tf in terraform_bins() {
        let mut w = World::new("devover", &tf);
        let ctx = w.ctx.clone();
        let rc = w.write(
            "dev.tfrc",
            &format!(
                "disable_checkpoint = true\nprovider_installation {{\n  dev_overrides {{\n    \"platform/platform\" = {:?}\n  }}\n  direct {{}}\n}}\n",
                provider_bin().parent().expect("bin dir").display().to_string()
            ),
        );
        w.set_env("TF_CLI_CONFIG_FILE", rc.to_str().expect("utf8"));
        w.write_config("small", 20);
        let r = w.plan(&[]);
        r.expect(&ctx, 2)
            .expect_contains(&ctx, "provider dev_overrides are in effect");
        assert!(
            !w.work.join(".terraform").exists(),
            "{ctx}: init did not succeed, so nothing was initialized"
        );
        w.broker(&["apply", &r.run_id()]).expect(&ctx, 0);
        assert!(database_exists(&w.db), "{ctx}: not applied");
        w.destroy();
        assert!(!database_exists(&w.db), "{ctx}: not destroyed");
    }
}

// ---------------------------------------------------------------------------
// The audit log attacked: a forged line appended, the log rewritten with its head

const KEY: &str = "acc-test-broker-key-0123456789abcdef";

fn audit_lines(w: &World) -> Vec<String> {
    read(&w.home.join("audit.log"))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends a line an attacker without the key would write: the next seq and
/// the right (plain) `platformprev`; with `keyed`, made-up key id and MAC.
fn append_forged_line(w: &World, keyed: bool) {
    // The forger copies the last line's exact layout (field order matters:
    // a keyed line's MAC covers the bytes before it) and edits the values.
    let lines = audit_lines(w);
    let last = lines.last().expect("an event to follow");
    let event: Json = json("last line", last);
    let value = |key: &str| event[key].clone();
    let seq = value("platformseq").as_u64().expect("seq");
    let prev = if keyed {
        value("platformmac").as_str().expect("mac").to_owned()
    } else {
        sha256_hex(last.as_bytes())
    };
    let mut forged = last
        .replacen(
            &format!("\"platformseq\":{seq}"),
            &format!("\"platformseq\":{}", seq + 1),
            1,
        )
        .replacen(value("platformprev").as_str().expect("prev"), &prev, 1)
        .replacen(
            value("id").as_str().expect("id"),
            "00000000-0000-4000-8000-00000000f0f0",
            1,
        );
    if keyed {
        let at = forged.rfind("\"platformmac\":\"").expect("mac field") + 15;
        forged.replace_range(at..at + 64, &"ab".repeat(32));
    }
    let mut text = read(&w.home.join("audit.log"));
    text.push_str(&forged);
    text.push('\n');
    std::fs::write(w.home.join("audit.log"), text).expect("append");
}

#[test]
fn forged_appended_audit_line_is_reported_by_every_command_until_repair() {
    require_acc!();
    let tf = terraform_bins().remove(0);
    for keyed in [false, true] {
        let mut w = World::new(if keyed { "forgek" } else { "forge" }, &tf);
        if keyed {
            w.set_env("PLATFORM_BROKER_KEY", KEY);
        }
        let ctx = format!("{} keyed={keyed}", w.ctx);
        w.write_config("small", 20);
        let first = w.plan(&[]);
        first.expect(&ctx, 2);
        append_forged_line(&w, keyed);

        let beyond = "beyond the head";
        let verify = w.broker(&["audit", "verify"]);
        verify.expect(&ctx, 1);
        if keyed {
            verify
                .expect_contains(&ctx, "line 2")
                .expect_contains(&ctx, "not authenticated with the broker key");
            assert!(
                !verify.all().contains("audit log OK"),
                "{ctx}: {}",
                verify.all()
            );
        } else {
            verify.expect_contains(&ctx, beyond);
        }
        // Every later command reports it (a warning), and keeps reporting it.
        let second = w.plan(&[]);
        second.expect(&ctx, 2).expect_contains(&ctx, beyond);
        w.broker(&["runs"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, beyond);
        w.broker(&["audit", "tail"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, beyond);
        w.broker(&["approve", &second.run_id(), "--reason", "ok"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, beyond);
        w.broker(&["apply", &second.run_id()])
            .expect(&ctx, 0)
            .expect_contains(&ctx, beyond);
        w.broker(&["drift"])
            .expect(&ctx, 0)
            .expect_contains(&ctx, beyond);
        // Later appends did not adopt it.
        w.broker(&["audit", "verify"]).expect(&ctx, 1);

        if keyed {
            // It does not authenticate: adopting is refused, cutting is not
            // (it is no longer at the end: later events follow it).
            let adopt = w.broker(&["audit", "repair"]);
            adopt.expect(&ctx, 1);
            assert!(
                adopt.all().contains("authenticate"),
                "{ctx}: {}",
                adopt.all()
            );
            let cut = w.broker(&["audit", "repair", "--cut"]);
            cut.expect(&ctx, 1);
        } else {
            let repair = w.broker(&["audit", "repair"]);
            repair
                .expect(&ctx, 0)
                .expect_contains(&ctx, "adopted seq 2: dev.platform.broker.plan");
            w.broker(&["audit", "verify"])
                .expect(&ctx, 0)
                .expect_contains(&ctx, "audit log OK");
            let last = audit_lines(&w).pop().expect("line");
            assert!(
                last.contains("dev.platform.broker.audit.repair"),
                "{ctx}: the repair is audited: {last}"
            );
        }
        w.destroy();
    }
}

#[test]
fn forged_line_at_the_end_is_cut_with_a_key() {
    require_acc!();
    let tf = terraform_bins().remove(0);
    let mut w = World::new("forgecut", &tf);
    w.set_env("PLATFORM_BROKER_KEY", KEY);
    let ctx = w.ctx.clone();
    w.write_config("small", 20);
    w.plan(&[]).expect(&ctx, 2);
    append_forged_line(&w, true);
    w.broker(&["audit", "repair"]).expect(&ctx, 1);
    w.broker(&["audit", "repair", "--cut"])
        .expect(&ctx, 0)
        .expect_contains(&ctx, "cut seq 2");
    w.broker(&["audit", "verify"])
        .expect(&ctx, 0)
        .expect_contains(&ctx, "authenticated with the broker key");
}

/// Rewrites the whole log as a plain (unkeyed) hash chain with the
/// `data.verdict` of every plan event changed, and a matching head: what an
/// attacker without the key can produce.
fn rewrite_log_and_head(w: &World) {
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    let mut last = String::new();
    for (idx, line) in audit_lines(w).iter().enumerate() {
        let mut event: Json = json("line", line);
        let object = event.as_object_mut().expect("object");
        object.remove("platformkey");
        object.remove("platformmac");
        object.insert("platformseq".into(), (idx as u64 + 1).into());
        object.insert("platformprev".into(), prev.clone().into());
        if let Some(data) = object.get_mut("data").and_then(Json::as_object_mut)
            && data.contains_key("verdict")
        {
            data.insert("verdict".into(), "allowed".into());
        }
        last = serde_json::to_string(&event).expect("json");
        prev = sha256_hex(last.as_bytes());
        out.push_str(&last);
        out.push('\n');
    }
    std::fs::write(w.home.join("audit.log"), out).expect("rewrite");
    let seq = audit_lines(w).len();
    // The one-line head sidecar earlier versions wrote, still accepted
    // without a key.
    std::fs::write(
        w.home.join("audit.log.head"),
        format!(
            "{{\"seq\":{seq},\"hash\":\"{}\"}}\n",
            sha256_hex(last.as_bytes())
        ),
    )
    .expect("head");
}

#[test]
fn rewritten_log_and_head_are_detected_with_a_key() {
    require_acc!();
    let tf = terraform_bins().remove(0);
    for keyed in [true, false] {
        let mut w = World::new(if keyed { "rewritek" } else { "rewrite" }, &tf);
        if keyed {
            w.set_env("PLATFORM_BROKER_KEY", KEY);
        }
        let ctx = format!("{} keyed={keyed}", w.ctx);
        w.write_config("small", 20);
        w.plan(&[]).expect(&ctx, 2);
        w.plan(&[]).expect(&ctx, 2);
        w.broker(&["audit", "verify"]).expect(&ctx, 0);
        rewrite_log_and_head(&w);
        let verify = w.broker(&["audit", "verify"]);
        if keyed {
            verify.expect(&ctx, 1);
            assert!(
                !verify.all().contains("audit log OK"),
                "{ctx}: {}",
                verify.all()
            );
        } else {
            // The documented limit: a plain hash chain has no secret, so a
            // consistent rewrite of log and head verifies without a key
            // (ARCHITECTURE.md, Trust model; the webhook sink anchors it).
            verify.expect(&ctx, 0);
        }

        // Emptying both: with a key, the authenticated runs' plan events
        // are missing; without one nothing local can tell.
        std::fs::write(w.home.join("audit.log"), "").expect("empty");
        std::fs::remove_file(w.home.join("audit.log.head")).expect("rm head");
        let verify = w.broker(&["audit", "verify"]);
        if keyed {
            verify
                .expect(&ctx, 1)
                .expect_contains(&ctx, "have no plan event");
        } else {
            verify.expect(&ctx, 0);
        }
    }
}

/// The apply job of a pipeline runs on a fresh runner: the reviewed bundle
/// (`.platform/`) and the checkout, but no `.terraform/`. Apply initializes
/// as plan did (the lock file pins the providers) and applies.
#[test]
fn apply_on_a_fresh_checkout_initializes_first() {
    require_acc!();
    for tf in terraform_bins() {
        let mut w = World::new("fresh", &tf);
        w.set_env("PLATFORM_BROKER_KEY", KEY);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let r = w.plan(&[]);
        r.expect(&ctx, 2);
        std::fs::remove_dir_all(w.work.join(".terraform")).expect("rm .terraform");
        w.broker(&["apply", &r.run_id()]).expect(&ctx, 0);
        assert!(database_exists(&w.db), "{ctx}: not applied");
        w.destroy();
    }
}
