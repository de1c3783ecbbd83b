//! The control plane's store: workspaces now; runs, state versions and the
//! queue next. One implementation on sqlx's Any driver over two databases:
//! SQLite (embedded, the default: a file under the server's data directory)
//! and PostgreSQL (`--store postgres://…`, so several servers share one
//! store). The SQL is written once, in the subset both speak (`$N`
//! parameters, `ON CONFLICT`, `RETURNING`, TEXT/BIGINT columns); where they
//! differ the `Dialect` says so at that one place.
//!
//! **Invariants:** the schema is migrated at open, in one transaction (on
//! PostgreSQL under an advisory lock, so two servers starting together
//! migrate once); a store whose schema is newer than this binary knows is
//! refused, never written. Times are Unix milliseconds (UTC).

pub mod audit;
pub mod configs;
pub mod drift;
pub mod runs;
pub mod state;
pub mod variables;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// The database behind a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The schema, one step per version, each a list of statements (`{blob}`:
/// the dialect's byte-string type); never edit a step that shipped, add one.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &["CREATE TABLE workspaces (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL UNIQUE,
            team        TEXT NOT NULL,
            environment TEXT NOT NULL,
            source_kind TEXT NOT NULL,
            git_url     TEXT,
            git_ref     TEXT,
            git_path    TEXT,
            policy      TEXT,
            pricebook   TEXT,
            catalog     TEXT,
            created_at  BIGINT NOT NULL,
            created_by  TEXT NOT NULL
        )"],
    ),
    (
        2,
        &[
            "CREATE TABLE state_versions (
                workspace_id TEXT NOT NULL REFERENCES workspaces (id),
                version      BIGINT NOT NULL,
                serial       BIGINT NOT NULL,
                lineage      TEXT NOT NULL,
                sha256       TEXT NOT NULL,
                created_at   BIGINT NOT NULL,
                created_by   TEXT NOT NULL,
                body         {blob} NOT NULL,
                PRIMARY KEY (workspace_id, version)
            )",
            "CREATE TABLE state_locks (
                workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id),
                lock_id      TEXT NOT NULL,
                info         TEXT NOT NULL,
                created_at   BIGINT NOT NULL,
                created_by   TEXT NOT NULL
            )",
        ],
    ),
    (
        3,
        &[
            "CREATE TABLE audit_events (
                seq        BIGINT PRIMARY KEY,
                line       TEXT NOT NULL,
                link       TEXT NOT NULL,
                created_at BIGINT NOT NULL
            )",
            "CREATE TABLE audit_head (
                id     INTEGER PRIMARY KEY CHECK (id = 1),
                seq    BIGINT NOT NULL,
                link   TEXT NOT NULL,
                key_id TEXT,
                mac    TEXT
            )",
        ],
    ),
    (
        4,
        &[
            "CREATE TABLE runs (
                id           TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id),
                number       BIGINT NOT NULL,
                status       TEXT NOT NULL,
                created_at   BIGINT NOT NULL,
                created_by   TEXT NOT NULL,
                updated_at   BIGINT NOT NULL,
                claimed_by   TEXT,
                lease_until  BIGINT,
                reason       TEXT,
                UNIQUE (workspace_id, number)
            )",
            "CREATE INDEX runs_by_status ON runs (status, created_at)",
        ],
    ),
    (5, &["ALTER TABLE runs ADD COLUMN plan_run TEXT"]),
    (
        6,
        &["CREATE TABLE run_logs (
            run_id TEXT NOT NULL REFERENCES runs (id),
            seq    BIGINT NOT NULL,
            phase  TEXT NOT NULL,
            line   TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )"],
    ),
    (
        7,
        &[
            "CREATE TABLE configurations (
                id           TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id),
                sha256       TEXT NOT NULL,
                size         BIGINT NOT NULL,
                files        BIGINT NOT NULL,
                created_at   BIGINT NOT NULL,
                created_by   TEXT NOT NULL,
                body         {blob} NOT NULL
            )",
            "ALTER TABLE runs ADD COLUMN configuration_id TEXT REFERENCES configurations (id)",
            "ALTER TABLE runs ADD COLUMN plan_exit BIGINT",
            "ALTER TABLE runs ADD COLUMN approved_by TEXT",
            "ALTER TABLE runs ADD COLUMN approval_reason TEXT",
            "CREATE TABLE workspace_variables (
                workspace_id TEXT NOT NULL REFERENCES workspaces (id),
                name         TEXT NOT NULL,
                value        TEXT NOT NULL,
                sensitive    BIGINT NOT NULL,
                updated_at   BIGINT NOT NULL,
                updated_by   TEXT NOT NULL,
                PRIMARY KEY (workspace_id, name)
            )",
        ],
    ),
    (
        8,
        &[
            "ALTER TABLE workspaces ADD COLUMN drift_schedule TEXT",
            "ALTER TABLE workspaces ADD COLUMN drift_next_at BIGINT",
            "ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'apply'",
            "CREATE TABLE drift_results (
                run_id       TEXT PRIMARY KEY REFERENCES runs (id),
                workspace_id TEXT NOT NULL REFERENCES workspaces (id),
                created_at   BIGINT NOT NULL,
                items        TEXT NOT NULL
            )",
            "CREATE TABLE drift_acks (
                workspace_id TEXT NOT NULL REFERENCES workspaces (id),
                fingerprint  TEXT NOT NULL,
                until_ms     BIGINT NOT NULL,
                reason       TEXT NOT NULL,
                created_at   BIGINT NOT NULL,
                created_by   TEXT NOT NULL,
                PRIMARY KEY (workspace_id, fingerprint)
            )",
        ],
    ),
    (
        9,
        &["ALTER TABLE runs ADD COLUMN destroy BIGINT NOT NULL DEFAULT 0"],
    ),
    (10, &["ALTER TABLE runs ADD COLUMN planned_on TEXT"]),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// A key for PostgreSQL's advisory lock around migrations ("platform" in ASCII).
const MIGRATION_LOCK: i64 = 0x706c_6174_666f_726d;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite's writers, one at a time (see `begin_write`).
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Seals the audit chain's events (`store/audit.rs`) when set.
    key: Option<std::sync::Arc<crate::key::BrokerKey>>,
}

/// A write transaction (`Store::begin_write`): derefs to its connection, so
/// `&mut *tx` executes in it; dropped without `commit`, it rolls back.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    /// SQLite's write gate, held until the transaction ends.
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// Where a workspace's configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// A git repository the server clones: any URL git takes (`file://` too).
    Git {
        /// `https://`, `http://`, `ssh://`, `file://` or `git@host:path`; no
        /// space or control characters (git's other transports, `ext::` among
        /// them, are refused).
        #[schema(
            min_length = 1,
            max_length = 2048,
            pattern = r"^((https|http|ssh|file)://([^/@:\x00-\x20\x7f-\x9f]*@)?[^/@\x00-\x20\x7f-\x9f]*(/[^\x00-\x20\x7f-\x9f]*)?|git@[^\x00-\x20\x7f-\x9f]+)$"
        )]
        url: String,
        /// Branch, tag or commit (default: the remote's HEAD).
        #[serde(default, skip_serializing_if = "Option::is_none", rename = "ref")]
        #[schema(
            min_length = 1,
            max_length = 256,
            pattern = r"^[^-\x00-\x20\x7f-\x9f][^\x00-\x20\x7f-\x9f]*$"
        )]
        reference: Option<String>,
        /// The Terraform directory inside the repository (default: its root):
        /// `/`-separated names of letters, digits, `.`, `_` and `-`, none
        /// starting with `.` (so never `..`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(
            min_length = 1,
            max_length = 1024,
            pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
        )]
        path: Option<String>,
    },
    /// Configuration versions uploaded by `platform-broker plan DIR --server URL`.
    Upload {},
}

/// A workspace as created through the API.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    /// Lowercase letters, digits, `-` and `_`; 1-64 characters; unique.
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub name: String,
    /// The owning team (same characters as the name).
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub team: String,
    /// The environment its runs are evaluated for (`production`, …).
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub environment: String,
    pub source: Source,
    /// Policy configuration (HCL): a name under the server's `DATA/config/`; default: none.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
    )]
    pub policy: Option<String>,
    /// Price book: a name under the server's `DATA/config/`; default: the embedded one.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
    )]
    pub pricebook: Option<String>,
    /// Catalog directory: a name under the server's `DATA/config/`; default: the embedded catalog.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
    )]
    pub catalog: Option<String>,
}

/// A stored workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub team: String,
    pub environment: String,
    pub source: Source,
    pub policy: Option<String>,
    pub pricebook: Option<String>,
    pub catalog: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The principal that created it.
    pub created_by: String,
}

/// Why a write was refused: the caller's doing, not the store's.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("a workspace named {0:?} exists")]
    Exists(String),
}

fn check_label(field: &'static str, value: &str) -> Result<(), Refused> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && value.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Refused::Invalid {
            field,
            message: "1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit".into(),
        })
    }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Refused> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Refused::Invalid {
            field,
            message: format!("1-{max} characters, no control characters"),
        });
    }
    Ok(())
}

impl NewWorkspace {
    /// Every field's rule, with the field's path in the error.
    pub fn check(&self) -> Result<(), Refused> {
        check_label("name", &self.name)?;
        check_label("team", &self.team)?;
        check_label("environment", &self.environment)?;
        if let Source::Git {
            url,
            reference,
            path,
        } = &self.source
        {
            check_text("source.url", url, 2048)?;
            let plain =
                |v: &str| !v.starts_with('-') && !v.chars().any(|c| c <= ' ' || c.is_control());
            // The same pattern as the schema's: https/http/ssh/file URLs
            // (user names but no passwords in them) or git@host:path.
            if !git_url_ok(url) {
                return Err(Refused::Invalid {
                    field: "source.url",
                    message: "a git URL: https://, http://, ssh://, file:// or git@host:path, \
                              without spaces and without a password (give the server its git \
                              credentials: a credential helper, an SSH key)"
                        .into(),
                });
            }
            if let Some(reference) = reference {
                check_text("source.ref", reference, 256)?;
                if !plain(reference) {
                    return Err(Refused::Invalid {
                        field: "source.ref",
                        message: "not a git ref (no leading '-', no spaces)".into(),
                    });
                }
            }
            if let Some(path) = path {
                check_text("source.path", path, 1024)?;
                if !relative_name(path) {
                    return Err(Refused::Invalid {
                        field: "source.path",
                        message: "a relative path inside the repository: '/'-separated names \
                                  of letters, digits, '.', '_' and '-', none starting with '.'"
                            .into(),
                    });
                }
            }
        }
        for (field, value) in [
            ("policy", &self.policy),
            ("pricebook", &self.pricebook),
            ("catalog", &self.catalog),
        ] {
            if let Some(value) = value {
                check_text(field, value, 1024)?;
                if !relative_name(value) {
                    return Err(Refused::Invalid {
                        field,
                        message: "a name under the server's config directory: '/'-separated \
                                  names of letters, digits, '.', '_' and '-', none starting \
                                  with '.'"
                            .into(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// `Source::Git.url`'s rule (also its schema `pattern`).
pub const GIT_URL_PATTERN: &str = r"^((https|http|ssh|file)://([^/@:\x00-\x20\x7f-\x9f]*@)?[^/@\x00-\x20\x7f-\x9f]*(/[^\x00-\x20\x7f-\x9f]*)?|git@[^\x00-\x20\x7f-\x9f]+)$";

fn git_url_ok(url: &str) -> bool {
    static RE: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(GIT_URL_PATTERN).ok());
    RE.as_ref().is_some_and(|re| re.is_match(url))
}

/// `/`-separated names of letters, digits, `.`, `_` and `-`, none starting
/// with `.` (so never `..`, never absolute).
fn relative_name(path: &str) -> bool {
    path.split('/').all(|n| {
        !n.is_empty()
            && !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    })
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Opens (creating when needed) and migrates the store at `url`:
    /// `sqlite:///path/platform.db` or `postgres://user@host/db`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            bail!(
                "--store: expected postgres://… or sqlite://…, got {:?}",
                redact_url(url)
            );
        };
        let url = match dialect {
            // Create the file when missing.
            Dialect::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            // While the database is away, a request fails fast (a JSON 500)
            // instead of waiting sqlx's default 30 s for a connection.
            .acquire_timeout(std::time::Duration::from_secs(5))
            .max_connections(match dialect {
                // One writer at a time (the write gate); readers alongside.
                Dialect::Sqlite => 8,
                Dialect::Postgres => 16,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the store {}", redact_url(&url)))?;
        let store = Store {
            pool,
            dialect,
            gate: Default::default(),
            key: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Audit events from now on are sealed with `key` (the broker key).
    pub fn with_key(mut self, key: Option<crate::key::BrokerKey>) -> Store {
        self.key = key.map(std::sync::Arc::new);
        self
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The schema version the store is at.
    pub async fn schema_version(&self) -> Result<i64> {
        let row = sqlx::query("SELECT version FROM platform_schema WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .context("reading the store's schema version")?;
        Ok(row.try_get::<i64, _>("version")?)
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// BEGIN (`IMMEDIATE`), so it waits its turn (busy_timeout) instead of
    /// failing when a read would have to become a write under another writer.
    ///
    /// On SQLite, writers also queue in this process first (the write gate,
    /// first come first served) and take a connection only when it is their
    /// turn: a writer waiting in SQLite's busy handler would hold one of the
    /// pool's connections and starve the readers.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx> {
        let (tx, gate) = match self.dialect {
            Dialect::Sqlite => {
                let gate = self.gate.clone().lock_owned().await;
                (self.pool.begin_with("BEGIN IMMEDIATE").await, Some(gate))
            }
            Dialect::Postgres => (self.pool.begin().await, None),
        };
        Ok(WriteTx {
            tx: tx.context("store: begin a transaction")?,
            _gate: gate,
        })
    }

    /// ` FOR UPDATE` on PostgreSQL (row locks until commit); nothing on
    /// SQLite, where `begin_write` already holds the only write lock.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.begin_write().await.context("store: begin migration")?;
        if self.dialect == Dialect::Postgres {
            // (The lock's void result stays inside: the Any driver decodes no void.)
            sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await
                .context("store: migration lock")?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS platform_schema (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                version BIGINT NOT NULL
            )",
        )
        .execute(&mut *tx)
        .await
        .context("store: schema table")?;
        sqlx::query(
            "INSERT INTO platform_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        )
        .execute(&mut *tx)
        .await
        .context("store: schema row")?;
        let current: i64 = sqlx::query("SELECT version FROM platform_schema WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        if current > SCHEMA_VERSION {
            bail!(
                "the store's schema is at version {current}, newer than this platform-broker \
                 knows ({SCHEMA_VERSION}): run a newer platform-broker (nothing was written)"
            );
        }
        let blob = match self.dialect {
            Dialect::Sqlite => "BLOB",
            Dialect::Postgres => "BYTEA",
        };
        for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            for sql in *statements {
                sqlx::query(&sql.replace("{blob}", blob))
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("store: migration {version}"))?;
            }
            sqlx::query("UPDATE platform_schema SET version = $1 WHERE id = 1")
                .bind(*version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.context("store: commit migration")?;
        Ok(())
    }

    /// Creates a workspace; `Refused` when invalid or the name is taken.
    pub async fn create_workspace(
        &self,
        new: &NewWorkspace,
        principal: &str,
    ) -> Result<std::result::Result<Workspace, Refused>> {
        if let Err(refused) = new.check() {
            return Ok(Err(refused));
        }
        let (kind, url, reference, path) = match &new.source {
            Source::Git {
                url,
                reference,
                path,
            } => ("git", Some(url.clone()), reference.clone(), path.clone()),
            Source::Upload {} => ("upload", None, None, None),
        };
        let workspace = Workspace {
            id: uuid::Uuid::new_v4().to_string(),
            name: new.name.clone(),
            team: new.team.clone(),
            environment: new.environment.clone(),
            source: new.source.clone(),
            policy: new.policy.clone(),
            pricebook: new.pricebook.clone(),
            catalog: new.catalog.clone(),
            created_at: now_ms(),
            created_by: principal.to_owned(),
        };
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO workspaces (id, name, team, environment, source_kind, git_url, git_ref,
                 git_path, policy, pricebook, catalog, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&workspace.id)
        .bind(&workspace.name)
        .bind(&workspace.team)
        .bind(&workspace.environment)
        .bind(kind)
        .bind(url)
        .bind(reference)
        .bind(path)
        .bind(&workspace.policy)
        .bind(&workspace.pricebook)
        .bind(&workspace.catalog)
        .bind(workspace.created_at)
        .bind(&workspace.created_by)
        .execute(&mut *tx)
        .await
        .context("store: insert workspace")?;
        if inserted.rows_affected() == 0 {
            return Ok(Err(Refused::Exists(new.name.clone())));
        }
        self.audit_in(
            &mut tx,
            "workspace.created",
            Some(&workspace.name),
            serde_json::json!({
                "principal": principal,
                "workspace": workspace.name,
                "id": workspace.id,
                "team": workspace.team,
                "environment": workspace.environment,
                "source": workspace.source,
            }),
        )
        .await?;
        tx.commit().await.context("store: commit workspace")?;
        Ok(Ok(workspace))
    }

    pub async fn workspace(&self, name: &str) -> Result<Option<Workspace>> {
        let row = sqlx::query(&format!("{SELECT_WORKSPACE} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .context("store: read workspace")?;
        row.map(|r| workspace_from(&r)).transpose()
    }

    pub async fn workspace_by_id(&self, id: &str) -> Result<Option<Workspace>> {
        let row = sqlx::query(&format!("{SELECT_WORKSPACE} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context("store: read workspace")?;
        row.map(|r| workspace_from(&r)).transpose()
    }

    /// Every workspace, by name.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>> {
        let rows = sqlx::query(&format!("{SELECT_WORKSPACE} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .context("store: list workspaces")?;
        rows.iter().map(workspace_from).collect()
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

const SELECT_WORKSPACE: &str = "SELECT id, name, team, environment, source_kind, git_url, git_ref,
    git_path, policy, pricebook, catalog, created_at, created_by FROM workspaces";

fn workspace_from(row: &AnyRow) -> Result<Workspace> {
    let kind: String = row.try_get("source_kind")?;
    let source = match kind.as_str() {
        "git" => Source::Git {
            url: row
                .try_get::<Option<String>, _>("git_url")?
                .unwrap_or_default(),
            reference: row.try_get("git_ref")?,
            path: row.try_get("git_path")?,
        },
        "upload" => Source::Upload {},
        other => bail!("store: workspace source kind {other:?} unknown"),
    };
    Ok(Workspace {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        team: row.try_get("team")?,
        environment: row.try_get("environment")?,
        source,
        policy: row.try_get("policy")?,
        pricebook: row.try_get("pricebook")?,
        catalog: row.try_get("catalog")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

/// A store URL without its password (userinfo or `password=` in the
/// query), for messages.
pub fn redact_url(url: &str) -> String {
    let url = redact_userinfo(url);
    match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url,
    }
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redact_url("postgres://platform:s3cret@db:5432/platform"),
            "postgres://platform:***@db:5432/platform"
        );
        assert_eq!(
            redact_url("postgres://db/platform"),
            "postgres://db/platform"
        );
        assert_eq!(
            redact_url("sqlite:///x/platform.db"),
            "sqlite:///x/platform.db"
        );
    }

    #[test]
    fn new_workspaces_are_checked_field_by_field() {
        let good = NewWorkspace {
            name: "orders-prod".into(),
            team: "checkout".into(),
            environment: "production".into(),
            source: Source::Git {
                url: "file:///srv/infra.git".into(),
                reference: Some("main".into()),
                path: Some("infra/orders".into()),
            },
            policy: None,
            pricebook: None,
            catalog: None,
        };
        good.check().expect("valid");
        type Edit = Box<dyn Fn(&mut NewWorkspace)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|w| w.name = "Orders".into()), "name:"),
            (Box::new(|w| w.name = String::new()), "name:"),
            (Box::new(|w| w.team = "a b".into()), "team:"),
            (Box::new(|w| w.environment = "x".repeat(65)), "environment:"),
            (
                Box::new(|w| {
                    w.source = Source::Git {
                        url: "--upload-pack=evil".into(),
                        reference: None,
                        path: None,
                    }
                }),
                "source.url:",
            ),
            (
                Box::new(|w| {
                    w.source = Source::Git {
                        url: "ext::sh%20-c%20id".into(),
                        reference: None,
                        path: None,
                    }
                }),
                "source.url:",
            ),
            (
                Box::new(|w| {
                    w.source = Source::Git {
                        url: "file:///x".into(),
                        reference: Some("-x".into()),
                        path: None,
                    }
                }),
                "source.ref:",
            ),
            (
                Box::new(|w| {
                    w.source = Source::Git {
                        url: "file:///x".into(),
                        reference: None,
                        path: Some("../etc".into()),
                    }
                }),
                "source.path:",
            ),
            (Box::new(|w| w.policy = Some("a\nb".into())), "policy:"),
        ];
        for (edit, needle) in cases {
            let mut w = good.clone();
            edit(&mut w);
            let error = w.check().expect_err(needle).to_string();
            assert!(error.starts_with(needle), "{needle}: {error}");
        }
    }

    #[test]
    fn git_urls_take_no_password_and_no_other_transport() {
        for ok in [
            "https://github.com/acme/infra.git",
            "https://ci@github.com/acme/infra.git",
            "http://git.internal:8080/infra",
            "ssh://git@git.internal:2222/infra.git",
            "file:///srv/infra.git",
            "git@github.com:acme/infra.git",
        ] {
            assert!(git_url_ok(ok), "{ok}");
        }
        for bad in [
            "https://user:token@github.com/acme/infra.git",
            "ext::sh -c id",
            "ext::sh%20-c%20id",
            "--upload-pack=touch /tmp/x",
            "/srv/infra.git",
            "https://github.com/acme/in fra",
            "fd::17",
        ] {
            assert!(!git_url_ok(bad), "{bad}");
        }
    }

    #[test]
    fn sources_read_as_documented() {
        let git: Source =
            serde_json::from_str(r#"{"kind":"git","url":"file:///r","ref":"main"}"#).expect("git");
        assert_eq!(
            git,
            Source::Git {
                url: "file:///r".into(),
                reference: Some("main".into()),
                path: None
            }
        );
        let upload: Source = serde_json::from_str(r#"{"kind":"upload"}"#).expect("upload");
        assert_eq!(upload, Source::Upload {});
        assert!(serde_json::from_str::<Source>(r#"{"kind":"git"}"#).is_err());
        assert!(serde_json::from_str::<Source>(r#"{"kind":"upload","x":1}"#).is_err());
    }
}
