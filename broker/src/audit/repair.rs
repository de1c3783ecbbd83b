//! [`repair_with`]: the one documented exception to append-only.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::error::{AuditError, ErrorKind};
use super::event::{ChainFields, NameFields};
use super::log::{self, Sidecar};
use super::verify::{self, Position, ScanSpec};
use crate::key::BrokerKey;

/// What [`repair_with`] does with events that lie beyond the head (or in the
/// range the head records as never adopted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RepairMode {
    /// Takes them into the chain: the head moves to the log's last event and
    /// the pending range is cleared. With a key, only when every one of them
    /// authenticates with it.
    #[default]
    Adopt,
    /// Removes them from the log, which is only possible when nothing
    /// adopted follows them (they are at the end).
    Cut,
}

/// An event [`repair_with`] adopted or cut.
///
/// `id` and `type_` are shown only when they look like what the broker
/// writes (hex-and-dash ids, dotted type names); anything else reads
/// `(malformed)`, so a forged line cannot smuggle text into a terminal or a
/// report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairedEvent {
    /// `None` for a cut line that is not a valid audit event.
    pub seq: Option<u64>,
    pub id: String,
    pub type_: String,
}

/// Exactly what [`repair_with`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Bytes of an incomplete last line cut (a write torn by a crash).
    pub torn_bytes: u64,
    /// Events taken into the chain ([`RepairMode::Adopt`]), in log order.
    pub adopted: Vec<RepairedEvent>,
    /// Lines removed from the log ([`RepairMode::Cut`]), in log order.
    pub cut: Vec<RepairedEvent>,
}

impl RepairReport {
    /// Whether the repair changed nothing.
    pub fn is_empty(&self) -> bool {
        self.torn_bytes == 0 && self.adopted.is_empty() && self.cut.is_empty()
    }
}

/// Cuts an incomplete last line (a write torn by a crash) off the log, and
/// returns how many bytes were cut (0 when the log ends with a newline).
/// Nothing else: [`repair_with`] also adopts or cuts events beyond the head.
pub fn repair(path: &Path) -> Result<u64, AuditError> {
    let file = open_existing(path)?;
    log::lock(&file, path)?;
    let result = (|| {
        let tail = log::last_lines(&file, path, 0)?;
        cut_torn(&file, path, tail.len, tail.fragment)?;
        Ok(tail.fragment)
    })();
    log::unlock(&file);
    result
}

/// Repairs what a crash (or someone appending) leaves in the log: cuts an
/// incomplete last line, then adopts ([`RepairMode::Adopt`]) or cuts
/// ([`RepairMode::Cut`]) the events that lie beyond the head or in the range
/// the head records as never adopted, and says exactly what it did.
///
/// This, with the rollback of a failed append, is the single code path that
/// breaks the log's append-only semantics, by design: it removes only bytes
/// no append acknowledged (a torn line) or lines no broker command adopted,
/// and the caller records the repair as an audit event of its own.
///
/// Refuses (nothing changed but a torn line):
/// - [`ErrorKind::Tampered`] when the chain up to what it would vouch for is
///   broken or edited, when (with a key) the head or the event it covers does
///   not authenticate, or when adopting an event that does not authenticate
///   with `key` (the error's `bad_event` names the first such line);
/// - [`ErrorKind::Refused`] when cutting events that are not at the end, or
///   repairing a log that has keyed lines without a key (its head would no
///   longer authenticate).
pub fn repair_with(
    path: &Path,
    key: Option<&BrokerKey>,
    mode: RepairMode,
) -> Result<RepairReport, AuditError> {
    let file = open_existing(path)?;
    log::lock(&file, path)?;
    let result = repair_locked(path, &file, key, mode);
    log::unlock(&file);
    result
}

/// Opens the log for writing without creating it, never through a symlink.
fn open_existing(path: &Path) -> Result<File, AuditError> {
    crate::fsx::open_read(path).map_err(|error| AuditError::io(path, "cannot open", error))?;
    crate::fsx::open_rw(path, 0o600).map_err(|error| AuditError::io(path, "cannot open", error))
}

fn cut_torn(file: &File, path: &Path, len: u64, fragment: u64) -> Result<(), AuditError> {
    if fragment > 0 {
        log::cut(file, len - fragment)
            .map_err(|error| AuditError::io(path, "cannot cut the torn line", error))?;
    }
    Ok(())
}

fn refused(path: &Path, detail: String) -> AuditError {
    AuditError::new(ErrorKind::Refused, path, detail)
}

fn repair_locked(
    path: &Path,
    file: &File,
    key: Option<&BrokerKey>,
    mode: RepairMode,
) -> Result<RepairReport, AuditError> {
    let tail = log::last_lines(file, path, 0)?;
    let mut report = RepairReport {
        torn_bytes: tail.fragment,
        ..RepairReport::default()
    };
    let Some(stored) = log::read_head(path, key)? else {
        // Nothing to adopt into (a missing head is `verify`'s to report).
        cut_torn(file, path, tail.len, tail.fragment)?;
        return Ok(report);
    };
    let scan = verify::scan_file(
        path,
        file,
        ScanSpec {
            key,
            head: Some(&stored),
            collect: true,
        },
        None,
    )?;
    if stored.pending.is_none() && scan.after_head.is_none() {
        // Nothing beyond the head (other problems are `verify`'s to report).
        cut_torn(file, path, tail.len, tail.fragment)?;
        return Ok(report);
    }
    if key.is_none() && scan.keyed_lines > 0 {
        return Err(refused(
            path,
            format!(
                "the log has {} event(s) authenticated with a broker key: repair it with that key \
                 (without it, the new head would not authenticate)",
                scan.keyed_lines
            ),
        ));
    }
    // The head must be one the key vouches for before repair writes one.
    log::check_key(path, key, &stored, scan.want_auth.clone(), false)?;
    match mode {
        RepairMode::Adopt => {
            if let Some(bad) = scan.broken {
                return Err(AuditError::tampered(path, bad).with_hint(
                    "adopting needs an intact chain; the cut mode removes lines beyond the head",
                ));
            }
            if scan.hash_at_want != Some(stored.hash) {
                return Err(head_mismatch(path, &stored));
            }
            let events = match scan.unadopted {
                Some(range) => {
                    if let Some(bad) = range.unauth {
                        let detail = format!(
                            "cannot adopt event(s) {}..{}: {} (the cut mode removes them if they \
                             are at the end)",
                            range.from, range.to, bad.reason
                        );
                        return Err(AuditError::tampered(path, bad).with_detail(detail));
                    }
                    range.events
                }
                None => Vec::new(),
            };
            cut_torn(file, path, tail.len, tail.fragment)?;
            log::write_head(path, &Sidecar::new(scan.last, None, key), true)?;
            report.adopted = events
                .into_iter()
                .map(|(seq, id, type_)| named(Some(seq), &id, &type_))
                .collect();
        }
        RepairMode::Cut => {
            let start = cut_start(path, &stored, &scan)?;
            if let Some(bad) = &scan.broken
                && bad.line < start.line
            {
                return Err(AuditError::tampered(path, bad.clone()));
            }
            cut_torn(file, path, tail.len, tail.fragment)?;
            report.cut = read_lines_from(file, path, start.offset)?;
            // Head first: a crash before the cut leaves the lines beyond it
            // again, which the next open records as pending.
            log::write_head(path, &Sidecar::new(start.before, None, key), true)?;
            log::cut(file, start.offset)
                .map_err(|error| AuditError::io(path, "cannot cut the unadopted lines", error))?;
        }
    }
    Ok(report)
}

/// The head's event no longer hashes to what the head recorded.
fn head_mismatch(path: &Path, stored: &Sidecar) -> AuditError {
    AuditError::new(
        ErrorKind::Tampered,
        path,
        format!(
            "event seq {} does not match the hash in the head sidecar: it was edited",
            stored.seq
        ),
    )
}

/// Where the lines to cut begin: the first pending event, or the line after
/// the head's.
fn cut_start(path: &Path, stored: &Sidecar, scan: &verify::Scan) -> Result<Position, AuditError> {
    let Some((from, to)) = stored.pending else {
        if scan.hash_at_want != Some(stored.hash) {
            return Err(head_mismatch(path, stored));
        }
        return scan.after_head.ok_or_else(|| {
            AuditError::new(
                ErrorKind::Tampered,
                path,
                format!(
                    "event seq {} does not match the head sidecar, so where its lines end is unknown",
                    stored.seq
                ),
            )
        });
    };
    if stored.seq > to {
        return Err(refused(
            path,
            format!(
                "cannot cut event(s) {from}..{to}: event(s) {}..{} were adopted after them, so they \
                 are not at the end of the log; adopt them instead, or keep them on record",
                to + 1,
                stored.seq
            ),
        ));
    }
    match &scan.unadopted {
        Some(range) if range.from == from && range.before.seq + 1 == from => Ok(Position {
            line: range.first_line,
            offset: range.offset,
            before: range.before,
        }),
        _ => Err(AuditError::new(
            ErrorKind::Tampered,
            path,
            format!(
                "the head records event(s) {from}..{to} as pending, but the log does not hold them in order"
            ),
        )),
    }
}

/// The complete lines from `offset` on, as events.
fn read_lines_from(
    file: &File,
    path: &Path,
    offset: u64,
) -> Result<Vec<RepairedEvent>, AuditError> {
    let io = |error| AuditError::io(path, "cannot read", error);
    let mut reader = file;
    reader.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(io)?;
    let complete = bytes
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |at| at + 1);
    Ok(bytes[..complete]
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let text = std::str::from_utf8(line).ok();
            let seq = text
                .and_then(|text| serde_json::from_str::<ChainFields<'_>>(text).ok())
                .map(|fields| fields.platformseq);
            let names = text.and_then(|text| serde_json::from_str::<NameFields>(text).ok());
            match names {
                Some(names) => named(seq, &names.id, &names.type_),
                None => RepairedEvent {
                    seq,
                    id: MALFORMED.to_owned(),
                    type_: MALFORMED.to_owned(),
                },
            }
        })
        .collect())
}

const MALFORMED: &str = "(malformed)";

fn named(seq: Option<u64>, id: &str, type_: &str) -> RepairedEvent {
    let id_ok =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let type_ok = !type_.is_empty()
        && type_.len() <= 128
        && type_
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    RepairedEvent {
        seq,
        id: if id_ok { id } else { MALFORMED }.to_owned(),
        type_: if type_ok { type_ } else { MALFORMED }.to_owned(),
    }
}
