//! Reading the log back: [`verify_with`], [`tail`] and [`export_with`].

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;

use super::error::{AuditError, ErrorKind};
use super::event::{self, AuthFailure, ChainFields, NameFields};
use super::log::{self, Head, Sidecar};
use super::{BadEvent, VerifyReport};
use crate::key::BrokerKey;

/// What a scan is told before it starts.
#[derive(Clone, Copy, Default)]
pub(crate) struct ScanSpec<'a> {
    /// Check every line's `platformmac` with this key.
    pub(crate) key: Option<&'a BrokerKey>,
    /// The head sidecar as read: lines after its seq, and those in its
    /// pending range, are unadopted; the line at its seq is compared with it.
    pub(crate) head: Option<&'a Sidecar>,
    /// Keep (seq, id, type) of every unadopted line (for `repair`).
    pub(crate) collect: bool,
}

/// The lines that lie beyond the head, or in its recorded pending range.
pub(crate) struct Unadopted {
    /// Line number and byte offset of the first of them.
    pub(crate) first_line: usize,
    pub(crate) offset: u64,
    /// Seqs of the first and the last of them.
    pub(crate) from: u64,
    pub(crate) to: u64,
    /// Seq and link of the line before the first of them (zero for none).
    pub(crate) before: Head,
    /// An adopted line follows one of them (so they are not all at the end).
    pub(crate) adopted_after: bool,
    /// With a key: the first of them that does not authenticate.
    pub(crate) unauth: Option<BadEvent>,
    /// With `ScanSpec::collect`: (seq, id, type) of each, in line order.
    pub(crate) events: Vec<(u64, String, String)>,
}

pub(crate) struct Scan {
    pub(crate) events: u64,
    /// Lines that carry `platformkey`.
    pub(crate) keyed_lines: u64,
    /// The first break of the chain's structure: a line that does not parse,
    /// a seq out of order, a link that does not hold.
    pub(crate) broken: Option<BadEvent>,
    /// With a key: the first line that does not authenticate.
    pub(crate) unauth: Option<BadEvent>,
    pub(crate) unadopted: Option<Unadopted>,
    /// Bytes of an incomplete last line.
    pub(crate) torn: u64,
    /// Seq and link of the last complete line while the structure held.
    pub(crate) last: Head,
    /// Link of the line at the head's seq (the zero hash for seq 0).
    pub(crate) hash_at_want: Option<[u8; 32]>,
    /// With a key: whether the last line the head adopted (for none, the
    /// first line) authenticates.
    pub(crate) want_auth: Option<Result<(), AuthFailure>>,
    /// The line right after the head's line (while the structure held).
    pub(crate) after_head: Option<Position>,
}

/// Where a line starts, and the line before it.
#[derive(Clone, Copy)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) offset: u64,
    /// Seq and link of the line before (zero for none).
    pub(crate) before: Head,
}

/// A line whose `platformprev` does not match the line before it. Which of
/// the two lines changed is decided by the next link (see [`verify_with`]).
struct BrokenLink {
    line: usize,
    seq: u64,
}

struct Checker<'a> {
    spec: ScanSpec<'a>,
    lines: usize,
    keyed_lines: u64,
    last: Head,
    /// The line before carries a key: its link is its `platformmac`, which
    /// an edit of its other bytes does not change.
    last_keyed: bool,
    broken_link: Option<BrokenLink>,
    broken: Option<BadEvent>,
    unauth: Option<BadEvent>,
    unadopted: Option<Unadopted>,
    hash_at_want: Option<[u8; 32]>,
    want_auth: Option<Result<(), AuthFailure>>,
    head_line: Option<usize>,
    after_head: Option<Position>,
}

fn bad(line: usize, seq: Option<u64>, reason: impl Into<String>) -> Option<BadEvent> {
    Some(BadEvent {
        line,
        seq,
        reason: reason.into(),
    })
}

/// The reason given for lines beyond the head (also `AuditLog`'s warning).
pub(crate) fn unadopted_reason(from: u64, to: u64) -> String {
    format!(
        "event(s) {from}..{to} lie beyond the head and were never adopted (a broker command crashed \
         before updating the head, or someone appended them): check them, then run \
         `platform-broker audit repair`"
    )
}

const BEYOND_HEAD: &str = "; it lies beyond the head and was never adopted";

impl<'a> Checker<'a> {
    fn new(spec: ScanSpec<'a>) -> Checker<'a> {
        Checker {
            spec,
            lines: 0,
            keyed_lines: 0,
            last: Head::ZERO,
            last_keyed: false,
            broken_link: None,
            broken: None,
            unauth: None,
            unadopted: None,
            hash_at_want: (spec.head.map(|head| head.seq) == Some(0)).then_some([0; 32]),
            want_auth: None,
            head_line: (spec.head.map(|head| head.seq) == Some(0)).then_some(0),
            after_head: None,
        }
    }

    fn is_unadopted(&self, seq: u64) -> bool {
        let Some(head) = self.spec.head else {
            return false;
        };
        seq > head.seq
            || head
                .pending
                .is_some_and(|(from, to)| from <= seq && seq <= to)
    }

    fn feed(&mut self, bytes: &[u8], offset: u64) {
        self.lines += 1;
        let line = self.lines;
        if self
            .head_line
            .is_some_and(|head_line| head_line + 1 == line)
        {
            self.after_head = Some(Position {
                line,
                offset,
                before: self.last,
            });
        }
        let fields = std::str::from_utf8(bytes)
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(|text| {
                serde_json::from_str::<ChainFields<'_>>(text).map_err(|error| {
                    format!(
                        "not a valid audit event (JSON error at column {})",
                        error.column()
                    )
                })
            });
        if let Ok(fields) = &fields {
            self.per_line(bytes, offset, fields);
        }
        if self.broken.is_some() {
            return;
        }
        let expected_prev = event::hex(&self.last.hash);

        if let Some(broken) = self.broken_link.take() {
            // The link into `broken.line` does not hold. If the link out of
            // it holds, the line itself is intact and the one before it
            // changed; otherwise `broken.line` changed (its platformprev with
            // it).
            let next_link_holds = matches!(&fields, Ok(next) if next.platformprev == expected_prev);
            self.broken = if next_link_holds {
                blame_previous(&broken)
            } else {
                blame_broken(&broken, false)
            };
            return;
        }

        let fields = match fields {
            Ok(fields) => fields,
            Err(reason) => {
                self.broken = bad(line, None, reason);
                return;
            }
        };
        if fields.specversion != "1.0" {
            self.broken = bad(line, Some(fields.platformseq), "specversion is not 1.0");
            return;
        }
        let expected_seq = self.last.seq + 1;
        let seq = fields.platformseq;
        if seq != expected_seq {
            let reason = if seq > expected_seq {
                format!(
                    "expected seq {expected_seq}, found {seq}: event(s) {expected_seq}..{} are missing",
                    seq - 1
                )
            } else {
                format!(
                    "expected seq {expected_seq}, found {seq}: events were reordered, duplicated or inserted"
                )
            };
            self.broken = bad(line, Some(seq), reason);
            return;
        }
        let link = match event::link(bytes, &fields) {
            Ok(link) => link,
            Err(reason) => {
                self.broken = bad(line, Some(seq), format!("malformed: {reason}"));
                return;
            }
        };
        if fields.platformprev != expected_prev {
            if line == 1 {
                self.broken = bad(
                    line,
                    Some(seq),
                    "the first event's platformprev is not 64 zeros",
                );
                return;
            }
            let broken = BrokenLink { line, seq };
            if self.last_keyed {
                // The line before is keyed: its link did not change with its
                // other bytes, so the next link cannot tell which changed.
                self.broken = blame_broken(&broken, true);
                return;
            }
            self.broken_link = Some(broken);
        }
        if self.spec.head.map(|head| head.seq) == Some(seq) && self.hash_at_want.is_none() {
            self.hash_at_want = Some(link);
            self.head_line = Some(line);
        }
        self.last = Head { seq, hash: link };
        self.last_keyed = fields.platformkey.is_some();
    }

    /// What holds per line whatever the chain's structure: key count,
    /// authentication, and whether the line was adopted.
    fn per_line(&mut self, bytes: &[u8], offset: u64, fields: &ChainFields<'_>) {
        let line = self.lines;
        let seq = fields.platformseq;
        if fields.platformkey.is_some() {
            self.keyed_lines += 1;
        }
        let unadopted = self.is_unadopted(seq);
        let auth = self
            .spec
            .key
            .map(|key| (key, event::authenticate(key, bytes, fields)));
        // The last line the head adopted; for none, the first line.
        let covered = self.spec.head.is_some_and(|head| {
            let adopted = head.adopted_seq();
            adopted == seq || (adopted == 0 && line == 1)
        });
        if let Some((_, result)) = &auth
            && covered
            && self.want_auth.is_none()
        {
            self.want_auth = Some(result.clone());
        }
        let failure = auth
            .and_then(|(key, result)| result.err().map(|failure| failure.describe(line, key.id())));
        if let Some(reason) = &failure
            && self.unauth.is_none()
        {
            let suffix = if unadopted { BEYOND_HEAD } else { "" };
            self.unauth = bad(line, Some(seq), format!("{reason}{suffix}"));
        }
        if !unadopted {
            if let Some(range) = &mut self.unadopted {
                range.adopted_after = true;
            }
            return;
        }
        let before = self.last;
        let range = self.unadopted.get_or_insert_with(|| Unadopted {
            first_line: line,
            offset,
            from: seq,
            to: seq,
            before,
            adopted_after: false,
            unauth: None,
            events: Vec::new(),
        });
        range.to = seq;
        if let Some(reason) = failure
            && range.unauth.is_none()
        {
            range.unauth = bad(line, Some(seq), format!("{reason}{BEYOND_HEAD}"));
        }
        if self.spec.collect {
            let (id, type_) = std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| serde_json::from_str::<NameFields>(text).ok())
                .map_or_else(
                    || (String::new(), String::new()),
                    |names| (names.id, names.type_),
                );
            range.events.push((seq, id, type_));
        }
    }

    fn finish(mut self, torn: u64) -> Scan {
        let head = self.spec.head.map(Sidecar::head);
        if let Some(broken) = self.broken_link.take() {
            // Nothing after the broken link but the head: it decides.
            self.broken = if head == Some(self.last) {
                blame_previous(&broken)
            } else {
                blame_broken(&broken, false)
            };
        }
        Scan {
            events: self.lines as u64,
            keyed_lines: self.keyed_lines,
            broken: self.broken,
            unauth: self.unauth,
            unadopted: self.unadopted,
            torn,
            last: self.last,
            hash_at_want: self.hash_at_want,
            want_auth: self.want_auth,
            after_head: self.after_head,
        }
    }
}

fn blame_previous(broken: &BrokenLink) -> Option<BadEvent> {
    bad(
        broken.line - 1,
        Some(broken.seq - 1),
        format!(
            "edited: its hash no longer matches the platformprev recorded by line {}",
            broken.line
        ),
    )
}

fn blame_broken(broken: &BrokenLink, keyed_before: bool) -> Option<BadEvent> {
    let what = if keyed_before { "platformmac" } else { "hash" };
    bad(
        broken.line,
        Some(broken.seq),
        format!(
            "its platformprev does not match the {what} of line {} (edited or inserted)",
            broken.line - 1
        ),
    )
}

/// The log's end against the head sidecar. Lines beyond the head are not
/// reported here (the scan's `unadopted` covers them).
fn compare_head(
    lines: usize,
    last: Head,
    head: Option<Head>,
    hash_at_want: Option<[u8; 32]>,
) -> Option<BadEvent> {
    let Some(head) = head else {
        if lines == 0 {
            return None;
        }
        return bad(
            lines + 1,
            None,
            "the head sidecar is missing, so a cut at the end of the log cannot be ruled out",
        );
    };
    if head.seq > last.seq {
        return bad(
            lines + 1,
            Some(last.seq + 1),
            format!(
                "the log ends at seq {} but the head sidecar records seq {}: {} event(s) were cut from the end",
                last.seq,
                head.seq,
                head.seq - last.seq
            ),
        );
    }
    if head.seq == last.seq {
        if head.hash != last.hash {
            return bad(
                lines,
                Some(last.seq),
                "edited: its hash does not match the head sidecar",
            );
        }
        return None;
    }
    // The log goes on past the head. Lines equal seqs here (the chain held).
    if hash_at_want != Some(head.hash) {
        return bad(
            usize::try_from(head.seq).unwrap_or(usize::MAX),
            Some(head.seq),
            "edited: its hash does not match the head sidecar",
        );
    }
    None
}

/// Why the head sidecar does not authenticate with `key` (`None` when it
/// does).
pub(crate) fn head_auth_failure(head: &Sidecar, key: &BrokerKey) -> Option<String> {
    if head.authenticates(key) {
        return None;
    }
    Some(match head.key_id.as_deref() {
        Some(other) if other != key.id() && event::valid_key_id(other) => format!(
            "the head sidecar was written with key {other}, not the configured {}",
            key.id()
        ),
        Some(other) if other == key.id() => format!(
            "the head sidecar is not authenticated with the broker key {}: its MAC does not verify (forged)",
            key.id()
        ),
        _ => format!(
            "the head sidecar is not authenticated with the broker key {} (written without a key, or forged)",
            key.id()
        ),
    })
}

/// The first problem of a scan, in line order (see [`verify_with`]).
pub(crate) fn first_bad(
    scan: &Scan,
    head: Option<&Sidecar>,
    key: Option<&BrokerKey>,
) -> Option<BadEvent> {
    // (problem, rank among problems on the same line)
    let mut found: Vec<(BadEvent, u8)> = Vec::new();
    if let Some(unauth) = &scan.unauth {
        found.push((unauth.clone(), 0));
    }
    if let Some(broken) = &scan.broken {
        found.push((broken.clone(), 1));
    }
    if let Some(range) = &scan.unadopted {
        found.push((
            BadEvent {
                line: range.first_line,
                seq: Some(range.from),
                reason: unadopted_reason(range.from, range.to),
            },
            2,
        ));
    }
    if scan.torn > 0 {
        found.push((
            BadEvent {
                line: usize::try_from(scan.events).unwrap_or(usize::MAX) + 1,
                seq: None,
                reason: format!(
                    "incomplete final line ({} bytes without a newline): a torn write; `audit::repair` cuts it",
                    scan.torn
                ),
            },
            3,
        ));
    }
    if scan.broken.is_none()
        && let Some(problem) = compare_head(
            usize::try_from(scan.events).unwrap_or(usize::MAX),
            scan.last,
            head.map(Sidecar::head),
            scan.hash_at_want,
        )
    {
        found.push((problem, 4));
    }
    if let Some((problem, _)) = found
        .into_iter()
        .min_by_key(|(bad, rank)| (bad.line, *rank))
    {
        return Some(problem);
    }
    let (Some(head), Some(key)) = (head, key) else {
        return None;
    };
    head_auth_failure(head, key).and_then(|reason| bad(0, None, reason))
}

/// Reads `file` from the start, checking the chain, copying every byte to
/// `tee` when given.
pub(crate) fn scan_file(
    path: &Path,
    file: &File,
    spec: ScanSpec<'_>,
    mut tee: Option<&mut dyn Write>,
) -> Result<Scan, AuditError> {
    let io = |error| AuditError::io(path, "cannot read", error);
    let mut checker = Checker::new(spec);
    let mut start = file;
    start.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(4096);
    let mut torn = 0u64;
    let mut offset = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        if let Some(out) = tee.as_mut() {
            out.write_all(&buf)
                .map_err(|error| AuditError::io(path, "cannot write the export", error))?;
        }
        if buf.last() == Some(&b'\n') {
            checker.feed(&buf[..buf.len() - 1], offset);
        } else {
            torn = buf.len() as u64;
        }
        offset += n as u64;
    }
    Ok(checker.finish(torn))
}

/// [`verify_with`] without a key: order, seqs, links and the head, but not
/// authenticity.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    verify_with(path, None)
}

/// Checks the whole chain and the head sidecar, and names the first bad line.
///
/// Lines are numbered from 1; line 0 means the head sidecar itself. What a
/// single change is reported as:
/// - with a key, a line that is not keyed with it or whose `platformmac`
///   does not verify (edited, forged, written without the key or with
///   another): that line;
/// - bytes of unkeyed event k's line edited (not its `platformprev`): line
///   k, because line k+1 still records the old hash of line k while its own
///   link to line k+2 holds (for the last line, the head sidecar plays line
///   k+1);
/// - event k's `platformprev` edited, or a forged line inserted as line k
///   with a wrong `platformprev`: line k (both its links break);
/// - `platformseq` out of order (lines swapped, deleted or duplicated): the
///   first line whose seq is not its predecessor's plus one;
/// - lines beyond the head, or in the range the head records as never
///   adopted: the first of them, until `repair_with` adopts or cuts them
///   (with a key, one of them that does not authenticate is reported first,
///   as forged);
/// - last events cut: the line after the end, from the head sidecar's seq;
/// - an incomplete last line: that line;
/// - with a key, a head sidecar that does not authenticate: line 0, after
///   every problem in the lines.
///
/// Without a key, keyed lines are checked for order, seq and links only:
/// editing a keyed line's other bytes goes unnoticed, and the report says
/// so with `authenticated: false`.
pub fn verify_with(path: &Path, key: Option<&BrokerKey>) -> Result<VerifyReport, AuditError> {
    let file = match crate::fsx::open_read(path) {
        Ok(file) => Some(file),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(AuditError::io(path, "cannot open", error)),
    };
    if let Some(file) = &file {
        log::lock_shared(file, path)?;
    }
    let result = verify_locked(path, file.as_ref(), key, None);
    if let Some(file) = &file {
        log::unlock(file);
    }
    result
}

fn verify_locked(
    path: &Path,
    file: Option<&File>,
    key: Option<&BrokerKey>,
    tee: Option<&mut dyn Write>,
) -> Result<VerifyReport, AuditError> {
    let head = match log::read_head(path, key) {
        Ok(head) => head,
        Err(error) if error.kind() == ErrorKind::Tampered => {
            let first_bad = bad(0, None, "the head sidecar is malformed");
            return Ok(VerifyReport {
                events: 0,
                ok: false,
                first_bad,
                authenticated: false,
                keyed_lines: 0,
            });
        }
        Err(error) => return Err(error),
    };
    let spec = ScanSpec {
        key,
        head: head.as_ref(),
        collect: false,
    };
    let scan = match file {
        Some(file) => scan_file(path, file, spec, tee)?,
        None => Checker::new(spec).finish(0),
    };
    let first_bad = first_bad(&scan, head.as_ref(), key);
    let ok = first_bad.is_none();
    Ok(VerifyReport {
        events: scan.events,
        ok,
        first_bad,
        authenticated: ok && key.is_some(),
        keyed_lines: scan.keyed_lines,
    })
}

/// The last `n` complete lines, oldest first. An incomplete last line is left
/// out (`verify` reports it).
pub fn tail(path: &Path, n: usize) -> Result<Vec<String>, AuditError> {
    let file =
        crate::fsx::open_read(path).map_err(|error| AuditError::io(path, "cannot open", error))?;
    let tail = log::last_lines(&file, path, n)?;
    Ok(tail
        .lines
        .into_iter()
        .map(|line| String::from_utf8_lossy(&line).into_owned())
        .collect())
}

/// [`export_with`] without a key.
pub fn export(path: &Path, out: &mut dyn Write) -> Result<u64, AuditError> {
    export_with(path, None, out)
}

/// Copies the log to `out` after verifying it (with `key` when given), and
/// returns the number of events. Refuses (`ErrorKind::Tampered`, nothing
/// written) when verification fails. The copy is checked again as it streams
/// (a failure there, from a writer that ignores the lock, leaves a partial
/// copy and an error); broker appends wait meanwhile.
pub fn export_with(
    path: &Path,
    key: Option<&BrokerKey>,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    let file =
        crate::fsx::open_read(path).map_err(|error| AuditError::io(path, "cannot open", error))?;
    log::lock_shared(&file, path)?;
    let result = export_locked(path, &file, key, out);
    log::unlock(&file);
    result
}

fn export_locked(
    path: &Path,
    file: &File,
    key: Option<&BrokerKey>,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    let report = verify_locked(path, Some(file), key, None)?;
    if let Some(bad) = report.first_bad {
        return Err(AuditError::tampered(path, bad));
    }
    let again = verify_locked(path, Some(file), key, Some(out))?;
    if let Some(bad) = again.first_bad {
        return Err(AuditError::tampered(path, bad));
    }
    if again.events != report.events {
        return Err(AuditError::new(
            ErrorKind::Tampered,
            path,
            "the log changed during the export",
        ));
    }
    Ok(report.events)
}
