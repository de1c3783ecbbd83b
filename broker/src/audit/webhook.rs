//! The webhook sink: every audit line POSTed to an HTTP endpoint, signed,
//! through a durable spool.
//!
//! The key decision: spool first, deliver second. A line the file log
//! acknowledged is appended (and fsynced) to the webhook's spool before any
//! delivery is tried, and leaves the spool only when the endpoint answered
//! 2xx. So a down endpoint, a refused request or a crash mid-delivery loses
//! nothing: the next run (or `platform-broker audit flush`) delivers what is
//! left, oldest first, and stops at the first failure so order is kept.
//! Delivery is at least once: a crash after the endpoint accepted an event
//! and before the cursor moved sends it again, and receivers deduplicate by
//! the event's CloudEvents `id` (a line's `platformseq` orders them).
//!
//! The request body is the log line byte for byte (a structured-mode
//! CloudEvent), so a receiver can check the chain too: each line's
//! `platformseq` and its `platformprev` against the previous line (its
//! SHA-256, or for a keyed line its `platformmac`); with the broker key it
//! can also check every keyed line's `platformmac`. The signature is
//! `X-Platform-Signature: sha256=<hex HMAC-SHA256 of the body>` (GitHub's
//! scheme); `X-Platform-Timestamp` is the delivery time (unix seconds). The
//! body's own `time` and `id` are inside the signature.
//!
//! Spool layout (`<home>/audit-spool/<name>/` by default): `pending.jsonl`
//! (appended lines), `cursor` (bytes of it delivered), `lock` (flock held by
//! appends and flushes, so concurrent brokers keep one order).
//!
//! Secrets: the HMAC secret is read from the environment variable the
//! configuration names, kept in [`Secret`] (whose `Debug` is redacted), and
//! used only to sign. Messages name the webhook, never its URL (a URL may
//! carry a token) and never the secret.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use crate::http::{HttpsClient, describe_error};

use super::log::Sink;
use crate::config::WebhookConfig;

/// First pause between attempts; doubled after each failure.
const BACKOFF: Duration = Duration::from_millis(200);

/// The HMAC secret. `Debug` never shows it.
pub struct Secret(ring::hmac::Key);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn new(bytes: &[u8]) -> Secret {
        Secret(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes))
    }

    /// `sha256=<hex>` of `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let tag = ring::hmac::sign(&self.0, body);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(tag.as_ref());
        format!("sha256={}", super::event::hex(&bytes))
    }
}

/// Why a webhook could not be set up. Never carries the secret or the URL.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "audit webhook \"{name}\": the environment variable {var} (its HMAC secret) is not set or empty"
    )]
    NoSecret { name: String, var: String },
    #[error("audit webhook \"{name}\": invalid url")]
    Url { name: String },
    #[error("audit webhook \"{name}\": spool {path}: {source}")]
    Spool {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit webhook \"{name}\": {message}")]
    Setup { name: String, message: String },
}

/// What one flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub delivered: usize,
    /// Lines still in the spool afterwards.
    pub pending: usize,
    /// Why delivery stopped, when it did.
    pub error: Option<String>,
}

/// One configured webhook: its spool, its HTTP client and its secret.
pub struct Webhook {
    name: String,
    url: hyper::Uri,
    secret: Secret,
    spool: Spool,
    timeout: Duration,
    attempts: u32,
    runtime: tokio::runtime::Runtime,
    client: HttpsClient,
    /// Print a warning to stderr when a delivery fails (the CLI does).
    warn: bool,
    /// Deliver in Slack's incoming-webhook format instead (`with_slack`).
    slack: bool,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("spool", &self.spool.dir)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Sets up a webhook from its configuration, reading the secret from the
    /// environment; `default_spool` is used when the configuration sets none.
    pub fn from_config(
        config: &WebhookConfig,
        default_spool: &Path,
    ) -> Result<Webhook, WebhookError> {
        let secret = std::env::var(&config.secret_env)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| WebhookError::NoSecret {
                name: config.name.clone(),
                var: config.secret_env.clone(),
            })?;
        let spool = config
            .spool
            .clone()
            .unwrap_or_else(|| default_spool.to_path_buf());
        Webhook::new(
            &config.name,
            &config.url,
            Secret::new(secret.as_bytes()),
            &spool,
            config.timeout,
            config.attempts,
        )
    }

    pub fn new(
        name: &str,
        url: &str,
        secret: Secret,
        spool_dir: &Path,
        timeout: Duration,
        attempts: u32,
    ) -> Result<Webhook, WebhookError> {
        let url: hyper::Uri = url.parse().map_err(|_| WebhookError::Url {
            name: name.to_owned(),
        })?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(WebhookError::Url {
                name: name.to_owned(),
            });
        }
        let spool = Spool::open(spool_dir).map_err(|source| WebhookError::Spool {
            name: name.to_owned(),
            path: spool_dir.to_path_buf(),
            source,
        })?;
        let setup = |message: String| WebhookError::Setup {
            name: name.to_owned(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup(format!("cannot start the async runtime: {e}")))?;
        let client = crate::http::https_client(timeout).map_err(setup)?;
        Ok(Webhook {
            name: name.to_owned(),
            url,
            secret,
            spool,
            timeout,
            attempts: attempts.max(1),
            runtime,
            client,
            warn: false,
            slack: false,
        })
    }

    /// Deliver each spooled event as a Slack incoming-webhook message
    /// (`{"text": …}`, the event's `data.summary`, or its `type`) instead of
    /// the signed CloudEvent: Slack authenticates by its URL.
    #[must_use]
    pub fn with_slack(mut self, on: bool) -> Webhook {
        self.slack = on;
        self
    }

    /// Also print a one-line warning to stderr when delivery stops.
    #[must_use]
    pub fn with_warnings(mut self, on: bool) -> Webhook {
        self.warn = on;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spool_dir(&self) -> &Path {
        &self.spool.dir
    }

    /// Delivers every spooled line, oldest first; stops at the first line the
    /// endpoint does not accept after all attempts.
    pub fn flush(&mut self) -> std::io::Result<FlushReport> {
        let _lock = self.spool.lock()?;
        let (mut cursor, lines) = self.spool.pending()?;
        let mut report = FlushReport {
            pending: lines.len(),
            ..FlushReport::default()
        };
        for line in &lines {
            match self.deliver(line) {
                Ok(()) => {
                    cursor += line.len() as u64 + 1;
                    self.spool.set_cursor(cursor)?;
                    report.delivered += 1;
                    report.pending -= 1;
                }
                Err(error) => {
                    report.error = Some(error);
                    break;
                }
            }
        }
        if report.pending == 0 && report.delivered > 0 {
            self.spool.compact()?;
        }
        Ok(report)
    }

    /// POSTs one line, with `attempts` tries and doubling backoff.
    fn deliver(&self, line: &str) -> Result<(), String> {
        let mut pause = BACKOFF;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.post_once(line) {
                Ok(()) => return Ok(()),
                Err(error) => last = error,
            }
            if attempt < self.attempts {
                std::thread::sleep(pause);
                pause *= 2;
            }
        }
        Err(format!("{last} (after {} attempt(s))", self.attempts))
    }

    /// The line as a signed structured-mode CloudEvent.
    fn signed_request(
        &self,
        line: &str,
        timestamp: u64,
    ) -> Result<hyper::Request<Full<Bytes>>, String> {
        let body = Bytes::copy_from_slice(line.as_bytes());
        hyper::Request::post(self.url.clone())
            .header("content-type", "application/cloudevents+json")
            .header(
                "user-agent",
                concat!("platform-broker/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-platform-signature", self.secret.sign(&body))
            .header("x-platform-timestamp", timestamp.to_string())
            .body(Full::new(body))
            .map_err(|_| "cannot build the request".to_owned())
    }

    fn post_once(&self, line: &str) -> Result<(), String> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let request = if self.slack {
            let event: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let text = event
                .pointer("/data/summary")
                .or_else(|| event.get("type"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("platform-broker event");
            let body = serde_json::json!({ "text": text }).to_string();
            hyper::Request::post(self.url.clone())
                .header("content-type", "application/json")
                .header(
                    "user-agent",
                    concat!("platform-broker/", env!("CARGO_PKG_VERSION")),
                )
                .body(Full::new(Bytes::from(body)))
                .map_err(|_| "cannot build the request".to_owned())?
        } else {
            self.signed_request(line, timestamp)?
        };
        let timeout = self.timeout;
        self.runtime.block_on(async {
            let call = async {
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| describe_error(&e))?;
                let status = response.status();
                // Read the (small) body so the connection can be reused.
                let _ = response.into_body().collect().await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("the endpoint answered {status}"))
                }
            };
            match tokio::time::timeout(timeout, call).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        })
    }
}

impl Sink for Webhook {
    fn send(&mut self, lines: &[String]) -> std::io::Result<()> {
        self.spool.append(lines)?;
        let report = self.flush()?;
        match report.error {
            None => Ok(()),
            Some(error) => {
                let message = format!(
                    "audit webhook \"{}\": {error}; {} event(s) kept in the spool {} (the next run or `platform-broker audit flush` delivers them)",
                    self.name,
                    report.pending,
                    self.spool.dir.display()
                );
                if self.warn {
                    eprintln!("platform-broker: warning: {message}");
                }
                Err(std::io::Error::other(message))
            }
        }
    }
}

/// The durable queue of lines not yet delivered.
struct Spool {
    dir: PathBuf,
    pending: PathBuf,
    cursor: PathBuf,
    lock_file: File,
}

struct SpoolLock<'a>(&'a File);

impl Drop for SpoolLock<'_> {
    fn drop(&mut self) {
        super::log::unlock(self.0);
    }
}

impl Spool {
    /// Every file here is opened without following a symlink, and the
    /// directory itself must not be one.
    fn open(dir: &Path) -> std::io::Result<Spool> {
        crate::fsx::ensure_dir(dir, 0o700)?;
        let lock_file = crate::fsx::open_rw(&dir.join("lock"), 0o600)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            pending: dir.join("pending.jsonl"),
            cursor: dir.join("cursor"),
            lock_file,
        })
    }

    fn lock(&self) -> std::io::Result<SpoolLock<'_>> {
        super::log::lock(&self.lock_file, &self.dir).map_err(std::io::Error::other)?;
        Ok(SpoolLock(&self.lock_file))
    }

    /// Appends lines durably (fsync before returning).
    fn append(&self, lines: &[String]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let mut buf = Vec::new();
        for line in lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        let mut file = crate::fsx::open_append(&self.pending, 0o600)?;
        file.write_all(&buf)?;
        file.sync_data()
    }

    fn read_cursor(&self) -> std::io::Result<u64> {
        match crate::fsx::read_to_string(&self.cursor) {
            Ok(text) => text.trim().parse().map_err(|_| {
                std::io::Error::other(format!("{} is not a byte offset", self.cursor.display()))
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(error) => Err(error),
        }
    }

    /// The cursor and the complete lines after it. A torn last line (a crash
    /// during an append) is not offered; the file log still has the event.
    fn pending(&self) -> std::io::Result<(u64, Vec<String>)> {
        let cursor = self.read_cursor()?;
        let mut file = match crate::fsx::open_read(&self.pending) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok((0, Vec::new()));
            }
            Err(error) => return Err(error),
        };
        let len = file.metadata()?.len();
        if cursor > len {
            return Err(std::io::Error::other(format!(
                "{}: the cursor ({cursor}) is past the end ({len})",
                self.dir.display()
            )));
        }
        file.seek(SeekFrom::Start(cursor))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let complete = text.rfind('\n').map_or(0, |idx| idx + 1);
        let lines = text[..complete].lines().map(str::to_owned).collect();
        Ok((cursor, lines))
    }

    /// A uniquely named temporary file renamed over `cursor` (a rename
    /// replaces a symlink, never writes through it), directory synced.
    fn set_cursor(&self, cursor: u64) -> std::io::Result<()> {
        crate::fsx::write_atomic(&self.cursor, cursor.to_string().as_bytes(), 0o600)
    }

    /// Everything was delivered: start the files over. The cursor goes to
    /// zero first, so a crash in between re-sends (duplicates, which receivers
    /// drop by id) rather than skipping anything.
    fn compact(&self) -> std::io::Result<()> {
        self.set_cursor(0)?;
        let file = crate::fsx::open_rw(&self.pending, 0o600)?;
        file.set_len(0)?;
        file.sync_all()
    }
}

#[cfg(test)]
mod tests;
