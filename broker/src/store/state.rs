//! Terraform state in the store: every version a workspace's state went
//! through, and its lock (the `http` backend's LOCK/UNLOCK).
//!
//! **Invariants:** a version is never overwritten or deleted; a write is
//! accepted only from the holder of the workspace's lock (the lock ID
//! Terraform sends as `?ID=`), and only when it keeps the lineage and does
//! not go back in serial (same serial only with the same bytes: Terraform
//! re-sending what it has); the lock is held by one ID at a time.

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, now_ms};
use crate::key::hex;

/// One stored state version (without its body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StateVersion {
    /// 1, 2, …: the order the server accepted them in.
    pub version: i64,
    /// Terraform's `serial` and `lineage` of that state.
    pub serial: i64,
    pub lineage: String,
    /// Hex SHA-256 of the state's bytes.
    pub sha256: String,
    pub created_at: i64,
    pub created_by: String,
}

/// What a LOCK did.
#[derive(Debug, PartialEq, Eq)]
pub enum Locked {
    /// Taken (or re-taken by the same ID).
    Acquired,
    /// Someone holds it: their lock info, as they sent it.
    HeldBy(String),
}

/// What an UNLOCK did.
#[derive(Debug, PartialEq, Eq)]
pub enum Unlocked {
    Released,
    NotLocked,
    /// Another ID holds it: their lock info.
    HeldBy(String),
}

/// Why a state write was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateRefused {
    #[error("the state is not locked: take the lock first (Terraform does unless -lock=false)")]
    NotLocked,
    #[error("the state is locked by another operation (or by this lock ID for another caller)")]
    LockedByOther,
    #[error("not a Terraform state: {0}")]
    Malformed(String),
    #[error("lineage {got:?} is not this workspace's state lineage {have:?}")]
    Lineage { have: String, got: String },
    #[error("serial {got} is older than the stored serial {have}: a write would lose state")]
    Serial { have: i64, got: i64 },
    #[error("serial {0} is already stored with other content")]
    SameSerial(i64),
}

/// The fields of a state the server checks.
fn header(body: &[u8]) -> std::result::Result<(i64, String), StateRefused> {
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| StateRefused::Malformed(format!("not JSON ({e})")))?;
    let version = doc.get("version").and_then(serde_json::Value::as_i64);
    if version != Some(4) {
        return Err(StateRefused::Malformed(
            "`version` must be 4 (Terraform >= 0.12)".into(),
        ));
    }
    let serial = doc
        .get("serial")
        .and_then(serde_json::Value::as_i64)
        .filter(|s| *s >= 0)
        .ok_or_else(|| StateRefused::Malformed("`serial` must be a whole number".into()))?;
    let lineage = doc
        .get("lineage")
        .and_then(serde_json::Value::as_str)
        .filter(|l| !l.is_empty() && l.chars().count() <= 128)
        .ok_or_else(|| StateRefused::Malformed("`lineage` must be a string".into()))?;
    Ok((serial, lineage.to_owned()))
}

impl Store {
    /// The newest state version and its bytes.
    pub async fn state_latest(&self, workspace: &str) -> Result<Option<(StateVersion, Vec<u8>)>> {
        let row = sqlx::query(
            "SELECT version, serial, lineage, sha256, created_at, created_by, body
             FROM state_versions WHERE workspace_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(workspace)
        .fetch_optional(&self.pool)
        .await
        .context("store: read state")?;
        row.map(|r| Ok((version_from(&r)?, r.try_get::<Vec<u8>, _>("body")?)))
            .transpose()
    }

    /// The newest state's serial and lineage: what `terraform state pull`
    /// through this server would say, without the body.
    pub async fn state_head(&self, workspace: &str) -> Result<Option<(i64, String)>> {
        let row = sqlx::query(
            "SELECT serial, lineage FROM state_versions
             WHERE workspace_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(workspace)
        .fetch_optional(&self.pool)
        .await
        .context("store: read state")?;
        row.map(|r| Ok((r.try_get("serial")?, r.try_get("lineage")?)))
            .transpose()
    }

    /// Every state version of a workspace, oldest first.
    pub async fn state_versions(&self, workspace: &str) -> Result<Vec<StateVersion>> {
        let rows = sqlx::query(
            "SELECT version, serial, lineage, sha256, created_at, created_by
             FROM state_versions WHERE workspace_id = $1 ORDER BY version",
        )
        .bind(workspace)
        .fetch_all(&self.pool)
        .await
        .context("store: list state versions")?;
        rows.iter().map(version_from).collect()
    }

    /// One version's bytes.
    pub async fn state_version(&self, workspace: &str, version: i64) -> Result<Option<Vec<u8>>> {
        let row =
            sqlx::query("SELECT body FROM state_versions WHERE workspace_id = $1 AND version = $2")
                .bind(workspace)
                .bind(version)
                .fetch_optional(&self.pool)
                .await
                .context("store: read state version")?;
        row.map(|r| Ok(r.try_get::<Vec<u8>, _>("body")?))
            .transpose()
    }

    /// LOCK with Terraform's lock info (`id` is its `ID`).
    pub async fn state_lock(
        &self,
        workspace: &str,
        id: &str,
        info: &str,
        who: &str,
    ) -> Result<Locked> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO state_locks (workspace_id, lock_id, info, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workspace_id) DO NOTHING",
        )
        .bind(workspace)
        .bind(id)
        .bind(info)
        .bind(now_ms())
        .bind(who)
        .execute(&mut *tx)
        .await
        .context("store: lock state")?;
        if inserted.rows_affected() == 1 {
            self.audit_in(
                &mut tx,
                "state.locked",
                Some(workspace),
                serde_json::json!({"principal": who, "workspace_id": workspace, "lock_id": id}),
            )
            .await?;
            tx.commit().await.context("store: commit lock")?;
            return Ok(Locked::Acquired);
        }
        tx.rollback().await.ok();
        match self.state_lock_holder(workspace).await? {
            Some((holder, _)) if holder == id => Ok(Locked::Acquired),
            Some((_, info)) => Ok(Locked::HeldBy(info)),
            // Released in between: try once more.
            None => Box::pin(self.state_lock(workspace, id, info, who)).await,
        }
    }

    /// The lock's holder: (lock ID, lock info).
    pub async fn state_lock_holder(&self, workspace: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT lock_id, info FROM state_locks WHERE workspace_id = $1")
            .bind(workspace)
            .fetch_optional(&self.pool)
            .await
            .context("store: read state lock")?;
        row.map(|r| Ok((r.try_get("lock_id")?, r.try_get("info")?)))
            .transpose()
    }

    /// UNLOCK by the holder's ID, or by anyone with `None` (force-unlock).
    pub async fn state_unlock(
        &self,
        workspace: &str,
        id: Option<&str>,
        who: &str,
    ) -> Result<Unlocked> {
        let mut tx = self.begin_write().await?;
        let holder: Option<String> = sqlx::query(&format!(
            "SELECT lock_id FROM state_locks WHERE workspace_id = $1{}",
            self.for_update()
        ))
        .bind(workspace)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("lock_id"))
        .transpose()?;
        let release = match (&holder, id) {
            (Some(holder), Some(id)) => holder == id,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if release {
            sqlx::query("DELETE FROM state_locks WHERE workspace_id = $1 AND lock_id = $2")
                .bind(workspace)
                .bind(&holder)
                .execute(&mut *tx)
                .await
                .context("store: unlock state")?;
            let (kind, forced) = match id {
                Some(_) => ("state.unlocked", false),
                None => ("state.force_unlocked", true),
            };
            self.audit_in(
                &mut tx,
                kind,
                Some(workspace),
                serde_json::json!({
                    "principal": who,
                    "workspace_id": workspace,
                    "lock_id": holder,
                    "forced": forced,
                }),
            )
            .await?;
            tx.commit().await.context("store: commit unlock")?;
            return Ok(Unlocked::Released);
        }
        tx.rollback().await.ok();
        Ok(match self.state_lock_holder(workspace).await? {
            Some((_, info)) => Unlocked::HeldBy(info),
            None => Unlocked::NotLocked,
        })
    }

    /// Stores `body` as the workspace's next state version, for the holder
    /// of lock `lock_id`.
    pub async fn state_write(
        &self,
        workspace: &str,
        lock_id: Option<&str>,
        body: &[u8],
        who: &str,
    ) -> Result<std::result::Result<StateVersion, StateRefused>> {
        let result = self
            .state_write_inner(workspace, lock_id, body, who)
            .await?;
        if let Err(refused) = &result {
            // A refused write changes nothing, but who tried is on record.
            self.audit(
                "state.write_refused",
                Some(workspace),
                serde_json::json!({
                    "principal": who,
                    "workspace_id": workspace,
                    "lock_id": lock_id,
                    "reason": refused.to_string(),
                }),
            )
            .await?;
        }
        Ok(result)
    }

    async fn state_write_inner(
        &self,
        workspace: &str,
        lock_id: Option<&str>,
        body: &[u8],
        who: &str,
    ) -> Result<std::result::Result<StateVersion, StateRefused>> {
        let (serial, lineage) = match header(body) {
            Ok(h) => h,
            Err(refused) => return Ok(Err(refused)),
        };
        let mut tx = self
            .begin_write()
            .await
            .context("store: begin state write")?;
        // The lock row is held until commit (PostgreSQL): a force-unlock and
        // a new LOCK cannot slip in between this check and the insert.
        let holder = sqlx::query(&format!(
            "SELECT lock_id, created_by FROM state_locks WHERE workspace_id = $1{}",
            self.for_update()
        ))
        .bind(workspace)
        .fetch_optional(&mut *tx)
        .await?;
        let holder: Option<(String, String)> = holder
            .map(|r| -> Result<_> { Ok((r.try_get("lock_id")?, r.try_get("created_by")?)) })
            .transpose()?;
        match (holder, lock_id) {
            (None, _) => return Ok(Err(StateRefused::NotLocked)),
            // The lock ID alone is not enough (Terraform shows it to anyone
            // who hits the lock): the writer must also be who took it.
            (Some((holder, owner)), Some(id)) if holder == id && owner == who => {}
            (Some(_), _) => return Ok(Err(StateRefused::LockedByOther)),
        }
        let sha256 = hex(&Sha256::digest(body));
        let latest = sqlx::query(
            "SELECT version, serial, lineage, sha256 FROM state_versions
             WHERE workspace_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(workspace)
        .fetch_optional(&mut *tx)
        .await?;
        let mut next = 1;
        if let Some(row) = latest {
            let have_serial: i64 = row.try_get("serial")?;
            let have_lineage: String = row.try_get("lineage")?;
            let have_sha: String = row.try_get("sha256")?;
            let version: i64 = row.try_get("version")?;
            if have_lineage != lineage {
                return Ok(Err(StateRefused::Lineage {
                    have: have_lineage,
                    got: lineage,
                }));
            }
            if serial < have_serial {
                return Ok(Err(StateRefused::Serial {
                    have: have_serial,
                    got: serial,
                }));
            }
            if serial == have_serial {
                if have_sha == sha256 {
                    // The same state again: nothing new to keep.
                    tx.rollback().await.ok();
                    let versions = self.state_versions(workspace).await?;
                    return versions
                        .into_iter()
                        .find(|v| v.version == version)
                        .map(Ok)
                        .context("store: the latest state version vanished");
                }
                return Ok(Err(StateRefused::SameSerial(serial)));
            }
            next = version + 1;
        }
        let stored = StateVersion {
            version: next,
            serial,
            lineage,
            sha256,
            created_at: now_ms(),
            created_by: who.to_owned(),
        };
        insert_version(&mut tx, workspace, &stored, body).await?;
        self.audit_in(
            &mut tx,
            "state.written",
            Some(workspace),
            serde_json::json!({
                "principal": who,
                "workspace_id": workspace,
                "lock_id": lock_id,
                "version": stored.version,
                "serial": stored.serial,
                "lineage": stored.lineage,
                "sha256": stored.sha256,
            }),
        )
        .await?;
        tx.commit().await.context("store: commit state version")?;
        Ok(Ok(stored))
    }
}

/// Why a restore was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestoreRefused {
    #[error("no state version {0}")]
    NoSuchVersion(i64),
    #[error("the state is locked (a run or someone holds it): restore needs it unlocked")]
    Locked,
    #[error("version {0} belongs to another lineage than the current state")]
    OtherLineage(i64),
    #[error("not a Terraform state: {0}")]
    Malformed(String),
}

impl Store {
    /// A rollback: stores version `from`'s content as the newest version,
    /// with the serial moved past the current one (so Terraform takes it),
    /// never overwriting anything. Refused while the state is locked.
    pub async fn state_restore(
        &self,
        workspace: &str,
        from: i64,
        who: &str,
    ) -> Result<std::result::Result<StateVersion, RestoreRefused>> {
        let mut tx = self.begin_write().await?;
        let locked = sqlx::query(&format!(
            "SELECT lock_id FROM state_locks WHERE workspace_id = $1{}",
            self.for_update()
        ))
        .bind(workspace)
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_some() {
            return Ok(Err(RestoreRefused::Locked));
        }
        let Some(old) =
            sqlx::query("SELECT body FROM state_versions WHERE workspace_id = $1 AND version = $2")
                .bind(workspace)
                .bind(from)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(Err(RestoreRefused::NoSuchVersion(from)));
        };
        let latest = sqlx::query(
            "SELECT version, serial, lineage FROM state_versions
             WHERE workspace_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(workspace)
        .fetch_one(&mut *tx)
        .await?;
        let (latest_version, latest_serial, latest_lineage): (i64, i64, String) = (
            latest.try_get("version")?,
            latest.try_get("serial")?,
            latest.try_get("lineage")?,
        );
        let mut doc: serde_json::Value =
            match serde_json::from_slice(&old.try_get::<Vec<u8>, _>("body")?) {
                Ok(doc) => doc,
                Err(e) => return Ok(Err(RestoreRefused::Malformed(e.to_string()))),
            };
        if doc["lineage"].as_str() != Some(latest_lineage.as_str()) {
            return Ok(Err(RestoreRefused::OtherLineage(from)));
        }
        let serial = latest_serial + 1;
        doc["serial"] = serde_json::Value::from(serial);
        let body = serde_json::to_vec_pretty(&doc)?;
        let stored = StateVersion {
            version: latest_version + 1,
            serial,
            lineage: latest_lineage,
            sha256: hex(&Sha256::digest(&body)),
            created_at: now_ms(),
            created_by: who.to_owned(),
        };
        insert_version(&mut tx, workspace, &stored, &body).await?;
        self.audit_in(
            &mut tx,
            "state.restored",
            Some(workspace),
            serde_json::json!({"principal": who, "from_version": from,
                               "version": stored.version, "serial": stored.serial,
                               "sha256": stored.sha256}),
        )
        .await?;
        tx.commit().await.context("store: commit restore")?;
        Ok(Ok(stored))
    }
}

/// Stores `body` as the workspace's state version `stored` (a write or a
/// restore; the caller has checked lineage and serial under the write lock).
async fn insert_version(
    tx: &mut super::WriteTx,
    workspace: &str,
    stored: &StateVersion,
    body: &[u8],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO state_versions (workspace_id, version, serial, lineage, sha256,
             created_at, created_by, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(workspace)
    .bind(stored.version)
    .bind(stored.serial)
    .bind(&stored.lineage)
    .bind(&stored.sha256)
    .bind(stored.created_at)
    .bind(&stored.created_by)
    .bind(body.to_vec())
    .execute(&mut **tx)
    .await
    .context("store: insert state version")?;
    Ok(())
}

fn version_from(row: &sqlx::any::AnyRow) -> Result<StateVersion> {
    Ok(StateVersion {
        version: row.try_get("version")?,
        serial: row.try_get("serial")?,
        lineage: row.try_get("lineage")?,
        sha256: row.try_get("sha256")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}
