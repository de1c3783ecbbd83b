//! Runs and their queue, in the store.
//!
//! A run moves queued → planning → planned | needs_approval | denied →
//! approved → applying → applied | errored | discarded | expired. Workers
//! claim the runs that wait (`queued` to plan, `approved` to apply) under a
//! lease; what they report is fenced by it.
//!
//! **Invariants:** a run is claimed by one worker at a time, however many
//! servers share the store (PostgreSQL: `FOR UPDATE SKIP LOCKED` plus a
//! per-workspace advisory lock; SQLite: one writer); a workspace has at most
//! one run in `planning`/`applying`, and its runs are claimed in the order
//! they were queued; an apply run is not planned while an earlier one of its
//! workspace waits for a decision (`planned`, `needs_approval`: its plan
//! would go stale when that one applies) — discard it or let it expire; a
//! report from a worker that no longer holds the run (reaped, or taken) is
//! refused; a run whose lease ran out is `errored` by the reaper with the
//! reason, never retried (an apply is never repeated blindly), and until a
//! reaper took it its worker may still renew or report (a store outage
//! longer than the lease does not void finished work); a plan not approved
//! within `PLAN_TTL_MS` expires; every transition is an audit event in its
//! own transaction.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sqlx::Row;

use super::{Dialect, Store, now_ms};

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Planning,
    Planned,
    NeedsApproval,
    Denied,
    Approved,
    Applying,
    Applied,
    Errored,
    Discarded,
    Expired,
    /// A drift check that ran (its findings: `drift_results`).
    Checked,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Planning => "planning",
            RunStatus::Planned => "planned",
            RunStatus::NeedsApproval => "needs_approval",
            RunStatus::Denied => "denied",
            RunStatus::Approved => "approved",
            RunStatus::Applying => "applying",
            RunStatus::Applied => "applied",
            RunStatus::Errored => "errored",
            RunStatus::Discarded => "discarded",
            RunStatus::Expired => "expired",
            RunStatus::Checked => "checked",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        ALL.iter().copied().find(|s| s.as_str() == text)
    }

    /// Nothing more happens to a run in this state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Denied
                | RunStatus::Applied
                | RunStatus::Errored
                | RunStatus::Discarded
                | RunStatus::Expired
                | RunStatus::Checked
        )
    }

    /// A worker holds the run.
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Planning | RunStatus::Applying)
    }

    /// Where a worker may take a run it holds.
    fn reachable_from_active(self, from: RunStatus) -> bool {
        match from {
            RunStatus::Planning => matches!(
                self,
                RunStatus::Planned
                    | RunStatus::NeedsApproval
                    | RunStatus::Denied
                    | RunStatus::Errored
                    | RunStatus::Checked
            ),
            RunStatus::Applying => matches!(self, RunStatus::Applied | RunStatus::Errored),
            _ => false,
        }
    }
}

const ALL: [RunStatus; 12] = [
    RunStatus::Queued,
    RunStatus::Planning,
    RunStatus::Planned,
    RunStatus::NeedsApproval,
    RunStatus::Denied,
    RunStatus::Approved,
    RunStatus::Applying,
    RunStatus::Applied,
    RunStatus::Errored,
    RunStatus::Discarded,
    RunStatus::Expired,
    RunStatus::Checked,
];

/// A run as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Run {
    pub id: String,
    pub workspace_id: String,
    /// 1, 2, … per workspace: the order runs were queued in.
    pub number: i64,
    pub status: RunStatus,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    /// The worker holding it (while planning or applying).
    pub claimed_by: Option<String>,
    /// Unix ms; past it, the run is the reaper's.
    pub lease_until: Option<i64>,
    /// Why it is where it is (an error, a verdict, reaping).
    #[serde(rename = "status_detail")]
    pub reason: Option<String>,
    /// The plan bundle's run id in the server's broker home (once planned).
    pub plan_run: Option<String>,
    /// The uploaded configuration version it runs (workspaces whose source
    /// is `upload`).
    #[serde(rename = "configuration")]
    pub configuration_id: Option<String>,
    /// What `platform-broker plan` would have exited with locally (0 no
    /// changes, 2 changes, 3 denied, 4 needs approval), once planned.
    #[serde(rename = "plan_exit_code")]
    pub plan_exit: Option<i64>,
    /// Who approved it for apply, and why.
    pub approved_by: Option<String>,
    pub approval_reason: Option<String>,
    /// `apply` (plan, then apply once approved) or `drift` (a drift check).
    pub kind: String,
    /// Plans the destruction of every resource (`terraform plan -destroy`).
    pub destroy: bool,
}

/// Why a worker's report was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Fenced {
    #[error("run {0} is not held by this worker (its lease ended or another worker holds it)")]
    NotHolder(String),
    #[error("run {run}: {from:?} cannot become {to:?}")]
    Transition {
        run: String,
        from: RunStatus,
        to: RunStatus,
    },
}

/// How long a plan waits for its approval: the plan bundle's own expiry.
pub const PLAN_TTL_HOURS: u32 = 24;
/// `PLAN_TTL_HOURS` in ms.
pub const PLAN_TTL_MS: i64 = PLAN_TTL_HOURS as i64 * 3_600_000;

/// The oldest waiting run of a workspace with no active run and no earlier
/// waiting run (`$1`: the claiming server's id, or NULL).
const PICK: &str = "SELECT r.id, r.workspace_id FROM runs r
             WHERE r.status IN ('queued', 'approved')
               AND NOT EXISTS (SELECT 1 FROM runs a WHERE a.workspace_id = r.workspace_id
                               AND a.status IN ('planning', 'applying'))
               AND NOT EXISTS (SELECT 1 FROM runs e WHERE e.workspace_id = r.workspace_id
                               AND e.number < r.number AND e.status IN ('queued', 'approved'))
               AND NOT (r.status = 'queued' AND r.kind = 'apply'
                        AND EXISTS (SELECT 1 FROM runs h WHERE h.workspace_id = r.workspace_id
                                    AND h.number < r.number AND h.kind = 'apply'
                                    AND h.status IN ('planned', 'needs_approval')))
               AND (CAST($1 AS TEXT) IS NULL OR r.status = 'queued' OR r.planned_on IS NULL
                    OR r.planned_on = $1)
             ORDER BY r.created_at, r.number LIMIT 1";

/// PostgreSQL advisory lock namespace for a workspace's claims.
const CLAIM_LOCK: i32 = 0x7275_6e73; // "runs"

const SELECT_RUN: &str = "SELECT id, workspace_id, number, status, created_at, created_by,
    updated_at, claimed_by, lease_until, reason, plan_run, configuration_id, plan_exit,
    approved_by, approval_reason, kind, destroy FROM runs";

/// The run `id`, read inside `tx`.
async fn run_in(tx: &mut super::WriteTx, id: &str) -> Result<Run> {
    let Some(row) = sqlx::query(&format!("{SELECT_RUN} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
    else {
        bail!("store: no run {id}");
    };
    run_from(&row)
}

fn run_from(row: &sqlx::any::AnyRow) -> Result<Run> {
    let status: String = row.try_get("status")?;
    Ok(Run {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        number: row.try_get("number")?,
        status: RunStatus::parse(&status)
            .with_context(|| format!("store: run status {status:?} unknown"))?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: row.try_get("updated_at")?,
        claimed_by: row.try_get("claimed_by")?,
        lease_until: row.try_get("lease_until")?,
        reason: row.try_get("reason")?,
        plan_run: row.try_get("plan_run")?,
        configuration_id: row.try_get("configuration_id")?,
        plan_exit: row.try_get("plan_exit")?,
        approved_by: row.try_get("approved_by")?,
        approval_reason: row.try_get("approval_reason")?,
        kind: row.try_get("kind")?,
        destroy: row.try_get::<i64, _>("destroy")? != 0,
    })
}

impl Store {
    /// Queues a run of a workspace.
    pub async fn queue_run(&self, workspace: &str, who: &str) -> Result<Run> {
        self.queue_run_of(workspace, who, None, false).await
    }

    /// Queues a run of an uploaded configuration version (`None`: the
    /// workspace's git source).
    pub async fn queue_run_of(
        &self,
        workspace: &str,
        who: &str,
        configuration: Option<&str>,
        destroy: bool,
    ) -> Result<Run> {
        let mut tx = self.begin_write().await?;
        let run = self
            .queue_run_in(&mut tx, workspace, who, configuration, "apply", destroy)
            .await?;
        tx.commit().await.context("store: commit run")?;
        Ok(run)
    }

    /// Queues a run of `kind` inside `tx`.
    pub(crate) async fn queue_run_in(
        &self,
        tx: &mut super::WriteTx,
        workspace: &str,
        who: &str,
        configuration: Option<&str>,
        kind: &str,
        destroy: bool,
    ) -> Result<Run> {
        if self.dialect == Dialect::Postgres {
            // Numbers per workspace are handed out one at a time.
            sqlx::query(
                "SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1, hashtext($2))) AS l",
            )
            .bind(CLAIM_LOCK)
            .bind(workspace)
            .execute(&mut **tx)
            .await?;
        }
        let number: i64 = sqlx::query(
            "SELECT COALESCE(MAX(number), 0) + 1 AS next FROM runs WHERE workspace_id = $1",
        )
        .bind(workspace)
        .fetch_one(&mut **tx)
        .await?
        .try_get("next")?;
        let now = now_ms();
        let run = Run {
            id: uuid::Uuid::new_v4().to_string(),
            workspace_id: workspace.to_owned(),
            number,
            status: RunStatus::Queued,
            created_at: now,
            created_by: who.to_owned(),
            updated_at: now,
            claimed_by: None,
            lease_until: None,
            reason: None,
            plan_run: None,
            configuration_id: configuration.map(str::to_owned),
            plan_exit: None,
            approved_by: None,
            approval_reason: None,
            kind: kind.to_owned(),
            destroy,
        };
        sqlx::query(
            "INSERT INTO runs (id, workspace_id, number, status, created_at, created_by, updated_at,
                 configuration_id, kind, destroy)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&run.id)
        .bind(&run.workspace_id)
        .bind(run.number)
        .bind(run.status.as_str())
        .bind(run.created_at)
        .bind(&run.created_by)
        .bind(run.updated_at)
        .bind(configuration)
        .bind(kind)
        .bind(i64::from(destroy))
        .execute(&mut **tx)
        .await
        .context("store: insert run")?;
        self.audit_in(
            tx,
            "run.queued",
            Some(workspace),
            serde_json::json!({"principal": who, "run": run.id, "number": number,
                               "configuration": configuration, "kind": kind,
                               "destroy": destroy}),
        )
        .await?;
        Ok(run)
    }

    pub async fn run(&self, id: &str) -> Result<Option<Run>> {
        let row = sqlx::query(&format!("{SELECT_RUN} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("store: read run")?;
        row.as_ref().map(run_from).transpose()
    }

    /// A workspace's runs, in order.
    pub async fn runs(&self, workspace: &str) -> Result<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "{SELECT_RUN} WHERE workspace_id = $1 ORDER BY number"
        ))
        .bind(workspace)
        .fetch_all(&self.pool)
        .await
        .context("store: list runs")?;
        rows.iter().map(run_from).collect()
    }

    /// Claims the next run that waits (`queued` → `planning`, `approved` →
    /// `applying`) for `worker`, under a lease of `lease_ms`; `None` when
    /// nothing can be claimed now.
    pub async fn claim_run(&self, worker: &str, lease_ms: i64) -> Result<Option<Run>> {
        self.claim_run_on(worker, lease_ms, None).await
    }

    /// `claim_run` for a worker of the server `server` (its data
    /// directory's id): an approved run is applied only by the server that
    /// planned it, since its plan bundle and checkout are on that server's
    /// disk (`None`: no such rule, for tests of the queue alone).
    pub async fn claim_run_on(
        &self,
        worker: &str,
        lease_ms: i64,
        server: Option<&str>,
    ) -> Result<Option<Run>> {
        // A look without the write lock first: an idle worker's poll must
        // not queue behind (and hold up) every writer on SQLite.
        let look = self.claimable(server).await?;
        if !look {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
        let pick = format!(
            "{PICK}{}",
            match self.dialect {
                Dialect::Postgres => " FOR UPDATE OF r SKIP LOCKED",
                Dialect::Sqlite => "",
            }
        );
        let Some(row) = sqlx::query(&pick)
            .bind(server)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };

        let id: String = row.try_get("id")?;
        let workspace: String = row.try_get("workspace_id")?;
        if self.dialect == Dialect::Postgres {
            // Another server may have claimed an earlier run of this
            // workspace since our snapshot: serialise claims per workspace
            // and look again.
            sqlx::query(
                "SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1, hashtext($2))) AS l",
            )
            .bind(CLAIM_LOCK)
            .bind(&workspace)
            .execute(&mut *tx)
            .await?;
            let busy: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM runs WHERE workspace_id = $1
                 AND status IN ('planning', 'applying')",
            )
            .bind(&workspace)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if busy > 0 {
                return Ok(None);
            }
        }
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE runs SET
                 status = CASE status WHEN 'queued' THEN 'planning' ELSE 'applying' END,
                 claimed_by = $1, lease_until = $2, updated_at = $3,
                 planned_on = CASE status WHEN 'queued' THEN $5 ELSE planned_on END
             WHERE id = $4 AND status IN ('queued', 'approved')",
        )
        .bind(worker)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .bind(&id)
        .bind(server)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(None);
        }
        let run = run_in(&mut tx, &id).await?;
        self.audit_in(
            &mut tx,
            &format!("run.{}", run.status.as_str()),
            Some(&workspace),
            serde_json::json!({"worker": worker, "run": id, "number": run.number}),
        )
        .await?;
        tx.commit().await.context("store: commit claim")?;
        Ok(Some(run))
    }

    /// Whether anything could be claimed now (a read, no lock).
    async fn claimable(&self, server: Option<&str>) -> Result<bool> {
        Ok(sqlx::query(PICK)
            .bind(server)
            .fetch_optional(&self.pool)
            .await
            .context("store: look for a run to claim")?
            .is_some())
    }

    /// Extends the lease of a run `worker` holds.
    pub async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        lease_ms: i64,
    ) -> Result<std::result::Result<(), Fenced>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE runs SET lease_until = $1, updated_at = $2
             WHERE id = $3 AND claimed_by = $4 AND status IN ('planning', 'applying')",
        )
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(&mut *tx)
        .await
        .context("store: renew lease")?;
        tx.commit().await.context("store: renew lease")?;
        Ok(if updated.rows_affected() == 1 {
            Ok(())
        } else {
            Err(Fenced::NotHolder(id.to_owned()))
        })
    }

    /// A worker's report on a run it holds: `to` must follow its state.
    pub async fn finish_run(
        &self,
        id: &str,
        worker: &str,
        to: RunStatus,
        reason: Option<&str>,
    ) -> Result<std::result::Result<Run, Fenced>> {
        self.finish_run_with(id, worker, to, reason, None).await
    }

    /// `finish_run`, also recording the plan bundle's run id and the plan's
    /// exit code.
    pub async fn finish_run_with(
        &self,
        id: &str,
        worker: &str,
        to: RunStatus,
        reason: Option<&str>,
        plan: Option<(&str, i64)>,
    ) -> Result<std::result::Result<Run, Fenced>> {
        let (plan_run, plan_exit) = (plan.map(|p| p.0), plan.map(|p| p.1));
        let mut tx = self.begin_write().await?;
        let run = run_in(&mut tx, id).await?;
        let now = now_ms();
        // A lease that ran out while the store was away does not void the
        // report: until a reaper took the run, nobody else has acted on it.
        let holds = run.claimed_by.as_deref() == Some(worker) && run.status.is_active();
        if !holds {
            return Ok(Err(Fenced::NotHolder(id.to_owned())));
        }
        if !to.reachable_from_active(run.status) {
            return Ok(Err(Fenced::Transition {
                run: id.to_owned(),
                from: run.status,
                to,
            }));
        }
        // The same conditions again, in the UPDATE itself: a reaper (or
        // another server) that changed the run since the read wins.
        let updated = sqlx::query(
            "UPDATE runs SET status = $1, reason = $2, claimed_by = NULL, lease_until = NULL,
                 updated_at = $3, plan_run = COALESCE($7, plan_run),
                 plan_exit = COALESCE($8, plan_exit)
             WHERE id = $4 AND claimed_by = $5 AND status = $6",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(id)
        .bind(worker)
        .bind(run.status.as_str())
        .bind(plan_run)
        .bind(plan_exit)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(Err(Fenced::NotHolder(id.to_owned())));
        }
        self.audit_in(
            &mut tx,
            &format!("run.{}", to.as_str()),
            Some(&run.workspace_id),
            serde_json::json!({"worker": worker, "run": id, "number": run.number, "reason": reason}),
        )
        .await?;
        tx.commit().await.context("store: commit run report")?;
        Ok(Ok(Run {
            status: to,
            reason: reason.map(str::to_owned),
            plan_run: plan_run.map(str::to_owned).or(run.plan_run.clone()),
            plan_exit: plan_exit.or(run.plan_exit),
            claimed_by: None,
            lease_until: None,
            updated_at: now,
            ..run
        }))
    }

    /// Every active run whose lease ran out more than `grace_ms` ago becomes
    /// `errored`, with the reason; returns them. Never requeued: an apply may
    /// have half-run. The grace lets a live worker that lost the store for a
    /// while renew first when it comes back.
    pub async fn reap_expired(&self, grace_ms: i64) -> Result<Vec<Run>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "{SELECT_RUN} WHERE status IN ('planning', 'applying') AND lease_until < $1{}",
            match self.dialect {
                Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
                Dialect::Sqlite => "",
            }
        ))
        .bind(now.saturating_sub(grace_ms))
        .fetch_all(&mut *tx)
        .await?;
        let mut reaped = Vec::new();
        for row in &rows {
            let run = run_from(row)?;
            let reason = format!(
                "the worker {} stopped renewing its lease during {} (it ran out at {} ms); \
                 not retried",
                run.claimed_by.as_deref().unwrap_or("?"),
                run.status.as_str(),
                run.lease_until.unwrap_or_default()
            );
            sqlx::query(
                "UPDATE runs SET status = 'errored', reason = $1, claimed_by = NULL,
                     lease_until = NULL, updated_at = $2 WHERE id = $3",
            )
            .bind(&reason)
            .bind(now)
            .bind(&run.id)
            .execute(&mut *tx)
            .await?;
            self.audit_in(
                &mut tx,
                "run.errored",
                Some(&run.workspace_id),
                serde_json::json!({"run": run.id, "number": run.number, "reason": reason, "reaped": true}),
            )
            .await?;
            // The state lock its terraform took (recorded under the run's
            // backend user) is released: nobody will unlock it otherwise.
            self.release_run_lock_in(&mut tx, &run, true).await?;
            reaped.push(Run {
                status: RunStatus::Errored,
                reason: Some(reason),
                claimed_by: None,
                lease_until: None,
                updated_at: now,
                ..run
            });
        }
        // Plans nobody decided on within the bundle's lifetime: expired (a
        // later run of the workspace waits behind them otherwise).
        let stale = sqlx::query(&format!(
            "{SELECT_RUN} WHERE status IN ('planned', 'needs_approval', 'approved')
             AND updated_at < $1"
        ))
        .bind(now.saturating_sub(PLAN_TTL_MS))
        .fetch_all(&mut *tx)
        .await?;
        for row in &stale {
            let run = run_from(row)?;
            let reason = if run.status == RunStatus::Approved {
                format!(
                    "approved but not applied within {PLAN_TTL_HOURS} h (the server that planned \
                     it, which holds its plan, did not come back); queue a new run"
                )
            } else {
                format!(
                    "not approved within {PLAN_TTL_HOURS} h of its plan (the plan bundle \
                     expired); queue a new run"
                )
            };
            let updated = sqlx::query(
                "UPDATE runs SET status = 'expired', reason = $1, updated_at = $2
                 WHERE id = $3 AND status = $4",
            )
            .bind(&reason)
            .bind(now)
            .bind(&run.id)
            .bind(run.status.as_str())
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() != 1 {
                continue;
            }
            self.audit_in(
                &mut tx,
                "run.expired",
                Some(&run.workspace_id),
                serde_json::json!({"run": run.id, "number": run.number, "reason": reason}),
            )
            .await?;
            reaped.push(Run {
                status: RunStatus::Expired,
                reason: Some(reason),
                updated_at: now,
                ..run
            });
        }
        tx.commit().await.context("store: commit reaping")?;
        Ok(reaped)
    }
}

impl Store {
    /// Releases the workspace's state lock if the run's terraform holds it
    /// (taken under the run's backend user, `run-RUN`): a terraform that
    /// could not unlock (the store was away) must not block the next run.
    pub async fn release_run_lock(&self, run: &Run) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let released = self.release_run_lock_in(&mut tx, run, false).await?;
        tx.commit().await.context("store: commit lock release")?;
        Ok(released)
    }

    async fn release_run_lock_in(
        &self,
        tx: &mut super::WriteTx,
        run: &Run,
        reaped: bool,
    ) -> Result<bool> {
        let user = format!("run-{}", run.id);
        let released = sqlx::query(
            "DELETE FROM state_locks WHERE workspace_id = $1
             AND (created_by = $2 OR created_by = $3)",
        )
        .bind(&run.workspace_id)
        .bind(&user)
        .bind(format!("dev:{user}"))
        .execute(&mut **tx)
        .await?;
        if released.rows_affected() == 0 {
            return Ok(false);
        }
        self.audit_in(
            tx,
            "state.unlocked",
            Some(&run.workspace_id),
            serde_json::json!({"run": run.id, "reaped": reaped, "forced": true}),
        )
        .await?;
        Ok(true)
    }
}

/// Why a discard was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("run {0} is {1:?}: only a queued run or a plan waiting for a decision can be discarded")]
pub struct NotDiscardable(pub String, pub RunStatus);

impl Store {
    /// Discards a run that waits (`queued`, `planned`, `needs_approval`):
    /// it will not be planned or applied, and the workspace's next run goes
    /// ahead.
    pub async fn discard_run(
        &self,
        id: &str,
        who: &str,
        reason: &str,
    ) -> Result<std::result::Result<Run, NotDiscardable>> {
        let mut tx = self.begin_write().await?;
        let run = run_in(&mut tx, id).await?;
        if !matches!(
            run.status,
            RunStatus::Queued | RunStatus::Planned | RunStatus::NeedsApproval
        ) {
            return Ok(Err(NotDiscardable(id.to_owned(), run.status)));
        }
        let now = now_ms();
        let detail = format!("discarded by {who}: {reason}");
        let updated = sqlx::query(
            "UPDATE runs SET status = 'discarded', reason = $1, updated_at = $2
             WHERE id = $3 AND status = $4",
        )
        .bind(&detail)
        .bind(now)
        .bind(id)
        .bind(run.status.as_str())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(Err(NotDiscardable(id.to_owned(), run.status)));
        }
        self.audit_in(
            &mut tx,
            "run.discarded",
            Some(&run.workspace_id),
            serde_json::json!({"principal": who, "run": id, "number": run.number, "reason": reason}),
        )
        .await?;
        tx.commit().await.context("store: commit discard")?;
        Ok(Ok(Run {
            status: RunStatus::Discarded,
            reason: Some(detail),
            updated_at: now,
            ..run
        }))
    }
}

/// Why an approval was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotApprovable {
    #[error("run {0} is {1:?}: only a planned run, or one that needs an approval, can be approved")]
    State(String, RunStatus),
    #[error("run {0} needs an approval from someone other than who queued it ({1})")]
    FourEyes(String, String),
}

impl Store {
    /// Approves a run for apply (`planned`/`needs_approval` → `approved`); a
    /// run that needs an approval takes someone other than who queued it.
    pub async fn approve_run(
        &self,
        id: &str,
        who: &str,
        reason: &str,
    ) -> Result<std::result::Result<Run, NotApprovable>> {
        let mut tx = self.begin_write().await?;
        let run = run_in(&mut tx, id).await?;
        if !matches!(run.status, RunStatus::Planned | RunStatus::NeedsApproval) {
            return Ok(Err(NotApprovable::State(id.to_owned(), run.status)));
        }
        if run.status == RunStatus::NeedsApproval && run.created_by == who {
            return Ok(Err(NotApprovable::FourEyes(id.to_owned(), who.to_owned())));
        }
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE runs SET status = 'approved', updated_at = $1, approved_by = $4,
                 approval_reason = $5
             WHERE id = $2 AND status = $3",
        )
        .bind(now)
        .bind(id)
        .bind(run.status.as_str())
        .bind(who)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(Err(NotApprovable::State(id.to_owned(), run.status)));
        }
        self.audit_in(
            &mut tx,
            "run.approved",
            Some(&run.workspace_id),
            serde_json::json!({"principal": who, "run": id, "number": run.number, "reason": reason}),
        )
        .await?;
        tx.commit().await.context("store: commit approval")?;
        Ok(Ok(Run {
            status: RunStatus::Approved,
            updated_at: now,
            approved_by: Some(who.to_owned()),
            approval_reason: Some(reason.to_owned()),
            ..run
        }))
    }
}

/// One line of a run's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// 1, 2, … in the run: ask for lines `after` the last one seen.
    pub seq: i64,
    /// `plan` or `apply`.
    pub phase: String,
    pub line: String,
}

impl Store {
    /// Appends what a run's phase printed (the `run` layer's progress and
    /// warnings: the CLI's own output, secrets already redacted).
    pub async fn append_run_log(&self, run: &str, phase: &str, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let next: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM run_logs WHERE run_id = $1")
                .bind(run)
                .fetch_one(&mut *tx)
                .await?
                .try_get("next")?;
        for (i, line) in lines.iter().enumerate() {
            sqlx::query("INSERT INTO run_logs (run_id, seq, phase, line) VALUES ($1, $2, $3, $4)")
                .bind(run)
                .bind(next + i64::try_from(i).unwrap_or(i64::MAX - next))
                .bind(phase)
                .bind(line)
                .execute(&mut *tx)
                .await
                .context("store: append run log")?;
        }
        tx.commit().await.context("store: commit run log")?;
        Ok(())
    }

    /// A run's log after line `after`, in order, at most `limit` lines.
    pub async fn run_log(&self, run: &str, after: i64, limit: i64) -> Result<Vec<LogLine>> {
        let rows = sqlx::query(
            "SELECT seq, phase, line FROM run_logs WHERE run_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .bind(run)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("store: read run log")?;
        rows.iter()
            .map(|r| {
                Ok(LogLine {
                    seq: r.try_get("seq")?,
                    phase: r.try_get("phase")?,
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }
}
