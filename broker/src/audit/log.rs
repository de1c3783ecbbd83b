//! The file sink: [`AuditLog`], its head sidecar, and [`repair`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{AuditError, ErrorKind};
use super::event::{self, ChainFields, Event, IdGen, SOURCE};
use super::verify::{self, HeadCheck};

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

/// The head sidecar (`<log>.head`): seq and hash of the last event.
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
/// a crash between the log's fsync and the head update: the log is ahead,
/// and opening it verifies the chain and brings the head forward. Readers
/// take the valid slot with the highest seq; a sidecar written by earlier
/// versions (one JSON line, replaced by rename) still reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
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
pub(crate) fn read_head(path: &Path) -> Result<Option<Head>, AuditError> {
    let head_path = head_path(path);
    let bytes = match std::fs::read(&head_path) {
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
    if let Some(head) = bytes
        .chunks(HEAD_SLOT)
        .take(2)
        .filter_map(decode_slot)
        .max_by_key(|head| head.seq)
    {
        return Ok(Some(head));
    }
    // Written by earlier versions: one JSON line.
    let wire: HeadWire = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    let hash = event::unhex(&wire.hash).ok_or_else(malformed)?;
    Ok(Some(Head {
        seq: wire.seq,
        hash,
    }))
}

/// Bytes per head slot: `{"seq":…,"hash":…,"check":…}` padded with spaces
/// and ended by a newline.
const HEAD_SLOT: usize = 160;

#[derive(Serialize, Deserialize)]
struct SlotWire {
    seq: u64,
    hash: String,
    check: String,
}

/// The check value of a slot: the first 8 bytes of sha256("seq:hash"), hex.
fn slot_check(seq: u64, hash_hex: &str) -> String {
    event::hex(&event::sha256(format!("{seq}:{hash_hex}").as_bytes()))[..16].to_owned()
}

fn encode_slot(head: Head) -> Vec<u8> {
    let hash = event::hex(&head.hash);
    let wire = SlotWire {
        seq: head.seq,
        check: slot_check(head.seq, &hash),
        hash,
    };
    let mut slot = serde_json::to_vec(&wire).unwrap_or_default();
    slot.resize(HEAD_SLOT - 1, b' ');
    slot.push(b'\n');
    slot
}

/// A slot whose check value matches; `None` for anything else (empty, torn,
/// edited, or a line written by an earlier version).
fn decode_slot(slot: &[u8]) -> Option<Head> {
    if slot.len() != HEAD_SLOT {
        return None;
    }
    let wire: SlotWire = serde_json::from_slice(slot.trim_ascii()).ok()?;
    if wire.check != slot_check(wire.seq, &wire.hash) {
        return None;
    }
    Some(Head {
        seq: wire.seq,
        hash: event::unhex(&wire.hash)?,
    })
}

/// What the end of the log says: its length and the last complete event.
struct TailState {
    len: u64,
    last: Option<Head>,
}

/// An append-only, hash-chained audit log in one file.
///
/// This type is the single code path that writes the log, and the log is
/// append-only by design: every event records the SHA-256 of the line before
/// it (`platformprev`) and its position (`platformseq`), so editing,
/// reordering, inserting or deleting a line breaks the chain at that line,
/// and the head sidecar catches a cut at the end. Nothing here rewrites or
/// removes a line that an append acknowledged. The one exception is
/// [`repair`] (and the rollback of a failed write, which uses the same
/// function): it cuts an incomplete last line that no append ever
/// acknowledged.
///
/// Invariant: when `append`/`append_batch` returns `Ok`, its lines are
/// fsynced and the head sidecar names the last of them. Appends take an
/// exclusive `flock` on the log (on Unix), and re-read the tail if another
/// process appended since, so concurrent brokers sharing one log keep one
/// chain.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    /// Bytes of the log this value has accounted for.
    len: u64,
    /// Seq and hash of the last event; `seq` 0 and the zero hash when empty.
    head: Head,
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
            .field("stdout", &self.stdout)
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path` and continues its chain.
    ///
    /// Only the tail is read. Fails with [`ErrorKind::TornTail`] when the last
    /// line is incomplete (see [`repair`]), [`ErrorKind::HeadMissing`] when a
    /// non-empty log has no head sidecar, and [`ErrorKind::Tampered`] when the
    /// head and the log's end disagree. When the log is ahead of the head
    /// (a crash between the log's fsync and the head's rename), the whole
    /// chain is verified and the head is brought forward.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|error| AuditError::io(dir, "cannot create the directory", error))?;
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Events name actors, workspaces and runs: not for every local user.
            options.mode(0o600);
        }
        let file = options
            .open(path)
            .map_err(|error| AuditError::io(path, "cannot open", error))?;
        let mut log = AuditLog {
            path: path.to_path_buf(),
            file,
            len: 0,
            head: Head {
                seq: 0,
                hash: [0; 32],
            },
            ids: IdGen::new(),
            stdout: false,
            sinks: Vec::new(),
        };
        lock(&log.file, path)?;
        let result = log.reconcile_on_open();
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
    /// is in the log (the next open or append records it in the head).
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
            // was cut or replaced under us: start from what is there.
            let state = self.read_tail_state()?;
            self.len = state.len;
            self.head = state.last.unwrap_or(Head {
                seq: 0,
                hash: [0; 32],
            });
        }

        let keep_lines = self.stdout || !self.sinks.is_empty();
        let mut buf = Vec::with_capacity(events.len() * 320);
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
            let event = Event {
                id: self.ids.next_id(),
                source: SOURCE.to_owned(),
                type_,
                time: event::now_rfc3339()?,
                subject,
                data,
                seq: head.seq + 1,
                prev: event::hex(&head.hash),
            };
            let line = event.to_line().map_err(|_| {
                AuditError::new(
                    ErrorKind::Encode,
                    &self.path,
                    format!("event seq {} could not be encoded", event.seq),
                )
            })?;
            head = Head {
                seq: event.seq,
                hash: event::sha256(line.as_bytes()),
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
        self.write_head(head)?;
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

    fn reconcile_on_open(&mut self) -> Result<(), AuditError> {
        let state = self.read_tail_state()?;
        let stored = read_head(&self.path)?;
        self.len = state.len;
        match (state.last, stored) {
            (None, None) => {
                // A new log: record "empty" so a later cut to zero shows.
                self.head = Head {
                    seq: 0,
                    hash: [0; 32],
                };
                self.write_head(self.head)
            }
            (None, Some(head)) if head.seq == 0 => {
                self.head = head;
                Ok(())
            }
            (None, Some(head)) => Err(AuditError::new(
                ErrorKind::Tampered,
                &self.path,
                format!(
                    "the log is empty but its head records seq {}: it was cut",
                    head.seq
                ),
            )),
            (Some(_), None) => Err(AuditError::new(
                ErrorKind::HeadMissing,
                &self.path,
                "the log has events but no head sidecar, so a cut at its end cannot be ruled out",
            )),
            (Some(last), Some(head)) if last == head => {
                self.head = last;
                Ok(())
            }
            (Some(last), Some(head)) if head.seq > last.seq => Err(AuditError::new(
                ErrorKind::Tampered,
                &self.path,
                format!(
                    "the log ends at seq {} but its head records seq {}: it was cut",
                    last.seq, head.seq
                ),
            )),
            (Some(last), Some(head)) if head.seq == last.seq => Err(AuditError::new(
                ErrorKind::Tampered,
                &self.path,
                format!(
                    "event seq {} does not match the hash in the head sidecar: it was edited",
                    last.seq
                ),
            )),
            (Some(last), Some(head)) => {
                // The log is ahead of the head: a crash after the log's fsync
                // and before the head's rename. Adopt the extra events only if
                // the whole chain holds and passes through the recorded head.
                let scan = verify::scan_file(
                    &self.path,
                    &self.file,
                    HeadCheck::Ignore,
                    Some(head.seq),
                    None,
                )?;
                if let Some(bad) = scan.first_bad {
                    return Err(AuditError::tampered(&self.path, bad));
                }
                if scan.hash_at_want != Some(head.hash) {
                    return Err(AuditError::new(
                        ErrorKind::Tampered,
                        &self.path,
                        format!(
                            "event seq {} does not match the hash in the head sidecar: it was edited",
                            head.seq
                        ),
                    ));
                }
                self.head = last;
                self.write_head(last)
            }
        }
    }

    fn read_tail_state(&self) -> Result<TailState, AuditError> {
        let tail = last_lines(&self.file, &self.path, 1)?;
        let last_seq_or_zero = |tail: &Tail| -> Option<u64> {
            let line = tail.lines.last()?;
            let text = std::str::from_utf8(line).ok()?;
            serde_json::from_str::<ChainFields<'_>>(text)
                .ok()
                .map(|fields| fields.platformseq)
        };
        if tail.fragment > 0 {
            let line = last_seq_or_zero(&tail).unwrap_or(0) + 1;
            return Err(AuditError::new(
                ErrorKind::TornTail,
                &self.path,
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
        let seq = last_seq_or_zero(&tail).ok_or_else(|| {
            AuditError::new(
                ErrorKind::Tampered,
                &self.path,
                "the last line is not a valid audit event",
            )
        })?;
        Ok(TailState {
            len: tail.len,
            last: Some(Head {
                seq,
                hash: event::sha256(line),
            }),
        })
    }

    fn write_head(&self, head: Head) -> Result<(), AuditError> {
        let head_path = head_path(&self.path);
        let write = || -> std::io::Result<()> {
            // Opened anew each time: a sidecar replaced or removed meanwhile
            // (by hand, or by an earlier version's rename) gets this head.
            let (file, created) = match OpenOptions::new().write(true).open(&head_path) {
                Ok(file) => (file, false),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => (
                    OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&head_path)?,
                    true,
                ),
                Err(error) => return Err(error),
            };
            let offset = (head.seq % 2) * HEAD_SLOT as u64;
            write_all_at(&file, &encode_slot(head), offset)?;
            file.sync_data()?;
            if created {
                sync_dir(&self.path)?;
            }
            Ok(())
        };
        write().map_err(|error| AuditError::io(&head_path, "cannot update the head sidecar", error))
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

/// Cuts an incomplete last line (a write torn by a crash) off the log, and
/// returns how many bytes were cut (0 when the log ends with a newline).
///
/// This, with the rollback of a failed append that calls the same [`cut`],
/// is the single code path that breaks the log's append-only semantics, by
/// design: it removes only bytes after the last newline, which no append
/// ever acknowledged, and never touches a complete line or the head.
pub fn repair(path: &Path) -> Result<u64, AuditError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|error| AuditError::io(path, "cannot open", error))?;
    lock(&file, path)?;
    let result = (|| {
        let tail = last_lines(&file, path, 0)?;
        if tail.fragment > 0 {
            cut(&file, tail.len - tail.fragment)
                .map_err(|error| AuditError::io(path, "cannot cut the torn line", error))?;
        }
        Ok(tail.fragment)
    })();
    unlock(&file);
    result
}

/// Shortens the log to `len` bytes, durably. See [`repair`]: callers may only
/// cut bytes no append acknowledged.
fn cut(file: &File, len: u64) -> std::io::Result<()> {
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
fn sync_dir(path: &Path) -> std::io::Result<()> {
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
