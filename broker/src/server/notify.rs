//! Notifications of new drift: the audit trail's webhook sink (a signed
//! CloudEvent, HMAC-SHA256 with the secret in `PLATFORM_NOTIFY_SECRET`,
//! spooled under `DATA/notify/` so an endpoint that is down loses nothing)
//! and Slack's incoming-webhook format (`{"text": …}`, through the same
//! spool). Events carry addresses, attributes and fingerprints, never values.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Result, anyhow};

use crate::audit::{Secret, Sink, Webhook};

/// Where notifications go (none: nothing is sent).
pub struct Notifier {
    sinks: Vec<Mutex<Webhook>>,
}

/// The environment variable holding the webhook's HMAC secret.
pub const SECRET_ENV: &str = "PLATFORM_NOTIFY_SECRET";

impl Notifier {
    pub fn new(data_dir: &Path, webhook: Option<&str>, slack: Option<&str>) -> Result<Notifier> {
        let timeout = std::time::Duration::from_secs(10);
        let mut sinks = Vec::new();
        if let Some(url) = webhook {
            let secret = std::env::var(SECRET_ENV)
                .ok()
                .filter(|s| s.len() >= 16)
                .ok_or_else(|| {
                    anyhow!(
                        "--notify-webhook needs {SECRET_ENV}: its HMAC secret, 16 bytes or more"
                    )
                })?;
            let sink = Webhook::new(
                "notify-webhook",
                url,
                Secret::new(secret.as_bytes()),
                &data_dir.join("notify/webhook"),
                timeout,
                3,
            )
            .map_err(|e| anyhow!("--notify-webhook: {e}"))?;
            sinks.push(Mutex::new(sink));
        }
        if let Some(url) = slack {
            let sink = Webhook::new(
                "notify-slack",
                url,
                Secret::new(b"unused: Slack authenticates by its URL"),
                &data_dir.join("notify/slack"),
                timeout,
                3,
            )
            .map_err(|e| anyhow!("--notify-slack: {e}"))?
            .with_slack(true);
            sinks.push(Mutex::new(sink));
        }
        Ok(Notifier { sinks })
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Sends one event to every sink (blocking: call off the async threads);
    /// a sink that fails keeps it spooled for the next event.
    pub fn send(&self, event: &serde_json::Value) {
        let line = event.to_string();
        for sink in &self.sinks {
            let Ok(mut sink) = sink.lock() else { continue };
            if let Err(e) = sink.send(std::slice::from_ref(&line)) {
                eprintln!("notify: {e}");
            }
        }
    }
}

/// The CloudEvent for new drift in a workspace.
pub fn drift_event(
    workspace: &str,
    run: &str,
    items: &[crate::store::drift::DriftItem],
    open: &[String],
) -> serde_json::Value {
    let open_items: Vec<_> = items
        .iter()
        .filter(|i| open.contains(&i.fingerprint))
        .collect();
    let mut summary = format!(
        "Drift in workspace {workspace}: {} attribute(s) changed outside Terraform",
        open_items.len()
    );
    for item in open_items.iter().take(10) {
        summary.push_str(&format!("\n• {} {}", item.address, item.attribute));
    }
    if open_items.len() > 10 {
        summary.push_str(&format!("\n… and {} more", open_items.len() - 10));
    }
    serde_json::json!({
        "specversion": "1.0",
        "type": "dev.platform.broker.drift.detected",
        "source": "platform-broker/serve",
        "id": uuid::Uuid::new_v4().to_string(),
        "time": crate::dates::rfc3339(crate::dates::now()),
        "datacontenttype": "application/json",
        "subject": workspace,
        "data": {
            "workspace": workspace,
            "run": run,
            "drifted": open_items,
            "summary": summary,
        }
    })
}
