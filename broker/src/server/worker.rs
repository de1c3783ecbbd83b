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
}

/// Starts `n` workers and the reaper on the current runtime.
pub fn spawn(state: Arc<AppState>, config: WorkerConfig, n: usize) {
    for i in 0..n {
        let (state, config) = (state.clone(), config.clone());
        let name = format!("{}-{}-w{i}", hostname(), std::process::id());
        tokio::spawn(async move { work(state, config, name).await });
    }
    let reaper = state.clone();
    let data_dir = config.data_dir.clone();
    tokio::spawn(async move {
        loop {
            match reaper.store.reap_expired().await {
                Ok(reaped) => {
                    for run in reaped {
                        release_apply_lock(&reaper, &data_dir, &run).await;
                        eprintln!("run {} errored: {}", run.id, run.reason.unwrap_or_default());
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
        let run = match state.store.claim_run(&name, lease_ms).await {
            Ok(Some(run)) => run,
            Ok(None) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
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
                        // Lost for good (reaped, or taken): nothing to renew.
                        Ok(Err(_)) => return,
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
        let outcome = match state.store.workspace_by_id(&run.workspace_id).await {
            Ok(Some(ws)) => {
                let (config, run2) = (config.clone(), run.clone());
                tokio::task::spawn_blocking(move || execute(&config, &ws, &run2))
                    .await
                    .unwrap_or_else(|_| Outcome::errored("the run's task panicked"))
            }
            Ok(None) => Outcome::errored("its workspace is gone"),
            Err(e) => Outcome::errored(&crate::render_error(&e)),
        };
        renewer.abort();
        let phase = if run.status == RunStatus::Applying {
            "apply"
        } else {
            "plan"
        };
        if let Err(e) = state
            .store
            .append_run_log(&run.id, phase, &outcome.log)
            .await
        {
            eprintln!("worker {name}: run log: {}", crate::render_error(&e));
        }
        match state
            .store
            .finish_run_with(
                &run.id,
                &name,
                outcome.status,
                outcome.reason.as_deref(),
                outcome.plan_run.as_deref(),
            )
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(fenced)) => eprintln!("worker {name}: {fenced}"),
            Err(e) => eprintln!("worker {name}: report: {}", crate::render_error(&e)),
        }
        state.busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct Outcome {
    status: RunStatus,
    reason: Option<String>,
    plan_run: Option<String>,
    /// What the phase printed, for the run's log.
    log: Vec<String>,
}

impl Outcome {
    fn errored(reason: &str) -> Outcome {
        Outcome {
            status: RunStatus::Errored,
            reason: Some(reason.to_owned()),
            plan_run: None,
            log: vec![format!("error: {reason}")],
        }
    }

    fn with_log(mut self, mut lines: Vec<String>) -> Outcome {
        lines.append(&mut self.log);
        self.log = lines;
        self
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

fn execute(config: &WorkerConfig, ws: &Workspace, run: &Run) -> Outcome {
    match run.status {
        RunStatus::Planning => plan(config, ws, run),
        RunStatus::Applying => apply(config, ws, run),
        other => Outcome::errored(&format!("a worker got a run in {other:?}")),
    }
}

fn context(config: &WorkerConfig, ws: &Workspace, run: &Run) -> crate::run::Context {
    crate::run::Context {
        terraform: config.terraform.clone(),
        home: Some(config.data_dir.join("homes").join(&ws.name)),
        config: crate::config::BrokerConfig::default(),
        actor: run.created_by.clone(),
    }
}

/// A workspace's policy, price book and catalog are names under the
/// server's `DATA/config/` (what the platform team put there), never a path
/// of the caller's choosing; one that leads outside (a symbolic link) is
/// refused.
fn inputs(config: &WorkerConfig, ws: &Workspace) -> Result<crate::run::Inputs, String> {
    let root = config.data_dir.join("config");
    let resolve = |field: &str, name: &Option<String>| -> Result<Option<PathBuf>, String> {
        let Some(name) = name else { return Ok(None) };
        let path = root.join(name);
        match (path.canonicalize(), root.canonicalize()) {
            (Ok(real), Ok(root)) if real.starts_with(&root) => Ok(Some(real)),
            _ => Err(format!(
                "{field} {name:?} is not in the server's config directory"
            )),
        }
    };
    Ok(crate::run::Inputs {
        policy: resolve("policy", &ws.policy)?,
        pricebook: resolve("pricebook", &ws.pricebook)?,
        catalog: resolve("catalog", &ws.catalog)?,
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
         username       = \"{user}\"\n  }}\n}}\n"
    )
}

fn checkout(config: &WorkerConfig, ws: &Workspace, run: &Run) -> Result<PathBuf, String> {
    let crate::store::Source::Git { url, reference, .. } = &ws.source else {
        return Err(
            "uploaded configurations are not supported yet (plan --server comes next)".into(),
        );
    };
    let dir = run_dir(config, run);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let src = dir.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src)
            .map_err(|e| format!("cannot clean {}: {e}", src.display()))?;
    }
    crate::tf::git_clone(url, reference.as_deref(), &src)?;
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

fn plan(config: &WorkerConfig, ws: &Workspace, run: &Run) -> Outcome {
    let dir = match checkout(config, ws, run) {
        Ok(dir) => dir,
        Err(reason) => return Outcome::errored(&reason),
    };
    let inputs = match inputs(config, ws) {
        Ok(inputs) => inputs,
        Err(reason) => return Outcome::errored(&reason),
    };
    let ctx = context(config, ws, run);
    let request = crate::run::plan::PlanRequest {
        dir,
        inputs,
        environment: ws.environment.clone(),
        expires_hours: 24,
        ..Default::default()
    };
    let log = std::cell::RefCell::new(Vec::new());
    let mut say = |line: &str| log.borrow_mut().push(line.to_owned());
    let mut warn = |line: &str| log.borrow_mut().push(format!("warning: {line}"));
    let result = crate::run::plan::plan(&ctx, &request, &mut say, &mut warn);
    let log = log.into_inner();
    let outcome = match result {
        Ok(planned) => {
            let status = match planned.exit_code {
                crate::run::EXIT_OK | crate::run::EXIT_CHANGES => RunStatus::Planned,
                crate::run::EXIT_NEEDS_APPROVAL => RunStatus::NeedsApproval,
                crate::run::EXIT_DENIED => RunStatus::Denied,
                _ => RunStatus::Errored,
            };
            let mut lines: Vec<String> = crate::report::text(&planned.report)
                .lines()
                .map(str::to_owned)
                .collect();
            lines.insert(
                0,
                format!(
                    "verdict: {} (exit {})",
                    planned.report.verdict, planned.exit_code
                ),
            );
            Outcome {
                log: lines,
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
                plan_run: Some(planned.run),
            }
        }
        Err(e) => Outcome::errored(&crate::render_error(&e)),
    };
    outcome.with_log(log)
}

fn apply(config: &WorkerConfig, ws: &Workspace, run: &Run) -> Outcome {
    let Some(plan_run) = &run.plan_run else {
        return Outcome::errored("approved without a plan");
    };
    let inputs = match inputs(config, ws) {
        Ok(inputs) => inputs,
        Err(reason) => return Outcome::errored(&reason),
    };
    let dir = tf_dir(config, ws, run);
    let ctx = context(config, ws, run);
    let request = crate::run::apply::ApplyRequest {
        dir,
        run: Some(plan_run.clone()),
        inputs,
    };
    let log = std::cell::RefCell::new(Vec::new());
    let mut say = |line: &str| log.borrow_mut().push(line.to_owned());
    let mut warn = |line: &str| log.borrow_mut().push(format!("warning: {line}"));
    let result = crate::run::apply::apply(&ctx, &request, &mut say, &mut warn);
    let log = log.into_inner();
    let outcome = match result {
        Ok(applied) if applied.exit_code == crate::run::EXIT_OK => Outcome {
            status: RunStatus::Applied,
            reason: None,
            plan_run: None,
            log: vec![format!("applied run {}", applied.run)],
        },
        Ok(applied) => Outcome::errored(&format!("apply exited {}", applied.exit_code)),
        Err(e) => Outcome::errored(&crate::render_error(&e)),
    };
    outcome.with_log(log)
}
