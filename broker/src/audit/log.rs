//! The file sink: [`AuditLog`] and its head sidecar.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{AuditError, ErrorKind};
use super::event::{self, AuthFailure, ChainFields, Event, IdGen, SOURCE};
use super::verify::{self, ScanSpec};
use crate::key::BrokerKey;

/// Where else an appended line goes once it is durable in the file.
///
/// A sink runs after the fsync, and its failure does not fail the append:
/// the file is the record, a sink is a copy. Failures are logged.
pub trait Sink: Send {
    /// Receives the lines of one append or batch, in order, without newlines.
    fn send(&mut self, lines: &[String]) -> std::io::Result<()>;
}

/// Writes each appended line to stdout (`AuditLog::with_stdout(true)`), for
/// CI systems that collect the job log.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn send(&mut self, lines: &[String]) -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for line in lines {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

/// The head sidecar (`<log>.head`): seq and link of the last event, the range
/// of events never adopted, and (with a key) a MAC over all of it.
///
/// A hash chain proves every line but the last has not changed; it cannot
/// tell a log that was cut after event N from one that ended at N. The head
/// lives outside the log, is rewritten and fdatasync'ed after every append
/// (or batch), and `verify` compares it with the log's last line.
///
/// The file holds two fixed-size slots, each a JSON line with its own check
/// value, written in place (no temporary file, rename or directory sync: one
/// sync per update). A head goes to slot `seq % 2`, so a write torn by a
/// crash leaves the other slot's older head readable, which is the same as
/// a crash between the log's fsync and the head update: the log is ahead.
/// Such lines are never adopted silently: opening the log records them as
/// `pending`, and only [`super::repair_with`] adopts or cuts them. Readers
/// take the valid slot with the highest seq (with a key, among the slots
/// that authenticate, if any does); a head that goes back (repair's cut)
/// is written to both slots.
///
/// Slot format (320 bytes, this version): `{"v":2,"seq":…,"hash":…,
/// "pending":[from,to],"key":"k-…","mac":…,"check":…}` padded with spaces
/// and ended by a newline; `pending`, `key` and `mac` only when set. `check`
/// (16 hex digits of SHA-256 over every other field) catches a torn or
/// flipped slot without the key; `mac` (HMAC-SHA256, domain
/// `platform-broker audit head`, over seq, hash, pending and key id) is what
/// a forger cannot make. Sidecars of earlier versions still read: 160-byte
/// slots `{"seq","hash","check"}`, and the one-line `{"seq","hash"}` before
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
}

impl Head {
    pub(crate) const ZERO: Head = Head {
        seq: 0,
        hash: [0; 32],
    };
}

/// One head as the sidecar records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sidecar {
    pub(crate) seq: u64,
    /// Link of the event at `seq` (its SHA-256, or its `platformmac`).
    pub(crate) hash: [u8; 32],
    /// Events (from, to) in the log that no broker command adopted.
    pub(crate) pending: Option<(u64, u64)>,
    /// Id of the key whose `mac` this is.
    pub(crate) key_id: Option<String>,
    pub(crate) mac: Option<String>,
}

/// The MAC domain of a head slot.
const HEAD_DOMAIN: &str = "platform-broker audit head";

impl Sidecar {
    /// The head for `head` and `pending`, authenticated with `key` if given.
    pub(crate) fn new(head: Head, pending: Option<(u64, u64)>, key: Option<&BrokerKey>) -> Sidecar {
        let mut sidecar = Sidecar {
            seq: head.seq,
            hash: head.hash,
            pending,
            key_id: key.map(|key| key.id().to_owned()),
            mac: None,
        };
        if let Some(key) = key {
            sidecar.mac = Some(key.mac(HEAD_DOMAIN, sidecar.mac_payload().as_bytes()));
        }
        sidecar
    }

    pub(crate) fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash,
        }
    }

    fn mac_payload(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.seq,
            event::hex(&self.hash),
            pending_text(self.pending),
            self.key_id.as_deref().unwrap_or("-")
        )
    }

    /// Seq of the last event this head vouches for: its own, or when the
    /// pending range ends at it, the event before that range.
    pub(crate) fn adopted_seq(&self) -> u64 {
        match self.pending {
            Some((from, to)) if to >= self.seq => from - 1,
            _ => self.seq,
        }
    }

    /// Whether `key` made this head.
    pub(crate) fn authenticates(&self, key: &BrokerKey) -> bool {
        self.key_id.as_deref() == Some(key.id())
            && self
                .mac
                .as_deref()
                .is_some_and(|mac| key.verify(HEAD_DOMAIN, self.mac_payload().as_bytes(), mac))
    }
}

fn pending_text(pending: Option<(u64, u64)>) -> String {
    pending.map_or_else(|| "-".to_owned(), |(from, to)| format!("{from}-{to}"))
}

/// The smallest range holding both.
pub(crate) fn hull(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(u64, u64)> {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
        (one, None) | (None, one) => one,
    }
}

/// The sidecar of earlier versions: exactly these fields, so a damaged slot
/// (which has a `check`) is never mistaken for one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadWire {
    seq: u64,
    hash: String,
}

pub(crate) fn head_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

/// `Ok(None)` when the sidecar does not exist; `Tampered` when it is not ours.
/// With `key`, a slot it authenticates is preferred to any that it does not.
pub(crate) fn read_head(
    path: &Path,
    key: Option<&BrokerKey>,
) -> Result<Option<Sidecar>, AuditError> {
    let head_path = head_path(path);
    let bytes = match crate::fsx::read_nofollow(&head_path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(AuditError::io(
                &head_path,
                "cannot read the head sidecar",
                error,
            ));
        }
    };
    let malformed = || {
        AuditError::new(
            ErrorKind::Tampered,
            &head_path,
            "the head sidecar is malformed",
        )
    };
    let slots: Vec<Sidecar> = bytes
        .chunks(HEAD_SLOT)
        .take(2)
        .filter_map(|slot| decode_slot(slot, HEAD_SLOT))
        .chain(
            bytes
                .chunks(HEAD_SLOT_V1)
                .take(2)
                .filter_map(|slot| decode_slot(slot, HEAD_SLOT_V1)),
        )
        .collect();
    let authenticated = key.and_then(|key| {
        slots
            .iter()
            .filter(|slot| slot.authenticates(key))
            .max_by_key(|slot| slot.seq)
    });
    if let Some(best) = authenticated.or_else(|| slots.iter().max_by_key(|slot| slot.seq)) {
        return Ok(Some(best.clone()));
    }
    // Written by earlier versions: one JSON line.
    let wire: HeadWire = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    let hash = event::unhex(&wire.hash).ok_or_else(malformed)?;
    Ok(Some(Sidecar {
        seq: wire.seq,
        hash,
        pending: None,
        key_id: None,
        mac: None,
    }))
}

/// Bytes per head slot.
pub(crate) const HEAD_SLOT: usize = 320;
/// Bytes per slot of the previous version (`{"seq","hash","check"}`).
const HEAD_SLOT_V1: usize = 160;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotWire {
    #[serde(default, skip_serializing_if = "is_zero")]
    v: u32,
    seq: u64,
    hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<[u64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    check: String,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// The check value of a slot: the first 8 bytes of SHA-256 over its other
/// fields, hex (for version-1 slots, over "seq:hash" only).
fn slot_check(wire: &SlotWire) -> String {
    let text = if wire.v == 0 {
        format!("{}:{}", wire.seq, wire.hash)
    } else {
        format!(
            "v{}:{}:{}:{}:{}:{}",
            wire.v,
            wire.seq,
            wire.hash,
            pending_text(wire.pending.map(|[from, to]| (from, to))),
            wire.key.as_deref().unwrap_or("-"),
            wire.mac.as_deref().unwrap_or("-"),
        )
    };
    event::hex(&event::sha256(text.as_bytes()))[..16].to_owned()
}

fn encode_slot(sidecar: &Sidecar) -> Option<Vec<u8>> {
    let mut wire = SlotWire {
        v: 2,
        seq: sidecar.seq,
        hash: event::hex(&sidecar.hash),
        pending: sidecar.pending.map(|(from, to)| [from, to]),
        key: sidecar.key_id.clone(),
        mac: sidecar.mac.clone(),
        check: String::new(),
    };
    wire.check = slot_check(&wire);
    let mut slot = serde_json::to_vec(&wire).ok()?;
    if slot.len() >= HEAD_SLOT {
        return None;
    }
    slot.resize(HEAD_SLOT - 1, b' ');
    slot.push(b'\n');
    Some(slot)
}

/// A slot of `size` bytes whose check value matches; `None` for anything
/// else (empty, torn, edited, or a slot of the other size).
fn decode_slot(slot: &[u8], size: usize) -> Option<Sidecar> {
    if slot.len() != size {
        return None;
    }
    let wire: SlotWire = serde_json::from_slice(slot.trim_ascii()).ok()?;
    let version_fits = match wire.v {
        0 => {
            size == HEAD_SLOT_V1
                && wire.pending.is_none()
                && wire.key.is_none()
                && wire.mac.is_none()
        }
        2 => size == HEAD_SLOT,
        _ => false,
    };
    if !version_fits || wire.check != slot_check(&wire) {
        return None;
    }
    let pending = match wire.pending {
        None => None,
        Some([from, to]) if 1 <= from && from <= to && to <= wire.seq => Some((from, to)),
        Some(_) => return None,
    };
    let key_ok = match (&wire.key, &wire.mac) {
        (None, None) => true,
        (Some(id), Some(mac)) => event::valid_key_id(id) && event::unhex(mac).is_some(),
        _ => false,
    };
    if !key_ok {
        return None;
    }
    Some(Sidecar {
        seq: wire.seq,
        hash: event::unhex(&wire.hash)?,
        pending,
        key_id: wire.key,
        mac: wire.mac,
    })
}

/// The head of a chain kept outside a file (the server's store): the MAC
/// that vouches for `seq` and `link` with `key` (the sidecar's), to keep next
/// to them.
pub(crate) fn head_mac(seq: u64, link: &str, key: &BrokerKey) -> Option<String> {
    let hash = event::unhex(link)?;
    Sidecar::new(Head { seq, hash }, None, Some(key)).mac
}

/// Writes the sidecar of a log at `path` from a head kept elsewhere (seq,
/// link, and the key id and MAC recorded with them), for `verify`.
pub(crate) fn write_stored_head(
    path: &Path,
    seq: u64,
    link: &str,
    key_id: Option<String>,
    mac: Option<String>,
) -> Result<(), AuditError> {
    let hash = event::unhex(link).ok_or_else(|| {
        AuditError::new(
            ErrorKind::Tampered,
            path,
            "the stored head's link is not a hash",
        )
    })?;
    let sidecar = Sidecar {
        seq,
        hash,
        pending: None,
        key_id,
        mac,
    };
    write_head(path, &sidecar, true)
}

/// Writes `sidecar` to its slot (`seq % 2`), or to both slots when the head
/// goes back or clears a pending range (`both`), and syncs.
pub(crate) fn write_head(path: &Path, sidecar: &Sidecar, both: bool) -> Result<(), AuditError> {
    let head_path = head_path(path);
    let slot = encode_slot(sidecar).ok_or_else(|| {
        AuditError::new(
            ErrorKind::Encode,
            &head_path,
            "the head does not fit its slot",
        )
    })?;
    let write = || -> std::io::Result<()> {
        // Opened anew each time: a sidecar replaced or removed meanwhile
        // (by hand, or by an earlier version's rename) gets this head. Never
        // through a symlink.
        let file = crate::fsx::open_rw(&head_path, 0o600)?;
        let created = file.metadata()?.len() == 0;
        if both {
            let mut two = slot.clone();
            two.extend_from_slice(&slot);
            write_all_at(&file, &two, 0)?;
        } else {
            write_all_at(&file, &slot, (sidecar.seq % 2) * HEAD_SLOT as u64)?;
        }
        file.sync_data()?;
        if created {
            sync_dir(path)?;
        }
        Ok(())
    };
    write().map_err(|error| AuditError::io(&head_path, "cannot update the head sidecar", error))
}

/// The last complete line of the log.
pub(crate) struct LastLine {
    pub(crate) head: Head,
    /// Carries `platformkey`.
    pub(crate) keyed: bool,
    /// With a key: whether the line authenticates.
    pub(crate) auth: Option<Result<(), AuthFailure>>,
}

/// What the end of the log says: its length and the last complete event.
pub(crate) struct TailState {
    pub(crate) len: u64,
    pub(crate) last: Option<LastLine>,
}

/// Reads the end of the log. Fails with [`ErrorKind::TornTail`] when the
/// last line is incomplete.
pub(crate) fn read_tail_state(
    file: &File,
    path: &Path,
    key: Option<&BrokerKey>,
) -> Result<TailState, AuditError> {
    let tail = last_lines(file, path, 1)?;
    // A line's seq, and the line as the log's last (`None` when its link is
    // malformed).
    let parse = |line: &[u8]| -> Option<(u64, Option<LastLine>)> {
        let text = std::str::from_utf8(line).ok()?;
        let fields = serde_json::from_str::<ChainFields<'_>>(text).ok()?;
        let seq = fields.platformseq;
        let last = event::link(line, &fields).ok().map(|hash| LastLine {
            head: Head { seq, hash },
            keyed: fields.platformkey.is_some(),
            auth: key.map(|key| event::authenticate(key, line, &fields)),
        });
        Some((seq, last))
    };
    if tail.fragment > 0 {
        let line = tail
            .lines
            .last()
            .and_then(|line| parse(line))
            .map_or(0, |(seq, _)| seq)
            + 1;
        return Err(AuditError::new(
            ErrorKind::TornTail,
            path,
            format!(
                "line {line} is incomplete ({} bytes without a newline; a crash during a write?). \
                 `audit::repair` cuts exactly that fragment",
                tail.fragment
            ),
        ));
    }
    let Some(line) = tail.lines.last() else {
        return Ok(TailState {
            len: tail.len,
            last: None,
        });
    };
    let not_an_event = || {
        AuditError::new(
            ErrorKind::Tampered,
            path,
            "the last line is not a valid audit event",
        )
    };
    let last = parse(line).and_then(|(_, last)| last);
    Ok(TailState {
        len: tail.len,
        last: Some(last.ok_or_else(not_an_event)?),
    })
}

/// An append-only, hash-chained audit log in one file.
///
/// This type is the single code path that appends to the log, and the log
/// is append-only by design: every event records the link of the line before
/// it (`platformprev`) and its position (`platformseq`), so editing,
/// reordering, inserting or deleting a line breaks the chain at that line,
/// and the head sidecar catches a cut at the end. With a key
/// ([`AuditLog::open_with`]) every line also carries its own MAC, so a line
/// written without the key never passes for one of ours. Nothing here
/// rewrites or removes a line that an append acknowledged. The exceptions
/// are [`super::repair_with`] (a torn last line no append acknowledged, and,
/// when asked to, lines that lie beyond the head and were never adopted) and
/// the rollback of a failed write.
///
/// Invariant: when `append`/`append_batch` returns `Ok`, its lines are
/// fsynced and the head sidecar names the last of them. Appends take an
/// exclusive `flock` on the log (on Unix), and re-read the tail and the
/// head if another process appended since, so concurrent brokers sharing one
/// log keep one chain, and lines someone else put there are never adopted
/// silently: they are recorded as pending in the head.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    /// Bytes of the log this value has accounted for.
    len: u64,
    /// Seq and link of the last event; `seq` 0 and the zero hash when empty.
    head: Head,
    /// Events (from, to) the head records as never adopted.
    pending: Option<(u64, u64)>,
    key: Option<BrokerKey>,
    warnings: Vec<String>,
    ids: IdGen,
    stdout: bool,
    sinks: Vec<Box<dyn Sink>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("seq", &self.head.seq)
            .field("pending", &self.pending)
            .field("key", &self.key.as_ref().map(BrokerKey::id))
            .field("stdout", &self.stdout)
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl AuditLog {
    /// [`AuditLog::open_with`] without a key: lines are chained by SHA-256,
    /// which proves order and integrity, not authorship.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open_with(path, None)
    }

    /// Opens (creating if needed) the log at `path` and continues its chain;
    /// with `key`, every line appended is authenticated with it.
    ///
    /// Only the tail is read. Fails with [`ErrorKind::TornTail`] when the last
    /// line is incomplete (see [`super::repair_with`]), [`ErrorKind::HeadMissing`]
    /// when a non-empty log has no head sidecar, [`ErrorKind::Tampered`] when
    /// the head and the log's end disagree (or, with a key, when the last
    /// event or the head does not authenticate), and [`ErrorKind::Io`] when
    /// the log or its head is a symlink (never followed).
    ///
    /// When the log is ahead of the head (a crash between the log's fsync
    /// and the head update, or lines appended by someone else), the chain is
    /// verified up to the head, and the extra events are recorded in the head
    /// as pending, never adopted: [`AuditLog::warnings`] says so on every
    /// open until [`super::repair_with`] adopts or cuts them, and `verify`
    /// fails meanwhile. Appends go on after the log's real last line.
    pub fn open_with(path: &Path, key: Option<BrokerKey>) -> Result<AuditLog, AuditError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
            && std::fs::symlink_metadata(dir)
                .is_err_and(|error| error.kind() == std::io::ErrorKind::NotFound)
        {
            crate::fsx::ensure_dir(dir, 0o700)
                .map_err(|error| AuditError::io(dir, "cannot create the directory", error))?;
        }
        // Events name actors, workspaces and runs: not for every local user.
        let file = crate::fsx::open_append(path, 0o600)
            .map_err(|error| AuditError::io(path, "cannot open", error))?;
        let mut log = AuditLog {
            path: path.to_path_buf(),
            file,
            len: 0,
            head: Head::ZERO,
            pending: None,
            key,
            warnings: Vec::new(),
            ids: IdGen::new(),
            stdout: false,
            sinks: Vec::new(),
        };
        lock(&log.file, path)?;
        let result = log.reconcile();
        unlock(&log.file);
        result.map(|()| log)
    }

    /// Also writes every appended line to stdout, after it is durable.
    #[must_use]
    pub fn with_stdout(mut self, on: bool) -> AuditLog {
        self.stdout = on;
        self
    }

    /// Adds a sink that receives every appended line after it is durable.
    pub fn add_sink(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seq of the last event this value knows of (0 for an empty log).
    pub fn last_seq(&self) -> u64 {
        self.head.seq
    }

    /// Id of the key lines are authenticated with, if any.
    pub fn key_id(&self) -> Option<&str> {
        self.key.as_ref().map(BrokerKey::id)
    }

    /// Events (from, to) in the log that no broker command adopted, as the
    /// head records them.
    pub fn pending(&self) -> Option<(u64, u64)> {
        self.pending
    }

    /// What a person should know about this log, found while opening it (or
    /// while appending, when another process had changed it): events beyond
    /// the head never adopted, events not authenticated with the key at
    /// hand. Never quotes a line.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Appends one event; it is fsynced, and the head updated, before this
    /// returns `Ok`.
    pub fn append(
        &mut self,
        type_: &str,
        subject: Option<&str>,
        data: serde_json::Value,
    ) -> Result<Event, AuditError> {
        let mut events =
            self.append_batch(vec![(type_.to_owned(), subject.map(str::to_owned), data)])?;
        events.pop().ok_or_else(|| {
            AuditError::new(ErrorKind::Encode, &self.path, "append produced no event")
        })
    }

    /// Group commit: appends `(type, subject, data)` events with one write,
    /// one fsync of the log and one head update for the whole batch.
    ///
    /// On `Err` from the write or fsync of the log, the batch's bytes are cut
    /// again and none of it counts. On `Err` from the head update the batch
    /// is in the log: this value records it in the head with its next
    /// append; another process that opens the log first finds it beyond the
    /// head (pending, see [`AuditLog::open_with`]).
    pub fn append_batch(
        &mut self,
        events: Vec<(String, Option<String>, serde_json::Value)>,
    ) -> Result<Vec<Event>, AuditError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        lock(&self.file, &self.path)?;
        let result = self.append_locked(events);
        unlock(&self.file);
        let (events, lines) = result?;
        self.send_to_sinks(&lines);
        Ok(events)
    }

    fn append_locked(
        &mut self,
        events: Vec<(String, Option<String>, serde_json::Value)>,
    ) -> Result<(Vec<Event>, Vec<String>), AuditError> {
        let file_len = self
            .file
            .metadata()
            .map_err(|error| AuditError::io(&self.path, "cannot stat", error))?
            .len();
        if file_len != self.len {
            // Another process appended (we hold the lock now), or the file
            // was cut or replaced under us: check what is there against the
            // head, as opening does.
            self.reconcile()?;
        } else if self.pending.is_some() {
            // A repair in another process may have cleared the range.
            if let Some(stored) = read_head(&self.path, self.key.as_ref())?
                && stored.head() == self.head
            {
                self.pending = stored.pending;
            }
        }

        let keep_lines = self.stdout || !self.sinks.is_empty();
        let mut buf = Vec::with_capacity(events.len() * 400);
        let mut out = Vec::with_capacity(events.len());
        let mut lines = Vec::new();
        let mut head = self.head;
        for (type_, subject, data) in events {
            if type_.is_empty() {
                return Err(AuditError::new(
                    ErrorKind::Encode,
                    &self.path,
                    "an event type must not be empty",
                ));
            }
            let mut event = Event {
                id: self.ids.next_id(),
                source: SOURCE.to_owned(),
                type_,
                time: event::now_rfc3339()?,
                subject,
                data,
                seq: head.seq + 1,
                prev: event::hex(&head.hash),
                key_id: None,
                mac: None,
            };
            let encode_error = |seq: u64| {
                AuditError::new(
                    ErrorKind::Encode,
                    &self.path,
                    format!("event seq {seq} could not be encoded"),
                )
            };
            let (line, link) = match &self.key {
                Some(key) => event.seal(key).map_err(|_| encode_error(event.seq))?,
                None => {
                    let line = event.to_line().map_err(|_| encode_error(event.seq))?;
                    let link = event::sha256(line.as_bytes());
                    (line, link)
                }
            };
            head = Head {
                seq: event.seq,
                hash: link,
            };
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            if keep_lines {
                lines.push(line);
            }
            out.push(event);
        }

        let written = (&self.file)
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // Nothing was acknowledged: take the partial batch back out so
            // the next append does not chain onto a torn line.
            if let Err(cut_error) = cut(&self.file, self.len) {
                tracing::warn!(path = %self.path.display(), error = %cut_error, "audit: cannot roll back a failed append");
            }
            return Err(AuditError::io(&self.path, "cannot append durably", error));
        }
        self.len += buf.len() as u64;
        self.head = head;
        write_head(
            &self.path,
            &Sidecar::new(head, self.pending, self.key.as_ref()),
            false,
        )?;
        Ok((out, lines))
    }

    fn send_to_sinks(&mut self, lines: &[String]) {
        if self.stdout
            && let Err(error) = StdoutSink.send(lines)
        {
            tracing::warn!(error = %error, "audit: the stdout sink failed; the events are in the log");
        }
        for sink in &mut self.sinks {
            if let Err(error) = sink.send(lines) {
                tracing::warn!(error = %error, "audit: a sink failed; the events are in the log");
            }
        }
    }

    fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            self.warnings.push(message);
        }
    }

    /// Checks the log's end against the head (under the lock) and takes
    /// both as this value's state; records lines beyond the head as pending.
    fn reconcile(&mut self) -> Result<(), AuditError> {
        let key = self.key.clone();
        let key = key.as_ref();
        let state = read_tail_state(&self.file, &self.path, key)?;
        let stored = read_head(&self.path, key)?;
        self.len = state.len;
        let tampered = |detail: String| AuditError::new(ErrorKind::Tampered, &self.path, detail);
        let (Some(last), Some(stored)) = (&state.last, &stored) else {
            return match (&state.last, stored) {
                (None, None) => {
                    // A new log: record "empty" so a later cut to zero shows.
                    self.head = Head::ZERO;
                    self.pending = None;
                    write_head(&self.path, &Sidecar::new(Head::ZERO, None, key), true)
                }
                (None, Some(stored)) if stored.seq == 0 => {
                    self.head = Head::ZERO;
                    self.pending = None;
                    // An empty log has nothing to protect: from now on its
                    // head is one the key vouches for.
                    match key {
                        Some(key) if !stored.authenticates(key) => {
                            write_head(&self.path, &Sidecar::new(Head::ZERO, None, Some(key)), true)
                        }
                        _ => Ok(()),
                    }
                }
                (None, Some(stored)) => Err(tampered(format!(
                    "the log is empty but its head records seq {}: it was cut",
                    stored.seq
                ))),
                _ => Err(AuditError::new(
                    ErrorKind::HeadMissing,
                    &self.path,
                    "the log has events but no head sidecar, so a cut at its end cannot be ruled out",
                )),
            };
        };
        if stored.seq > last.head.seq {
            return Err(tampered(format!(
                "the log ends at seq {} but its head records seq {}: it was cut",
                last.head.seq, stored.seq
            )));
        }
        let edited = |seq: u64| {
            tampered(format!(
                "event seq {seq} does not match the hash in the head sidecar: it was edited"
            ))
        };
        let scan_file = |file: &File| {
            verify::scan_file(
                &self.path,
                file,
                ScanSpec {
                    key,
                    head: Some(stored),
                    collect: false,
                },
                None,
            )
        };
        let (covered, beyond, forged) = if stored.seq == last.head.seq {
            if stored.hash != last.head.hash {
                return Err(edited(stored.seq));
            }
            let covered = match key {
                None => None,
                Some(_) if stored.adopted_seq() == last.head.seq => last.auth.clone(),
                // Pending events end the log: the head covers one before
                // them, which matters only when the head is not ours.
                Some(key) if stored.authenticates(key) => None,
                Some(_) => scan_file(&self.file)?.want_auth,
            };
            (covered, None, None)
        } else {
            // The log is ahead of the head. Check that the chain holds and
            // passes through the recorded head; the rest stays unadopted.
            let scan = scan_file(&self.file)?;
            if let Some(bad) = scan.broken {
                return Err(AuditError::tampered(&self.path, bad)
                    .with_hint("`audit repair` with the cut mode removes lines beyond the head"));
            }
            if scan.hash_at_want != Some(stored.hash) {
                return Err(edited(stored.seq));
            }
            let forged = scan.unadopted.and_then(|range| range.unauth);
            (
                scan.want_auth,
                Some((stored.seq + 1, last.head.seq)),
                forged,
            )
        };
        if let Some(note) = check_key(&self.path, key, stored, covered, last.keyed)? {
            self.warn(note);
        }
        self.head = last.head;
        self.pending = hull(stored.pending, beyond);
        if beyond.is_some() {
            write_head(
                &self.path,
                &Sidecar::new(self.head, self.pending, key),
                false,
            )?;
        }
        if let Some((from, to)) = self.pending {
            let note = format!(
                "{}: {}",
                self.path.display(),
                verify::unadopted_reason(from, to)
            );
            self.warn(note);
        }
        if let Some(forged) = forged {
            let note = format!("{}: {}", self.path.display(), forged.reason);
            self.warn(note);
        }
        Ok(())
    }
}

/// What a key requires of the head (`stored`), given how the line it covers
/// (`covered`: the last line it adopted, see [`Sidecar::adopted_seq`], or
/// for none the first line; `None` when unknown or without a key)
/// authenticates: when that line is ours (or the head is at seq 0), the head
/// must be ours too, else a forger could have cut the log and written a head
/// to match. A head over a line written without the key (a log from before
/// the key) is accepted with a note (`Ok(Some)`): `verify` with the key
/// reports those lines anyway. `last_keyed`: the log's last line carries a
/// key, for the note when there is no key here.
pub(crate) fn check_key(
    path: &Path,
    key: Option<&BrokerKey>,
    stored: &Sidecar,
    covered: Option<Result<(), AuthFailure>>,
    last_keyed: bool,
) -> Result<Option<String>, AuditError> {
    let Some(key) = key else {
        return Ok(last_keyed.then(|| {
            format!(
                "{}: the log is authenticated with a broker key, but none is configured here: \
                 events appended now are not authenticated (`audit verify` with the key reports them)",
                path.display()
            )
        }));
    };
    let head_failure = || {
        verify::head_auth_failure(stored, key)
            .map(|reason| AuditError::new(ErrorKind::Tampered, path, reason))
    };
    match covered {
        Some(Err(AuthFailure::BadMac)) => Err(AuditError::new(
            ErrorKind::Tampered,
            path,
            format!(
                "event seq {} is not authenticated with the broker key {}: its platformmac does \
                 not verify (edited, or forged)",
                stored.adopted_seq().max(1),
                key.id()
            ),
        )),
        Some(Err(failure)) => {
            if let Some(error) = head_failure()
                && stored.key_id.as_deref() == Some(key.id())
            {
                // Claims our key but does not verify: forged.
                return Err(error);
            }
            let by = match failure {
                AuthFailure::OtherKey(Some(other)) => format!("with key {other}"),
                AuthFailure::OtherKey(None) => "with a malformed key id".to_owned(),
                _ => "without a key".to_owned(),
            };
            Ok(Some(format!(
                "{}: event seq {} was written {by}, not with the configured broker key {}: \
                 the events before this command's are not authenticated by it (`audit verify` \
                 with the key reports them; a new log is authenticated throughout)",
                path.display(),
                stored.adopted_seq().max(1),
                key.id()
            )))
        }
        Some(Ok(())) | None => match head_failure() {
            Some(error) => Err(error),
            None => Ok(None),
        },
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// Shortens the log to `len` bytes, durably. See [`super::repair_with`]:
/// callers may only cut bytes no append acknowledged, or lines no broker
/// command adopted.
pub(crate) fn cut(file: &File, len: u64) -> std::io::Result<()> {
    file.set_len(len)?;
    file.sync_all()
}

/// The end of a log file: its last complete lines and the unterminated
/// fragment after them.
pub(crate) struct Tail {
    pub(crate) len: u64,
    /// Up to the requested number of complete lines, oldest first, without
    /// newlines.
    pub(crate) lines: Vec<Vec<u8>>,
    /// Bytes after the last newline (a torn write when non-zero).
    pub(crate) fragment: u64,
}

/// Reads backwards from the end until `n` complete lines (and the fragment)
/// are known, so opening a large log costs one or two small reads.
pub(crate) fn last_lines(file: &File, path: &Path, n: usize) -> Result<Tail, AuditError> {
    const CHUNK: u64 = 64 * 1024;
    let io = |error| AuditError::io(path, "cannot read the end", error);
    let len = file.metadata().map_err(io)?.len();
    let mut reader = file;
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = len;
    let mut newlines = 0usize;
    // n lines need n terminators plus the one before the first (or offset 0).
    while pos > 0 && newlines < n + 1 {
        let size = CHUNK.min(pos);
        pos -= size;
        let mut chunk = vec![0u8; usize::try_from(size).unwrap_or(0)];
        reader.seek(SeekFrom::Start(pos)).map_err(io)?;
        reader.read_exact(&mut chunk).map_err(io)?;
        newlines += chunk.iter().filter(|&&byte| byte == b'\n').count();
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let complete_end = buf
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |idx| idx + 1);
    let fragment = (buf.len() - complete_end) as u64;
    let mut lines: Vec<Vec<u8>> = buf[..complete_end]
        .split(|&byte| byte == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    lines.pop(); // The empty piece after the final newline.
    if pos > 0 && !lines.is_empty() {
        lines.remove(0); // Started mid-line.
    }
    if lines.len() > n {
        lines.drain(..lines.len() - n);
    }
    Ok(Tail {
        len,
        lines,
        fragment,
    })
}

#[cfg(unix)]
pub(crate) fn lock(file: &File, path: &Path) -> Result<(), AuditError> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|errno| AuditError::io(path, "cannot lock", std::io::Error::from(errno)))
}

#[cfg(unix)]
pub(crate) fn unlock(file: &File) {
    // Closing the file releases the lock too, so a failure here only delays
    // other writers until this value is dropped.
    if let Err(error) = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock) {
        tracing::warn!(error = %error, "audit: cannot unlock the log");
    }
}

/// A shared lock: readers (verify, export) see no half-finished append.
#[cfg(unix)]
pub(crate) fn lock_shared(file: &File, path: &Path) -> Result<(), AuditError> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::LockShared)
        .map_err(|errno| AuditError::io(path, "cannot lock", std::io::Error::from(errno)))
}

#[cfg(not(unix))]
pub(crate) fn lock_shared(_file: &File, _path: &Path) -> Result<(), AuditError> {
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn lock(_file: &File, _path: &Path) -> Result<(), AuditError> {
    // No advisory lock here: one writer per log is assumed.
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn unlock(_file: &File) {}

#[cfg(unix)]
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
