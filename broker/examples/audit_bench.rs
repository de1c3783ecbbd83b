//! Audit log throughput: durable appends per second and verify speed.
//!
//! ```text
//! cargo run --release -p platform-broker --example audit_bench [-- --seconds 2 --dir DIR]
//! ```
//!
//! Every append counted here has been written and fsynced (and the head
//! sidecar replaced) before it returns. Scenarios, each on a fresh log in
//! DIR (default: a temp dir on the same disk as the working directory):
//!
//! - `one by one`: `AuditLog::append` in a loop, one event per fsync (what a
//!   CLI command does);
//! - `batch of 100`: `AuditLog::append_batch`, 100 events per fsync;
//! - `N threads` (`--threads`, default 16): `SharedLog::append` from N
//!   threads at once, group commit (whatever queued while the last fsync ran
//!   goes in the next batch);
//! - `verify`: `audit::verify` over the largest log written.
//!
//! Events carry a plan event's worth of data (about 600 bytes a line).
//! Target (issue 4): >= 20,000 durable appends per second under load.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use broker::audit::{AuditLog, SharedLog, verify};

fn data(i: u64) -> serde_json::Value {
    serde_json::json!({
        "actor": "ci@example.com",
        "run": format!("20261129-120000-{i:06x}"),
        "identity_digest": "sha256:9f2c1e0b7d4a3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a49",
        "counts": {"add": 12, "change": 3, "destroy": 0, "replace": 1},
        "verdict": "allowed",
        "findings": [{"rule": "warn_unpriced_resource", "address": "aws_s3_bucket.logs", "severity": "Warn"}],
        "cost_delta": 125.5,
        "exit_code": 2,
        "duration_ms": 2431,
    })
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(dir.join(format!("{name}.head")));
    path
}

fn main() -> anyhow::Result<()> {
    let mut seconds = 2.0_f64;
    let mut dir: Option<PathBuf> = None;
    let mut threads = 16_usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().unwrap_or_default().parse()?,
            "--dir" => dir = args.next().map(PathBuf::from),
            "--threads" => threads = args.next().unwrap_or_default().parse()?,
            other => {
                anyhow::bail!("unknown argument {other:?} (--seconds N, --threads N, --dir DIR)")
            }
        }
    }
    let tmp = tempfile::tempdir_in(".")?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    let budget = Duration::from_secs_f64(seconds);
    let mut rows: Vec<(String, u64, Duration)> = Vec::new();

    // One by one.
    let path = fresh(&dir, "one.log");
    let mut log = AuditLog::open(&path)?;
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        log.append("dev.platform.broker.plan", Some("ws"), data(n))?;
        n += 1;
    }
    rows.push(("one by one (1 event / fsync)".into(), n, start.elapsed()));

    // Batches of 100.
    let path = fresh(&dir, "batch.log");
    let mut log = AuditLog::open(&path)?;
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        let batch = (n..n + 100)
            .map(|i| {
                (
                    "dev.platform.broker.plan".to_owned(),
                    Some("ws".to_owned()),
                    data(i),
                )
            })
            .collect();
        log.append_batch(batch)?;
        n += 100;
    }
    rows.push((
        "batch of 100 (100 events / fsync)".into(),
        n,
        start.elapsed(),
    ));

    // 16 threads, group commit.
    let path = fresh(&dir, "group.log");
    let shared = SharedLog::new(AuditLog::open(&path)?);
    let start = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let shared = &shared;
                scope.spawn(move || {
                    let mut n = 0;
                    while start.elapsed() < budget {
                        if shared
                            .append("dev.platform.broker.plan", Some("ws"), data(n))
                            .is_err()
                        {
                            break;
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    let group_elapsed = start.elapsed();
    let group_n: u64 = counts.iter().sum();
    rows.push((
        format!("{threads} threads, group commit"),
        group_n,
        group_elapsed,
    ));

    // Verify the biggest log.
    let (biggest, _) = ["one.log", "batch.log", "group.log"]
        .iter()
        .map(|name| {
            let p = dir.join(name);
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            (p, len)
        })
        .max_by_key(|(_, len)| *len)
        .unwrap_or((path.clone(), 0));
    let bytes = std::fs::metadata(&biggest)?.len();
    let start = Instant::now();
    let report = verify(&biggest)?;
    let verify_elapsed = start.elapsed();
    anyhow::ensure!(report.ok, "verify failed on {}", biggest.display());

    println!(
        "audit log, durable appends (write + fsync + head update before returning), {seconds} s each:"
    );
    for (label, n, elapsed) in &rows {
        let rate = *n as f64 / elapsed.as_secs_f64();
        let verdict = if rate >= 20_000.0 { "MET" } else { "NOT MET" };
        println!("  {label:<36} {n:>9} events  {rate:>10.0} /s   target >= 20,000/s: {verdict}");
    }
    let rate = report.events as f64 / verify_elapsed.as_secs_f64();
    println!(
        "  verify {:<29} {:>9} events  {rate:>10.0} /s   ({:.1} MB/s, chain intact)",
        biggest.file_name().and_then(|n| n.to_str()).unwrap_or(""),
        report.events,
        bytes as f64 / 1e6 / verify_elapsed.as_secs_f64()
    );
    Ok(())
}
