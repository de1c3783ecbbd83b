//! Workspace variables: Terraform input variables every run of a workspace
//! plans with. A sensitive one is write-only: set and deleted through the
//! API, never read back, never in a log or an audit event (events name the
//! variable only).

use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::Row;

use super::{Refused, Store, now_ms};

/// A variable as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Variable {
    pub name: String,
    /// The value; absent for a sensitive variable (write-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub sensitive: bool,
    pub updated_at: i64,
    pub updated_by: String,
}

/// The most bytes a value may have.
pub const MAX_VALUE: usize = 64 * 1024;

/// A Terraform variable name: a letter or `_`, then letters, digits, `_`
/// and `-`; at most 128 characters.
pub fn check_name(name: &str) -> Result<(), Refused> {
    let mut bytes = name.bytes();
    let ok = name.len() <= 128
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Refused::Invalid {
            field: "name",
            message: "a Terraform variable name: a letter or '_', then letters, digits, '_' \
                      and '-' (at most 128)"
                .into(),
        })
    }
}

impl Store {
    /// Sets (creates or replaces) a variable of `workspace`.
    pub async fn set_variable(
        &self,
        workspace: &str,
        name: &str,
        value: &str,
        sensitive: bool,
        who: &str,
    ) -> Result<std::result::Result<Variable, Refused>> {
        if let Err(refused) = check_name(name) {
            return Ok(Err(refused));
        }
        if value.len() > MAX_VALUE {
            return Ok(Err(Refused::Invalid {
                field: "value",
                message: format!("at most {MAX_VALUE} bytes"),
            }));
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO workspace_variables (workspace_id, name, value, sensitive, updated_at,
                 updated_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (workspace_id, name) DO UPDATE SET value = $3, sensitive = $4,
                 updated_at = $5, updated_by = $6",
        )
        .bind(workspace)
        .bind(name)
        .bind(value)
        .bind(i64::from(sensitive))
        .bind(now)
        .bind(who)
        .execute(&mut *tx)
        .await
        .context("store: set variable")?;
        self.audit_in(
            &mut tx,
            "variable.set",
            Some(workspace),
            serde_json::json!({"principal": who, "name": name, "sensitive": sensitive}),
        )
        .await?;
        tx.commit().await.context("store: commit variable")?;
        Ok(Ok(Variable {
            name: name.to_owned(),
            value: (!sensitive).then(|| value.to_owned()),
            sensitive,
            updated_at: now,
            updated_by: who.to_owned(),
        }))
    }

    /// Deletes a variable; false when there was none.
    pub async fn delete_variable(&self, workspace: &str, name: &str, who: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let deleted =
            sqlx::query("DELETE FROM workspace_variables WHERE workspace_id = $1 AND name = $2")
                .bind(workspace)
                .bind(name)
                .execute(&mut *tx)
                .await
                .context("store: delete variable")?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        self.audit_in(
            &mut tx,
            "variable.deleted",
            Some(workspace),
            serde_json::json!({"principal": who, "name": name}),
        )
        .await?;
        tx.commit().await.context("store: commit variable")?;
        Ok(true)
    }

    /// The workspace's variables as the API shows them (sensitive values
    /// left out), by name.
    pub async fn variables(&self, workspace: &str) -> Result<Vec<Variable>> {
        Ok(self
            .variable_rows(workspace)
            .await?
            .into_iter()
            .map(|(mut v, value)| {
                if !v.sensitive {
                    v.value = Some(value);
                }
                v
            })
            .collect())
    }

    /// Every variable's name and value, for a run (sensitive ones too).
    pub async fn variable_values(&self, workspace: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .variable_rows(workspace)
            .await?
            .into_iter()
            .map(|(v, value)| (v.name, value))
            .collect())
    }

    async fn variable_rows(&self, workspace: &str) -> Result<Vec<(Variable, String)>> {
        let rows = sqlx::query(
            "SELECT name, value, sensitive, updated_at, updated_by FROM workspace_variables
             WHERE workspace_id = $1 ORDER BY name",
        )
        .bind(workspace)
        .fetch_all(&self.pool)
        .await
        .context("store: list variables")?;
        rows.iter()
            .map(|r| {
                let sensitive: i64 = r.try_get("sensitive")?;
                Ok((
                    Variable {
                        name: r.try_get("name")?,
                        value: None,
                        sensitive: sensitive != 0,
                        updated_at: r.try_get("updated_at")?,
                        updated_by: r.try_get("updated_by")?,
                    },
                    r.try_get("value")?,
                ))
            })
            .collect()
    }
}
