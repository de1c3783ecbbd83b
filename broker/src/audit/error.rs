//! The audit module's one error type.
//!
//! Invariant: no `AuditError` ever carries an event's `data`, nor text taken
//! from a log line. Serde messages can quote the offending value (`invalid
//! type: string "…"`), so they are reduced to a position before they get here.

use std::fmt;
use std::path::{Path, PathBuf};

use super::BadEvent;

/// An error from opening, appending to, verifying or exporting an audit log.
///
/// Match on [`AuditError::kind`]; the message is for humans and may change.
#[derive(Debug)]
pub struct AuditError {
    kind: ErrorKind,
    path: PathBuf,
    detail: String,
    bad: Option<BadEvent>,
    source: Option<std::io::Error>,
}

/// What went wrong, stable enough to map to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading, writing, syncing or locking a file failed.
    Io,
    /// The log's last line has no terminating newline: a write was cut short
    /// (crash, full disk). [`super::repair_with`] cuts exactly that fragment.
    TornTail,
    /// The log has events but its head sidecar (`<log>.head`) is missing, so a
    /// cut at the end could not be detected.
    HeadMissing,
    /// The log and its head sidecar disagree, or the chain is broken, or
    /// (with a key) a line or the head does not authenticate: the log was
    /// edited, reordered, cut or extended outside the broker.
    Tampered,
    /// An event could not be encoded (for example the clock is out of range).
    Encode,
    /// `repair_with` was asked for something it cannot do safely (cut events
    /// that are not at the end, repair a keyed log without its key).
    Refused,
}

impl AuditError {
    pub(crate) fn new(kind: ErrorKind, path: &Path, detail: impl Into<String>) -> AuditError {
        AuditError {
            kind,
            path: path.to_path_buf(),
            detail: detail.into(),
            bad: None,
            source: None,
        }
    }

    pub(crate) fn io(path: &Path, what: &str, source: std::io::Error) -> AuditError {
        // The files are opened with O_NOFOLLOW: say plainly why that failed.
        let is_link =
            std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
        let detail = if is_link {
            format!("{what}: it is a symbolic link, which the broker never follows (remove it)")
        } else {
            what.to_owned()
        };
        AuditError {
            kind: ErrorKind::Io,
            path: path.to_path_buf(),
            detail,
            bad: None,
            source: Some(source),
        }
    }

    /// Replaces the message (keeping the kind, path and bad event).
    pub(crate) fn with_detail(mut self, detail: String) -> AuditError {
        self.detail = detail;
        self
    }

    /// Adds what to do about it.
    pub(crate) fn with_hint(mut self, hint: &str) -> AuditError {
        self.detail.push_str(" (");
        self.detail.push_str(hint);
        self.detail.push(')');
        self
    }

    pub(crate) fn tampered(path: &Path, bad: BadEvent) -> AuditError {
        let detail = format!("verification failed at line {}: {}", bad.line, bad.reason);
        AuditError {
            kind: ErrorKind::Tampered,
            path: path.to_path_buf(),
            detail,
            bad: Some(bad),
            source: None,
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// For [`ErrorKind::Tampered`] from a verification: the first bad event.
    pub fn bad_event(&self) -> Option<&BadEvent> {
        self.bad.as_ref()
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit log {}: {}", self.path.display(), self.detail)
    }
}

impl std::error::Error for AuditError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|error| error as &(dyn std::error::Error + 'static))
    }
}
