//! The CLI against a server (`--server URL`): `plan` uploads the directory
//! (or runs the workspace's git source) and follows the run's log, `runs`
//! lists a workspace's runs, `approve` approves one, `apply` has the server
//! apply one and follows it. Exit codes are the local mode's: plan 0 no
//! changes, 2 changes, 3 denied, 4 needs approval; 1 for any error (an
//! errored run, a refused approval, a run that cannot be applied).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use crate::client::Client;
use crate::run::{EXIT_DENIED, EXIT_NEEDS_APPROVAL, EXIT_OK};

/// How often a followed run is looked at.
const POLL: Duration = Duration::from_millis(400);
/// How long the server may be unreachable while a run is followed.
const OUTAGE: Duration = Duration::from_secs(60);

/// Statuses in which a run's planning is over.
const PLAN_DONE: &[&str] = &[
    "planned",
    "needs_approval",
    "denied",
    "approved",
    "applying",
    "applied",
    "errored",
    "discarded",
    "expired",
];
/// Statuses in which nothing more happens to a run.
const FINAL: &[&str] = &["denied", "applied", "errored", "discarded", "expired"];

pub fn connect(server: &str) -> Result<Client> {
    Client::new(server, &crate::run::actor_from_env())
}

fn status(run: &Value) -> &str {
    run["status"].as_str().unwrap_or("")
}

fn id(run: &Value) -> Result<String> {
    run["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the server's answer has no run id"))
}

/// Workspace names go into paths: the server's own rule, checked here so a
/// bad name is a clear error rather than a 404 on some other path.
fn check_workspace(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        bail!("--workspace {name:?}: 1-64 of a-z, 0-9, '-' and '_'");
    }
    Ok(())
}

fn check_run_id(run: &str) -> Result<()> {
    if run.is_empty() || run.len() > 64 || !run.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    {
        bail!(
            "{run:?} is not a server run id (a UUID, as `plan --server` and `runs --server` print it)"
        );
    }
    Ok(())
}

/// How a followed run's log is printed.
#[derive(Clone, Copy)]
struct Show<'a> {
    /// Only lines of this phase (`plan`, `apply`).
    phase: &'a str,
    to_stderr: bool,
}

/// Prints the run's log lines after `after`; returns the last seq read.
fn print_log(client: &Client, run: &str, mut after: i64, show: Show) -> Result<i64> {
    let log = client.get(&format!("/v1/runs/{run}/log?after={after}"))?;
    for line in log["lines"].as_array().into_iter().flatten() {
        after = line["seq"].as_i64().unwrap_or(after);
        if line["phase"].as_str() != Some(show.phase) {
            continue;
        }
        let text = line["line"].as_str().unwrap_or("");
        let to_stderr = show.to_stderr;
        if to_stderr {
            eprintln!("  {text}");
        } else {
            println!("{text}");
        }
    }
    Ok(after)
}

/// Follows a run, printing its log as it grows, until its status is one of
/// `until`; rides out a server that is briefly unreachable (a restart).
fn follow(client: &Client, run: &str, until: &[&str], show: Show) -> Result<Value> {
    let mut after = 0;
    let mut failing_since: Option<Instant> = None;
    let started = Instant::now();
    let mut said_waiting = false;
    loop {
        let step = (|| -> Result<Value> {
            let current = client.get(&format!("/v1/runs/{run}"))?;
            after = print_log(client, run, after, show)?;
            Ok(current)
        })();
        match step {
            Ok(current) => {
                failing_since = None;
                if status(&current) == "queued"
                    && !said_waiting
                    && started.elapsed() > Duration::from_secs(5)
                {
                    said_waiting = true;
                    eprintln!(
                        "  waiting: an earlier run of this workspace is running or waits for a \
                         decision (approve or discard it; `platform-broker runs --server …` lists them)"
                    );
                }
                if until.contains(&status(&current)) {
                    // The log is complete once the status is reported.
                    print_log(client, run, after, show)?;
                    return Ok(current);
                }
            }
            Err(e) if e.downcast_ref::<crate::client::ServerError>().is_some() => return Err(e),
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > OUTAGE {
                    return Err(e.context(format!(
                        "the server has been unreachable for {}s while following run {run}",
                        OUTAGE.as_secs()
                    )));
                }
                eprintln!(
                    "platform-broker: warning: {} (retrying)",
                    crate::render_error(&e)
                );
            }
        }
        std::thread::sleep(POLL);
    }
}

/// What `plan --server` was asked.
pub struct PlanRequest<'a> {
    pub server: &'a str,
    pub workspace: &'a str,
    pub dir: &'a Path,
    pub json: bool,
    /// Plan the destruction of every resource.
    pub destroy: bool,
}

pub fn plan(request: &PlanRequest) -> Result<u8> {
    check_workspace(request.workspace)?;
    let client = connect(request.server)?;
    let ws = client.get(&format!("/v1/workspaces/{}", request.workspace))?;
    let body = match ws["source"]["kind"].as_str() {
        Some("upload") => {
            let archive = crate::archive::pack(request.dir).map_err(anyhow::Error::msg)?;
            let size = archive.len();
            let config = client.post_bytes(
                &format!("/v1/workspaces/{}/configurations", request.workspace),
                "application/gzip",
                archive,
            )?;
            eprintln!(
                "  uploaded {} ({} files, {} bytes) as configuration {}",
                request.dir.display(),
                config["files"],
                size,
                config["id"].as_str().unwrap_or("?")
            );
            json!({"configuration": config["id"], "destroy": request.destroy})
        }
        Some("git") => {
            eprintln!(
                "  workspace {} runs its git source: {} is not uploaded",
                request.workspace,
                request.dir.display()
            );
            json!({"destroy": request.destroy})
        }
        other => bail!("the workspace's source kind {other:?} is unknown to this broker"),
    };
    let run = client.post_json(&format!("/v1/workspaces/{}/runs", request.workspace), &body)?;
    let run_id = id(&run)?;
    eprintln!(
        "  run {run_id} (#{}) queued on {} for workspace {}",
        run["number"],
        client.base(),
        request.workspace
    );
    let show = Show {
        phase: "plan",
        to_stderr: request.json,
    };
    let run = follow(&client, &run_id, PLAN_DONE, show)?;
    if request.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    }
    match status(&run) {
        "planned" => {
            let code = run["plan_exit_code"].as_i64().unwrap_or(0);
            eprintln!(
                "  planned: `platform-broker apply --server {} {run_id}` has the server apply it",
                client.base()
            );
            Ok(u8::try_from(code).unwrap_or(1))
        }
        "needs_approval" => {
            eprintln!(
                "  needs an approval from someone other than who queued it: \
                 `platform-broker approve --server {} {run_id} --reason …`",
                client.base()
            );
            Ok(EXIT_NEEDS_APPROVAL)
        }
        "denied" => Ok(EXIT_DENIED),
        other => bail!(
            "run {run_id} is {other}: {}",
            run["status_detail"].as_str().unwrap_or("no detail")
        ),
    }
}

pub fn runs(server: &str, workspace: &str, json_out: bool) -> Result<u8> {
    check_workspace(workspace)?;
    let client = connect(server)?;
    let list = client.get(&format!("/v1/workspaces/{workspace}/runs"))?;
    let rows = list["runs"].as_array().cloned().unwrap_or_default();
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "format_version": crate::cli::JSON_FORMAT_VERSION,
                "runs": rows
            }))?
        );
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        println!(
            "No runs yet: `platform-broker plan --server {server} --workspace {workspace}` makes one."
        );
        return Ok(EXIT_OK);
    }
    println!(
        "{:<5} {:<36} {:<15} {:<20} {:<24} detail",
        "#", "RUN", "STATUS", "QUEUED", "BY"
    );
    for row in rows {
        let queued = row["created_at"]
            .as_i64()
            .and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
            .and_then(|t| {
                t.format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second]"
                ))
                .ok()
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<5} {:<36} {:<15} {:<20} {:<24} {}",
            row["number"],
            row["id"].as_str().unwrap_or("-"),
            row["status"].as_str().unwrap_or("-"),
            queued,
            row["created_by"].as_str().unwrap_or("-"),
            row["status_detail"].as_str().unwrap_or("")
        );
    }
    Ok(EXIT_OK)
}

pub fn approve(server: &str, run: &str, reason: &str) -> Result<u8> {
    check_run_id(run)?;
    let client = connect(server)?;
    let approved = client.post_json(
        &format!("/v1/runs/{run}/approve"),
        &json!({ "reason": reason }),
    )?;
    println!(
        "platform-broker: approved run {run} (#{}); the server applies it now \
         (`platform-broker apply --server {} {run}` follows it)",
        approved["number"],
        client.base()
    );
    Ok(EXIT_OK)
}

pub fn apply(server: &str, run: &str) -> Result<u8> {
    check_run_id(run)?;
    let client = connect(server)?;
    let mut current = client.get(&format!("/v1/runs/{run}"))?;
    if matches!(status(&current), "queued" | "planning") {
        let show = Show {
            phase: "plan",
            to_stderr: true,
        };
        current = follow(&client, run, PLAN_DONE, show)?;
    }
    match status(&current) {
        "planned" => {
            // A run that needs no approval is applied on the caller's word.
            client.post_json(
                &format!("/v1/runs/{run}/approve"),
                &json!({"reason": "applied with `platform-broker apply --server`"}),
            )?;
        }
        "approved" | "applying" => {}
        "needs_approval" => bail!(
            "run {run} needs an approval (policy or budget) from someone other than who queued \
             it: platform-broker approve --server {} {run} --reason …",
            client.base()
        ),
        "applied" => bail!("run {run} was applied already; a run is applied once"),
        other => bail!(
            "run {run} is {other} and cannot be applied: {}",
            current["status_detail"].as_str().unwrap_or("no detail")
        ),
    }
    let show = Show {
        phase: "apply",
        to_stderr: false,
    };
    let done = follow(&client, run, FINAL, show)?;
    match status(&done) {
        "applied" => {
            println!("platform-broker: the server applied run {run}");
            Ok(EXIT_OK)
        }
        other => bail!(
            "run {run} is {other}: {}",
            done["status_detail"].as_str().unwrap_or("no detail")
        ),
    }
}

/// `drift --ack ADDRESS` against a server.
pub struct DriftAck<'a> {
    pub address: &'a str,
    pub attribute: Option<&'a str>,
    pub until: &'a str,
    pub reason: &'a str,
}

/// `drift --server`: queues a drift check of the workspace and follows it
/// (exit 0 no open drift, 2 open drift, 1 error, as locally); with `ack`,
/// acknowledges the latest check's drift of an address (one attribute, or
/// all of it) instead.
pub fn drift(server: &str, workspace: &str, ack: Option<&DriftAck>, json_out: bool) -> Result<u8> {
    check_workspace(workspace)?;
    let client = connect(server)?;
    let path = format!("/v1/workspaces/{workspace}/drift");
    if let Some(ack) = ack {
        let state = client.get(&path)?;
        let items: Vec<Value> = state["results"][0]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| {
                i["address"].as_str() == Some(ack.address)
                    && ack
                        .attribute
                        .is_none_or(|a| i["attribute"].as_str() == Some(a))
            })
            .collect();
        if items.is_empty() {
            bail!(
                "the latest drift check of {workspace} found no drift of {}{}",
                ack.address,
                ack.attribute.map(|a| format!(".{a}")).unwrap_or_default()
            );
        }
        for item in &items {
            client.post_json(
                &format!("{path}/acks"),
                &json!({"fingerprint": item["fingerprint"], "until": ack.until, "reason": ack.reason}),
            )?;
            println!(
                "platform-broker: acknowledged drift of {} {} until {}",
                item["address"].as_str().unwrap_or("?"),
                item["attribute"].as_str().unwrap_or("?"),
                ack.until
            );
        }
        return Ok(EXIT_OK);
    }
    let run = client.post_json(&format!("{path}/checks"), &json!({}))?;
    let run_id = id(&run)?;
    eprintln!(
        "  drift check {run_id} queued on {} for workspace {workspace}",
        client.base()
    );
    let show = Show {
        phase: "plan",
        to_stderr: json_out,
    };
    let done = follow(&client, &run_id, FINAL_OR_CHECKED, show)?;
    if status(&done) != "checked" {
        bail!(
            "drift check {run_id} is {}: {}",
            status(&done),
            done["status_detail"].as_str().unwrap_or("no detail")
        );
    }
    let state = client.get(&path)?;
    let result = state["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["run"].as_str() == Some(run_id.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    if json_out {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    let open = result["open"].as_array().map_or(0, Vec::len);
    if open == 0 {
        if !json_out {
            println!("No open drift in workspace {workspace}.");
        }
        Ok(EXIT_OK)
    } else {
        if !json_out {
            println!("{open} drifted attribute(s) open in workspace {workspace}.");
        }
        Ok(crate::run::EXIT_CHANGES)
    }
}

/// A drift check's end.
const FINAL_OR_CHECKED: &[&str] = &["checked", "errored", "discarded", "expired"];
