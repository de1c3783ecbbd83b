//! Audit log throughput: durable appends one at a time and with group
//! commit, and verify speed.
//!
//! `cargo run --release -p platform-broker --example audit_bench [DIR]`
//!
//! DIR defaults to `target/audit-bench` in the current directory, because a
//! tmpfs `/tmp` would make every fsync free and the numbers meaningless.

use std::path::{Path, PathBuf};
use std::time::Instant;

use broker::audit::{AuditLog, verify};

type BenchResult = Result<(), Box<dyn std::error::Error>>;

fn payload(idx: usize) -> serde_json::Value {
    serde_json::json!({
        "actor": "ci@example.com",
        "run": format!("run-{idx:08}"),
        "plan_identity": "sha256:4b5c0f0e8b4f1f7e2c0f0a6d0c6c1b1e9e5a4f3d2c1b0a99887766554433221",
        "findings": { "deny": 0, "warn": 2 },
        "cost_delta_usd": "12.50",
        "terraform_exit": 0,
        "duration_ms": 1834,
    })
}

fn fresh(dir: &Path, name: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let path = dir.join(name);
    for stale in [path.clone(), dir.join(format!("{name}.head"))] {
        if stale.exists() {
            std::fs::remove_file(stale)?;
        }
    }
    Ok(path)
}

fn one_at_a_time(dir: &Path, n: usize) -> BenchResult {
    let path = fresh(dir, "single.log")?;
    let mut log = AuditLog::open(&path)?;
    let start = Instant::now();
    for idx in 0..n {
        log.append("dev.platform.broker.plan", Some("ws"), payload(idx))?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "append, fsync each        {n:>7} events  {secs:>7.3} s  {:>10.0} events/s",
        n as f64 / secs
    );
    Ok(())
}

fn group_commit(dir: &Path, n: usize, batch: usize) -> BenchResult {
    let path = fresh(dir, &format!("batch{batch}.log"))?;
    let mut log = AuditLog::open(&path)?;
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let size = batch.min(n - done);
        let events = (done..done + size)
            .map(|idx| {
                (
                    "dev.platform.broker.plan".to_owned(),
                    Some("ws".to_owned()),
                    payload(idx),
                )
            })
            .collect();
        log.append_batch(events)?;
        done += size;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "append_batch({batch:>4})        {n:>7} events  {secs:>7.3} s  {:>10.0} events/s",
        n as f64 / secs
    );
    Ok(())
}

fn verify_speed(dir: &Path, n: usize) -> BenchResult {
    let path = fresh(dir, "verify.log")?;
    let mut log = AuditLog::open(&path)?;
    let mut done = 0;
    while done < n {
        let size = 1000.min(n - done);
        let events = (done..done + size)
            .map(|idx| {
                (
                    "dev.platform.broker.plan".to_owned(),
                    Some("ws".to_owned()),
                    payload(idx),
                )
            })
            .collect();
        log.append_batch(events)?;
        done += size;
    }
    let bytes = std::fs::metadata(&path)?.len();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let report = verify(&path)?;
        best = best.min(start.elapsed().as_secs_f64());
        if !report.ok || report.events != n as u64 {
            return Err(format!("verify failed: {report:?}").into());
        }
    }
    println!(
        "verify (best of 3)        {n:>7} events  {best:>7.3} s  {:>10.0} events/s  ({:.0} MB/s, {} bytes)",
        n as f64 / best,
        bytes as f64 / best / 1e6,
        bytes
    );
    Ok(())
}

fn main() -> BenchResult {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/audit-bench"), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    println!("audit_bench in {}", dir.display());
    one_at_a_time(&dir, 2_000)?;
    group_commit(&dir, 100_000, 100)?;
    group_commit(&dir, 200_000, 1000)?;
    verify_speed(&dir, 100_000)?;
    Ok(())
}
