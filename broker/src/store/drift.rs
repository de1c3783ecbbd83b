//! Drift on a schedule: each workspace may have a cron expression; when it
//! comes due, one server (whichever moves `drift_next_at` first) queues a
//! drift run, which a worker executes like any other run (one at a time per
//! workspace, under a lease). Its findings are stored by fingerprint, and
//! acknowledged by fingerprint until a date.
//!
//! **Invariants:** a due check is queued once however many servers share
//! the store (compare-and-set on `drift_next_at` in the queuing transaction);
//! findings hold addresses, attributes and fingerprints only, never values.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::runs::Run;
use super::{Refused, Store, now_ms};

/// One drifted attribute of a check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DriftItem {
    pub address: String,
    pub attribute: String,
    pub fingerprint: String,
}

/// A drift check's findings.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DriftResult {
    pub run: String,
    pub created_at: i64,
    pub items: Vec<DriftItem>,
    /// Fingerprints of `items` not acknowledged (now).
    pub open: Vec<String>,
}

/// An acknowledgement of one drifted attribute (by fingerprint).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DriftAck {
    pub fingerprint: String,
    /// Unix ms: the acknowledgement holds until then.
    pub until: i64,
    pub reason: String,
    pub created_at: i64,
    pub created_by: String,
}

/// A cron expression (5 fields, or 6 with seconds first), checked.
pub fn parse_schedule(text: &str) -> Result<croner::Cron, Refused> {
    croner::Cron::new(text)
        .with_seconds_optional()
        .parse()
        .map_err(|e| Refused::Invalid {
            field: "cron",
            message: format!("not a cron expression: {e}"),
        })
}

/// The first time `schedule` fires after `after_ms` (Unix ms, UTC).
pub fn next_after(schedule: &croner::Cron, after_ms: i64) -> Option<i64> {
    let after = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms)?;
    schedule
        .find_next_occurrence(&after, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Store {
    /// Sets (or with `None` clears) a workspace's drift schedule; returns
    /// when it next fires.
    pub async fn set_drift_schedule(
        &self,
        workspace: &str,
        cron: Option<&str>,
        who: &str,
    ) -> Result<std::result::Result<Option<i64>, Refused>> {
        let next = match cron {
            None => None,
            Some(text) => {
                let schedule = match parse_schedule(text) {
                    Ok(s) => s,
                    Err(refused) => return Ok(Err(refused)),
                };
                match next_after(&schedule, now_ms()) {
                    Some(next) => Some(next),
                    None => {
                        return Ok(Err(Refused::Invalid {
                            field: "cron",
                            message: "never fires".into(),
                        }));
                    }
                }
            }
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE workspaces SET drift_schedule = $1, drift_next_at = $2 WHERE id = $3")
            .bind(cron)
            .bind(next)
            .bind(workspace)
            .execute(&mut *tx)
            .await
            .context("store: set drift schedule")?;
        self.audit_in(
            &mut tx,
            "drift.scheduled",
            Some(workspace),
            serde_json::json!({"principal": who, "cron": cron, "next_at": next}),
        )
        .await?;
        tx.commit().await.context("store: commit drift schedule")?;
        Ok(Ok(next))
    }

    /// The workspace's schedule and when it next fires.
    pub async fn drift_schedule(&self, workspace: &str) -> Result<(Option<String>, Option<i64>)> {
        let row = sqlx::query("SELECT drift_schedule, drift_next_at FROM workspaces WHERE id = $1")
            .bind(workspace)
            .fetch_one(&self.pool)
            .await
            .context("store: read drift schedule")?;
        Ok((
            row.try_get("drift_schedule")?,
            row.try_get("drift_next_at")?,
        ))
    }

    /// Queues a drift run for every workspace whose schedule came due,
    /// moving its next time on; a workspace another server moved first is
    /// left to it. Returns the runs queued.
    pub async fn queue_due_drift(&self) -> Result<Vec<Run>> {
        let now = now_ms();
        let due = sqlx::query(
            "SELECT id, drift_schedule, drift_next_at FROM workspaces
             WHERE drift_next_at IS NOT NULL AND drift_next_at <= $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .context("store: due drift checks")?;
        let mut queued = Vec::new();
        for row in due {
            let id: String = row.try_get("id")?;
            let cron: Option<String> = row.try_get("drift_schedule")?;
            let was: i64 = row.try_get("drift_next_at")?;
            let next = cron
                .as_deref()
                .and_then(|c| parse_schedule(c).ok())
                .and_then(|s| next_after(&s, now));
            if let Some(run) = self.queue_drift_if(&id, Some(was), next).await? {
                queued.push(run);
            }
        }
        Ok(queued)
    }

    /// Queues a drift check now (the API's "check now").
    pub async fn queue_drift_now(&self, workspace: &str, who: &str) -> Result<Run> {
        let mut tx = self.begin_write().await?;
        let config = self.latest_configuration_in(&mut tx, workspace).await?;
        let run = self
            .queue_run_in(&mut tx, workspace, who, config.as_deref(), "drift", false)
            .await?;
        tx.commit().await.context("store: commit drift run")?;
        Ok(run)
    }

    /// Queues a scheduled drift run if `drift_next_at` still is `was`.
    async fn queue_drift_if(
        &self,
        workspace: &str,
        was: Option<i64>,
        next: Option<i64>,
    ) -> Result<Option<Run>> {
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE workspaces SET drift_next_at = $1 WHERE id = $2 AND drift_next_at = $3",
        )
        .bind(next)
        .bind(workspace)
        .bind(was)
        .execute(&mut *tx)
        .await
        .context("store: move drift schedule")?;
        if moved.rows_affected() != 1 {
            return Ok(None);
        }
        // An upload workspace with nothing uploaded has nothing to check.
        let upload: bool = sqlx::query("SELECT source_kind FROM workspaces WHERE id = $1")
            .bind(workspace)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<String, _>("source_kind")?
            == "upload";
        let config = self.latest_configuration_in(&mut tx, workspace).await?;
        if upload && config.is_none() {
            tx.commit().await.context("store: commit drift schedule")?;
            return Ok(None);
        }
        let run = self
            .queue_run_in(
                &mut tx,
                workspace,
                "schedule",
                config.as_deref(),
                "drift",
                false,
            )
            .await?;
        tx.commit().await.context("store: commit drift run")?;
        Ok(Some(run))
    }

    async fn latest_configuration_in(
        &self,
        tx: &mut super::WriteTx,
        workspace: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query(
            "SELECT id FROM configurations WHERE workspace_id = $1
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(workspace)
        .fetch_optional(&mut **tx)
        .await
        .context("store: latest configuration")?
        .map(|r| r.try_get("id"))
        .transpose()?)
    }

    /// Records a drift check's findings.
    pub async fn record_drift(&self, run: &Run, items: &[DriftItem]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO drift_results (run_id, workspace_id, created_at, items)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&run.id)
        .bind(&run.workspace_id)
        .bind(now_ms())
        .bind(serde_json::to_string(items)?)
        .execute(&mut *tx)
        .await
        .context("store: record drift")?;
        self.audit_in(
            &mut tx,
            "drift.checked",
            Some(&run.workspace_id),
            serde_json::json!({"run": run.id, "drifted": items.len(),
                               "fingerprints": items.iter().map(|i| &i.fingerprint).collect::<Vec<_>>()}),
        )
        .await?;
        tx.commit().await.context("store: commit drift")?;
        Ok(())
    }

    /// The workspace's latest drift checks, newest first, with what is open.
    pub async fn drift_results(&self, workspace: &str, limit: i64) -> Result<Vec<DriftResult>> {
        let acks = self.drift_acks(workspace).await?;
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT run_id, created_at, items FROM drift_results WHERE workspace_id = $1
             ORDER BY created_at DESC, run_id LIMIT $2",
        )
        .bind(workspace)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("store: read drift")?;
        rows.iter()
            .map(|r| {
                let items: Vec<DriftItem> =
                    serde_json::from_str(&r.try_get::<String, _>("items")?)?;
                let open = items
                    .iter()
                    .filter(|i| {
                        !acks
                            .iter()
                            .any(|a| a.fingerprint == i.fingerprint && a.until >= now)
                    })
                    .map(|i| i.fingerprint.clone())
                    .collect();
                Ok(DriftResult {
                    run: r.try_get("run_id")?,
                    created_at: r.try_get("created_at")?,
                    items,
                    open,
                })
            })
            .collect()
    }

    /// Acknowledges one drifted attribute until `until` (Unix ms).
    pub async fn ack_drift(
        &self,
        workspace: &str,
        fingerprint: &str,
        until: i64,
        reason: &str,
        who: &str,
    ) -> Result<DriftAck> {
        let ack = DriftAck {
            fingerprint: fingerprint.to_owned(),
            until,
            reason: reason.to_owned(),
            created_at: now_ms(),
            created_by: who.to_owned(),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO drift_acks (workspace_id, fingerprint, until_ms, reason, created_at,
                 created_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (workspace_id, fingerprint) DO UPDATE SET until_ms = $3, reason = $4,
                 created_at = $5, created_by = $6",
        )
        .bind(workspace)
        .bind(&ack.fingerprint)
        .bind(ack.until)
        .bind(&ack.reason)
        .bind(ack.created_at)
        .bind(&ack.created_by)
        .execute(&mut *tx)
        .await
        .context("store: acknowledge drift")?;
        self.audit_in(
            &mut tx,
            "drift.acknowledged",
            Some(workspace),
            serde_json::json!({"principal": who, "fingerprint": fingerprint, "until": until,
                               "reason": reason}),
        )
        .await?;
        tx.commit().await.context("store: commit acknowledgement")?;
        Ok(ack)
    }

    pub async fn drift_acks(&self, workspace: &str) -> Result<Vec<DriftAck>> {
        let rows = sqlx::query(
            "SELECT fingerprint, until_ms, reason, created_at, created_by FROM drift_acks
             WHERE workspace_id = $1 ORDER BY fingerprint",
        )
        .bind(workspace)
        .fetch_all(&self.pool)
        .await
        .context("store: read acknowledgements")?;
        rows.iter()
            .map(|r| {
                Ok(DriftAck {
                    fingerprint: r.try_get("fingerprint")?,
                    until: r.try_get("until_ms")?,
                    reason: r.try_get("reason")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                })
            })
            .collect()
    }
}
