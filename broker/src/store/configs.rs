//! Uploaded configuration versions: the gzipped tars `plan DIR --server URL`
//! sends, kept in the store (so every server sharing it can run them) and
//! never served back through the API.

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::Digest;
use sqlx::Row;

use super::{Store, now_ms};
use crate::key::hex;

/// A configuration version as stored (without its bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Configuration {
    pub id: String,
    pub workspace_id: String,
    /// SHA-256 of the uploaded archive, hex.
    pub sha256: String,
    /// Bytes of the archive.
    pub size: i64,
    /// Files it unpacks to.
    pub files: i64,
    pub created_at: i64,
    pub created_by: String,
}

fn configuration_from(row: &sqlx::any::AnyRow) -> Result<Configuration> {
    Ok(Configuration {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        files: row.try_get("files")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

impl Store {
    /// Stores an archive (already checked by `archive::check`) as a new
    /// configuration version of `workspace`.
    pub async fn add_configuration(
        &self,
        workspace: &str,
        who: &str,
        body: &[u8],
        files: usize,
    ) -> Result<Configuration> {
        let config = Configuration {
            id: uuid::Uuid::new_v4().to_string(),
            workspace_id: workspace.to_owned(),
            sha256: hex(&sha2::Sha256::digest(body)),
            size: i64::try_from(body.len()).unwrap_or(i64::MAX),
            files: i64::try_from(files).unwrap_or(i64::MAX),
            created_at: now_ms(),
            created_by: who.to_owned(),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO configurations (id, workspace_id, sha256, size, files, created_at,
                 created_by, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&config.id)
        .bind(&config.workspace_id)
        .bind(&config.sha256)
        .bind(config.size)
        .bind(config.files)
        .bind(config.created_at)
        .bind(&config.created_by)
        .bind(body)
        .execute(&mut *tx)
        .await
        .context("store: insert configuration")?;
        self.audit_in(
            &mut tx,
            "configuration.uploaded",
            Some(workspace),
            serde_json::json!({"principal": who, "configuration": config.id,
                               "sha256": config.sha256, "size": config.size}),
        )
        .await?;
        tx.commit().await.context("store: commit configuration")?;
        Ok(config)
    }

    /// A configuration version's record.
    pub async fn configuration(&self, id: &str) -> Result<Option<Configuration>> {
        let row = sqlx::query(
            "SELECT id, workspace_id, sha256, size, files, created_at, created_by
             FROM configurations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context("store: read configuration")?;
        row.as_ref().map(configuration_from).transpose()
    }

    /// A configuration version's archive, checked against its digest.
    pub async fn configuration_body(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT sha256, body FROM configurations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("store: read configuration")?;
        let Some(row) = row else { return Ok(None) };
        let want: String = row.try_get("sha256")?;
        let body: Vec<u8> = row.try_get("body")?;
        anyhow::ensure!(
            hex(&sha2::Sha256::digest(&body)) == want,
            "store: configuration {id} does not match its digest (changed in the store)"
        );
        Ok(Some(body))
    }
}
