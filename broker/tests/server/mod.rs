//! The control plane (`platform-broker serve`) and its store.
//!
//! The store suite runs against both stores — SQLite in a temporary
//! directory and a fresh database on the test PostgreSQL (`PGHOST` & co.,
//! from scripts/test; without them the PostgreSQL half says SKIPPED) — and
//! attacks what the store promises: migrations run once under racing
//! starts, a newer schema is refused untouched, a name is taken once under
//! racing creates. The server tests drive the real binary over HTTP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use broker::store::{NewWorkspace, Refused, Source, Store};

use crate::acc::*;

mod catalog;
mod cli;
mod drift;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A fresh database on the test PostgreSQL, dropped when done.
pub(super) struct PgDatabase {
    name: String,
    url: String,
}

impl PgDatabase {
    pub(super) fn create() -> Option<PgDatabase> {
        let host = std::env::var("PGHOST").ok().filter(|h| !h.is_empty())?;
        let name = format!("platform_store_{}", random_hex());
        psql(&format!("CREATE DATABASE {name}")).expect("create database");
        let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
        let password = std::env::var("PGPASSWORD").unwrap_or_default();
        let port = std::env::var("PGPORT").unwrap_or_else(|_| "5432".into());
        let auth = if password.is_empty() {
            encode(&user)
        } else {
            format!("{}:{}", encode(&user), encode(&password))
        };
        let url = if host.starts_with('/') {
            format!(
                "postgres://{auth}@localhost:{port}/{name}?host={}",
                encode(&host)
            )
        } else {
            format!("postgres://{auth}@{host}:{port}/{name}")
        };
        Some(PgDatabase { name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs `check` against a SQLite store and, when configured, PostgreSQL.
fn each_store(test: &str, check: impl Fn(&str, &str)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}", dir.path().join("platform.db").display());
    check("sqlite", &sqlite);
    match PgDatabase::create() {
        Some(db) => check("postgres", &db.url),
        None => eprintln!("** SKIPPED: {test} on PostgreSQL: no PGHOST (scripts/test sets it)"),
    }
}

fn workspace(name: &str) -> NewWorkspace {
    NewWorkspace {
        name: name.to_owned(),
        team: "checkout".into(),
        environment: "production".into(),
        source: Source::Git {
            url: "file:///srv/infra.git".into(),
            reference: Some("main".into()),
            path: None,
        },
        policy: None,
        pricebook: None,
        catalog: None,
    }
}

#[test]
fn store_migrates_once_and_refuses_a_newer_schema() {
    each_store("store_migrates_once", |kind, url| {
        let rt = runtime();
        // Eight servers starting at once on a fresh store: one migration.
        let stores: Vec<Store> = rt
            .block_on(async {
                let opens = (0..8).map(|_| {
                    let url = url.to_owned();
                    async move { Store::open(&url).await }
                });
                futures_join_all(opens).await
            })
            .into_iter()
            .map(|opened| opened.unwrap_or_else(|e| panic!("{kind}: a racing open failed: {e:#}")))
            .collect();
        for store in &stores {
            assert_eq!(
                rt.block_on(store.schema_version()).expect("version"),
                broker::store::SCHEMA_VERSION,
                "{kind}"
            );
        }
        let store = &stores[0];
        rt.block_on(store.create_workspace(&workspace("kept"), "dev:t"))
            .expect("create")
            .expect("created");
        // Reopening keeps everything.
        let again = rt.block_on(Store::open(url)).expect("reopen");
        assert!(
            rt.block_on(again.workspace("kept"))
                .expect("read")
                .is_some(),
            "{kind}"
        );
        // A store written by a newer broker: refused, and left as it was.
        rt.block_on(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(url).await.expect("connect");
            sqlx::query("UPDATE platform_schema SET version = 99 WHERE id = 1")
                .execute(&pool)
                .await
                .expect("bump");
            pool.close().await;
        });
        let error = match rt.block_on(Store::open(url)) {
            Ok(_) => panic!("{kind}: a newer schema was opened"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            error.contains("schema is at version 99, newer than this platform-broker knows"),
            "{kind}: {error}"
        );
        assert_eq!(
            rt.block_on(again.schema_version()).expect("version"),
            99,
            "{kind}"
        );
        for store in stores.iter().chain([&again]) {
            rt.block_on(store.close());
        }
    });
}

#[test]
fn store_gives_a_name_to_one_workspace_only() {
    each_store("store_names", |kind, url| {
        let rt = runtime();
        let store = rt.block_on(Store::open(url)).expect("open");
        // 16 racing creates of one name: exactly one wins, the rest are told.
        let results = rt.block_on(async {
            let creates = (0..16).map(|i| {
                let store = store.clone();
                async move {
                    store
                        .create_workspace(&workspace("orders"), &format!("dev:user{i}"))
                        .await
                }
            });
            futures_join_all(creates).await
        });
        let won = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        let told = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(Refused::Exists(n))) if n == "orders"))
            .count();
        assert_eq!((won, told), (1, 15), "{kind}: {results:?}");
        let all = rt.block_on(store.workspaces()).expect("list");
        assert_eq!(all.len(), 1, "{kind}");
        // 16 racing creates of different names: 16 events, one chain, no fork.
        rt.block_on(async {
            let creates = (0..16).map(|i| {
                let store = store.clone();
                async move {
                    store
                        .create_workspace(&workspace(&format!("team-{i}")), "dev:racer")
                        .await
                }
            });
            for created in futures_join_all(creates).await {
                created.expect("store").expect("created");
            }
        });
        let report = rt.block_on(store.audit_verify()).expect("verify");
        assert!(report.ok, "{kind}: {:?}", report.first_bad);
        assert_eq!(report.events, 17, "{kind}: one event per workspace created");
        let stored = &all[0];
        assert_eq!(stored.source, workspace("orders").source, "{kind}");
        assert!(stored.created_by.starts_with("dev:user"), "{kind}");
        // Invalid input never reaches the table.
        let mut bad = workspace("x");
        bad.environment = "Prod".into();
        let refused = rt
            .block_on(store.create_workspace(&bad, "dev:t"))
            .expect("no store error");
        assert!(
            matches!(
                &refused,
                Err(Refused::Invalid {
                    field: "environment",
                    ..
                })
            ),
            "{kind}: {refused:?}"
        );
        assert_eq!(rt.block_on(store.workspaces()).expect("list").len(), 17);
        assert!(
            rt.block_on(store.workspace("nope"))
                .expect("read")
                .is_none()
        );
        rt.block_on(store.close());
    });
}

/// `join_all` without the futures crate: spawn each, await in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

/// A running `platform-broker serve`; SIGKILLed when dropped.
struct Server {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Server {
    /// SIGKILL to the server's whole process group (a crash of the host's
    /// process tree: terraform and its providers die with it).
    fn crash(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.crash();
    }
}

fn serve(data: &Path, extra: &[&str]) -> Server {
    serve_with_env(data, extra, &[])
}

fn serve_with_env(data: &Path, extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Server {
    let log = data.with_extension(format!("log-{}", random_hex()));
    let mut cmd = Command::new(broker_bin());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Its own process group: a crash test can kill the server with
    // everything it started (terraform, providers), and nothing outlives it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.arg("serve");
    if !extra.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env_remove("PLATFORM_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start platform-broker serve");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first line");
    let Some(url) = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(str::to_owned)
    else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "serve did not start: {first}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    Server { child, url, log }
}

/// (status, body) of a curl request.
fn call(
    server: &Server,
    method: &str,
    path: &str,
    user: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (code, body) = curl(server, method, path, user, body);
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"))
    };
    (code, json)
}

/// (status, body text) of a curl request, as `user` when given.
fn curl(
    server: &Server,
    method: &str,
    path: &str,
    user: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}"]);
    if let Some(user) = user {
        cmd.args(["-H", &format!("x-platform-dev-user: {user}")]);
    }
    if let Some(body) = body {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = cmd
        .arg(format!("{}{path}", server.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status");
    (code.parse().expect("code"), body.to_owned())
}

#[test]
fn serve_keeps_workspaces_and_answers_in_one_shape() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    // No way to authenticate: refused. Dev auth off loopback: refused.
    for (args, needle) in [
        (vec![], "start with --insecure-dev-auth"),
        (
            vec!["--insecure-dev-auth", "--listen", "0.0.0.0:0"],
            "refused unless --listen is a loopback address",
        ),
    ] {
        let out = Command::new(broker_bin())
            .args(["serve", "--data-dir"])
            .arg(&data)
            .args(&args)
            .output()
            .expect("serve");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    let server = serve(&data, &["--insecure-dev-auth"]);
    let (code, health) = call(&server, "GET", "healthz", None, None);
    assert_eq!(
        (code, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    assert_eq!(health["store"], "sqlite");
    // Every failure: {"error": {"code", "message", "request_id"}}.
    for (method, path, user, body, status, code) in [
        ("GET", "v1/workspaces", None, None, 401, "unauthenticated"),
        (
            "GET",
            "v1/workspaces",
            Some("bad user"),
            None,
            401,
            "unauthenticated",
        ),
        (
            "GET",
            "v1/workspaces/none",
            Some("alice"),
            None,
            404,
            "not_found",
        ),
        (
            "DELETE",
            "v1/workspaces",
            Some("alice"),
            None,
            405,
            "method_not_allowed",
        ),
        ("GET", "nothing", None, None, 404, "not_found"),
        (
            "GET",
            "v1/workspaces/%FF",
            Some("alice"),
            None,
            400,
            "bad_request",
        ),
        (
            "POST",
            "v1/workspaces",
            Some("alice"),
            Some(
                r#"{"name":"x","team":"t","environment":"e","source":{"kind":"git","url":"https://u:secret@git.example.com/x"}}"#,
            ),
            400,
            "invalid",
        ),
        (
            "POST",
            "v1/workspaces",
            Some("alice"),
            Some(
                r#"{"name":"x","team":"t","environment":"e","source":{"kind":"upload"},"policy":"/etc/passwd"}"#,
            ),
            400,
            "invalid",
        ),
        (
            "POST",
            "v1/workspaces",
            Some("alice"),
            Some("{"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "v1/workspaces",
            Some("alice"),
            Some(r#"{"name":"x"}"#),
            422,
            "bad_request",
        ),
        (
            "POST",
            "v1/workspaces",
            Some("alice"),
            Some(r#"{"name":"Orders","team":"t","environment":"e","source":{"kind":"upload"}}"#),
            400,
            "invalid",
        ),
    ] {
        let (got, doc) = call(&server, method, path, user, body);
        assert_eq!(got, status, "{method} {path} {body:?}: {doc}");
        assert_eq!(doc["error"]["code"], code, "{method} {path}: {doc}");
        assert!(
            doc["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(
            doc["error"]["request_id"]
                .as_str()
                .is_some_and(|r| r.len() >= 8),
            "{doc}"
        );
    }
    let new = r#"{"name":"orders","team":"checkout","environment":"production",
                  "source":{"kind":"git","url":"file:///srv/infra.git","ref":"main","path":"infra"}}"#;
    let (code, created) = call(&server, "POST", "v1/workspaces", Some("alice"), Some(new));
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["created_by"], "dev:alice");
    let (code, again) = call(&server, "POST", "v1/workspaces", Some("bob"), Some(new));
    assert_eq!(
        (code, again["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    // The OpenAPI document describes what is served.
    let (code, doc) = call(&server, "GET", "openapi.json", None, None);
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/healthz",
        "/v1/workspaces",
        "/v1/workspaces/{name}",
        "/v1/workspaces/{name}/state",
        "/v1/workspaces/{name}/state/versions",
        "/v1/workspaces/{name}/state/versions/{version}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the document"
        );
    }

    // The audit chain names who did what, and holds.
    let (code, events) = call(
        &server,
        "GET",
        "v1/audit/events?after=0&limit=10",
        Some("alice"),
        None,
    );
    assert_eq!(code, 200, "{events}");
    let first = events["events"][0].as_str().expect("an event");
    assert!(
        first.contains("dev.platform.broker.workspace.created") && first.contains("dev:alice"),
        "{first}"
    );
    let (code, report) = call(&server, "GET", "v1/audit/verify", Some("alice"), None);
    assert_eq!(
        (code, report["ok"].as_bool()),
        (200, Some(true)),
        "{report}"
    );
    let (code, doc) = call(
        &server,
        "GET",
        "v1/audit/events?limit=0",
        Some("alice"),
        None,
    );
    assert_eq!(
        (code, doc["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    // SIGTERM: the server stops by itself, exit 0.
    let pid = server.child.id();
    let started = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let mut server = server;
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed().as_secs() < 15, "serve ignored SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "serve exited {status} after SIGTERM");
    let log = std::fs::read_to_string(&server.log).expect("log");
    assert!(log.contains("POST /v1/workspaces 201"), "{log}");
    assert!(
        !log.contains("alice"),
        "the access log names no caller header: {log}"
    );

    // What was acknowledged survives a restart, and a kill -9.
    let server = serve(&data, &["--insecure-dev-auth"]);
    let (code, doc) = call(&server, "GET", "v1/workspaces/orders", Some("carol"), None);
    assert_eq!(
        (code, doc["id"].clone()),
        (200, created["id"].clone()),
        "{doc}"
    );
    let second = r#"{"name":"billing","team":"payments","environment":"staging","source":{"kind":"upload"}}"#;
    let (code, _) = call(
        &server,
        "POST",
        "v1/workspaces",
        Some("carol"),
        Some(second),
    );
    assert_eq!(code, 201);
    let mut server = server;
    server.crash();
    let server = serve(&data, &["--insecure-dev-auth"]);
    let (code, list) = call(&server, "GET", "v1/workspaces", Some("carol"), None);
    assert_eq!(code, 200);
    let names: Vec<&str> = list["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(names, ["billing", "orders"]);
}

/// curl with the dev user: (status, body text).
fn raw_call(server: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    curl(server, method, path, Some("attacker"), body)
}

fn tf(bin: &Path, dir: &Path, cli_config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .current_dir(dir)
        .args(args)
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .env_remove("TF_PLUGIN_CACHE_DIR")
        .env_remove("TF_DATA_DIR")
        .output()
        .expect("terraform")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn terraform_state_lives_on_the_server() {
    crate::require_acc!();
    let null_mirror = std::env::var("NULL_MIRROR").expect("NULL_MIRROR (scripts/test sets it)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = serve(&tmp.path().join("data"), &["--insecure-dev-auth"]);
    let cli_config = tmp.path().join("cli.tfrc");
    std::fs::write(
        &cli_config,
        format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{null_mirror}\"\n  }}\n}}\n"),
    )
    .expect("write");
    for bin in terraform_bins() {
        let v = version(&bin);
        let ws = format!("ws-{}", version_tag(&bin));
        let (code, _) = call(
            &server,
            "POST",
            "v1/workspaces",
            Some("alice"),
            Some(&format!(
                r#"{{"name":"{ws}","team":"t","environment":"dev","source":{{"kind":"upload"}}}}"#
            )),
        );
        assert_eq!(code, 201);
        let main_tf = |trigger: &str| {
            format!(
                r#"terraform {{
  backend "http" {{
    address        = "{url}v1/workspaces/{ws}/state"
    lock_address   = "{url}v1/workspaces/{ws}/lock"
    unlock_address = "{url}v1/workspaces/{ws}/lock"
    username       = "alice"
    password       = "not-checked-in-dev-auth"
  }}
  required_providers {{
    null = {{ source = "hashicorp/null", version = "2.1.2" }}
  }}
}}
resource "null_resource" "a" {{
  triggers = {{ v = "{trigger}" }}
}}
"#,
                url = server.url
            )
        };
        let dirs: Vec<std::path::PathBuf> = (0..2)
            .map(|i| {
                let dir = tmp.path().join(format!("{ws}-{i}"));
                std::fs::create_dir(&dir).expect("mkdir");
                std::fs::write(dir.join("main.tf"), main_tf("1")).expect("write");
                let init = tf(
                    &bin,
                    &dir,
                    &cli_config,
                    &["init", "-no-color", "-input=false"],
                );
                assert!(init.status.success(), "{v} init:\n{}", text(&init));
                dir
            })
            .collect();
        let apply = tf(
            &bin,
            &dirs[0],
            &cli_config,
            &["apply", "-auto-approve", "-no-color", "-input=false"],
        );
        assert!(apply.status.success(), "{v} apply:\n{}", text(&apply));
        // The second checkout sees the first one's state: nothing to do.
        let plan = tf(
            &bin,
            &dirs[1],
            &cli_config,
            &["plan", "-detailed-exitcode", "-no-color", "-input=false"],
        );
        assert_eq!(
            plan.status.code(),
            Some(0),
            "{v} plan from the other checkout:\n{}",
            text(&plan)
        );

        // Two applies racing on one workspace: the lock lets one through.
        for dir in &dirs {
            std::fs::write(dir.join("main.tf"), main_tf("2")).expect("write");
        }
        let racers: Vec<_> = dirs
            .iter()
            .map(|dir| {
                let (bin, dir, cli) = (bin.clone(), dir.clone(), cli_config.clone());
                std::thread::spawn(move || {
                    tf(
                        &bin,
                        &dir,
                        &cli,
                        &["apply", "-auto-approve", "-no-color", "-input=false"],
                    )
                })
            })
            .collect();
        let outs: Vec<_> = racers
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        for out in outs.iter().filter(|o| !o.status.success()) {
            assert!(
                text(out).contains("Error acquiring the state lock"),
                "{v}: the losing apply failed otherwise:\n{}",
                text(out)
            );
        }
        assert!(won >= 1, "{v}: no apply won");
        let (_, versions) = call(
            &server,
            "GET",
            &format!("v1/workspaces/{ws}/state/versions"),
            Some("alice"),
            None,
        );
        let versions = versions["versions"].as_array().expect("versions").clone();
        let serials: Vec<i64> = versions
            .iter()
            .map(|v| v["serial"].as_i64().expect("serial"))
            .collect();
        assert!(
            serials.windows(2).all(|w| w[0] < w[1]) && serials.len() >= 2,
            "{v}: versions must grow in serial: {serials:?}"
        );
        let lineage = versions[0]["lineage"].as_str().expect("lineage").to_owned();
        assert!(versions.iter().all(|x| x["lineage"] == lineage.as_str()));
        let last_serial = *serials.last().expect("a version");

        // A lock held elsewhere (a crashed run): apply is refused, then
        // force-unlock frees it.
        let info = r#"{"ID":"held-by-a-crashed-run","Operation":"OperationTypeApply","Who":"ci@runner","Version":"1.11.4","Created":"2026-12-07T00:00:00Z","Path":"","Info":""}"#;
        let (code, _) = raw_call(
            &server,
            "LOCK",
            &format!("v1/workspaces/{ws}/lock"),
            Some(info),
        );
        assert_eq!(code, 200);
        let (code, holder) = raw_call(
            &server,
            "LOCK",
            &format!("v1/workspaces/{ws}/lock"),
            Some(&info.replace("held-by-a-crashed-run", "other")),
        );
        assert_eq!(code, 423, "{holder}");
        assert!(holder.contains("held-by-a-crashed-run"), "{holder}");
        std::fs::write(dirs[0].join("main.tf"), main_tf("3")).expect("write");
        let refused = tf(
            &bin,
            &dirs[0],
            &cli_config,
            &["apply", "-auto-approve", "-no-color", "-input=false"],
        );
        assert!(
            !refused.status.success() && text(&refused).contains("Error acquiring the state lock"),
            "{v}:\n{}",
            text(&refused)
        );

        // Writes that would lose state, with and without the lock: refused.
        let state = |serial: i64, lineage: &str, extra: &str| {
            format!(
                r#"{{"version":4,"terraform_version":"1.11.4","serial":{serial},"lineage":"{lineage}","outputs":{{}},"resources":[]{extra}}}"#
            )
        };
        let path = format!("v1/workspaces/{ws}/state");
        for (query, body, status, code) in [
            (
                "",
                state(last_serial + 1, &lineage, ""),
                409,
                "not_lock_holder",
            ),
            (
                "?ID=other",
                state(last_serial + 1, &lineage, ""),
                409,
                "not_lock_holder",
            ),
            (
                "?ID=held-by-a-crashed-run",
                state(last_serial - 1, &lineage, ""),
                409,
                "state_conflict",
            ),
            (
                "?ID=held-by-a-crashed-run",
                state(last_serial + 1, "another-lineage", ""),
                409,
                "state_conflict",
            ),
            (
                "?ID=held-by-a-crashed-run",
                state(last_serial, &lineage, r#","check_results":null"#),
                409,
                "state_conflict",
            ),
            (
                "?ID=held-by-a-crashed-run",
                "{\"version\":3}".to_owned(),
                400,
                "invalid",
            ),
        ] {
            let (got, body_text) =
                raw_call(&server, "POST", &format!("{path}{query}"), Some(&body));
            assert_eq!(got, status, "{v} POST{query}: {body_text}");
            assert!(body_text.contains(code), "{v} POST{query}: {body_text}");
        }
        // The lock ID alone does not let another caller write.
        let (code, doc) = call(
            &server,
            "POST",
            &format!("{path}?ID=held-by-a-crashed-run"),
            Some("mallory"),
            Some(&state(last_serial + 1, &lineage, "")),
        );
        assert_eq!(
            (code, doc["error"]["code"].as_str()),
            (409, Some("not_lock_holder")),
            "{v}: {doc}"
        );
        let (code, holder) = raw_call(
            &server,
            "UNLOCK",
            &format!("v1/workspaces/{ws}/lock"),
            Some(&info.replace("held-by-a-crashed-run", "other")),
        );
        assert_eq!(code, 409, "UNLOCK by another ID: {holder}");
        let unlock = tf(
            &bin,
            &dirs[0],
            &cli_config,
            &["force-unlock", "-force", "held-by-a-crashed-run"],
        );
        assert!(
            unlock.status.success(),
            "{v} force-unlock:\n{}",
            text(&unlock)
        );
        let apply = tf(
            &bin,
            &dirs[0],
            &cli_config,
            &["apply", "-auto-approve", "-no-color", "-input=false"],
        );
        assert!(
            apply.status.success(),
            "{v} apply after force-unlock:\n{}",
            text(&apply)
        );
        // Nothing the attacks sent was kept; every version stays readable.
        let (_, after) = call(
            &server,
            "GET",
            &format!("v1/workspaces/{ws}/state/versions"),
            Some("alice"),
            None,
        );
        let after = after["versions"].as_array().expect("versions").clone();
        assert!(after.len() > versions.len(), "{v}");
        assert!(
            after.iter().all(|x| x["lineage"] == lineage.as_str()),
            "{v}"
        );
        for x in &after {
            let (code, body) = raw_call(
                &server,
                "GET",
                &format!("v1/workspaces/{ws}/state/versions/{}", x["version"]),
                None,
            );
            assert_eq!(code, 200);
            let doc: serde_json::Value = serde_json::from_str(&body).expect("state JSON");
            assert_eq!(doc["serial"], x["serial"], "{v}");
        }
        let pulled = tf(&bin, &dirs[1], &cli_config, &["state", "pull"]);
        let pulled: serde_json::Value = serde_json::from_slice(&pulled.stdout).expect("state pull");
        assert_eq!(
            pulled["serial"],
            after.last().expect("last")["serial"],
            "{v}"
        );
        // A rollback: version 1's content becomes the newest version, its
        // serial past the current one, and Terraform takes it.
        let restore = format!("v1/workspaces/{ws}/state/versions/1/restore");
        let (code, restored) = call(&server, "POST", &restore, Some("alice"), None);
        assert_eq!(code, 201, "{v}: {restored}");
        let newest = pulled["serial"].as_i64().expect("serial") + 1;
        assert_eq!(restored["serial"], newest, "{v}: {restored}");
        let (_, first) = raw_call(
            &server,
            "GET",
            &format!("v1/workspaces/{ws}/state/versions/1"),
            None,
        );
        let first: serde_json::Value = serde_json::from_str(&first).expect("state JSON");
        let pulled = tf(&bin, &dirs[1], &cli_config, &["state", "pull"]);
        let pulled: serde_json::Value = serde_json::from_slice(&pulled.stdout).expect("state pull");
        assert_eq!(pulled["serial"], newest, "{v}");
        assert_eq!(
            pulled["resources"], first["resources"],
            "{v}: not version 1's content"
        );
        // Not while the state is locked; not a version that does not exist.
        let (code, _) = raw_call(
            &server,
            "LOCK",
            &format!("v1/workspaces/{ws}/lock"),
            Some(&info.replace("held-by-a-crashed-run", "restore-guard")),
        );
        assert_eq!(code, 200);
        let (code, doc) = call(&server, "POST", &restore, Some("alice"), None);
        assert_eq!(code, 409, "{v}: {doc}");
        raw_call(
            &server,
            "UNLOCK",
            &format!("v1/workspaces/{ws}/lock"),
            Some(&info.replace("held-by-a-crashed-run", "restore-guard")),
        );
        let (code, doc) = call(
            &server,
            "POST",
            &format!("v1/workspaces/{ws}/state/versions/999/restore"),
            Some("alice"),
            None,
        );
        assert_eq!(code, 404, "{v}: {doc}");
    }
}

#[test]
fn store_state_lock_has_one_holder_and_versions_only_grow() {
    use broker::store::state::{Locked, StateRefused, Unlocked};
    each_store("store_state_lock", |kind, url| {
        let rt = runtime();
        let store = rt.block_on(Store::open(url)).expect("open");
        let ws = rt
            .block_on(store.create_workspace(&workspace("locked"), "dev:t"))
            .expect("create")
            .expect("created");
        // 16 racing LOCKs: one holder; every other is told who holds it.
        let results = rt.block_on(async {
            let locks = (0..16).map(|i| {
                let (store, id) = (store.clone(), ws.id.clone());
                async move {
                    let info = format!(r#"{{"ID":"lock-{i}"}}"#);
                    store
                        .state_lock(&id, &format!("lock-{i}"), &info, "dev:t")
                        .await
                }
            });
            futures_join_all(locks).await
        });
        let results: Vec<Locked> = results.into_iter().map(|r| r.expect("lock")).collect();
        assert_eq!(
            results.iter().filter(|r| **r == Locked::Acquired).count(),
            1,
            "{kind}: {results:?}"
        );
        let (holder, _) = rt
            .block_on(store.state_lock_holder(&ws.id))
            .expect("holder")
            .expect("held");
        for r in &results {
            if let Locked::HeldBy(info) = r {
                assert!(info.contains(&holder), "{kind}: {info} vs {holder}");
            }
        }
        // Only the holder writes; versions only grow.
        let state = |serial: i64| {
            format!(r#"{{"version":4,"serial":{serial},"lineage":"L","resources":[]}}"#)
                .into_bytes()
        };
        let write = |id: Option<&str>, body: Vec<u8>| {
            rt.block_on(store.state_write(&ws.id, id, &body, "dev:t"))
                .expect("write")
        };
        assert_eq!(
            write(Some("not-the-holder"), state(1)),
            Err(StateRefused::LockedByOther),
            "{kind}"
        );
        assert_eq!(write(Some(&holder), state(1)).expect("v1").version, 1);
        assert_eq!(
            write(Some(&holder), state(1)).expect("same again").version,
            1
        );
        assert_eq!(write(Some(&holder), state(3)).expect("v2").version, 2);
        assert!(matches!(
            write(Some(&holder), state(2)),
            Err(StateRefused::Serial { have: 3, got: 2 })
        ));
        assert_eq!(
            rt.block_on(store.state_unlock(&ws.id, Some("not-the-holder"), "dev:t"))
                .expect("unlock"),
            Unlocked::HeldBy(format!(r#"{{"ID":"{holder}"}}"#)),
            "{kind}"
        );
        assert_eq!(
            rt.block_on(store.state_unlock(&ws.id, Some(&holder), "dev:t"))
                .expect("unlock"),
            Unlocked::Released
        );
        assert_eq!(write(Some(&holder), state(4)), Err(StateRefused::NotLocked));
        let versions = rt.block_on(store.state_versions(&ws.id)).expect("versions");
        assert_eq!(
            versions.iter().map(|v| v.serial).collect::<Vec<_>>(),
            [1, 3],
            "{kind}"
        );
        rt.block_on(store.close());
    });
}

/// schemathesis generates requests from `/openapi.json` (positive and
/// negative, every operation, stateful sequences) and checks every answer
/// against the document: no 5xx, documented statuses, content types and
/// bodies, valid data accepted, invalid data rejected.
#[test]
fn the_api_keeps_to_its_openapi_document() {
    let Some(pythonpath) = std::env::var_os("SCHEMATHESIS_PYTHONPATH").filter(|p| !p.is_empty())
    else {
        assert!(
            std::env::var("TF_ACC").as_deref() != Ok("1"),
            "SCHEMATHESIS_PYTHONPATH is not set (scripts/setup --test installs schemathesis)"
        );
        eprintln!(
            "** SKIPPED: set SCHEMATHESIS_PYTHONPATH (scripts/setup --test) to run schemathesis"
        );
        return;
    };
    let python = std::env::var("SCHEMATHESIS_PYTHON").unwrap_or_else(|_| "python3".into());
    let tmp = tempfile::tempdir().expect("tempdir");
    // No workers: the generated runs are queued, never executed.
    let server = serve(
        &tmp.path().join("data"),
        &["--insecure-dev-auth", "--workers", "0"],
    );
    // Operation ids are unique (tools that follow links resolve them by id).
    let (_, doc) = call(&server, "GET", "openapi.json", None, None);
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|ops| ops.as_object().into_iter().flat_map(|o| o.values()))
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationIds in {ids:?}");
    // An upload's bytes must be a gzipped tar, which a schema cannot say:
    // random bytes are refused (422) though they match the document.
    let config = tmp.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        r#"[[operations]]
include-path = "/v1/workspaces/{name}/configurations"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "413", "415", "422"]

# An acknowledgement's `until` must be today or later, and a schedule a cron
# expression that fires: neither can a schema say.
[[operations]]
include-path = ["/v1/workspaces/{name}/drift/acks", "/v1/workspaces/{name}/drift/schedule"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"#,
    )
    .expect("write schemathesis.toml");
    let out = Command::new(python)
        .args(["-s", "-m", "schemathesis.cli", "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(format!("{}openapi.json", server.url))
        .args(["--checks", "all", "-H", "x-platform-dev-user: schemathesis"])
        .args(["--max-examples", "40", "--seed", "20261207", "--no-color"])
        // Hypothesis's own health checks (is *generation* slow?) fail under a
        // loaded CI machine; they say nothing about the API. A slow answer
        // still fails, at 30 s.
        .args(["--suppress-health-check", "all", "--request-timeout", "30"])
        .env("PYTHONPATH", pythonpath)
        .env("HOME", tmp.path())
        .current_dir(tmp.path())
        .output()
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}"
    );
    let summary = report
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("no summary in:\n{report}"));
    let generated: u32 = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(generated >= 300, "only {generated} requests: {summary}");
    eprintln!("schemathesis: {}", summary.trim());
    // And the server's own log: no request ended in a 5xx.
    let log = std::fs::read_to_string(&server.log).expect("log");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|s| s.starts_with('5'))
        })
        .collect();
    assert!(errors.is_empty(), "5xx answers: {errors:#?}");
}

#[test]
fn store_audit_chain_catches_an_edited_row() {
    each_store("store_audit", |kind, url| {
        let rt = runtime();
        let key = broker::key::BrokerKey::from_text(b"0123456789abcdef0123456789abcdef")
            .unwrap_or_else(|_| panic!("key"));
        let store = rt
            .block_on(Store::open(url))
            .expect("open")
            .with_key(Some(key.clone()));
        let ws = rt
            .block_on(store.create_workspace(&workspace("audited"), "dev:alice"))
            .expect("store")
            .expect("created");
        let body = br#"{"version":4,"serial":1,"lineage":"L","resources":[]}"#;
        assert!(matches!(
            rt.block_on(store.state_write(&ws.id, Some("nobody"), body, "dev:mallory"))
                .expect("store"),
            Err(broker::store::state::StateRefused::NotLocked)
        ));
        rt.block_on(store.state_lock(&ws.id, "L1", r#"{"ID":"L1"}"#, "dev:alice"))
            .expect("lock");
        rt.block_on(store.state_write(&ws.id, Some("L1"), body, "dev:alice"))
            .expect("store")
            .expect("written");
        rt.block_on(store.state_unlock(&ws.id, None, "dev:admin"))
            .expect("force-unlock");
        let lines: Vec<String> = rt
            .block_on(store.audit_lines(0, 100))
            .expect("lines")
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        let types: Vec<String> = lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("event")["type"]
                    .as_str()
                    .expect("type")
                    .to_owned()
            })
            .collect();
        assert_eq!(
            types,
            [
                "dev.platform.broker.workspace.created",
                "dev.platform.broker.state.write_refused",
                "dev.platform.broker.state.locked",
                "dev.platform.broker.state.written",
                "dev.platform.broker.state.force_unlocked",
            ],
            "{kind}"
        );
        assert!(
            lines[1].contains("dev:mallory") && lines[4].contains("dev:admin"),
            "{kind}"
        );
        let report = rt.block_on(store.audit_verify()).expect("verify");
        assert!(
            report.ok && report.authenticated,
            "{kind}: {:?}",
            report.first_bad
        );
        // Someone with the database but not the key rewrites who did it.
        rt.block_on(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(url).await.expect("connect");
            sqlx::query("UPDATE audit_events SET line = REPLACE(line, 'dev:mallory', 'dev:alice') WHERE seq = 2")
                .execute(&pool)
                .await
                .expect("edit");
            pool.close().await;
        });
        let report = rt.block_on(store.audit_verify()).expect("verify");
        assert!(!report.ok, "{kind}: an edited event went unnoticed");
        let bad = report.first_bad.expect("first bad");
        assert_eq!(bad.line, 2, "{kind}: {bad:?}");
        // Without the key the keyed lines' links still hold (their link is
        // their MAC), so only the key catches the edit; verify says it could
        // not authenticate.
        let unkeyed = rt.block_on(Store::open(url)).expect("open");
        let report = rt.block_on(unkeyed.audit_verify()).expect("verify");
        assert!(!report.authenticated, "{kind}");
        // Rows cut at the end, head row rewritten to match: the key catches it.
        rt.block_on(async {
            let pool = sqlx::AnyPool::connect(url).await.expect("connect");
            sqlx::query("UPDATE audit_events SET line = REPLACE(line, 'dev:alice', 'dev:mallory') WHERE seq = 2")
                .execute(&pool)
                .await
                .expect("restore");
            let link: String = sqlx::Row::get(
                &sqlx::query("SELECT link FROM audit_events WHERE seq = 3")
                    .fetch_one(&pool)
                    .await
                    .expect("link"),
                "link",
            );
            sqlx::query("DELETE FROM audit_events WHERE seq > 3")
                .execute(&pool)
                .await
                .expect("cut");
            sqlx::query("UPDATE audit_head SET seq = 3, link = $1 WHERE id = 1")
                .bind(link)
                .execute(&pool)
                .await
                .expect("head");
            pool.close().await;
        });
        let report = rt.block_on(store.audit_verify()).expect("verify");
        assert!(
            !report.ok,
            "{kind}: a cut with a rewritten head went unnoticed with the key"
        );
        rt.block_on(store.close());
        rt.block_on(unkeyed.close());
    });
}

#[test]
fn queue_claims_each_run_once_in_order_one_per_workspace() {
    use broker::store::runs::{Fenced, RunStatus};
    use std::sync::Mutex;
    each_store("queue", |kind, url| {
        let rt = runtime();
        // Two "servers": two pools on one store.
        let servers = [
            rt.block_on(Store::open(url)).expect("open"),
            rt.block_on(Store::open(url)).expect("open"),
        ];
        let store = &servers[0];
        let mut spaces = Vec::new();
        for w in 0..4 {
            let ws = rt
                .block_on(store.create_workspace(&workspace(&format!("queue-{w}")), "dev:t"))
                .expect("store")
                .expect("created");
            spaces.push(ws.id);
        }
        let mut queued = 0;
        for round in 0..6 {
            for ws in &spaces {
                rt.block_on(store.queue_run(ws, &format!("dev:u{round}")))
                    .expect("queue");
                queued += 1;
            }
        }
        // 8 workers, 4 on each server, claim until nothing is left; each
        // claimed run is planned after a moment. Track what is active.
        let active: std::sync::Arc<Mutex<std::collections::HashMap<String, usize>>> =
            Default::default();
        let claims: std::sync::Arc<Mutex<Vec<(String, i64, String)>>> = Default::default();
        let max_active = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        rt.block_on(async {
            let workers = (0..8).map(|i| {
                let store = servers[i % 2].clone();
                let (active, claims, max_active) =
                    (active.clone(), claims.clone(), max_active.clone());
                async move {
                    let me = format!("worker-{i}");
                    let mut idle = 0;
                    while idle < 40 {
                        let Some(run) = store.claim_run(&me, 30_000).await.expect("claim") else {
                            idle += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                            continue;
                        };
                        idle = 0;
                        {
                            let mut a = active.lock().expect("lock");
                            let n = a.entry(run.workspace_id.clone()).or_default();
                            *n += 1;
                            max_active.fetch_max(*n, std::sync::atomic::Ordering::SeqCst);
                            claims.lock().expect("lock").push((
                                run.workspace_id.clone(),
                                run.number,
                                run.id.clone(),
                            ));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        *active
                            .lock()
                            .expect("lock")
                            .get_mut(&run.workspace_id)
                            .expect("entry") -= 1;
                        // Denied: a final outcome of planning (a plan that
                        // waits for a decision holds the workspace's next run).
                        store
                            .finish_run(&run.id, &me, RunStatus::Denied, None)
                            .await
                            .expect("store")
                            .expect("fenced");
                    }
                }
            });
            futures_join_all(workers).await;
        });
        let claims = claims.lock().expect("lock").clone();
        assert_eq!(
            claims.len(),
            queued,
            "{kind}: every run claimed exactly once"
        );
        let mut ids: Vec<&String> = claims.iter().map(|(_, _, id)| id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), queued, "{kind}: a run was claimed twice");
        assert_eq!(
            max_active.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{kind}: two runs of one workspace at once"
        );
        for ws in &spaces {
            let order: Vec<i64> = claims
                .iter()
                .filter(|(w, _, _)| w == ws)
                .map(|(_, n, _)| *n)
                .collect();
            assert_eq!(
                order,
                (1..=6).collect::<Vec<_>>(),
                "{kind}: per-workspace order"
            );
        }
        // A worker that stops renewing: its run is errored with the reason,
        // and its late report is refused.
        let ws = &spaces[0];
        let run = rt.block_on(store.queue_run(ws, "dev:t")).expect("queue");
        let claimed = rt
            .block_on(store.claim_run("doomed", 50))
            .expect("claim")
            .expect("a run");
        assert_eq!(
            (claimed.id.as_str(), claimed.status),
            (run.id.as_str(), RunStatus::Planning)
        );
        assert!(
            rt.block_on(servers[1].claim_run("other", 50))
                .expect("claim")
                .is_none(),
            "{kind}: the workspace is busy"
        );
        std::thread::sleep(std::time::Duration::from_millis(120));
        let reaped = rt.block_on(servers[1].reap_expired(0)).expect("reap");
        assert_eq!(reaped.len(), 1, "{kind}");
        assert!(
            reaped[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("doomed") && r.contains("not retried")),
            "{kind}: {:?}",
            reaped[0].reason
        );
        let late = rt
            .block_on(store.finish_run(&run.id, "doomed", RunStatus::Planned, None))
            .expect("store");
        assert_eq!(late, Err(Fenced::NotHolder(run.id.clone())), "{kind}");
        assert_eq!(
            rt.block_on(store.renew_lease(&run.id, "doomed", 1000))
                .expect("store"),
            Err(Fenced::NotHolder(run.id.clone()))
        );
        let stored = rt.block_on(store.run(&run.id)).expect("read").expect("run");
        assert_eq!(stored.status, RunStatus::Errored, "{kind}");
        // A worker may not skip the states: planning cannot become applied.
        rt.block_on(store.queue_run(ws, "dev:t")).expect("queue");
        let next = rt
            .block_on(store.claim_run("w", 30_000))
            .expect("claim")
            .expect("a run");
        assert!(matches!(
            rt.block_on(store.finish_run(&next.id, "w", RunStatus::Applied, None))
                .expect("store"),
            Err(Fenced::Transition { .. })
        ));
        // Every transition is in the chain, which holds.
        let report = rt.block_on(store.audit_verify()).expect("verify");
        assert!(report.ok, "{kind}: {:?}", report.first_bad);
        let expected = 4 + queued as u64 * 3 + 3 + 2;
        assert_eq!(
            report.events, expected,
            "{kind}: workspaces, queued/claimed/planned, the reaped run, the last two"
        );
        for s in &servers {
            rt.block_on(s.close());
        }
    });
}

/// A plan waiting for a decision holds the workspace's next apply run (it
/// would go stale when the first applies) until it is discarded; a worker
/// whose lease ran out while the store was away may still report until a
/// reaper took the run; only waiting runs can be discarded.
#[test]
fn store_holds_the_next_run_behind_a_plan_awaiting_a_decision() {
    use broker::store::runs::{NotDiscardable, RunStatus};
    each_store("held", |kind, url| {
        let rt = runtime();
        let store = rt.block_on(Store::open(url)).expect("open");
        let ws = rt
            .block_on(store.create_workspace(&workspace("held"), "dev:t"))
            .expect("store")
            .expect("created")
            .id;
        let first = rt.block_on(store.queue_run(&ws, "dev:a")).expect("queue");
        let claimed = rt
            .block_on(store.claim_run("w", 30_000))
            .expect("claim")
            .expect("the first run");
        assert_eq!(claimed.id, first.id, "{kind}");
        rt.block_on(store.finish_run_with(
            &first.id,
            "w",
            RunStatus::Planned,
            None,
            Some(("b1", 2)),
        ))
        .expect("store")
        .expect("fenced");
        let second = rt.block_on(store.queue_run(&ws, "dev:b")).expect("queue");
        assert!(
            rt.block_on(store.claim_run("w", 30_000))
                .expect("claim")
                .is_none(),
            "{kind}: planned while an earlier plan waits for a decision"
        );
        // A drift check queued behind it waits its turn too.
        rt.block_on(store.queue_drift_now(&ws, "dev:c"))
            .expect("drift");
        assert!(
            rt.block_on(store.claim_run("w", 30_000))
                .expect("claim")
                .is_none()
        );
        let discarded = rt
            .block_on(store.discard_run(&first.id, "dev:a", "superseded"))
            .expect("store")
            .expect("discarded");
        assert_eq!(discarded.status, RunStatus::Discarded, "{kind}");
        assert_eq!(
            rt.block_on(store.discard_run(&first.id, "dev:a", "again"))
                .expect("store"),
            Err(NotDiscardable(first.id.clone(), RunStatus::Discarded)),
            "{kind}"
        );
        // Now the second run goes, under a lease that runs out before it
        // reports: no reaper came, so the report stands.
        let next = rt
            .block_on(store.claim_run("slow", 50))
            .expect("claim")
            .expect("the second run");
        assert_eq!(next.id, second.id, "{kind}");
        assert_eq!(
            rt.block_on(store.discard_run(&second.id, "dev:b", "mid-plan"))
                .expect("store"),
            Err(NotDiscardable(second.id.clone(), RunStatus::Planning)),
            "{kind}: a run a worker holds is not discarded"
        );
        std::thread::sleep(std::time::Duration::from_millis(120));
        rt.block_on(store.renew_lease(&second.id, "slow", 30_000))
            .expect("store")
            .expect("renewed after running out, not reaped");
        rt.block_on(store.finish_run(&second.id, "slow", RunStatus::Denied, None))
            .expect("store")
            .expect("a late report before any reaper");
        // The drift run is next.
        let drift = rt
            .block_on(store.claim_run("w", 30_000))
            .expect("claim")
            .expect("the drift run");
        assert_eq!(drift.kind, "drift", "{kind}");
        rt.block_on(store.finish_run(&drift.id, "w", RunStatus::Checked, None))
            .expect("store")
            .expect("fenced");
        // A run planned by server A is applied by A only (its plan bundle is
        // on A's disk), whoever else shares the store.
        let third = rt.block_on(store.queue_run(&ws, "dev:d")).expect("queue");
        let planning = rt
            .block_on(store.claim_run_on("a-w0", 30_000, Some("server-a")))
            .expect("claim")
            .expect("the third run");
        assert_eq!(planning.id, third.id, "{kind}");
        rt.block_on(store.finish_run_with(
            &third.id,
            "a-w0",
            RunStatus::Planned,
            None,
            Some(("b3", 2)),
        ))
        .expect("store")
        .expect("fenced");
        rt.block_on(store.approve_run(&third.id, "dev:e", "ok"))
            .expect("store")
            .expect("approved");
        assert!(
            rt.block_on(store.claim_run_on("b-w0", 30_000, Some("server-b")))
                .expect("claim")
                .is_none(),
            "{kind}: another server took the apply of a run it did not plan"
        );
        let applying = rt
            .block_on(store.claim_run_on("a-w1", 30_000, Some("server-a")))
            .expect("claim")
            .expect("A applies it");
        assert_eq!(
            (applying.id.as_str(), applying.status),
            (third.id.as_str(), RunStatus::Applying),
            "{kind}"
        );
        let report = rt.block_on(store.audit_verify()).expect("verify");
        assert!(report.ok, "{kind}: {:?}", report.first_bad);
        rt.block_on(store.close());
    });
}

/// Polls a run until it leaves `waiting`, at most `secs`.
fn wait_run(server: &Server, id: &str, waiting: &[&str], secs: u64) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let (code, run) = call(server, "GET", &format!("v1/runs/{id}"), Some("alice"), None);
        assert_eq!(code, 200, "{run}");
        let status = run["status"].as_str().unwrap_or_default().to_owned();
        if !waiting.contains(&status.as_str()) {
            return run;
        }
        assert!(
            started.elapsed().as_secs() < secs,
            "run {id} still {status} after {secs} s\n{}",
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.email=test@localhost", "-c", "user.name=test"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A workspace whose source is a git repository: the server clones it, plans
/// with the CLI's `run` layer (state on the server), waits for an approval
/// by someone else, applies exactly that plan, and keeps every step in the
/// audit chain.
#[test]
fn a_run_is_planned_approved_and_applied_by_the_server() {
    crate::require_acc!();
    let null_mirror = std::env::var("NULL_MIRROR").expect("NULL_MIRROR (scripts/test sets it)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("infra")).expect("mkdir");
    std::fs::write(
        repo.join("infra/main.tf"),
        "terraform {\n  required_providers {\n    null = { source = \"hashicorp/null\", version = \"2.1.2\" }\n  }\n}\n\
         resource \"null_resource\" \"a\" {\n  triggers = { v = \"1\" }\n  \
         provisioner \"local-exec\" {\n    command = \"echo niceness $(nice)\"\n  }\n}\n",
    )
    .expect("write");
    // The server's terraform (and what it starts) runs 10 below the server.
    let own: i32 = String::from_utf8(
        std::process::Command::new("nice")
            .output()
            .expect("nice")
            .stdout,
    )
    .expect("utf8")
    .trim()
    .parse()
    .expect("a niceness");
    let niceness = format!("niceness {}", (own + 10).min(19));
    git(&repo, &["init", "-q", "-b", "main"]);
    // A symbolic link out of the checkout, for a workspace that tries it.
    std::os::unix::fs::symlink("/", repo.join("escape")).expect("symlink");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "infra"]);
    // The runs use a branch that is not the default one.
    git(&repo, &["branch", "release"]);
    let cli_config = tmp.path().join("cli.tfrc");
    std::fs::write(
        &cli_config,
        format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{null_mirror}\"\n  }}\n}}\n"),
    )
    .expect("write");
    for bin in terraform_bins() {
        let v = version(&bin);
        let data = tmp.path().join(format!("data-{}", version_tag(&bin)));
        let server = serve_with_env(
            &data,
            &[
                "--insecure-dev-auth",
                "--terraform",
                bin.to_str().expect("utf8"),
            ],
            &[("TF_CLI_CONFIG_FILE", cli_config.as_os_str())],
        );
        let new = format!(
            r#"{{"name":"infra","team":"t","environment":"dev",
                "source":{{"kind":"git","url":"file://{}","ref":"release","path":"infra"}}}}"#,
            repo.display()
        );
        let (code, _) = call(&server, "POST", "v1/workspaces", Some("alice"), Some(&new));
        assert_eq!(code, 201);
        let (code, run) = call(
            &server,
            "POST",
            "v1/workspaces/infra/runs",
            Some("alice"),
            None,
        );
        assert_eq!(code, 202, "{run}");
        let id = run["id"].as_str().expect("id").to_owned();
        let planned = wait_run(&server, &id, &["queued", "planning"], 120);
        assert_eq!(planned["status"], "planned", "{v}: {planned}");
        assert!(
            planned["plan_run"].as_str().is_some_and(|r| !r.is_empty()),
            "{planned}"
        );
        // Nothing applied before the approval: no state yet.
        let (code, versions) = call(
            &server,
            "GET",
            "v1/workspaces/infra/state/versions",
            Some("alice"),
            None,
        );
        assert_eq!(
            (code, versions["versions"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{v}: {versions}"
        );
        let approve = |who: &str| {
            call(
                &server,
                "POST",
                &format!("v1/runs/{id}/approve"),
                Some(who),
                Some(r#"{"reason":"reviewed"}"#),
            )
        };
        let (code, approved) = approve("bob");
        assert_eq!(
            (code, approved["status"].as_str()),
            (200, Some("approved")),
            "{approved}"
        );
        let (code, again) = approve("carol");
        assert_eq!(
            (code, again["error"]["code"].as_str()),
            (409, Some("conflict")),
            "{again}"
        );
        let applied = wait_run(&server, &id, &["approved", "applying"], 120);
        assert_eq!(applied["status"], "applied", "{v}: {applied}");
        // The run's log holds what the CLI would have printed for both phases.
        let (code, log) = call(
            &server,
            "GET",
            &format!("v1/runs/{id}/log"),
            Some("alice"),
            None,
        );
        assert_eq!(code, 200, "{log}");
        let lines = log["lines"].as_array().expect("lines");
        let phase_text = |phase: &str| -> String {
            lines
                .iter()
                .filter(|l| l["phase"] == phase)
                .filter_map(|l| l["line"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(
            phase_text("plan").contains("verdict: allowed"),
            "{v}: {log}"
        );
        assert!(phase_text("plan").contains("null_resource.a"), "{v}: {log}");
        assert!(phase_text("apply").contains("applied run"), "{v}: {log}");
        assert!(phase_text("apply").contains(&niceness), "{v}: {log}");
        // The state is on the server, written by the run.
        let (_, versions) = call(
            &server,
            "GET",
            "v1/workspaces/infra/state/versions",
            Some("alice"),
            None,
        );
        let versions = versions["versions"].as_array().expect("versions").clone();
        assert!(!versions.is_empty(), "{v}: no state version after apply");
        // Every step is in the chain, which holds.
        let (_, events) = call(
            &server,
            "GET",
            "v1/audit/events?limit=1000",
            Some("alice"),
            None,
        );
        let types: Vec<String> = events["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.as_str()?).ok())
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .filter(|t| t.contains(".run."))
            .collect();
        assert_eq!(
            types,
            [
                "dev.platform.broker.run.queued",
                "dev.platform.broker.run.planning",
                "dev.platform.broker.run.planned",
                "dev.platform.broker.run.approved",
                "dev.platform.broker.run.applying",
                "dev.platform.broker.run.applied",
            ],
            "{v}"
        );
        let (_, report) = call(&server, "GET", "v1/audit/verify", Some("alice"), None);
        assert_eq!(report["ok"], true, "{v}: {report}");
        // The state changes between a plan and its apply (a rollback through
        // the API): the apply is refused, the server's own reading of the
        // state standing where `terraform state pull` used to.
        let (code, run) = call(
            &server,
            "POST",
            "v1/workspaces/infra/runs",
            Some("alice"),
            None,
        );
        assert_eq!(code, 202, "{run}");
        let second = run["id"].as_str().expect("id").to_owned();
        let planned = wait_run(&server, &second, &["queued", "planning"], 120);
        assert_eq!(planned["status"], "planned", "{v}: {planned}");
        let (code, restored) = call(
            &server,
            "POST",
            "v1/workspaces/infra/state/versions/1/restore",
            Some("alice"),
            None,
        );
        assert_eq!(code, 201, "{v}: {restored}");
        let (code, _) = call(
            &server,
            "POST",
            &format!("v1/runs/{second}/approve"),
            Some("bob"),
            Some(r#"{"reason":"reviewed"}"#),
        );
        assert_eq!(code, 200);
        let refused = wait_run(&server, &second, &["approved", "applying"], 120);
        assert_eq!(refused["status"], "errored", "{v}: {refused}");
        assert!(
            refused["status_detail"]
                .as_str()
                .is_some_and(|d| d.contains("the state changed since the plan")),
            "{v}: {refused}"
        );
        // Workspaces that reach outside what the server lets them: errored.
        let url = format!("file://{}", repo.display());
        for (name, body, needle) in [
            (
                "escape",
                format!(
                    r#"{{"name":"escape","team":"t","environment":"dev","source":{{"kind":"git","url":"{url}","path":"escape"}}}}"#
                ),
                "not a directory inside the repository",
            ),
            (
                "elsewhere",
                format!(
                    r#"{{"name":"elsewhere","team":"t","environment":"dev","source":{{"kind":"git","url":"{url}","path":"infra"}},"policy":"policy.hcl"}}"#
                ),
                "not in the server's config directory",
            ),
        ] {
            let (code, doc) = call(&server, "POST", "v1/workspaces", Some("alice"), Some(&body));
            assert_eq!(code, 201, "{body}: {doc}");
            let (_, run) = call(
                &server,
                "POST",
                &format!("v1/workspaces/{name}/runs"),
                Some("alice"),
                None,
            );
            let id = run["id"].as_str().expect("id").to_owned();
            let done = wait_run(&server, &id, &["queued", "planning"], 60);
            assert_eq!(done["status"], "errored", "{name}: {done}");
            assert!(
                done["status_detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(needle)),
                "{name}: {done}"
            );
        }
    }
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// kill -9 of the server while a worker applies, then a restart on the same
/// store: the run ends `errored` with the reason once its lease runs out
/// (never retried), the workspace's state lock does not stay held, the next
/// run plans and applies, and the audit chain holds.
#[test]
fn a_server_killed_mid_apply_leaves_no_run_stuck() {
    crate::require_acc!();
    let null_mirror = std::env::var("NULL_MIRROR").expect("NULL_MIRROR (scripts/test sets it)");
    let bin = terraform_bins().into_iter().next().expect("a terraform");
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let main_tf = |v: &str| {
        format!(
            "terraform {{\n  required_providers {{\n    null = {{ source = \"hashicorp/null\", version = \"2.1.2\" }}\n  }}\n}}\n\
             resource \"null_resource\" \"slow\" {{\n  triggers = {{ v = \"{v}\" }}\n  \
             provisioner \"local-exec\" {{\n    command = \"sleep 4\"\n  }}\n}}\n"
        )
    };
    std::fs::write(repo.join("main.tf"), main_tf("1")).expect("write");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "slow"]);
    let cli_config = tmp.path().join("cli.tfrc");
    std::fs::write(
        &cli_config,
        format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{null_mirror}\"\n  }}\n}}\n"),
    )
    .expect("write");
    let data = tmp.path().join("data");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let start = || {
        serve_with_env(
            &data,
            &[
                "--insecure-dev-auth",
                "--listen",
                &listen,
                "--lease",
                "2s",
                "--workers",
                "1",
                "--terraform",
                bin.to_str().expect("utf8"),
            ],
            &[("TF_CLI_CONFIG_FILE", cli_config.as_os_str())],
        )
    };
    let server = start();
    let new = format!(
        r#"{{"name":"slow","team":"t","environment":"dev","source":{{"kind":"git","url":"file://{}"}}}}"#,
        repo.display()
    );
    assert_eq!(
        call(&server, "POST", "v1/workspaces", Some("alice"), Some(&new)).0,
        201
    );
    let (_, run) = call(
        &server,
        "POST",
        "v1/workspaces/slow/runs",
        Some("alice"),
        None,
    );
    let id = run["id"].as_str().expect("id").to_owned();
    assert_eq!(
        wait_run(&server, &id, &["queued", "planning"], 120)["status"],
        "planned"
    );
    let (code, _) = call(
        &server,
        "POST",
        &format!("v1/runs/{id}/approve"),
        Some("bob"),
        Some(r#"{"reason":"go"}"#),
    );
    assert_eq!(code, 200);
    wait_run(&server, &id, &["approved"], 60);
    // Terraform is in the provisioner's sleep now: kill the server and
    // everything it runs.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut server = server;
    server.crash();

    let server = start();
    let errored = wait_run(&server, &id, &["applying"], 60);
    assert_eq!(errored["status"], "errored", "{errored}");
    let detail = errored["status_detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("stopped renewing its lease during applying")
            && detail.contains("not retried"),
        "{detail}"
    );
    // The workspace is not stuck: the next run plans and applies (the lock
    // its dead terraform held was released, or it released it itself).
    std::fs::write(repo.join("main.tf"), main_tf("2")).expect("write");
    git(&repo, &["commit", "-qam", "next"]);
    let (_, next) = call(
        &server,
        "POST",
        "v1/workspaces/slow/runs",
        Some("alice"),
        None,
    );
    let next_id = next["id"].as_str().expect("id").to_owned();
    let planned = wait_run(&server, &next_id, &["queued", "planning"], 120);
    assert_eq!(planned["status"], "planned", "{planned}");
    call(
        &server,
        "POST",
        &format!("v1/runs/{next_id}/approve"),
        Some("bob"),
        Some(r#"{"reason":"again"}"#),
    );
    let applied = wait_run(&server, &next_id, &["approved", "applying"], 120);
    assert_eq!(applied["status"], "applied", "{applied}");
    let (_, report) = call(&server, "GET", "v1/audit/verify", Some("alice"), None);
    assert_eq!(report["ok"], true, "{report}");
    let (_, versions) = call(
        &server,
        "GET",
        "v1/workspaces/slow/state/versions",
        Some("alice"),
        None,
    );
    let serials: Vec<i64> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["serial"].as_i64())
        .collect();
    assert!(
        !serials.is_empty() && serials.windows(2).all(|w| w[0] < w[1]),
        "{serials:?}"
    );
}

/// SIGTERM while a run applies: after the grace the server interrupts its
/// terraform (SIGINT), which stops gracefully — the long provisioner is cut
/// short, the state written and unlocked through the server that is still
/// serving — the run reports errored, and the server exits well before the
/// provisioner would have ended, leaving no terraform behind; the
/// workspace's next run applies.
#[test]
fn sigterm_interrupts_terraform_after_the_grace() {
    crate::require_acc!();
    let null_mirror = std::env::var("NULL_MIRROR").expect("NULL_MIRROR (scripts/test sets it)");
    let bin = terraform_bins().into_iter().next().expect("a terraform");
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let main_tf = |v: &str, sleep: u32| {
        format!(
            "terraform {{\n  required_providers {{\n    null = {{ source = \"hashicorp/null\", version = \"2.1.2\" }}\n  }}\n}}\n\
             resource \"null_resource\" \"slow\" {{\n  triggers = {{ v = \"{v}\" }}\n  \
             provisioner \"local-exec\" {{\n    command = \"sleep {sleep}\"\n  }}\n}}\n"
        )
    };
    std::fs::write(repo.join("main.tf"), main_tf("1", 120)).expect("write");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "slow"]);
    let cli_config = tmp.path().join("cli.tfrc");
    std::fs::write(
        &cli_config,
        format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{null_mirror}\"\n  }}\n}}\n"),
    )
    .expect("write");
    let data = tmp.path().join("data");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let start = || {
        serve_with_env(
            &data,
            &[
                "--insecure-dev-auth",
                "--listen",
                &listen,
                "--grace",
                "1s",
                "--workers",
                "1",
                "--terraform",
                bin.to_str().expect("utf8"),
            ],
            &[("TF_CLI_CONFIG_FILE", cli_config.as_os_str())],
        )
    };
    let mut server = start();
    let new = format!(
        r#"{{"name":"slow","team":"t","environment":"dev","source":{{"kind":"git","url":"file://{}"}}}}"#,
        repo.display()
    );
    assert_eq!(
        call(&server, "POST", "v1/workspaces", Some("alice"), Some(&new)).0,
        201
    );
    let (_, run) = call(
        &server,
        "POST",
        "v1/workspaces/slow/runs",
        Some("alice"),
        None,
    );
    let id = run["id"].as_str().expect("id").to_owned();
    assert_eq!(
        wait_run(&server, &id, &["queued", "planning"], 120)["status"],
        "planned"
    );
    let (code, _) = call(
        &server,
        "POST",
        &format!("v1/runs/{id}/approve"),
        Some("bob"),
        Some(r#"{"reason":"go"}"#),
    );
    assert_eq!(code, 200);
    wait_run(&server, &id, &["approved"], 60);
    // Terraform is in the provisioner's two-minute sleep now.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let pgid = server.child.id();
    let sent = std::time::Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &pgid.to_string()])
        .status();
    let status = server.child.wait().expect("wait");
    let took = sent.elapsed();
    assert!(status.success(), "serve exited {status:?}");
    assert!(
        took < std::time::Duration::from_secs(60),
        "serve took {took:?} to stop: terraform was not interrupted"
    );
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    assert!(log.contains("interrupted 1 terraform"), "{log}");
    // No terraform or provider of its process group is left. (The
    // provisioner's own `sleep` may be: terraform stops a local-exec by
    // killing its shell, not what the shell started.)
    let left = Command::new("pgrep")
        .args(["-l", "-g", &pgid.to_string()])
        .output()
        .expect("pgrep");
    let left = String::from_utf8_lossy(&left.stdout).into_owned();
    assert!(
        left.lines().all(|l| l.ends_with(" sleep")),
        "left running: {left}"
    );
    let server = start();
    let (_, done) = call(
        &server,
        "GET",
        &format!("v1/runs/{id}"),
        Some("alice"),
        None,
    );
    assert_eq!(done["status"], "errored", "{done}\n{log}");
    // Not stuck: the lock was released; the next run plans and applies.
    std::fs::write(repo.join("main.tf"), main_tf("2", 0)).expect("write");
    git(&repo, &["commit", "-qam", "next"]);
    let (_, next) = call(
        &server,
        "POST",
        "v1/workspaces/slow/runs",
        Some("alice"),
        None,
    );
    let next_id = next["id"].as_str().expect("id").to_owned();
    let planned = wait_run(&server, &next_id, &["queued", "planning"], 120);
    assert_eq!(planned["status"], "planned", "{planned}");
    call(
        &server,
        "POST",
        &format!("v1/runs/{next_id}/approve"),
        Some("bob"),
        Some(r#"{"reason":"again"}"#),
    );
    let applied = wait_run(&server, &next_id, &["approved", "applying"], 120);
    assert_eq!(applied["status"], "applied", "{applied}");
    let (_, report) = call(&server, "GET", "v1/audit/verify", Some("alice"), None);
    assert_eq!(report["ok"], true, "{report}");
}

/// A run the policy held for approval cannot be approved by who queued it;
/// a run that is not waiting for one cannot be approved at all.
#[test]
fn four_eyes_on_runs_that_need_an_approval() {
    use broker::store::runs::{NotApprovable, RunStatus};
    each_store("four_eyes", |kind, url| {
        let rt = runtime();
        let store = rt.block_on(Store::open(url)).expect("open");
        let ws = rt
            .block_on(store.create_workspace(&workspace("held"), "dev:alice"))
            .expect("store")
            .expect("created");
        let run = rt
            .block_on(store.queue_run(&ws.id, "dev:alice"))
            .expect("queue");
        // Queued, not planned: nobody approves it.
        assert!(matches!(
            rt.block_on(store.approve_run(&run.id, "dev:bob", "early"))
                .expect("store"),
            Err(NotApprovable::State(_, RunStatus::Queued))
        ));
        let claimed = rt
            .block_on(store.claim_run("w", 30_000))
            .expect("claim")
            .expect("run");
        rt.block_on(store.finish_run(&claimed.id, "w", RunStatus::NeedsApproval, Some("held")))
            .expect("store")
            .expect("finished");
        assert_eq!(
            rt.block_on(store.approve_run(&run.id, "dev:alice", "mine"))
                .expect("store"),
            Err(NotApprovable::FourEyes(run.id.clone(), "dev:alice".into())),
            "{kind}"
        );
        let approved = rt
            .block_on(store.approve_run(&run.id, "dev:bob", "reviewed"))
            .expect("store")
            .expect("approved");
        assert_eq!(approved.status, RunStatus::Approved, "{kind}");
        // Approved once: a second approval is refused.
        assert!(matches!(
            rt.block_on(store.approve_run(&run.id, "dev:carol", "again"))
                .expect("store"),
            Err(NotApprovable::State(_, RunStatus::Approved))
        ));
        rt.block_on(store.close());
    });
}
