//! The webhook sink against a real HTTP/1.1 server on loopback, written here
//! with std's `TcpListener`: accepting, refusing (503) or not listening.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::audit::AuditLog;

const SECRET: &str = "whsec-canary-7f3a9c";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn seq(&self) -> u64 {
        let event: serde_json::Value = serde_json::from_slice(&self.body).expect("JSON body");
        event["platformseq"].as_u64().expect("platformseq")
    }
}

/// A loopback HTTP server answering every request with `status`.
struct Server {
    port: u16,
    status: Arc<AtomicU16>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    fn start(port: u16) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let status = Arc::new(AtomicU16::new(200));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (status2, received2) = (status.clone(), received.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let code = status2.load(Ordering::SeqCst);
                serve(stream, code, &received2);
            }
        });
        Server {
            port,
            status,
            received,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/audit", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

/// Reads one request, records it, then answers `code` and closes the
/// connection: recorded before the client can see the answer, so a test that
/// has its response also finds the request in `received`.
fn serve(stream: TcpStream, code: u16, received: &Mutex<Vec<Received>>) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    assert!(
        request_line.starts_with("POST /hooks/audit "),
        "{request_line}"
    );
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    received
        .lock()
        .expect("lock")
        .push(Received { headers, body });
    let mut stream = stream;
    let reason = if code == 200 { "OK" } else { "Unavailable" };
    let _ = write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    Some(())
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn webhook(url: &str, spool: &Path, attempts: u32) -> Webhook {
    Webhook::new(
        "test",
        url,
        Secret::new(SECRET.as_bytes()),
        spool,
        Duration::from_secs(2),
        attempts,
    )
    .expect("webhook")
}

fn log_with(dir: &Path, hook: Webhook) -> AuditLog {
    let mut log = AuditLog::open(&dir.join("audit.log")).expect("open");
    log.add_sink(Box::new(hook));
    log
}

fn append(log: &mut AuditLog, n: usize) {
    for idx in 0..n {
        log.append(
            "dev.platform.broker.plan",
            Some("ws"),
            serde_json::json!({ "n": idx }),
        )
        .expect("append");
    }
}

fn log_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("audit.log"))
        .expect("log")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn seqs(received: &[Received]) -> Vec<u64> {
    received.iter().map(Received::seq).collect()
}

fn spooled(spool: &Path) -> usize {
    let spool = Spool::open(spool).expect("spool");
    spool.pending().expect("pending").1.len()
}

#[test]
fn every_event_is_posted_signed_and_in_order() {
    let server = Server::start(0);
    let dir = tempfile::tempdir().expect("tmp");
    let spool = dir.path().join("spool");
    let mut log = log_with(dir.path(), webhook(&server.url(), &spool, 3));
    append(&mut log, 2);
    log.append_batch(vec![
        (
            "dev.platform.broker.apply.start".into(),
            None,
            serde_json::json!({}),
        ),
        (
            "dev.platform.broker.apply.end".into(),
            None,
            serde_json::json!({}),
        ),
    ])
    .expect("batch");

    let received = server.received();
    assert_eq!(seqs(&received), vec![1, 2, 3, 4]);
    let lines = log_lines(dir.path());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    for (request, line) in received.iter().zip(&lines) {
        // The body is the log line, byte for byte.
        assert_eq!(request.body, line.as_bytes());
        let signature = request.header("x-platform-signature").expect("signature");
        let hex = signature.strip_prefix("sha256=").expect("sha256= prefix");
        let tag: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        ring::hmac::verify(&key, &request.body, &tag).expect("signature verifies");
        // A tampered body does not.
        assert!(ring::hmac::verify(&key, b"{}", &tag).is_err());
        let ts: u64 = request
            .header("x-platform-timestamp")
            .expect("timestamp")
            .parse()
            .expect("unix seconds");
        assert!(ts > 1_700_000_000, "{ts}");
        assert_eq!(
            request.header("content-type"),
            Some("application/cloudevents+json")
        );
    }
    assert_eq!(spooled(&spool), 0);
}

#[test]
fn endpoint_down_spools_then_delivers_in_order_without_loss() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/hooks/audit");
    let dir = tempfile::tempdir().expect("tmp");
    let spool = dir.path().join("spool");
    {
        // Down: the appends still succeed (the file log is the record), and
        // the events wait in the spool.
        let mut log = log_with(dir.path(), webhook(&url, &spool, 1));
        append(&mut log, 2);
        assert_eq!(log.last_seq(), 2);
    }
    assert_eq!(spooled(&spool), 2);

    // Up again: the next run's append delivers the backlog first.
    let server = Server::start(port);
    {
        let mut log = log_with(dir.path(), webhook(&url, &spool, 1));
        append(&mut log, 1);
    }
    assert_eq!(seqs(&server.received()), vec![1, 2, 3]);
    assert_eq!(spooled(&spool), 0);

    // Down for one more event (the endpoint refuses), then `audit flush`.
    server.status.store(503, Ordering::SeqCst);
    {
        let mut log = log_with(dir.path(), webhook(&url, &spool, 1));
        append(&mut log, 1);
    }
    assert_eq!(spooled(&spool), 1);
    server.status.store(200, Ordering::SeqCst);
    let report = webhook(&url, &spool, 1).flush().expect("flush");
    assert_eq!(
        report,
        FlushReport {
            delivered: 1,
            pending: 0,
            error: None
        }
    );
    let accepted: Vec<Received> = server
        .received()
        .into_iter()
        .enumerate()
        .filter(|(idx, _)| *idx != 3) // the refused attempt of seq 4
        .map(|(_, r)| r)
        .collect();
    assert_eq!(seqs(&accepted), vec![1, 2, 3, 4]);
    assert_eq!(spooled(&spool), 0);
    // A flush with nothing pending does nothing.
    let report = webhook(&url, &spool, 1).flush().expect("flush");
    assert_eq!(report, FlushReport::default());
}

#[test]
fn refused_events_are_retried_with_backoff_and_kept() {
    let server = Server::start(0);
    server.status.store(503, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tmp");
    let spool = dir.path().join("spool");
    let mut hook = webhook(&server.url(), &spool, 3);
    let started = std::time::Instant::now();
    let error = hook
        .send(&["{\"platformseq\":1}".to_owned()])
        .expect_err("refused");
    // Three attempts, 200ms + 400ms apart.
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(server.received().len(), 3);
    let message = error.to_string();
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("after 3 attempt(s)"), "{message}");
    assert!(
        message.contains("1 event(s) kept in the spool"),
        "{message}"
    );
    assert_eq!(spooled(&spool), 1);
}

#[test]
fn the_secret_and_url_never_appear_in_messages_or_the_spool() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/hooks/audit?token=url-token-canary");
    let dir = tempfile::tempdir().expect("tmp");
    let spool = dir.path().join("spool");
    let mut hook = webhook(&url, &spool, 1);
    let debug = format!("{hook:?}");
    let error = hook
        .send(&["{\"platformseq\":1}".to_owned()])
        .expect_err("down")
        .to_string();
    for text in [debug, error] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("url-token-canary"), "{text}");
    }
    for entry in std::fs::read_dir(&spool).expect("spool") {
        let content = std::fs::read(entry.expect("entry").path()).expect("read");
        let content = String::from_utf8_lossy(&content);
        assert!(!content.contains(SECRET));
    }
}

#[test]
fn a_missing_secret_variable_is_a_clear_error() {
    let config = WebhookConfig {
        name: "siem".into(),
        url: "https://example.invalid/hook".into(),
        secret_env: "PLATFORM_TEST_SURELY_UNSET_SECRET".into(),
        spool: None,
        timeout: Duration::from_secs(1),
        attempts: 1,
    };
    let dir = tempfile::tempdir().expect("tmp");
    let error = Webhook::from_config(&config, dir.path()).expect_err("no secret");
    assert_eq!(
        error.to_string(),
        "audit webhook \"siem\": the environment variable PLATFORM_TEST_SURELY_UNSET_SECRET (its HMAC secret) is not set or empty"
    );
}

#[test]
fn a_keyed_log_is_delivered_as_written_and_its_links_check() {
    let server = Server::start(0);
    let dir = tempfile::tempdir().expect("tmp");
    let spool = dir.path().join("spool");
    let key = crate::key::BrokerKey::from_bytes(b"webhook-test-broker-key-0123").expect("key");
    let mut log =
        AuditLog::open_with(&dir.path().join("audit.log"), Some(key.clone())).expect("open");
    log.add_sink(Box::new(webhook(&server.url(), &spool, 3)));
    append(&mut log, 3);

    let received = server.received();
    assert_eq!(seqs(&received), vec![1, 2, 3]);
    let lines = log_lines(dir.path());
    let mut previous_mac = crate::audit::GENESIS_PREV.to_owned();
    for (request, line) in received.iter().zip(&lines) {
        assert_eq!(request.body, line.as_bytes());
        // A receiver without the key still checks order and links.
        let event: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
        assert_eq!(event["platformprev"], previous_mac.as_str());
        assert_eq!(event["platformkey"], key.id());
        previous_mac = event["platformmac"].as_str().expect("mac").to_owned();
    }
    let report =
        crate::audit::verify_with(&dir.path().join("audit.log"), Some(&key)).expect("verify");
    assert!(report.ok && report.authenticated, "{report:?}");
}

#[test]
fn a_symlinked_spool_or_spool_file_is_never_followed() {
    let dir = tempfile::tempdir().expect("tmp");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    let spool = dir.path().join("spool");
    std::os::unix::fs::symlink(&outside, &spool).expect("symlink");
    let error = Webhook::new(
        "test",
        "http://127.0.0.1:9/hooks/audit",
        Secret::new(SECRET.as_bytes()),
        &spool,
        Duration::from_secs(1),
        1,
    )
    .expect_err("symlinked spool");
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert_eq!(std::fs::read_dir(&outside).expect("dir").count(), 0);

    let spool = dir.path().join("real-spool");
    let target = dir.path().join("target.jsonl");
    std::fs::write(&target, "keep\n").expect("write");
    let mut hook = webhook(
        &format!("http://127.0.0.1:{}/hooks/audit", closed_port()),
        &spool,
        1,
    );
    std::os::unix::fs::symlink(&target, spool.join("pending.jsonl")).expect("symlink");
    let error = hook
        .send(&["{\"platformseq\":1}".to_owned()])
        .expect_err("symlinked spool file");
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep\n");
}
