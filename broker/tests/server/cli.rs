//! The CLI against a server: `plan DIR --server URL` uploads DIR and follows
//! the run, `runs`, `approve` and `apply --server` drive the same run, with
//! the local mode's exit codes; what an upload must not carry is refused.

use std::path::Path;
use std::process::Command;

use super::{call, serve_with_env, wait_run};
use crate::acc::*;

/// `platform-broker ARGS` as `user`: (exit code, stdout, stderr).
pub(super) fn broker_as(user: &str, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(broker_bin())
        .args(args)
        .current_dir(dir)
        .env("PLATFORM_ACTOR", user)
        .env_remove("PLATFORM_SERVER")
        .env_remove("PLATFORM_WORKSPACE")
        .env_remove("PLATFORM_POLICY")
        .output()
        .expect("platform-broker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn main_tf(trigger: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    null = {{ source = \"hashicorp/null\", version = \"2.1.2\" }}\n  }}\n}}\n\
         resource \"null_resource\" \"a\" {{\n  triggers = {{ v = \"{trigger}\" }}\n}}\n"
    )
}

/// A soft-mandatory set that holds every null_resource change for an approval.
const HOLD_NULL: &str = r#"package platform.hold

deny_null contains finding if {
	some rc in input.plan.resource_changes
	rc.type == "null_resource"
	some action in rc.change.actions
	action in {"create", "update", "delete"}
	finding := {"address": rc.address, "msg": sprintf("%s needs a second pair of eyes", [rc.address])}
}
"#;

#[test]
fn the_cli_plans_and_applies_through_a_server() {
    crate::require_acc!();
    let null_mirror = std::env::var("NULL_MIRROR").expect("NULL_MIRROR (scripts/test sets it)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let cli_config = tmp.path().join("cli.tfrc");
    std::fs::write(
        &cli_config,
        format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{null_mirror}\"\n  }}\n}}\n"),
    )
    .expect("write");
    for bin in terraform_bins() {
        let v = version(&bin);
        let tag = version_tag(&bin);
        let data = tmp.path().join(format!("data-{tag}"));
        // The platform team's policy for the gated workspace.
        let gate = data.join("config/gate");
        std::fs::create_dir_all(gate.join("hold")).expect("mkdir");
        std::fs::write(gate.join("hold/hold.rego"), HOLD_NULL).expect("write");
        std::fs::write(
            gate.join("policy.hcl"),
            "timeout = \"10s\"\npolicy_set \"hold\" {\n  path = \"hold\"\n  enforcement = \"soft_mandatory\"\n  syntax = \"v1\"\n}\n",
        )
        .expect("write");
        let server = serve_with_env(
            &data,
            &[
                "--insecure-dev-auth",
                "--terraform",
                bin.to_str().expect("utf8"),
            ],
            &[("TF_CLI_CONFIG_FILE", cli_config.as_os_str())],
        );
        let url = server.url.trim_end_matches('/').to_owned();
        for (name, policy) in [("app", ""), ("gated", r#","policy":"gate/policy.hcl""#)] {
            let body = format!(
                r#"{{"name":"{name}","team":"t","environment":"dev","source":{{"kind":"upload"}}{policy}}}"#
            );
            let (code, doc) = call(&server, "POST", "v1/workspaces", Some("alice"), Some(&body));
            assert_eq!(code, 201, "{doc}");
        }
        // A working directory with what must never be uploaded beside it.
        let work = tmp.path().join(format!("work-{tag}"));
        std::fs::create_dir_all(work.join(".terraform")).expect("mkdir");
        std::fs::write(work.join(".terraform/junk"), "local terraform data").expect("write");
        std::fs::write(work.join("main.tf"), main_tf("1")).expect("write");
        let w = work.to_str().expect("utf8");

        // plan --server: uploaded, planned on the server, exit 2 (changes).
        let (code, out, err) = broker_as(
            "alice",
            &work,
            &["plan", w, "--server", &url, "--workspace", "app"],
        );
        assert_eq!(code, 2, "{v}: plan --server\n{out}\n{err}");
        assert!(out.contains("null_resource.a"), "{v}: {out}");
        assert!(err.contains("uploaded"), "{v}: {err}");
        let run = err
            .split_whitespace()
            .skip_while(|w| *w != "run")
            .nth(1)
            .expect("the run id")
            .to_owned();
        // What reached the server: main.tf, not .terraform/.
        let unpacked = data.join("runs").join(&run).join("src");
        assert!(unpacked.join("main.tf").is_file(), "{v}");
        assert!(!unpacked.join(".terraform/junk").exists(), "{v}");

        // runs --server lists it as planned.
        let (code, out, err) = broker_as(
            "alice",
            &work,
            &["runs", "--server", &url, "--workspace", "app"],
        );
        assert_eq!(code, 0, "{v}: {err}");
        assert!(
            out.lines()
                .any(|l| l.contains(&run) && l.contains("planned")),
            "{v}: {out}"
        );
        let (code, out, _) = broker_as(
            "alice",
            &work,
            &["runs", "--server", &url, "--workspace", "app", "--json"],
        );
        assert_eq!(code, 0);
        let listed: serde_json::Value = serde_json::from_str(&out).expect("runs --json");
        assert_eq!(listed["runs"][0]["plan_exit_code"], 2, "{v}: {listed}");

        // apply --server: the server applies; the CLI follows to the end.
        let (code, out, err) = broker_as("alice", &work, &["apply", &run, "--server", &url]);
        assert_eq!(code, 0, "{v}: apply --server\n{out}\n{err}");
        assert!(out.contains("applied"), "{v}: {out}");
        // Once only.
        let (code, _, err) = broker_as("alice", &work, &["apply", &run, "--server", &url]);
        assert_eq!(code, 1, "{v}: {err}");
        assert!(err.contains("applied already"), "{v}: {err}");
        // The same configuration again: no changes, exit 0.
        let (code, out, err) = broker_as(
            "alice",
            &work,
            &["plan", w, "--server", &url, "--workspace", "app"],
        );
        assert_eq!(code, 0, "{v}: no-change plan\n{out}\n{err}");

        // A held plan: exit 4; its queuer cannot apply or approve it; someone
        // else approves, and then apply follows it to the end.
        let (code, out, err) = broker_as(
            "alice",
            &work,
            &["plan", w, "--server", &url, "--workspace", "gated"],
        );
        assert_eq!(code, 4, "{v}: gated plan\n{out}\n{err}");
        assert!(out.contains("second pair of eyes"), "{v}: {out}");
        let held = err
            .split_whitespace()
            .skip_while(|w| *w != "run")
            .nth(1)
            .expect("the run id")
            .to_owned();
        let (code, _, err) = broker_as("alice", &work, &["apply", &held, "--server", &url]);
        assert_eq!(code, 1, "{v}: {err}");
        assert!(err.contains("needs an approval"), "{v}: {err}");
        let (code, _, err) = broker_as(
            "alice",
            &work,
            &["approve", &held, "--reason", "mine", "--server", &url],
        );
        assert_eq!(code, 1, "{v}: {err}");
        assert!(err.contains("four_eyes"), "{v}: {err}");
        let (code, out, err) = broker_as(
            "bob",
            &work,
            &["approve", &held, "--reason", "reviewed", "--server", &url],
        );
        assert_eq!(code, 0, "{v}: approve\n{out}\n{err}");
        let (code, out, err) = broker_as("alice", &work, &["apply", &held, "--server", &url]);
        assert_eq!(code, 0, "{v}: apply after approval\n{out}\n{err}");
        let done = wait_run(&server, &held, &[], 1);
        assert_eq!(done["status"], "applied", "{v}: {done}");

        // Flags the server decides are refused, not ignored.
        let (code, _, err) = broker_as(
            "alice",
            &work,
            &[
                "plan",
                w,
                "--server",
                &url,
                "--workspace",
                "app",
                "--var",
                "x=1",
            ],
        );
        assert_eq!(code, 1, "{v}");
        assert!(
            err.contains("--var is not taken with --server"),
            "{v}: {err}"
        );
        let (code, _, err) = broker_as("alice", &work, &["plan", w, "--server", &url]);
        assert_eq!(code, 1);
        assert!(err.contains("--workspace"), "{v}: {err}");
        let (code, _, err) = broker_as(
            "alice",
            &work,
            &["plan", w, "--server", &url, "--workspace", "nope"],
        );
        assert_eq!(code, 1);
        assert!(err.contains("not_found"), "{v}: {err}");
        // A link out of the directory is not uploaded.
        std::os::unix::fs::symlink("/etc/hostname", work.join("leak.tf")).expect("symlink");
        let (code, _, err) = broker_as(
            "alice",
            &work,
            &["plan", w, "--server", &url, "--workspace", "app"],
        );
        assert_eq!(code, 1, "{v}: {err}");
        assert!(err.contains("leak.tf: a symbolic link"), "{v}: {err}");
        std::fs::remove_file(work.join("leak.tf")).expect("rm");
    }
}

/// What the upload endpoint refuses, over the wire: archives that escape,
/// carry links or are not archives; uploads to a git workspace; runs of an
/// upload workspace without (or with another workspace's) configuration.
#[test]
fn uploads_that_would_escape_are_refused_whole() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = super::serve(
        &tmp.path().join("data"),
        &["--insecure-dev-auth", "--workers", "0"],
    );
    for (name, source) in [
        ("up", r#"{"kind":"upload"}"#),
        ("other", r#"{"kind":"upload"}"#),
        ("gitws", r#"{"kind":"git","url":"file:///nonexistent"}"#),
    ] {
        let body =
            format!(r#"{{"name":"{name}","team":"t","environment":"dev","source":{source}}}"#);
        let (code, doc) = call(&server, "POST", "v1/workspaces", Some("alice"), Some(&body));
        assert_eq!(code, 201, "{doc}");
    }
    let upload = |ws: &str, file: &Path, kind: &str| -> (u16, serde_json::Value) {
        let out = Command::new("curl")
            .args(["-sS", "-X", "POST", "-w", "\n%{http_code}"])
            .args(["-H", "x-platform-dev-user: alice"])
            .args(["-H", &format!("content-type: {kind}")])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{}v1/workspaces/{ws}/configurations", server.url))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status");
        (
            code.parse().expect("code"),
            serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}")),
        )
    };
    // Archives made by GNU tar, as an attacker would.
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    std::fs::write(src.join("d/main.tf"), "# ok\n").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", src.join("d/link.tf")).expect("symlink");
    let tar = |name: &str, args: &[&str]| {
        let path = tmp.path().join(name);
        let out = Command::new("tar")
            .arg("-czf")
            .arg(&path)
            .arg("-C")
            .arg(&src)
            .args(args)
            .output()
            .expect("tar");
        assert!(out.status.success(), "{out:?}");
        path
    };
    let with_link = tar("link.tgz", &["d"]);
    let escape = tar(
        "escape.tgz",
        &[
            "-P",
            "--transform",
            "s,^d/main.tf,../../evil.tf,",
            "d/main.tf",
        ],
    );
    let fine = tar("fine.tgz", &["--exclude", "d/link.tf", "."]);
    let garbage = tmp.path().join("garbage");
    std::fs::write(&garbage, b"\x1f\x8b not really gzip").expect("write");

    let (code, doc) = upload("up", &with_link, "application/gzip");
    assert_eq!(
        (code, doc["error"]["code"].as_str()),
        (422, Some("invalid")),
        "{doc}"
    );
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("symbolic link")),
        "{doc}"
    );
    let (code, doc) = upload("up", &escape, "application/gzip");
    assert_eq!(code, 422, "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("relative paths")),
        "{doc}"
    );
    let (code, doc) = upload("up", &garbage, "application/gzip");
    assert_eq!(code, 422, "{doc}");
    let (code, doc) = upload("up", &fine, "text/plain");
    assert_eq!(code, 415, "{doc}");
    let (code, doc) = upload("gitws", &fine, "application/gzip");
    assert_eq!(code, 409, "{doc}");
    let (code, config) = upload("up", &fine, "application/gzip");
    assert_eq!(code, 201, "{config}");
    assert_eq!(config["files"], 1, "{config}");
    let id = config["id"].as_str().expect("id");
    // Nothing was written by the refused uploads; only the one stored.
    let (_, events) = call(
        &server,
        "GET",
        "v1/audit/events?limit=1000",
        Some("alice"),
        None,
    );
    let uploads = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e.as_str().unwrap_or("").contains("configuration.uploaded"))
        .count();
    assert_eq!(uploads, 1, "{events}");

    // Queueing: an upload workspace needs one of its own configurations.
    let runs = |ws: &str, body: Option<&str>| {
        call(
            &server,
            "POST",
            &format!("v1/workspaces/{ws}/runs"),
            Some("alice"),
            body,
        )
    };
    let (code, doc) = runs("up", None);
    assert_eq!(code, 409, "{doc}");
    let (code, doc) = runs("other", Some(&format!(r#"{{"configuration":"{id}"}}"#)));
    assert_eq!(code, 404, "{doc}");
    let (code, doc) = runs("gitws", Some(&format!(r#"{{"configuration":"{id}"}}"#)));
    assert_eq!(code, 409, "{doc}");
    let (code, doc) = runs("up", Some(r#"{"configuration":"x","extra":1}"#));
    assert_eq!(
        (code, doc["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{doc}"
    );
    let (code, run) = runs("up", Some(&format!(r#"{{"configuration":"{id}"}}"#)));
    assert_eq!(code, 202, "{run}");
    assert_eq!(run["configuration"], id, "{run}");
    // The archive is never served back.
    let (code, _) = call(
        &server,
        "GET",
        &format!("v1/workspaces/up/configurations/{id}"),
        Some("alice"),
        None,
    );
    assert!(code == 404 || code == 405, "{code}");
}

/// Workspace variables reach the plan; a sensitive one is write-only: never
/// listed, never in the run's log, the audit trail, the server's own log or
/// on terraform's command line.
#[test]
fn workspace_variables_reach_runs_and_sensitive_ones_never_show() {
    crate::require_acc!();
    let null_mirror = std::env::var("NULL_MIRROR").expect("NULL_MIRROR (scripts/test sets it)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let cli_config = tmp.path().join("cli.tfrc");
    std::fs::write(
        &cli_config,
        format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{null_mirror}\"\n  }}\n}}\n"),
    )
    .expect("write");
    let bin = terraform_bins().into_iter().next().expect("a terraform");
    let data = tmp.path().join("data");
    let server = serve_with_env(
        &data,
        &[
            "--insecure-dev-auth",
            "--terraform",
            bin.to_str().expect("utf8"),
        ],
        &[("TF_CLI_CONFIG_FILE", cli_config.as_os_str())],
    );
    let url = server.url.trim_end_matches('/').to_owned();
    let (code, doc) = call(
        &server,
        "POST",
        "v1/workspaces",
        Some("alice"),
        Some(r#"{"name":"vars","team":"t","environment":"dev","source":{"kind":"upload"}}"#),
    );
    assert_eq!(code, 201, "{doc}");
    let secret = "s3cr3t-Zq8v-do-not-print";
    let put = |name: &str, body: &str| {
        call(
            &server,
            "PUT",
            &format!("v1/workspaces/vars/variables/{name}"),
            Some("alice"),
            Some(body),
        )
    };
    let (code, doc) = put("greeting", r#"{"value":"hello-from-the-server"}"#);
    assert_eq!(
        (code, doc["value"].as_str()),
        (200, Some("hello-from-the-server")),
        "{doc}"
    );
    let (code, doc) = put(
        "token",
        &format!(r#"{{"value":"{secret}","sensitive":true}}"#),
    );
    assert_eq!(code, 200, "{doc}");
    assert!(doc.get("value").is_none(), "write-only: {doc}");
    let (code, doc) = put("9bad", r#"{"value":"x"}"#);
    assert_eq!(
        (code, doc["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{doc}"
    );
    let (code, listed) = call(
        &server,
        "GET",
        "v1/workspaces/vars/variables",
        Some("bob"),
        None,
    );
    assert_eq!(code, 200);
    assert!(!listed.to_string().contains(secret), "{listed}");
    assert_eq!(
        listed["variables"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );

    // The configuration does not declare the token sensitive: terraform
    // would print it; the server's scrubbing must not let it through.
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(
        work.join("main.tf"),
        "terraform {\n  required_providers {\n    null = { source = \"hashicorp/null\", version = \"2.1.2\" }\n  }\n}\n\
         variable \"greeting\" {}\nvariable \"token\" {}\n\
         resource \"null_resource\" \"a\" {\n  triggers = { g = var.greeting, t = var.token }\n}\n",
    )
    .expect("write");
    let w = work.to_str().expect("utf8");
    let (code, out, err) = super::cli::broker_as(
        "alice",
        &work,
        &["plan", w, "--server", &url, "--workspace", "vars"],
    );
    assert_eq!(code, 2, "{out}\n{err}");
    let run = err
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .expect("the run id")
        .to_owned();
    // While the plan is in flight nothing shows the value: a process list
    // taken now would see none either (the values go in a var file).
    let (code, out, err) =
        super::cli::broker_as("alice", &work, &["apply", &run, "--server", &url]);
    assert_eq!(code, 0, "{out}\n{err}");
    // A drift check plans with the variables too (the configuration
    // requires them), and finds nothing.
    let (code, drift_out, drift_err) = super::cli::broker_as(
        "alice",
        &work,
        &["drift", "--server", &url, "--workspace", "vars"],
    );
    assert_eq!(code, 0, "{drift_out}\n{drift_err}");
    assert!(!drift_out.contains(secret) && !drift_err.contains(secret));
    // The state (on the server) holds what the variables said.
    let (code, state) = call(
        &server,
        "GET",
        "v1/workspaces/vars/state",
        Some("alice"),
        None,
    );
    assert_eq!(code, 200);
    assert!(
        state.to_string().contains("hello-from-the-server"),
        "{state}"
    );
    // Nowhere else.
    let (_, log) = call(
        &server,
        "GET",
        &format!("v1/runs/{run}/log"),
        Some("alice"),
        None,
    );
    let (_, run_doc) = call(
        &server,
        "GET",
        &format!("v1/runs/{run}"),
        Some("alice"),
        None,
    );
    let (_, events) = call(
        &server,
        "GET",
        "v1/audit/events?limit=1000",
        Some("alice"),
        None,
    );
    let server_log = std::fs::read_to_string(&server.log).expect("server log");
    for (what, text) in [
        ("run log", log.to_string()),
        ("run", run_doc.to_string()),
        ("audit events", events.to_string()),
        ("server log", server_log),
        ("plan --server output", out),
    ] {
        assert!(
            !text.contains(secret),
            "the secret is in the {what}: {text}"
        );
    }
    assert!(events.to_string().contains("variable.set"), "{events}");
    // The plan's report shows the trigger's new value: scrubbed.
    assert!(
        log.to_string().contains("(sensitive variable token)"),
        "{log}"
    );
    let vars_file = data.join("runs").join(&run).join("variables.tfvars.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&vars_file)
            .expect("the run's var file")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    // Deleting: gone from the list; deleting again is a 404.
    let (code, _) = curl_status(&server, "DELETE", "v1/workspaces/vars/variables/token");
    assert_eq!(code, 204);
    let (code, _) = curl_status(&server, "DELETE", "v1/workspaces/vars/variables/token");
    assert_eq!(code, 404);
}

fn curl_status(server: &super::Server, method: &str, path: &str) -> (u16, String) {
    super::curl(server, method, path, Some("alice"), None)
}

/// Two servers on one PostgreSQL, each with its own disk: a run planned by
/// A is applied by A only (its plan bundle is on A's disk) — B, with
/// workers idle, leaves it alone — and A applies it once it is back.
#[test]
fn a_run_is_applied_by_the_server_that_planned_it() {
    crate::require_acc!();
    let Some(db) = super::PgDatabase::create() else {
        eprintln!("** SKIPPED: no PGHOST");
        return;
    };
    let null_mirror = std::env::var("NULL_MIRROR").expect("NULL_MIRROR (scripts/test sets it)");
    let bin = terraform_bins().into_iter().next().expect("a terraform");
    let tmp = tempfile::tempdir().expect("tempdir");
    let cli_config = tmp.path().join("cli.tfrc");
    std::fs::write(
        &cli_config,
        format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{null_mirror}\"\n  }}\n}}\n"),
    )
    .expect("write");
    // Each server keeps its address across restarts: the backend of a
    // run's checkout names the server that planned it.
    let ports = [
        super::free_port().to_string(),
        super::free_port().to_string(),
    ];
    let server = |data: &str, workers: &str| {
        let port = if data == "data-a" {
            &ports[0]
        } else {
            &ports[1]
        };
        let listen = format!("127.0.0.1:{port}");
        serve_with_env(
            &tmp.path().join(data),
            &[
                "--insecure-dev-auth",
                "--listen",
                &listen,
                "--store",
                &db.url,
                "--workers",
                workers,
                "--terraform",
                bin.to_str().expect("utf8"),
            ],
            &[("TF_CLI_CONFIG_FILE", cli_config.as_os_str())],
        )
    };
    let a = server("data-a", "1");
    let (code, doc) = call(
        &a,
        "POST",
        "v1/workspaces",
        Some("alice"),
        Some(r#"{"name":"pinned","team":"t","environment":"dev","source":{"kind":"upload"}}"#),
    );
    assert_eq!(code, 201, "{doc}");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join("main.tf"), main_tf("1")).expect("write");
    let w = work.to_str().expect("utf8");
    let url_a = a.url.trim_end_matches('/').to_owned();
    let (code, out, err) = broker_as(
        "alice",
        &work,
        &["plan", w, "--server", &url_a, "--workspace", "pinned"],
    );
    assert_eq!(code, 2, "{out}\n{err}");
    let run = err
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .expect("the run id")
        .to_owned();
    // A now serves the API only; B, with its own disk, has a worker.
    drop(a);
    let a = server("data-a", "0");
    let b = server("data-b", "1");
    let (code, doc) = call(
        &b,
        "POST",
        &format!("v1/runs/{run}/approve"),
        Some("bob"),
        Some(r#"{"reason":"ok"}"#),
    );
    assert_eq!(code, 200, "{doc}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (_, waiting) = call(&b, "GET", &format!("v1/runs/{run}"), Some("bob"), None);
    assert_eq!(
        waiting["status"], "approved",
        "B took the apply of a run it did not plan: {waiting}"
    );
    // A is back with a worker: it applies what it planned.
    drop(a);
    let a = server("data-a", "1");
    let applied = wait_run(&a, &run, &["approved", "applying"], 120);
    assert_eq!(applied["status"], "applied", "{applied}");
    drop(b);
}
