//! Reading the log back: [`verify`], [`tail`] and [`export`].

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;

use super::error::{AuditError, ErrorKind};
use super::event::{self, ChainFields};
use super::log::{self, Head};
use super::{BadEvent, VerifyReport};

/// Whether a scan compares the log's end with the head sidecar.
pub(crate) enum HeadCheck {
    /// `AuditLog::open` when the log is ahead of the head: only the chain.
    Ignore,
    /// `verify`: the sidecar as read (`None` when it is missing).
    Compare(Option<Head>),
}

pub(crate) struct Scan {
    pub(crate) events: u64,
    pub(crate) first_bad: Option<BadEvent>,
    /// Hash of the event whose seq was asked for (the zero hash for seq 0).
    pub(crate) hash_at_want: Option<[u8; 32]>,
}

/// A line whose `platformprev` does not match the line before it. Which of
/// the two lines changed is decided by the next link (see [`verify`]).
struct Pending {
    line: usize,
    seq: u64,
}

struct Checker {
    lines: usize,
    last: Head,
    pending: Option<Pending>,
    first_bad: Option<BadEvent>,
    want_seq: Option<u64>,
    hash_at_want: Option<[u8; 32]>,
}

fn bad(line: usize, seq: Option<u64>, reason: impl Into<String>) -> Option<BadEvent> {
    Some(BadEvent {
        line,
        seq,
        reason: reason.into(),
    })
}

impl Checker {
    fn new(want_seq: Option<u64>) -> Checker {
        Checker {
            lines: 0,
            last: Head {
                seq: 0,
                hash: [0; 32],
            },
            pending: None,
            first_bad: None,
            want_seq,
            hash_at_want: if want_seq == Some(0) {
                Some([0; 32])
            } else {
                None
            },
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.lines += 1;
        if self.first_bad.is_some() {
            return;
        }
        let line = self.lines;
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
        let expected_prev = event::hex(&self.last.hash);

        if let Some(pending) = self.pending.take() {
            // The link into `pending.line` is broken. If the link out of it
            // holds, the line itself is intact and the one before it changed;
            // otherwise `pending.line` changed (its platformprev with it).
            let next_link_holds = matches!(&fields, Ok(next) if next.platformprev == expected_prev);
            self.first_bad = if next_link_holds {
                blame_previous(&pending)
            } else {
                blame_pending(&pending)
            };
            return;
        }

        let fields = match fields {
            Ok(fields) => fields,
            Err(reason) => {
                self.first_bad = bad(line, None, reason);
                return;
            }
        };
        if fields.specversion != "1.0" {
            self.first_bad = bad(line, Some(fields.platformseq), "specversion is not 1.0");
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
            self.first_bad = bad(line, Some(seq), reason);
            return;
        }
        if fields.platformprev != expected_prev {
            if line == 1 {
                self.first_bad = bad(
                    line,
                    Some(seq),
                    "the first event's platformprev is not 64 zeros",
                );
                return;
            }
            self.pending = Some(Pending { line, seq });
        }
        let hash = event::sha256(bytes);
        if self.want_seq == Some(seq) {
            self.hash_at_want = Some(hash);
        }
        self.last = Head { seq, hash };
    }

    fn finish(mut self, head_check: &HeadCheck, torn: u64) -> Scan {
        let head = match head_check {
            HeadCheck::Ignore => None,
            HeadCheck::Compare(head) => *head,
        };
        if let Some(pending) = self.pending.take() {
            // Nothing after the broken link but the head: it decides.
            self.first_bad = if head == Some(self.last) {
                blame_previous(&pending)
            } else {
                blame_pending(&pending)
            };
        }
        let events = self.lines as u64;
        if self.first_bad.is_none() && torn > 0 {
            self.first_bad = bad(
                self.lines + 1,
                None,
                format!(
                    "incomplete final line ({torn} bytes without a newline): a torn write; `audit::repair` cuts it"
                ),
            );
        }
        if self.first_bad.is_none()
            && let HeadCheck::Compare(head) = head_check
        {
            self.first_bad = compare_head(self.lines, self.last, *head, self.hash_at_want);
        }
        Scan {
            events,
            first_bad: self.first_bad,
            hash_at_want: self.hash_at_want,
        }
    }
}

fn blame_previous(pending: &Pending) -> Option<BadEvent> {
    bad(
        pending.line - 1,
        Some(pending.seq - 1),
        format!(
            "edited: its hash no longer matches the platformprev recorded by line {}",
            pending.line
        ),
    )
}

fn blame_pending(pending: &Pending) -> Option<BadEvent> {
    bad(
        pending.line,
        Some(pending.seq),
        format!(
            "its platformprev does not match the hash of line {} (edited or inserted)",
            pending.line - 1
        ),
    )
}

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
    let head_line = usize::try_from(head.seq).unwrap_or(usize::MAX);
    if hash_at_want != Some(head.hash) {
        return bad(
            head_line,
            Some(head.seq),
            "edited: its hash does not match the head sidecar",
        );
    }
    bad(
        head_line + 1,
        Some(head.seq + 1),
        format!(
            "events after seq {} are not in the head sidecar: appended outside the broker, or a crash \
             before the head was updated (AuditLog::open adopts them after checking the chain)",
            head.seq
        ),
    )
}

/// Reads `file` from the start, checking the chain (and the head when asked),
/// copying every byte to `tee` when given.
pub(crate) fn scan_file(
    path: &Path,
    file: &File,
    head_check: HeadCheck,
    want_seq: Option<u64>,
    mut tee: Option<&mut dyn Write>,
) -> Result<Scan, AuditError> {
    let io = |error| AuditError::io(path, "cannot read", error);
    let mut want = want_seq;
    if let HeadCheck::Compare(Some(head)) = &head_check {
        want = Some(head.seq);
    }
    let mut checker = Checker::new(want);
    let mut start = file;
    start.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(4096);
    let mut torn = 0u64;
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
            checker.feed(&buf[..buf.len() - 1]);
        } else {
            torn = buf.len() as u64;
        }
    }
    Ok(checker.finish(&head_check, torn))
}

/// Checks the whole chain and the head sidecar, and names the first bad line.
///
/// Lines are numbered from 1; line 0 means the head sidecar itself. What a
/// single change is reported as:
/// - bytes of event k's line edited (not its `platformprev`): line k, because
///   line k+1 still records the old hash of line k while its own link to
///   line k+2 holds (for the last line, the head sidecar plays line k+1);
/// - event k's `platformprev` edited, or a forged line inserted as line k
///   with a wrong `platformprev`: line k (both its links break);
/// - `platformseq` out of order (lines swapped, deleted or duplicated): the
///   first line whose seq is not its predecessor's plus one;
/// - last events cut: the line after the end, from the head sidecar's seq;
/// - an incomplete last line: that line.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let file = match File::open(path) {
        Ok(file) => Some(file),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(AuditError::io(path, "cannot open", error)),
    };
    if let Some(file) = &file {
        log::lock_shared(file, path)?;
    }
    let result = verify_locked(path, file.as_ref(), None);
    if let Some(file) = &file {
        log::unlock(file);
    }
    result
}

fn verify_locked(
    path: &Path,
    file: Option<&File>,
    tee: Option<&mut dyn Write>,
) -> Result<VerifyReport, AuditError> {
    let head = match log::read_head(path) {
        Ok(head) => head,
        Err(error) if error.kind() == ErrorKind::Tampered => {
            let first_bad = bad(0, None, "the head sidecar is malformed");
            return Ok(VerifyReport {
                events: 0,
                ok: false,
                first_bad,
            });
        }
        Err(error) => return Err(error),
    };
    let scan = match file {
        Some(file) => scan_file(path, file, HeadCheck::Compare(head), None, tee)?,
        None => {
            let first_bad = compare_head(
                0,
                Head {
                    seq: 0,
                    hash: [0; 32],
                },
                head,
                None,
            );
            Scan {
                events: 0,
                first_bad,
                hash_at_want: None,
            }
        }
    };
    Ok(VerifyReport {
        events: scan.events,
        ok: scan.first_bad.is_none(),
        first_bad: scan.first_bad,
    })
}

/// The last `n` complete lines, oldest first. An incomplete last line is left
/// out (`verify` reports it).
pub fn tail(path: &Path, n: usize) -> Result<Vec<String>, AuditError> {
    let file = File::open(path).map_err(|error| AuditError::io(path, "cannot open", error))?;
    let tail = log::last_lines(&file, path, n)?;
    Ok(tail
        .lines
        .into_iter()
        .map(|line| String::from_utf8_lossy(&line).into_owned())
        .collect())
}

/// Copies the log to `out` after verifying it, and returns the number of
/// events. Refuses (`ErrorKind::Tampered`, nothing written) when verification
/// fails. The copy is checked again as it streams (a failure there, from a
/// writer that ignores the lock, leaves a partial copy and an error); broker
/// appends wait meanwhile.
pub fn export(path: &Path, out: &mut dyn Write) -> Result<u64, AuditError> {
    let file = File::open(path).map_err(|error| AuditError::io(path, "cannot open", error))?;
    log::lock_shared(&file, path)?;
    let result = export_locked(path, &file, out);
    log::unlock(&file);
    result
}

fn export_locked(path: &Path, file: &File, out: &mut dyn Write) -> Result<u64, AuditError> {
    let report = verify_locked(path, Some(file), None)?;
    if let Some(bad) = report.first_bad {
        return Err(AuditError::tampered(path, bad));
    }
    let again = verify_locked(path, Some(file), Some(out))?;
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
