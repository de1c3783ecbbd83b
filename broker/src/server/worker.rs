//! The server's workers: claim runs from the queue and execute them with the
//! same `run` layer as the CLI (`run::plan`, `run::apply`), in a working
//! directory per run under the data directory, with the workspace's state on
//! this server (an `http` backend override). A reaper errors runs whose
//! worker stopped renewing its lease.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use crate::store::Workspace;
use crate::store::runs::{Run, RunStatus};

/// What workers need besides the store.
#[derive(Clone)]
pub struct WorkerConfig {
    pub data_dir: PathBuf,
    /// This server's base URL as Terraform reaches it (`http://127.0.0.1:PORT/`).
    pub self_url: String,
    pub terraform: Option<PathBuf>,
    /// How long a claim lasts without renewal (renewed every quarter of it).
    pub lease: Duration,
    /// Where news of drift goes.
    pub notifier: Arc<super::notify::Notifier>,
    /// This data directory's id: runs planned here are applied here.
    pub server_id: String,
}

/// How long after a lease ran out the reaper takes the run: a live worker
/// that lost the store (a database restart) renews first when it is back.
const REAP_GRACE_MS: i64 = 15_000;

/// Starts `n` workers and the reaper on the current runtime.
pub fn spawn(state: Arc<AppState>, config: WorkerConfig, n: usize) {
    for i in 0..n {
        let (state, config) = (state.clone(), config.clone());
        let name = format!("{}-{}-w{i}", hostname(), std::process::id());
        tokio::spawn(async move { work(state, config, name).await });
    }
    // The drift scheduler: queues the checks that came due (one server
    // wins each; see store/drift.rs).
    let scheduler = state.clone();
    tokio::spawn(async move {
        loop {
            match scheduler.store.queue_due_drift().await {
                Ok(queued) if !queued.is_empty() => scheduler.wake.notify_waiters(),
                Ok(_) => {}
                Err(e) => eprintln!("drift scheduler: {}", crate::render_error(&e)),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let reaper = state.clone();
    let data_dir = config.data_dir.clone();
    tokio::spawn(async move {
        loop {
            match reaper.store.reap_expired(REAP_GRACE_MS).await {
                Ok(reaped) => {
                    for run in reaped {
                        release_apply_lock(&reaper, &data_dir, &run).await;
                        eprintln!(
                            "run {} {}: {}",
                            run.id,
                            run.status.as_str(),
                            run.reason.unwrap_or_default()
                        );
                    }
                }
                Err(e) => eprintln!("reaper: {}", crate::render_error(&e)),
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
}

/// A reaped run's apply lock in its workspace's broker home, left by a
/// server that died mid-apply, is released (only when its holder is gone).
async fn release_apply_lock(state: &AppState, data_dir: &Path, run: &Run) {
    let Some(plan_run) = &run.plan_run else {
        return;
    };
    let Ok(Some(ws)) = state.store.workspace_by_id(&run.workspace_id).await else {
        return;
    };
    let home = crate::bundle::Home::new(data_dir.join("homes").join(&ws.name));
    match crate::bundle::WorkspaceLock::release_stale_for(&home, plan_run) {
        Ok(removed) => {
            for path in removed {
                eprintln!(
                    "run {}: released {} (its apply died)",
                    run.id,
                    path.display()
                );
            }
        }
        Err(e) => eprintln!("run {}: cannot release its apply lock: {e}", run.id),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "server".into())
}

async fn work(state: Arc<AppState>, config: WorkerConfig, name: String) {
    let lease_ms = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
    let renew_every = config.lease / 4;
    loop {
        if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // Registered before the claim, so a wake-up during it is not lost.
        let woken = state.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let run = match state
            .store
            .claim_run_on(&name, lease_ms, Some(&config.server_id))
            .await
        {
            Ok(Some(run)) => run,
            Ok(None) => {
                // Runs queued on another server are seen at the next poll.
                tokio::select! {
                    () = &mut woken => {}
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                continue;
            }
            Err(e) => {
                eprintln!("worker {name}: claim: {}", crate::render_error(&e));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        state.busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Renew the lease while the run executes.
        let renewer = {
            let (store, id, name) = (state.store.clone(), run.id.clone(), name.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(renew_every).await;
                    match store.renew_lease(&id, &name, lease_ms).await {
                        Ok(Ok(())) => {}
                        // Lost for good (reaped, or taken): the run is not
                        // ours any more; its terraform stops gracefully.
                        Ok(Err(_)) => {
                            let asked = crate::tf::interrupt(Some(&id));
                            eprintln!(
                                "worker {name}: lost the lease on {id}; interrupted {asked} terraform process(es)"
                            );
                            return;
                        }
                        // A store hiccup: try again sooner; the lease still
                        // has three quarters to go.
                        Err(e) => {
                            eprintln!("worker {name}: renewing {id}: {}", crate::render_error(&e));
                            tokio::time::sleep(renew_every / 4).await;
                        }
                    }
                }
            })
        };
        let phase = if run.status == RunStatus::Applying {
            "apply"
        } else {
            "plan"
        };
        let (lines, flusher) = log_writer(state.store.clone(), run.id.clone(), phase);
        let mut secrets = Vec::new();
        let outcome = match prepare(&state, &run).await {
            Ok(prepared) => {
                secrets = prepared.secrets.clone();
                let (config, run2, lines) = (config.clone(), run.clone(), lines.clone());
                let scrub = prepared.secrets.clone();
                tokio::task::spawn_blocking(move || {
                    let say = |line: String| {
                        let _ = lines.send(scrubbed(line, &scrub));
                    };
                    crate::tf::in_group(&run2.id.clone(), || {
                        execute(&config, &run2, &prepared, &say)
                    })
                })
                .await
                .unwrap_or_else(|_| Outcome::errored("the run's task panicked"))
            }
            Err(reason) => Outcome::errored(&reason),
        };
        let outcome = Outcome {
            reason: outcome.reason.map(|r| scrubbed(r, &secrets)),
            ..outcome
        };
        if let Some(reason) = outcome
            .reason
            .as_ref()
            .filter(|_| outcome.status == RunStatus::Errored)
        {
            let _ = lines.send(format!("error: {reason}"));
        }
        // The whole log is in the store before the run's final status: a
        // client that sees the status then reads all of it.
        drop(lines);
        let _ = flusher.await;
        if let Some(items) = &outcome.drift {
            drifted(&state, &config, &run, items).await;
        }
        // A terraform that could not unlock (the store was away) must not
        // leave the workspace locked for the next run.
        match state.store.release_run_lock(&run).await {
            Ok(true) => eprintln!("run {}: released the state lock its terraform left", run.id),
            Ok(false) => {}
            Err(e) => eprintln!("run {}: state lock: {}", run.id, crate::render_error(&e)),
        }
        report(&state, &name, &run, &outcome, lease_ms).await;
        renewer.abort();
        // The workspace is free: its next run can go.
        state.wake.notify_waiters();
        state.busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Records a drift check's findings and, when what is open differs from the
/// check before, notifies.
async fn drifted(
    state: &AppState,
    config: &WorkerConfig,
    run: &Run,
    items: &[crate::store::drift::DriftItem],
) {
    if let Err(e) = state.store.record_drift(run, items).await {
        eprintln!("run {}: drift results: {}", run.id, crate::render_error(&e));
        return;
    }
    if config.notifier.is_empty() {
        return;
    }
    let Ok(results) = state.store.drift_results(&run.workspace_id, 2).await else {
        return;
    };
    let Some(latest) = results.first().filter(|r| r.run == run.id) else {
        return;
    };
    let before = results.get(1).map(|r| r.open.clone()).unwrap_or_default();
    if latest.open.is_empty() || latest.open == before {
        return;
    }
    let name = match state.store.workspace_by_id(&run.workspace_id).await {
        Ok(Some(ws)) => ws.name,
        _ => run.workspace_id.clone(),
    };
    let event = super::notify::drift_event(&name, &run.id, &latest.items, &latest.open);
    let notifier = config.notifier.clone();
    let _ = tokio::task::spawn_blocking(move || notifier.send(&event)).await;
}

/// What a run needs from the store before it executes.
struct Prepared {
    ws: Workspace,
    /// The uploaded configuration's archive (upload workspaces).
    archive: Option<Vec<u8>>,
    /// The workspace's variables, as the plan gets them.
    variables: Vec<(String, String)>,
    /// (name, value) of its sensitive variables: scrubbed from the log.
    secrets: Vec<(String, String)>,
    /// The workspace's state as its backend (this server) has it.
    state: crate::run::StateSource,
}

/// The plan identity's prior state read from the store, which is what
/// `terraform state pull` through this server would return, minus a
/// Terraform process per plan and apply. Like terraform's backend client, it
/// rides out a store restart (the same retries as the backend block).
fn state_source(store: crate::store::Store, workspace: String) -> crate::run::StateSource {
    let handle = tokio::runtime::Handle::current();
    crate::run::StateSource(Arc::new(move || {
        let mut wait = Duration::from_secs(1);
        let mut tries = 0;
        loop {
            match handle.block_on(store.state_head(&workspace)) {
                Ok(head) => {
                    return Ok(head.map(|(serial, lineage)| crate::tf::StateMeta {
                        lineage,
                        serial: u64::try_from(serial).unwrap_or(0),
                    }));
                }
                Err(e) if tries >= 8 => return Err(e.context("the workspace's state")),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(16));
                }
            }
        }
    }))
}

/// `line` with every sensitive value replaced by its variable's name.
fn scrubbed(line: String, secrets: &[(String, String)]) -> String {
    let mut line = line;
    for (name, value) in secrets {
        if !value.is_empty() && line.contains(value.as_str()) {
            line = line.replace(value.as_str(), &format!("(sensitive variable {name})"));
        }
    }
    line
}

/// The run's workspace, its variables and, for an uploaded configuration,
/// its archive.
async fn prepare(state: &AppState, run: &Run) -> Result<Prepared, String> {
    let ws = match state.store.workspace_by_id(&run.workspace_id).await {
        Ok(Some(ws)) => ws,
        Ok(None) => return Err("its workspace is gone".into()),
        Err(e) => return Err(crate::render_error(&e)),
    };
    let archive = match (&ws.source, &run.configuration_id) {
        (crate::store::Source::Upload {}, Some(id)) => {
            match state.store.configuration_body(id).await {
                Ok(Some(bytes)) => Some(bytes),
                Ok(None) => return Err(format!("configuration {id} is gone")),
                Err(e) => return Err(crate::render_error(&e)),
            }
        }
        (crate::store::Source::Upload {}, None) => {
            return Err("the workspace takes uploaded configurations and the run has none".into());
        }
        (crate::store::Source::Git { .. }, _) => None,
    };
    let all = state
        .store
        .variables(&ws.id)
        .await
        .map_err(|e| crate::render_error(&e))?;
    let variables = state
        .store
        .variable_values(&ws.id)
        .await
        .map_err(|e| crate::render_error(&e))?;
    let secrets = variables
        .iter()
        .filter(|(name, _)| all.iter().any(|v| v.sensitive && &v.name == name))
        .cloned()
        .collect();
    Ok(Prepared {
        state: state_source(state.store.clone(), ws.id.clone()),
        ws,
        archive,
        variables,
        secrets,
    })
}

/// How long a log batch collects lines after its first.
const BATCH: Duration = Duration::from_millis(200);

/// A sender for the run's log lines and the task that appends them to the
/// store in batches (so a client following the log sees them while the run
/// goes on); the task ends once every sender is dropped and all is written.
fn log_writer(
    store: crate::store::Store,
    run: String,
    phase: &'static str,
) -> (
    tokio::sync::mpsc::UnboundedSender<String>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        let mut open = true;
        while open {
            let Some(first) = rx.recv().await else { break };
            // Lines that come within BATCH of the first go with it (a few
            // writes a second per run, not one per line); a closed channel
            // (the phase ended) is written at once.
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + BATCH;
            loop {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(line)) => batch.push(line),
                    Ok(None) => {
                        open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
            // A store restart must not lose the log: keep trying for about
            // as long as terraform's own state writes do (~80 s).
            let mut pause = Duration::from_millis(200);
            for _ in 0..16 {
                match store.append_run_log(&run, phase, &batch).await {
                    Ok(()) => break,
                    Err(e) => {
                        eprintln!("run {run}: run log: {}", crate::render_error(&e));
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    });
    (tx, task)
}

/// Reports the outcome. A store error is retried while the lease lasts: the
/// store may be restarting, and a run that applied must not be reaped as
/// errored for want of a report. A refusal (the lease was lost) is final.
async fn report(state: &AppState, name: &str, run: &Run, outcome: &Outcome, lease_ms: i64) {
    let give_up = crate::store::now_ms().saturating_add(lease_ms);
    let mut pause = Duration::from_millis(100);
    loop {
        match state
            .store
            .finish_run_with(
                &run.id,
                name,
                outcome.status,
                outcome.reason.as_deref(),
                outcome.plan.as_ref().map(|(r, code)| (r.as_str(), *code)),
            )
            .await
        {
            Ok(Ok(_)) => return,
            Ok(Err(fenced)) => {
                eprintln!("worker {name}: {fenced}");
                return;
            }
            Err(e) => {
                eprintln!(
                    "worker {name}: report on {}: {}",
                    run.id,
                    crate::render_error(&e)
                );
                if crate::store::now_ms() > give_up {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

struct Outcome {
    status: RunStatus,
    reason: Option<String>,
    /// The plan bundle's run id and the plan's exit code.
    plan: Option<(String, i64)>,
    /// A drift check's findings.
    drift: Option<Vec<crate::store::drift::DriftItem>>,
}

/// Where a run's phase says what it does (one line at a time).
type Say<'a> = &'a dyn Fn(String);

impl Outcome {
    fn errored(reason: &str) -> Outcome {
        Outcome {
            status: RunStatus::Errored,
            reason: Some(reason.to_owned()),
            plan: None,
            drift: None,
        }
    }
}

/// Where a run's configuration is checked out.
fn run_dir(config: &WorkerConfig, run: &Run) -> PathBuf {
    config.data_dir.join("runs").join(&run.id)
}

/// The Terraform directory of a run (inside its checkout).
fn tf_dir(config: &WorkerConfig, ws: &Workspace, run: &Run) -> PathBuf {
    let src = run_dir(config, run).join("src");
    match &ws.source {
        crate::store::Source::Git { path: Some(p), .. } => src.join(p),
        _ => src,
    }
}

fn execute(config: &WorkerConfig, run: &Run, prepared: &Prepared, say: Say) -> Outcome {
    match run.status {
        RunStatus::Planning if run.kind == "drift" => drift(config, run, prepared, say),
        RunStatus::Planning => plan(config, run, prepared, say),
        RunStatus::Applying => apply(config, prepared, run, say),
        other => Outcome::errored(&format!("a worker got a run in {other:?}")),
    }
}

fn context(config: &WorkerConfig, prepared: &Prepared, run: &Run) -> crate::run::Context {
    crate::run::Context {
        terraform: config.terraform.clone(),
        home: Some(config.data_dir.join("homes").join(&prepared.ws.name)),
        config: crate::config::BrokerConfig::default(),
        actor: run.created_by.clone(),
        state: Some(prepared.state.clone()),
    }
}

/// A workspace's policy, price book and catalog are names under the
/// server's `DATA/config/` (what the platform team put there), never a path
/// of the caller's choosing; one that leads outside (a symbolic link) is
/// refused.
fn inputs(config: &WorkerConfig, ws: &Workspace) -> Result<crate::run::Inputs, String> {
    use super::config_dir::resolve_opt;
    let d = &config.data_dir;
    Ok(crate::run::Inputs {
        policy: resolve_opt(d, "policy", ws.policy.as_deref())?,
        pricebook: resolve_opt(d, "pricebook", ws.pricebook.as_deref())?,
        catalog: resolve_opt(d, "catalog", ws.catalog.as_deref())?,
    })
}

/// The backend every run of the workspace uses: its state on this server.
/// The state lock a run's terraform takes is recorded under this user, so
/// the reaper can release it when the run's worker died.
pub fn run_principal(run_id: &str) -> String {
    format!("run-{run_id}")
}

fn backend_override(config: &WorkerConfig, ws: &Workspace, run: &Run) -> String {
    let base = format!("{}v1/workspaces/{}", config.self_url, ws.name);
    let user = run_principal(&run.id);
    format!(
        "# Written by platform-broker serve: this workspace's state lives on the server.\n\
         terraform {{\n  backend \"http\" {{\n    address        = \"{base}/state\"\n    \
         lock_address   = \"{base}/lock\"\n    unlock_address = \"{base}/lock\"\n    \
         username       = \"{user}\"\n    \
         # Ride out a store restart: about 80 s of retries before giving up.\n    \
         retry_max      = 8\n    retry_wait_max = 16\n  }}\n}}\n"
    )
}

/// The run's configuration in `DATA/runs/RUN/src`: the workspace's git
/// source cloned, or the run's uploaded archive unpacked.
fn checkout(
    config: &WorkerConfig,
    ws: &Workspace,
    run: &Run,
    archive: Option<&[u8]>,
    say: Say,
) -> Result<PathBuf, String> {
    let dir = run_dir(config, run);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let src = dir.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src)
            .map_err(|e| format!("cannot clean {}: {e}", src.display()))?;
    }
    match (&ws.source, archive) {
        (crate::store::Source::Git { url, reference, .. }, _) => {
            say(format!(
                "cloning {}{}",
                crate::store::redact_url(url),
                reference
                    .as_deref()
                    .map(|r| format!(" at {r}"))
                    .unwrap_or_default()
            ));
            crate::tf::git_clone(url, reference.as_deref(), &src)?;
        }
        (crate::store::Source::Upload {}, Some(bytes)) => {
            std::fs::create_dir_all(&src)
                .map_err(|e| format!("cannot create {}: {e}", src.display()))?;
            let summary = crate::archive::unpack(bytes, &src)
                .map_err(|e| format!("the uploaded configuration: {e}"))?;
            say(format!(
                "unpacked configuration {} ({} files)",
                run.configuration_id.as_deref().unwrap_or("?"),
                summary.files
            ));
        }
        (crate::store::Source::Upload {}, None) => {
            return Err("the run has no uploaded configuration".into());
        }
    }
    let tf = tf_dir(config, ws, run);
    // A symbolic link in the repository must not lead outside the checkout.
    let inside = match (tf.canonicalize(), src.canonicalize()) {
        (Ok(tf), Ok(src)) => tf.starts_with(&src) && tf.is_dir(),
        _ => false,
    };
    if !inside {
        return Err("the workspace's source.path is not a directory inside the repository".into());
    }
    write_override(&tf, &backend_override(config, ws, run))?;
    Ok(tf)
}

fn write_override(dir: &Path, text: &str) -> Result<(), String> {
    let path = dir.join("zz_platform_backend_override.tf");
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The workspace's variables as a var file beside the run's checkout (not
/// on terraform's command line, where other local users could read them),
/// readable by the server's user only.
fn write_variables(
    config: &WorkerConfig,
    run: &Run,
    variables: &[(String, String)],
) -> Result<Vec<PathBuf>, String> {
    if variables.is_empty() {
        return Ok(Vec::new());
    }
    let doc: serde_json::Map<String, serde_json::Value> = variables
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let path = run_dir(config, run).join("variables.tfvars.json");
    let bytes = serde_json::to_vec(&doc).map_err(|e| format!("variables: {e}"))?;
    crate::fsx::write_atomic(&path, &bytes, 0o600)
        .map_err(|e| format!("cannot write the run's variables: {e}"))?;
    Ok(vec![path])
}

fn plan(config: &WorkerConfig, run: &Run, prepared: &Prepared, say: Say) -> Outcome {
    let ws = &prepared.ws;
    let dir = match checkout(config, ws, run, prepared.archive.as_deref(), say) {
        Ok(dir) => dir,
        Err(reason) => return Outcome::errored(&reason),
    };
    let inputs = match inputs(config, ws) {
        Ok(inputs) => inputs,
        Err(reason) => return Outcome::errored(&reason),
    };
    let ctx = context(config, prepared, run);
    let var_files = match write_variables(config, run, &prepared.variables) {
        Ok(files) => files,
        Err(reason) => return Outcome::errored(&reason),
    };
    let request = crate::run::plan::PlanRequest {
        dir,
        inputs,
        environment: ws.environment.clone(),
        expires_hours: crate::store::runs::PLAN_TTL_HOURS,
        var_files,
        destroy: run.destroy,
        ..Default::default()
    };
    let mut progress = |line: &str| say(line.to_owned());
    let mut warn = |line: &str| say(format!("warning: {line}"));
    match crate::run::plan::plan(&ctx, &request, &mut progress, &mut warn) {
        Ok(planned) => {
            let status = match planned.exit_code {
                crate::run::EXIT_OK | crate::run::EXIT_CHANGES => RunStatus::Planned,
                crate::run::EXIT_NEEDS_APPROVAL => RunStatus::NeedsApproval,
                crate::run::EXIT_DENIED => RunStatus::Denied,
                _ => RunStatus::Errored,
            };
            say(format!(
                "verdict: {} (exit {})",
                planned.report.verdict, planned.exit_code
            ));
            for line in crate::report::text(&planned.report).lines() {
                say(line.to_owned());
            }
            Outcome {
                status,
                reason: (status != RunStatus::Planned).then(|| {
                    format!(
                        "verdict: {} ({} finding(s){})",
                        planned.report.verdict,
                        planned.report.findings.len(),
                        planned
                            .report
                            .policy_error
                            .as_deref()
                            .map(|e| format!("; policy error: {e}"))
                            .unwrap_or_default()
                    )
                }),
                plan: Some((planned.run, i64::from(planned.exit_code))),
                drift: None,
            }
        }
        Err(e) => Outcome::errored(&crate::render_error(&e)),
    }
}

fn apply(config: &WorkerConfig, prepared: &Prepared, run: &Run, say: Say) -> Outcome {
    let ws = &prepared.ws;
    let Some(plan_run) = &run.plan_run else {
        return Outcome::errored("approved without a plan");
    };
    let inputs = match inputs(config, ws) {
        Ok(inputs) => inputs,
        Err(reason) => return Outcome::errored(&reason),
    };
    let dir = tf_dir(config, ws, run);
    let ctx = context(config, prepared, run);
    // A plan held for an approval: the approval the store recorded (by
    // someone other than the queuer) goes on the bundle, bound to its
    // identity, in the approver's name; apply then checks it as it does
    // locally.
    if run.plan_exit == Some(i64::from(crate::run::EXIT_NEEDS_APPROVAL)) {
        let (Some(approver), Some(reason)) = (&run.approved_by, &run.approval_reason) else {
            return Outcome::errored("held for an approval, and none is recorded");
        };
        let approver_ctx = crate::run::Context {
            actor: approver.clone(),
            ..context(config, prepared, run)
        };
        let request = crate::run::approve::ApproveRequest {
            dir: dir.clone(),
            run: plan_run.clone(),
            reason: reason.clone(),
        };
        let mut warn = |line: &str| say(format!("warning: {line}"));
        match crate::run::approve::approve(&approver_ctx, &request, &mut warn) {
            Ok(approved) => say(format!(
                "approval by {approver} recorded for {} ({})",
                approved.run, approved.identity_digest
            )),
            Err(e) => return Outcome::errored(&crate::render_error(&e)),
        }
    }
    let request = crate::run::apply::ApplyRequest {
        dir,
        run: Some(plan_run.clone()),
        inputs,
    };
    let mut progress = |line: &str| say(line.to_owned());
    let mut warn = |line: &str| say(format!("warning: {line}"));
    match crate::run::apply::apply(&ctx, &request, &mut progress, &mut warn) {
        Ok(applied) if applied.exit_code == crate::run::EXIT_OK => {
            say(format!("applied run {}", applied.run));
            Outcome {
                status: RunStatus::Applied,
                reason: None,
                plan: None,
                drift: None,
            }
        }
        Ok(applied) => Outcome::errored(&format!("apply exited {}", applied.exit_code)),
        Err(e) => Outcome::errored(&crate::render_error(&e)),
    }
}

/// A drift check: the CLI's `drift` (a refresh-only plan against the
/// workspace's state on this server) on the run's checkout.
fn drift(config: &WorkerConfig, run: &Run, prepared: &Prepared, say: Say) -> Outcome {
    let ws = &prepared.ws;
    let dir = match checkout(config, ws, run, prepared.archive.as_deref(), say) {
        Ok(dir) => dir,
        Err(reason) => return Outcome::errored(&reason),
    };
    let ctx = context(config, prepared, run);
    let mut progress = |line: &str| say(line.to_owned());
    let mut warn = |line: &str| say(format!("warning: {line}"));
    let var_files = match write_variables(config, run, &prepared.variables) {
        Ok(files) => files,
        Err(reason) => return Outcome::errored(&reason),
    };
    match crate::run::drift::drift_dir_with(&ctx, &dir, None, &var_files, &mut progress, &mut warn)
    {
        Ok(result) => {
            let items: Vec<crate::store::drift::DriftItem> = result
                .drifted()
                .iter()
                .map(|d| crate::store::drift::DriftItem {
                    address: d.address.clone(),
                    attribute: d.attribute.clone(),
                    fingerprint: d.fingerprint.clone(),
                })
                .collect();
            for item in &items {
                say(format!(
                    "drifted: {} {} ({})",
                    item.address, item.attribute, item.fingerprint
                ));
            }
            let reason = if items.is_empty() {
                "no drift".to_owned()
            } else {
                format!("{} attribute(s) drifted", items.len())
            };
            say(reason.clone());
            Outcome {
                status: RunStatus::Checked,
                reason: Some(reason),
                plan: None,
                drift: Some(items),
            }
        }
        Err(e) => Outcome::errored(&crate::render_error(&e)),
    }
}
