//! Drift on a schedule: a workspace's cron fires drift checks on the server
//! (real Terraform, real PostgreSQL); an out-of-band change shows up as open
//! drift, is announced once to the signed webhook and to Slack, and an
//! acknowledgement closes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;

use super::{call, serve_with_env};
use crate::acc::*;

/// (path, headers lower-cased, body) of each request a loopback receiver got.
type Received = (String, Vec<(String, String)>, Vec<u8>);

fn receiver() -> (String, mpsc::Receiver<Received>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_owned();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send((path, headers, body)).is_err() {
                return;
            }
        }
    });
    (base, rx)
}

#[test]
fn scheduled_drift_is_found_announced_once_and_acknowledged() {
    crate::require_acc!();
    let bin = terraform_bins().into_iter().next().expect("a terraform");
    let v = version(&bin);
    let w = World::new("srvdrift", &bin);
    w.write_config("small", 20);
    let (hooks, received) = receiver();
    let secret = "drift-notify-secret-0123456789";
    let mut env: Vec<(String, std::ffi::OsString)> = w
        .env
        .iter()
        .map(|(k, val)| (k.clone(), val.into()))
        .collect();
    env.push(("PLATFORM_NOTIFY_SECRET".into(), secret.into()));
    let env_refs: Vec<(&str, &std::ffi::OsStr)> = env
        .iter()
        .map(|(k, val)| (k.as_str(), val.as_os_str()))
        .collect();
    let data = w.root.join("data");
    let server = serve_with_env(
        &data,
        &[
            "--insecure-dev-auth",
            "--terraform",
            bin.to_str().expect("utf8"),
            "--notify-webhook",
            &format!("{hooks}/hook"),
            "--notify-slack",
            &format!("{hooks}/slack"),
        ],
        &env_refs,
    );
    let url = server.url.trim_end_matches('/').to_owned();
    let (code, doc) = call(
        &server,
        "POST",
        "v1/workspaces",
        Some("alice"),
        Some(r#"{"name":"db","team":"checkout","environment":"dev","source":{"kind":"upload"}}"#),
    );
    assert_eq!(code, 201, "{doc}");
    let dir = w.work.to_str().expect("utf8");
    let (code, out, err) = super::cli::broker_as(
        "alice",
        &w.work,
        &["plan", dir, "--server", &url, "--workspace", "db"],
    );
    assert_eq!(code, 2, "{v}: {out}\n{err}");
    let run = err
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .expect("run id")
        .to_owned();
    let (code, out, err) =
        super::cli::broker_as("alice", &w.work, &["apply", &run, "--server", &url]);
    assert_eq!(code, 0, "{v}: {out}\n{err}");

    // A bad schedule is refused; a good one fires every two seconds.
    let put = |body: &str| {
        call(
            &server,
            "PUT",
            "v1/workspaces/db/drift/schedule",
            Some("alice"),
            Some(body),
        )
    };
    let (code, doc) = put(r#"{"cron":"every tuesday"}"#);
    assert_eq!(
        (code, doc["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{doc}"
    );
    let (code, doc) = put(r#"{"cron":"*/2 * * * * *"}"#);
    assert_eq!(code, 200, "{doc}");
    assert!(doc["next_at"].as_i64().is_some(), "{doc}");

    let drift = || {
        call(
            &server,
            "GET",
            "v1/workspaces/db/drift",
            Some("alice"),
            None,
        )
        .1
    };
    let wait_for = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| -> serde_json::Value {
        let started = std::time::Instant::now();
        loop {
            let doc = drift();
            if ok(&doc) {
                return doc;
            }
            assert!(
                started.elapsed().as_secs() < 120,
                "{v}: no {what} after 120 s: {doc}\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    // A clean check first.
    wait_for("clean check", &|d| {
        d["results"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["items"].as_array().is_some_and(Vec::is_empty))
        })
    });
    // The CLI's drift check through the server agrees: nothing open.
    let drift_cli = || {
        super::cli::broker_as(
            "alice",
            &w.work,
            &["drift", "--server", &url, "--workspace", "db"],
        )
    };
    let (code, out, err) = drift_cli();
    assert_eq!(code, 0, "{v}: {out}\n{err}");
    assert!(out.contains("No open drift"), "{v}: {out}");
    // Someone changes the role behind Terraform's back.
    psql(&format!(
        "ALTER ROLE \"{}_owner\" CONNECTION LIMIT 99",
        w.db
    ))
    .unwrap_or_else(|e| panic!("{v}: {e}"));
    let found = wait_for("drift", &|d| {
        d["results"][0]["open"]
            .as_array()
            .is_some_and(|o| !o.is_empty())
    });
    let item = found["results"][0]["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| {
            i["attribute"]
                .as_str()
                .is_some_and(|a| a.contains("connection_limit"))
        })
        .unwrap_or_else(|| panic!("{v}: {found}"))
        .clone();
    let fingerprint = item["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned();

    // Announced: the signed CloudEvent and the Slack message, each once
    // for this drift (later checks find the same open drift: no repeat).
    let mut hook = None;
    let mut slack = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (hook.is_none() || slack.is_none()) && std::time::Instant::now() < deadline {
        if let Ok((path, headers, body)) = received.recv_timeout(std::time::Duration::from_secs(1))
        {
            match path.as_str() {
                "/hook" => hook = Some((headers, body)),
                "/slack" => slack = Some(body),
                other => panic!("unexpected path {other}"),
            }
        }
    }
    let (headers, body) = hook.unwrap_or_else(|| panic!("{v}: no webhook delivery"));
    let signature = headers
        .iter()
        .find(|(k, _)| k == "x-platform-signature")
        .map(|(_, v)| v.clone())
        .expect("signature header");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let want: String = ring::hmac::sign(&key, &body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(signature, format!("sha256={want}"), "{v}");
    let event: serde_json::Value = serde_json::from_slice(&body).expect("CloudEvent");
    assert_eq!(
        event["type"], "dev.platform.broker.drift.detected",
        "{event}"
    );
    assert_eq!(event["data"]["workspace"], "db", "{event}");
    assert!(event.to_string().contains(&fingerprint), "{event}");
    let first = &event["data"]["drifted"][0];
    assert!(
        first.get("before").is_none() && first.get("after").is_none(),
        "values never leave: {event}"
    );
    let slack: serde_json::Value =
        serde_json::from_slice(&slack.unwrap_or_else(|| panic!("{v}: no Slack delivery")))
            .expect("Slack JSON");
    assert!(
        slack["text"]
            .as_str()
            .is_some_and(|t| t.contains("connection_limit") && t.contains("db")),
        "{slack}"
    );
    // Two more checks with the same open drift: nothing new is sent.
    let checks_now = found["results"].as_array().map_or(0, Vec::len);
    wait_for("two more checks", &|d| {
        d["results"].as_array().map_or(0, Vec::len) >= checks_now + 2
    });
    assert!(
        received.try_recv().is_err(),
        "{v}: the same drift was announced twice"
    );

    let (code, out, err) = drift_cli();
    assert_eq!(code, 2, "{v}: drift --server with open drift\n{out}\n{err}");
    assert!(out.contains("connection_limit"), "{v}: {out}");
    // Acknowledged: no longer open.
    let (code, doc) = call(
        &server,
        "POST",
        "v1/workspaces/db/drift/acks",
        Some("bob"),
        Some(&format!(
            r#"{{"fingerprint":"{fingerprint}","until":"2999-12-31","reason":"raised on purpose"}}"#
        )),
    );
    assert_eq!(code, 201, "{doc}");
    let (code, doc) = call(
        &server,
        "POST",
        "v1/workspaces/db/drift/acks",
        Some("bob"),
        Some(&format!(
            r#"{{"fingerprint":"{fingerprint}","until":"2001-01-01","reason":"late"}}"#
        )),
    );
    assert_eq!(code, 400, "a date in the past: {doc}");
    let closed = drift();
    assert!(
        !closed["results"][0]["open"]
            .to_string()
            .contains(&fingerprint),
        "{closed}"
    );
    let (code, out, err) = drift_cli();
    assert_eq!(code, 0, "{v}: after the acknowledgement\n{out}\n{err}");
    // Turned off: no next check.
    let (code, doc) = put(r#"{"cron":null}"#);
    assert_eq!((code, doc["next_at"].is_null()), (200, true), "{doc}");
    let (_, report) = call(&server, "GET", "v1/audit/verify", Some("alice"), None);
    assert_eq!(report["ok"], true, "{report}");
}
