//! The server's audit trail, in the store: the same CloudEvents lines and
//! chain as the CLI's `audit.log` (`platformseq`, `platformprev`, and with the
//! broker key `platformkey`/`platformmac`), one row per event.
//!
//! **Invariants:** an event is appended in the same transaction as the change
//! it records, so a change without its event (or the reverse) is never
//! committed; appends are serialised (SQLite's write lock, an advisory lock on
//! PostgreSQL), so the chain has no fork however many servers write; `verify`
//! is the CLI's verifier, run over the rows in order.

use anyhow::{Context, Result};
use sqlx::Row;

use super::{Dialect, Store, now_ms};
use crate::audit::{GENESIS_PREV, VerifyReport, chain_line};

/// PostgreSQL advisory lock key that serialises audit appends ("audit" + 1).
const AUDIT_LOCK: i64 = 0x6175_6469_7401;

impl Store {
    /// Appends one event inside `tx` (the transaction of the change it records).
    pub(crate) async fn audit_in(
        &self,
        tx: &mut super::WriteTx,
        type_: &str,
        subject: Option<&str>,
        data: serde_json::Value,
    ) -> Result<u64> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(AUDIT_LOCK)
                .execute(&mut **tx)
                .await
                .context("store: audit lock")?;
        }
        let last = sqlx::query("SELECT seq, link FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await
            .context("store: audit head")?;
        let (seq, prev) = match last {
            Some(row) => (
                row.try_get::<i64, _>("seq")? + 1,
                row.try_get::<String, _>("link")?,
            ),
            None => (1, GENESIS_PREV.to_owned()),
        };
        let seq_u = u64::try_from(seq).context("store: audit seq")?;
        let (line, link) = chain_line(
            &format!("dev.platform.broker.{type_}"),
            subject,
            data,
            seq_u,
            &prev,
            self.key.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!("store: audit event: {e}"))?;
        let (key_id, mac) = match self.key.as_deref() {
            Some(key) => (
                Some(key.id().to_owned()),
                crate::audit::head_mac(seq_u, &link, key),
            ),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO audit_events (seq, line, link, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(seq)
        .bind(line)
        .bind(&link)
        .bind(now_ms())
        .execute(&mut **tx)
        .await
        .context("store: append audit event")?;
        // The head, as the CLI's sidecar keeps it (MACed with the key): rows
        // cut at the end are then caught, with the key even when the head
        // row was rewritten too.
        sqlx::query(
            "INSERT INTO audit_head (id, seq, link, key_id, mac) VALUES (1, $1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, link = excluded.link,
                 key_id = excluded.key_id, mac = excluded.mac",
        )
        .bind(seq)
        .bind(&link)
        .bind(key_id)
        .bind(mac)
        .execute(&mut **tx)
        .await
        .context("store: audit head")?;
        Ok(seq_u)
    }

    /// Appends one event on its own (for what changes nothing: a refusal).
    pub async fn audit(
        &self,
        type_: &str,
        subject: Option<&str>,
        data: serde_json::Value,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let seq = self.audit_in(&mut tx, type_, subject, data).await?;
        tx.commit().await.context("store: commit audit event")?;
        Ok(seq)
    }

    /// Events after `after` (their lines), at most `limit`, in order.
    pub async fn audit_lines(&self, after: i64, limit: i64) -> Result<Vec<(i64, String)>> {
        let rows =
            sqlx::query("SELECT seq, line FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .context("store: read audit events")?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, r.try_get("line")?)))
            .collect()
    }

    /// Checks the whole chain with the CLI's verifier (and, with the key,
    /// every line's MAC).
    pub async fn audit_verify(&self) -> Result<VerifyReport> {
        let dir = tempfile::tempdir().context("audit verify: temp dir")?;
        let path = dir.path().join("audit.log");
        let mut text = String::new();
        let mut after = 0;
        loop {
            let batch = self.audit_lines(after, 10_000).await?;
            let Some((last, _)) = batch.last() else { break };
            after = *last;
            for (_, line) in &batch {
                text.push_str(line);
                text.push('\n');
            }
        }
        std::fs::write(&path, text).context("audit verify: temp file")?;
        let head = sqlx::query("SELECT seq, link, key_id, mac FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .context("store: read audit head")?;
        if let Some(head) = head {
            let seq: i64 = head.try_get("seq")?;
            crate::audit::write_stored_head(
                &path,
                u64::try_from(seq).unwrap_or(0),
                &head.try_get::<String, _>("link")?,
                head.try_get("key_id")?,
                head.try_get("mac")?,
            )
            .map_err(|e| anyhow::anyhow!("audit verify: {e}"))?;
        }
        crate::audit::verify_with(&path, self.key.as_deref())
            .map_err(|e| anyhow::anyhow!("audit verify: {e}"))
    }
}
