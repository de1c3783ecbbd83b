//! Audit trail: every broker action as one CloudEvents 1.0 JSON line in an
//! append-only, hash-chained file, authenticated with the broker key when
//! there is one.
//!
//! The key decision: the chain is over the bytes of each line as written,
//! not over a re-serialization, so verifying needs no canonical JSON and
//! cannot disagree with the writer about what was signed. Each line carries
//! `platformseq` (1, 2, …) and `platformprev`, the previous line's link (64
//! zeros for the first); `<log>.head` records the last seq and link outside
//! the log, so a cut at the end shows too. [`AuditLog`] is the only writer;
//! [`repair_with`] is the one documented exception to append-only.
//!
//! Without a key ([`AuditLog::open`], [`verify`]) a line's link is its
//! SHA-256. That proves order and integrity against edits, not authorship:
//! someone who can rewrite both the log and its head can forge a consistent
//! history.
//!
//! With the broker key ([`AuditLog::open_with`], [`verify_with`]) every line
//! also carries `"platformkey":"k-…"` (the key's id) and, as its last member,
//! `"platformmac"`: HMAC-SHA256 (domain `platform-broker audit chain`) of
//! every byte of the line before that member. The MAC is the line's link, so
//! `platformprev` is a keyed MAC of the previous line, and each head slot
//! carries a MAC over seq, link and pending range. What that proves: every
//! line that verifies was written by a holder of the key, at that position,
//! after the line before it; a line inserted, edited, appended or rewritten
//! by anyone without the key fails on that very line, even beyond the head
//! (a line that merely copies a link is still caught by its own MAC); and
//! the head cannot be forged, so a cut at the end shows. Without the key a
//! keyed log still checks for order, seqs and links, and the report says it
//! is not authenticated.
//!
//! What no local check can tell, key or not: deleting both the log and its
//! head (an empty, headless log is what a new one looks like: `verify`
//! reports `events: 0`; the CLI cross-checks the runs it has bundles for),
//! and putting back an older copy of both (or cutting the log back to an
//! older head that was saved). Those are caught outside the writer's reach:
//! the webhook sink POSTs every line, in order, with an HMAC signature its
//! receiver verifies, so the receiver holds each event and its seq as it
//! happened and sees any history that goes back, restarts or skips seqs.
//! Shipping lines to stdout into a CI job log does the same, less formally.
//!
//! Lines beyond the head (a crash between the log's write and the head's
//! update, or lines someone appended) are never adopted silently: the next
//! open records them in the head as pending, [`AuditLog::warnings`] says so
//! on every open, `verify` fails on them, and only [`repair_with`] adopts
//! (with a key, only lines that authenticate) or cuts them, reporting
//! exactly which.
//!
//! The log, its head and the webhook spool are opened through
//! [`crate::fsx`]: a symlink at any of them is an error, never followed.
//!
//! Secrets: callers redact `data` before appending; this module never formats
//! `data` (or any text read back from a log line, but a well-formed key id)
//! into an error, a `Debug` output or a log message, and the key is known
//! only by its id.

mod error;
mod event;
mod group;
mod log;
mod repair;
mod verify;
pub mod webhook;

pub use error::{AuditError, ErrorKind};
pub use event::{Event, GENESIS_PREV, SOURCE, chain_line};
pub use group::SharedLog;
pub use log::{AuditLog, Sink, StdoutSink};
pub(crate) use log::{head_mac, write_stored_head};
pub use repair::{RepairMode, RepairReport, RepairedEvent, repair, repair_with};
pub use verify::{export, export_with, tail, verify, verify_with};
pub use webhook::{FlushReport, Secret, Webhook, WebhookError};

/// What [`verify_with`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Complete lines in the log.
    pub events: u64,
    /// True when the chain, the seqs and the head sidecar all agree, no
    /// event lies beyond the head, and (with a key) every line and the head
    /// authenticate.
    pub ok: bool,
    /// The first problem, in line order.
    pub first_bad: Option<BadEvent>,
    /// True when a key was given and `ok`: every line and the head were
    /// authenticated with it. False without a key, whatever the lines carry
    /// ("not authenticated: no key").
    pub authenticated: bool,
    /// Lines that carry `platformkey` (checked for order and links without a
    /// key, for authenticity only with it).
    pub keyed_lines: u64,
}

/// The first line `verify` could not vouch for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEvent {
    /// 1-based line number; 0 means the head sidecar itself, and one past the
    /// last line means something missing at the end.
    pub line: usize,
    /// The event's seq when the line could be read (or the missing one).
    pub seq: Option<u64>,
    /// Why, for humans. Never quotes the line's content.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::key::BrokerKey;

    fn test_key() -> BrokerKey {
        BrokerKey::from_bytes(b"audit-test-key-0123456789abcdef").expect("key")
    }

    fn other_key() -> BrokerKey {
        BrokerKey::from_bytes(b"audit-other-key-0123456789abcdef").expect("key")
    }

    fn head_seq(path: &Path) -> Option<u64> {
        log::read_head(path, None)
            .expect("read")
            .map(|head| head.seq)
    }

    fn seqs(events: &[RepairedEvent]) -> Vec<u64> {
        events.iter().filter_map(|event| event.seq).collect()
    }

    fn append_raw(path: &Path, line: &str) {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("open");
        writeln!(file, "{line}").expect("append");
    }

    /// A line as a forger without the key makes it: right seq, and a
    /// `platformprev` that matches the line before (its SHA-256, or for a
    /// keyed line its `platformmac`, copied). With `claim`, it also claims
    /// that key id, with a MAC the forger cannot compute.
    fn forge_after(previous: &str, claim: Option<&str>) -> String {
        let before = Event::from_line(previous).expect("parse");
        let prev = match &before.mac {
            Some(mac) => mac.clone(),
            None => event::hex(&event::sha256(previous.as_bytes())),
        };
        Event {
            id: "0c0ffee0-0000-4000-8000-000000000000".to_owned(),
            source: SOURCE.to_owned(),
            type_: "dev.platform.broker.apply".to_owned(),
            time: before.time.clone(),
            subject: Some("ws-a".to_owned()),
            data: serde_json::json!({"approved_by": "mallory"}),
            seq: before.seq + 1,
            prev,
            key_id: claim.map(str::to_owned),
            mac: claim.map(|_| "ab".repeat(32)),
        }
        .to_line()
        .expect("line")
    }

    /// Builds a log of `n` events in a fresh directory.
    fn fixture(n: usize) -> (tempfile::TempDir, PathBuf) {
        fixture_with(n, None)
    }

    /// Builds a log of `n` events, authenticated with `key` when given.
    fn fixture_with(n: usize, key: Option<&BrokerKey>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let mut log = AuditLog::open_with(&path, key.cloned()).expect("open");
        for idx in 1..=n {
            log.append(
                "dev.platform.broker.plan",
                Some("ws-a"),
                serde_json::json!({ "run": idx }),
            )
            .expect("append");
        }
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).expect("write");
    }

    /// The one helper every case goes through: tamper with a 5-event log,
    /// then compare `verify`'s verdict, rendered as text, with `expect`.
    fn check(tamper: impl FnOnce(&Path, &mut Vec<String>), expect: &str) {
        let (_dir, path) = fixture(5);
        let mut all = lines(&path);
        tamper(&path, &mut all);
        let report = verify(&path).expect("verify");
        let got = match &report.first_bad {
            None => format!("ok events={}", report.events),
            Some(bad) => format!(
                "bad line={} seq={} events={}: {}",
                bad.line,
                bad.seq.map_or("-".to_owned(), |seq| seq.to_string()),
                report.events,
                bad.reason
            ),
        };
        assert_eq!(report.ok, report.first_bad.is_none());
        assert_eq!(got, expect);
    }

    fn edit_data(line: &str) -> String {
        line.replacen("\"run\":", "\"run\":9", 1)
    }

    #[test]
    fn untouched_log_verifies() {
        check(|_, _| {}, "ok events=5");
    }

    #[test]
    fn edited_middle_event_names_its_line() {
        check(
            |path, all| {
                all[2] = edit_data(&all[2]);
                write_lines(path, all);
            },
            "bad line=3 seq=3 events=5: edited: its hash no longer matches the platformprev recorded by line 4",
        );
    }

    #[test]
    fn one_byte_flip_in_first_and_last_event() {
        check(
            |path, all| {
                all[0] = all[0].replacen("ws-a", "ws-b", 1);
                write_lines(path, all);
            },
            "bad line=1 seq=1 events=5: edited: its hash no longer matches the platformprev recorded by line 2",
        );
        check(
            |path, all| {
                all[4] = all[4].replacen("ws-a", "ws-b", 1);
                write_lines(path, all);
            },
            "bad line=5 seq=5 events=5: edited: its hash does not match the head sidecar",
        );
    }

    #[test]
    fn edited_prev_field_names_that_line() {
        check(
            |path, all| {
                let line = &all[3];
                let at = line.find("\"platformprev\":\"").expect("prev") + 16;
                let flipped = if &line[at..=at] == "a" { "b" } else { "a" };
                all[3] = format!("{}{}{}", &line[..at], flipped, &line[at + 1..]);
                write_lines(path, all);
            },
            "bad line=4 seq=4 events=5: its platformprev does not match the hash of line 3 (edited or inserted)",
        );
    }

    #[test]
    fn swapped_lines_are_detected() {
        check(
            |path, all| {
                all.swap(1, 2);
                write_lines(path, all);
            },
            "bad line=2 seq=3 events=5: expected seq 2, found 3: event(s) 2..2 are missing",
        );
    }

    #[test]
    fn deleted_middle_line_is_detected() {
        check(
            |path, all| {
                all.remove(2);
                write_lines(path, all);
            },
            "bad line=3 seq=4 events=4: expected seq 3, found 4: event(s) 3..3 are missing",
        );
    }

    #[test]
    fn duplicated_line_is_detected() {
        check(
            |path, all| {
                let copy = all[1].clone();
                all.insert(2, copy);
                write_lines(path, all);
            },
            "bad line=3 seq=2 events=6: expected seq 3, found 2: events were reordered, duplicated or inserted",
        );
    }

    #[test]
    fn inserted_forged_line_is_detected() {
        // A forger renumbers everything after the insert; the chain still breaks.
        check(
            |path, all| {
                let forged = edit_data(&all[2]);
                all.insert(3, forged);
                for (idx, line) in all.iter_mut().enumerate().skip(4) {
                    *line = line.replacen(
                        &format!("\"platformseq\":{}", idx),
                        &format!("\"platformseq\":{}", idx + 1),
                        1,
                    );
                }
                let forged_seq = all[3].replacen("\"platformseq\":3", "\"platformseq\":4", 1);
                all[3] = forged_seq;
                write_lines(path, all);
            },
            "bad line=4 seq=4 events=6: its platformprev does not match the hash of line 3 (edited or inserted)",
        );
    }

    #[test]
    fn truncated_end_is_detected_via_head() {
        check(
            |path, all| {
                all.pop();
                write_lines(path, all);
            },
            "bad line=5 seq=5 events=4: the log ends at seq 4 but the head sidecar records seq 5: 1 event(s) were cut from the end",
        );
        check(
            |path, all| {
                all.truncate(3);
                write_lines(path, all);
            },
            "bad line=4 seq=4 events=3: the log ends at seq 3 but the head sidecar records seq 5: 2 event(s) were cut from the end",
        );
        check(
            |path, _| std::fs::write(path, "").expect("write"),
            "bad line=1 seq=1 events=0: the log ends at seq 0 but the head sidecar records seq 5: 5 event(s) were cut from the end",
        );
    }

    #[test]
    fn missing_or_malformed_head_is_reported() {
        check(
            |path, _| std::fs::remove_file(log::head_path(path)).expect("rm"),
            "bad line=6 seq=- events=5: the head sidecar is missing, so a cut at the end of the log cannot be ruled out",
        );
        check(
            |path, _| std::fs::write(log::head_path(path), "{").expect("write"),
            "bad line=0 seq=- events=0: the head sidecar is malformed",
        );
    }

    #[test]
    fn head_sidecar_survives_a_torn_slot_and_reads_the_earlier_forms() {
        // Five single appends: seq 5 in slot 1, seq 4 in slot 0.
        let (_dir, path) = fixture(5);
        let head_path = log::head_path(&path);
        let slot = log::HEAD_SLOT;
        let sidecar = std::fs::read(&head_path).expect("head");
        assert_eq!(sidecar.len(), 2 * slot, "two fixed-size slots");
        assert_eq!(head_seq(&path), Some(5));

        // A crash tore the newest slot: the older head reads, and the log is
        // ahead of it. Opening records event 5 as pending instead of adopting
        // it; a repair adopts it.
        let mut torn = sidecar.clone();
        torn[slot + 20] ^= 0x01;
        std::fs::write(&head_path, &torn).expect("tear");
        assert_eq!(head_seq(&path), Some(4));
        let log = AuditLog::open(&path).expect("open after a torn head");
        assert_eq!(log.pending(), Some((5, 5)));
        assert!(log.warnings()[0].contains("event(s) 5..5 lie beyond the head"));
        let report = repair_with(&path, None, RepairMode::Adopt).expect("repair");
        assert_eq!(seqs(&report.adopted), vec![5]);
        let mut log = AuditLog::open(&path).expect("open after repair");
        assert!(log.warnings().is_empty(), "{:?}", log.warnings());
        log.append("dev.platform.broker.plan", None, serde_json::json!({}))
            .expect("append");
        assert_eq!(head_seq(&path), Some(6));
        assert!(verify(&path).expect("verify").ok);

        // The previous version's sidecar (two 160-byte slots) still reads.
        let last = lines(&path).pop().expect("line");
        let hash = event::hex(&event::sha256(last.as_bytes()));
        let check = &event::hex(&event::sha256(format!("6:{hash}").as_bytes()))[..16];
        let mut v1 =
            format!("{{\"seq\":6,\"hash\":\"{hash}\",\"check\":\"{check}\"}}").into_bytes();
        v1.resize(159, b' ');
        v1.push(b'\n');
        let mut v1_file = vec![b' '; 160];
        v1_file.extend_from_slice(&v1);
        std::fs::write(&head_path, &v1_file).expect("v1 head");
        assert_eq!(head_seq(&path), Some(6));
        assert!(verify(&path).expect("verify v1").ok);
        let mut log = AuditLog::open(&path).expect("open with a v1 head");
        log.append("dev.platform.broker.plan", None, serde_json::json!({}))
            .expect("append");
        assert_eq!(head_seq(&path), Some(7));
        assert!(verify(&path).expect("verify").ok);

        // An earlier version's sidecar (one JSON line) still reads, and the
        // next append moves it to slots.
        let last = lines(&path).pop().expect("line");
        let hash = event::hex(&event::sha256(last.as_bytes()));
        std::fs::write(&head_path, format!("{{\"seq\":7,\"hash\":\"{hash}\"}}\n"))
            .expect("legacy head");
        assert!(verify(&path).expect("verify legacy").ok);
        let mut log = AuditLog::open(&path).expect("open with a legacy head");
        log.append("dev.platform.broker.plan", None, serde_json::json!({}))
            .expect("append");
        assert_eq!(head_seq(&path), Some(8));
        assert!(verify(&path).expect("verify").ok);

        // Both slots unreadable is a malformed sidecar, never a silent pass.
        std::fs::write(&head_path, vec![b' '; 2 * slot]).expect("blank");
        assert!(!verify(&path).expect("verify").ok);
    }

    #[test]
    fn head_sidecar_corruption_never_yields_a_head_that_was_not_written() {
        // Every truncation and every single-bit flip of a two-slot sidecar
        // reads as one of the two heads really written, or as malformed;
        // with the key, never as a head the key did not make.
        let key = test_key();
        for key in [None, Some(&key)] {
            let (_dir, path) = fixture_with(5, key);
            let head_path = log::head_path(&path);
            let slot = log::HEAD_SLOT;
            let genuine = std::fs::read(&head_path).expect("head");
            let written: Vec<log::Sidecar> = [4, 5]
                .iter()
                .map(|&seq| {
                    let mut only = genuine.clone();
                    // Blank the other slot to read each genuine head alone.
                    let other = if seq % 2 == 0 {
                        slot..2 * slot
                    } else {
                        0..slot
                    };
                    only[other].fill(b' ');
                    std::fs::write(&head_path, &only).expect("write");
                    log::read_head(&path, None).expect("read").expect("head")
                })
                .collect();
            let mut variants: Vec<Vec<u8>> =
                (0..genuine.len()).map(|n| genuine[..n].to_vec()).collect();
            for at in 0..genuine.len() {
                for bit in 0..8 {
                    let mut flipped = genuine.clone();
                    flipped[at] ^= 1 << bit;
                    variants.push(flipped);
                }
            }
            // Each variant in a file of its own: truncating one file over
            // and over costs milliseconds a time on some file systems.
            let variants_dir = tempfile::tempdir().expect("tempdir");
            for (n, bytes) in variants.into_iter().enumerate() {
                let variant = variants_dir.path().join(format!("v{n}"));
                std::fs::write(log::head_path(&variant), &bytes).expect("write");
                for reader_key in [None, key] {
                    match log::read_head(&variant, reader_key) {
                        Ok(Some(head)) => {
                            assert!(written.contains(&head), "{head:?} was never written");
                            if let Some(key) = key {
                                assert!(head.authenticates(key));
                            }
                        }
                        Ok(None) => panic!("an existing sidecar read as missing"),
                        Err(error) => assert_eq!(error.kind(), ErrorKind::Tampered),
                    }
                }
            }
        }
    }

    #[test]
    fn garbage_line_is_reported_without_quoting_it() {
        check(
            |path, all| {
                all[1] = "{\"secret\": \"hunter2\"".to_owned();
                write_lines(path, all);
            },
            "bad line=2 seq=- events=5: not a valid audit event (JSON error at column 20)",
        );
    }

    #[test]
    fn torn_line_fails_open_and_repair_cuts_only_it() {
        let (_dir, path) = fixture(3);
        let intact = std::fs::read(&path).expect("read");
        let mut torn = intact.clone();
        torn.extend_from_slice(b"{\"specversion\":\"1.0\",\"id\":\"ab");
        std::fs::write(&path, &torn).expect("write");

        let error = AuditLog::open(&path).expect_err("torn");
        assert_eq!(error.kind(), ErrorKind::TornTail);
        assert!(
            error.to_string().contains("line 4 is incomplete (29 bytes"),
            "{error}"
        );
        let report = verify(&path).expect("verify");
        assert_eq!(report.first_bad.map(|bad| bad.line), Some(4));

        assert_eq!(repair(&path).expect("repair"), 29);
        assert_eq!(std::fs::read(&path).expect("read"), intact);
        assert_eq!(repair(&path).expect("repair again"), 0);
        let mut log = AuditLog::open(&path).expect("open after repair");
        assert_eq!(
            log.append("dev.platform.broker.apply", None, serde_json::json!({}))
                .expect("append")
                .seq,
            4
        );
        assert!(verify(&path).expect("verify").ok);
    }

    #[test]
    fn reopen_continues_the_chain() {
        let (_dir, path) = fixture(2);
        let last_hash = {
            let all = lines(&path);
            event::hex(&event::sha256(all[1].as_bytes()))
        };
        let mut log = AuditLog::open(&path).expect("reopen");
        assert_eq!(log.last_seq(), 2);
        let event = log
            .append(
                "dev.platform.broker.drift",
                Some("ws-b"),
                serde_json::json!({"n": 1}),
            )
            .expect("append");
        assert_eq!((event.seq, event.prev.as_str()), (3, last_hash.as_str()));
        let batch = log
            .append_batch(
                (0..3)
                    .map(|idx| {
                        (
                            "dev.platform.broker.plan".to_owned(),
                            None,
                            serde_json::json!(idx),
                        )
                    })
                    .collect(),
            )
            .expect("batch");
        assert_eq!(
            batch.iter().map(|event| event.seq).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        assert_eq!(
            verify(&path).expect("verify"),
            VerifyReport {
                events: 6,
                ok: true,
                first_bad: None,
                authenticated: false,
                keyed_lines: 0,
            }
        );
    }

    #[test]
    fn two_writers_share_one_chain() {
        let (_dir, path) = fixture(1);
        let mut first = AuditLog::open(&path).expect("open 1");
        let mut second = AuditLog::open(&path).expect("open 2");
        first
            .append("dev.platform.broker.plan", None, serde_json::json!(1))
            .expect("append 1");
        let event = second
            .append("dev.platform.broker.plan", None, serde_json::json!(2))
            .expect("append 2");
        assert_eq!(event.seq, 3);
        assert!(verify(&path).expect("verify").ok);
    }

    #[test]
    fn crash_between_log_and_head_is_not_adopted_on_open() {
        let (_dir, path) = fixture(2);
        let old_head = std::fs::read(log::head_path(&path)).expect("head");
        AuditLog::open(&path)
            .expect("open")
            .append("dev.platform.broker.plan", None, serde_json::json!(3))
            .expect("append");
        std::fs::write(log::head_path(&path), old_head).expect("roll back head");

        let report = verify(&path).expect("verify");
        assert_eq!(
            report.first_bad.map(|bad| (bad.line, bad.seq, bad.reason)),
            Some((3, Some(3), verify::unadopted_reason(3, 3)))
        );
        // Opening continues after the real last line, records the range,
        // and says so every time until a repair.
        for _ in 0..2 {
            let log = AuditLog::open(&path).expect("open");
            assert_eq!((log.last_seq(), log.pending()), (3, Some((3, 3))));
            assert_eq!(log.warnings().len(), 1, "{:?}", log.warnings());
            assert!(!verify(&path).expect("verify").ok);
        }
        let report = repair_with(&path, None, RepairMode::default()).expect("repair");
        assert_eq!(seqs(&report.adopted), vec![3]);
        assert!(verify(&path).expect("verify").ok);
    }

    #[test]
    fn open_refuses_a_cut_or_headless_log() {
        let (_dir, path) = fixture(3);
        let mut all = lines(&path);
        all.pop();
        write_lines(&path, &all);
        assert_eq!(
            AuditLog::open(&path).expect_err("cut").kind(),
            ErrorKind::Tampered
        );
        std::fs::remove_file(log::head_path(&path)).expect("rm");
        assert_eq!(
            AuditLog::open(&path).expect_err("headless").kind(),
            ErrorKind::HeadMissing
        );
    }

    #[test]
    fn event_line_round_trips_and_is_cloudevents() {
        let (_dir, path) = fixture(1);
        let line = &lines(&path)[0];
        let event = Event::from_line(line).expect("parse");
        assert_eq!(&event.to_line().expect("encode"), line);
        assert_eq!(
            (event.seq, event.prev.as_str(), event.source.as_str()),
            (1, GENESIS_PREV, SOURCE)
        );
        let value: serde_json::Value = serde_json::from_str(line).expect("json");
        let keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "data",
            "datacontenttype",
            "id",
            "platformprev",
            "platformseq",
            "source",
            "specversion",
            "subject",
            "time",
            "type",
        ];
        expected.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert!(
            line.starts_with("{\"specversion\":\"1.0\",\"id\":\""),
            "{line}"
        );
        let id = &event.id;
        assert_eq!((id.len(), &id[14..15]), (36, "4"));
        assert!(
            time::OffsetDateTime::parse(
                &event.time,
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );
    }

    #[test]
    fn tail_and_export() {
        let (_dir, path) = fixture(4);
        let all = lines(&path);
        assert_eq!(tail(&path, 2).expect("tail"), all[2..].to_vec());
        assert_eq!(tail(&path, 10).expect("tail"), all);
        assert!(tail(&path, 0).expect("tail").is_empty());

        let mut out = Vec::new();
        assert_eq!(export(&path, &mut out).expect("export"), 4);
        assert_eq!(out, std::fs::read(&path).expect("read"));

        let mut edited = all.clone();
        edited[1] = edit_data(&edited[1]);
        write_lines(&path, &edited);
        let mut refused = Vec::new();
        let error = export(&path, &mut refused).expect_err("tampered");
        assert_eq!(
            (error.kind(), error.bad_event().map(|bad| bad.line)),
            (ErrorKind::Tampered, Some(2))
        );
        assert!(refused.is_empty());
    }

    #[test]
    fn errors_and_debug_never_show_data() {
        let (_dir, path) = fixture(0);
        let mut log = AuditLog::open(&path).expect("open");
        let event = log
            .append(
                "dev.platform.broker.plan",
                None,
                serde_json::json!({"token": "hunter2"}),
            )
            .expect("append");
        assert!(!format!("{event:?}").contains("hunter2"));
        let error = log
            .append("", None, serde_json::json!({"token": "hunter2"}))
            .expect_err("empty type");
        assert!(!format!("{error} {error:?}").contains("hunter2"));
    }

    #[test]
    fn empty_log_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        assert!(verify(&path).expect("missing log").ok);
        AuditLog::open(&path).expect("open");
        assert_eq!(
            verify(&path).expect("empty"),
            VerifyReport {
                events: 0,
                ok: true,
                first_bad: None,
                authenticated: false,
                keyed_lines: 0,
            }
        );
    }

    #[test]
    fn appended_line_is_never_adopted_until_repair() {
        let (_dir, path) = fixture(3);
        let original = std::fs::read(&path).expect("read");
        let forged = forge_after(&lines(&path)[2], None);
        append_raw(&path, &forged);
        let expected = verify::unadopted_reason(4, 4);
        let first_bad = |path: &Path| {
            let report = verify(path).expect("verify");
            assert!(!report.ok);
            report.first_bad.map(|bad| (bad.line, bad.seq, bad.reason))
        };
        assert_eq!(first_bad(&path), Some((4, Some(4), expected.clone())));

        // Opening warns and does not adopt; appends go on after line 4, and
        // verify keeps failing on it.
        let mut log = AuditLog::open(&path).expect("open");
        assert_eq!(
            log.warnings(),
            [format!("{}: {expected}", path.display())].as_slice()
        );
        let event = log
            .append("dev.platform.broker.plan", None, serde_json::json!(5))
            .expect("append");
        assert_eq!(event.seq, 5);
        assert_eq!(first_bad(&path), Some((4, Some(4), expected.clone())));
        drop(log);
        let log = AuditLog::open(&path).expect("reopen");
        assert_eq!(log.warnings().len(), 1);
        assert_eq!(log.pending(), Some((4, 4)));

        // Cutting is refused: event 5 was adopted after it.
        let error = repair_with(&path, None, RepairMode::Cut).expect_err("not at the end");
        assert_eq!(error.kind(), ErrorKind::Refused);
        assert!(
            error
                .to_string()
                .contains("event(s) 5..5 were adopted after them"),
            "{error}"
        );

        // Adopting reports exactly what it took, then all verifies.
        let report = repair_with(&path, None, RepairMode::Adopt).expect("repair");
        assert_eq!(
            report,
            RepairReport {
                torn_bytes: 0,
                adopted: vec![RepairedEvent {
                    seq: Some(4),
                    id: "0c0ffee0-0000-4000-8000-000000000000".to_owned(),
                    type_: "dev.platform.broker.apply".to_owned(),
                }],
                cut: Vec::new(),
            }
        );
        assert!(verify(&path).expect("verify").ok);
        assert!(
            repair_with(&path, None, RepairMode::Adopt)
                .expect("again")
                .is_empty()
        );

        // The caller records the repair; that append verifies too.
        let mut log = AuditLog::open(&path).expect("open after repair");
        assert!(log.warnings().is_empty());
        assert_eq!(log.pending(), None);
        log.append(
            "dev.platform.broker.audit.repair",
            None,
            serde_json::json!({"adopted": [4]}),
        )
        .expect("append");
        assert!(verify(&path).expect("verify").ok);
        assert!(std::fs::read(&path).expect("read").starts_with(&original));
    }

    #[test]
    fn a_running_writer_does_not_adopt_lines_appended_under_it() {
        let (_dir, path) = fixture(2);
        let mut log = AuditLog::open(&path).expect("open");
        append_raw(&path, &forge_after(&lines(&path)[1], None));
        let event = log
            .append("dev.platform.broker.plan", None, serde_json::json!(4))
            .expect("append");
        assert_eq!((event.seq, log.pending()), (4, Some((3, 3))));
        assert!(log.warnings()[0].contains("event(s) 3..3 lie beyond the head"));
        let report = verify(&path).expect("verify");
        assert_eq!(report.first_bad.map(|bad| bad.line), Some(3));
    }

    #[test]
    fn cut_removes_unadopted_lines_at_the_end() {
        let (_dir, path) = fixture(3);
        let original = std::fs::read(&path).expect("read");
        let fourth = forge_after(&lines(&path)[2], None);
        append_raw(&path, &fourth);
        append_raw(&path, &forge_after(&fourth, None));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, b"{\"torn"))
            .expect("torn");

        let report = repair_with(&path, None, RepairMode::Cut).expect("cut");
        assert_eq!(report.torn_bytes, 6);
        assert_eq!(seqs(&report.cut), vec![4, 5]);
        assert!(report.adopted.is_empty());
        assert_eq!(std::fs::read(&path).expect("read"), original);
        assert!(verify(&path).expect("verify").ok);
        let mut log = AuditLog::open(&path).expect("open");
        assert!(log.warnings().is_empty());
        let event = log
            .append(
                "dev.platform.broker.audit.repair",
                None,
                serde_json::json!({}),
            )
            .expect("append");
        assert_eq!(event.seq, 4);
        assert!(verify(&path).expect("verify").ok);

        // Garbage appended after the head (open refuses it) is cut as well.
        append_raw(&path, "not an event");
        assert_eq!(
            AuditLog::open(&path).expect_err("garbage").kind(),
            ErrorKind::Tampered
        );
        assert!(repair_with(&path, None, RepairMode::Adopt).is_err());
        let report = repair_with(&path, None, RepairMode::Cut).expect("cut garbage");
        assert_eq!(report.cut.len(), 1);
        assert_eq!(report.cut[0].seq, None);
        assert_eq!(report.cut[0].id, "(malformed)");
        assert!(verify(&path).expect("verify").ok);
    }

    #[test]
    fn keyed_log_authenticates_and_says_when_it_cannot() {
        let key = test_key();
        let (_dir, path) = fixture_with(4, Some(&key));
        for line in lines(&path) {
            let event = Event::from_line(&line).expect("parse");
            assert_eq!(event.key_id.as_deref(), Some(key.id()));
            assert!(line.ends_with("\"}"), "{line}");
            assert_eq!(event.to_line().expect("encode"), line);
        }
        let with_key = verify_with(&path, Some(&key)).expect("verify");
        assert_eq!(
            with_key,
            VerifyReport {
                events: 4,
                ok: true,
                first_bad: None,
                authenticated: true,
                keyed_lines: 4,
            }
        );
        let without = verify(&path).expect("verify");
        assert_eq!(
            (without.ok, without.authenticated, without.keyed_lines),
            (true, false, 4)
        );
        let mut out = Vec::new();
        assert_eq!(export_with(&path, Some(&key), &mut out).expect("export"), 4);
        assert_eq!(tail(&path, 1).expect("tail"), lines(&path)[3..].to_vec());

        // Editing a keyed line's data: the key finds that very line.
        let mut all = lines(&path);
        all[1] = edit_data(&all[1]);
        write_lines(&path, &all);
        let report = verify_with(&path, Some(&key)).expect("verify");
        let bad = report.first_bad.expect("bad");
        assert_eq!(bad.line, 2);
        assert!(
            bad.reason.contains("platformmac does not verify"),
            "{}",
            bad.reason
        );
        // Without the key, the edit cannot be seen, and the report says why.
        let report = verify(&path).expect("verify");
        assert!(report.ok && !report.authenticated);
        assert!(export_with(&path, Some(&key), &mut Vec::new()).is_err());
    }

    #[test]
    fn keyed_log_rewritten_with_plain_hashes_fails_with_the_key() {
        let key = test_key();
        let (_dir, path) = fixture_with(5, Some(&key));
        // The attacker drops the key fields and recomputes every link and
        // the head with SHA-256, consistently.
        let mut link = [0u8; 32];
        let mut rewritten = Vec::new();
        for line in lines(&path) {
            let mut event = Event::from_line(&line).expect("parse");
            event.key_id = None;
            event.mac = None;
            event.prev = event::hex(&link);
            let text = event.to_line().expect("encode");
            link = event::sha256(text.as_bytes());
            rewritten.push(text);
        }
        write_lines(&path, &rewritten);
        log::write_head(
            &path,
            &log::Sidecar::new(log::Head { seq: 5, hash: link }, None, None),
            true,
        )
        .expect("head");
        assert!(verify(&path).expect("verify").ok, "no key: consistent");
        let report = verify_with(&path, Some(&key)).expect("verify");
        assert!(!report.ok && !report.authenticated);
        let bad = report.first_bad.expect("bad");
        assert_eq!(
            (bad.line, bad.reason.as_str()),
            (
                1,
                "line 1 is not authenticated with the broker key (written without a key, or forged)"
            )
        );
    }

    #[test]
    fn keyed_log_cut_with_a_forged_head_fails() {
        let key = test_key();
        let (_dir, path) = fixture_with(4, Some(&key));
        let mut all = lines(&path);
        all.pop();
        write_lines(&path, &all);
        let third = Event::from_line(&all[2]).expect("parse");
        let hash = event::unhex(third.mac.as_deref().expect("mac")).expect("hex");
        let head = log::Head { seq: 3, hash };
        // An unkeyed head matching the cut log, then one claiming our key.
        for claim in [None, Some(&other_key())] {
            let mut sidecar = log::Sidecar::new(head, None, claim);
            if claim.is_some() {
                sidecar.key_id = Some(key.id().to_owned());
            }
            log::write_head(&path, &sidecar, true).expect("head");
            assert!(verify(&path).expect("verify").ok, "no key: consistent");
            let report = verify_with(&path, Some(&key)).expect("verify");
            let bad = report.first_bad.expect("bad");
            assert_eq!(bad.line, 0);
            assert!(
                bad.reason
                    .starts_with("the head sidecar is not authenticated"),
                "{}",
                bad.reason
            );
            let error = AuditLog::open_with(&path, Some(key.clone())).expect_err("forged head");
            assert_eq!(error.kind(), ErrorKind::Tampered);
            let error = repair_with(&path, Some(&key), RepairMode::Adopt);
            assert!(error.is_ok(), "nothing beyond the head to repair");
        }
    }

    #[test]
    fn emptying_log_and_head_cannot_be_told_from_a_new_log() {
        // Documented limit: the CLI cross-checks run bundles; a webhook
        // receiver has every event.
        let key = test_key();
        let (_dir, path) = fixture_with(3, Some(&key));
        std::fs::remove_file(log::head_path(&path)).expect("rm head");
        std::fs::write(&path, "").expect("empty");
        let report = verify_with(&path, Some(&key)).expect("verify");
        assert_eq!((report.events, report.ok), (0, true));
        std::fs::remove_file(&path).expect("rm log");
        let report = verify_with(&path, Some(&key)).expect("verify");
        assert_eq!((report.events, report.ok, report.keyed_lines), (0, true, 0));
    }

    #[test]
    fn wrong_key_is_reported_with_both_ids() {
        let key = test_key();
        let other = other_key();
        let (_dir, path) = fixture_with(2, Some(&key));
        let report = verify_with(&path, Some(&other)).expect("verify");
        let bad = report.first_bad.expect("bad");
        assert_eq!(
            (bad.line, bad.reason),
            (
                1,
                format!(
                    "line 1 was written with key {}, not the configured {}",
                    key.id(),
                    other.id()
                )
            )
        );
        // A broker with the other key still writes (rotation), and says the
        // earlier events are not authenticated by its key.
        let log = AuditLog::open_with(&path, Some(other.clone())).expect("open");
        assert!(
            log.warnings()[0].contains(&format!("written with key {}", key.id())),
            "{:?}",
            log.warnings()
        );
        assert!(!format!("{log:?}").contains("audit-other-key"));
    }

    #[test]
    fn keyed_forged_appended_line_is_reported_and_never_adopted() {
        let key = test_key();
        let (_dir, path) = fixture_with(3, Some(&key));
        let original = std::fs::read(&path).expect("read");
        // The forger copies line 3's platformmac (also in the head) into its
        // platformprev, so the link holds; its own MAC cannot.
        for claim in [Some(key.id()), None] {
            append_raw(&path, &forge_after(&lines(&path)[2], claim));
            let report = verify_with(&path, Some(&key)).expect("verify");
            let bad = report.first_bad.expect("bad");
            assert_eq!(bad.line, 4);
            assert!(
                bad.reason.contains("line 4 is not authenticated"),
                "{}",
                bad.reason
            );
            assert!(
                bad.reason
                    .ends_with("it lies beyond the head and was never adopted")
            );

            let log = AuditLog::open_with(&path, Some(key.clone())).expect("open");
            assert_eq!(log.pending(), Some((4, 4)));
            assert!(log.warnings()[0].contains("event(s) 4..4 lie beyond the head"));
            assert!(log.warnings()[1].contains("line 4 is not authenticated"));
            drop(log);

            let error = repair_with(&path, Some(&key), RepairMode::Adopt).expect_err("forged");
            assert_eq!(error.kind(), ErrorKind::Tampered);
            assert_eq!(error.bad_event().map(|bad| bad.line), Some(4));
            assert!(
                error.to_string().contains("cannot adopt event(s) 4..4"),
                "{error}"
            );
            // Without the key, repair refuses to touch a keyed log.
            let error = repair_with(&path, None, RepairMode::Adopt).expect_err("no key");
            assert_eq!(error.kind(), ErrorKind::Refused);

            let report = repair_with(&path, Some(&key), RepairMode::Cut).expect("cut");
            assert_eq!(seqs(&report.cut), vec![4]);
            assert_eq!(std::fs::read(&path).expect("read"), original);
            let report = verify_with(&path, Some(&key)).expect("verify");
            assert!(report.ok && report.authenticated, "{report:?}");
        }
    }

    #[test]
    fn keyed_crash_before_the_head_update_is_adopted_by_repair() {
        let key = test_key();
        let (_dir, path) = fixture_with(2, Some(&key));
        let old_head = std::fs::read(log::head_path(&path)).expect("head");
        AuditLog::open_with(&path, Some(key.clone()))
            .expect("open")
            .append("dev.platform.broker.plan", None, serde_json::json!(3))
            .expect("append");
        std::fs::write(log::head_path(&path), old_head).expect("roll back head");

        let log = AuditLog::open_with(&path, Some(key.clone())).expect("open");
        assert_eq!(log.warnings().len(), 1, "not forged: {:?}", log.warnings());
        drop(log);
        let report = verify_with(&path, Some(&key)).expect("verify");
        assert_eq!(report.first_bad.map(|bad| bad.line), Some(3));
        let report = repair_with(&path, Some(&key), RepairMode::Adopt).expect("repair");
        assert_eq!(seqs(&report.adopted), vec![3]);
        assert_eq!(report.adopted[0].type_, "dev.platform.broker.plan");
        let mut log = AuditLog::open_with(&path, Some(key.clone())).expect("open");
        log.append(
            "dev.platform.broker.audit.repair",
            None,
            serde_json::json!({}),
        )
        .expect("append");
        let report = verify_with(&path, Some(&key)).expect("verify");
        assert!(report.ok && report.authenticated && report.keyed_lines == 4);
    }

    #[test]
    fn adding_a_key_to_an_old_log_keeps_it_writable_and_says_so() {
        let key = test_key();
        let (_dir, path) = fixture(2);
        let mut log = AuditLog::open_with(&path, Some(key.clone())).expect("open");
        assert!(
            log.warnings()[0].contains("written without a key"),
            "{:?}",
            log.warnings()
        );
        log.append("dev.platform.broker.plan", None, serde_json::json!(3))
            .expect("append");
        let report = verify(&path).expect("verify");
        assert!(report.ok && report.keyed_lines == 1);
        let report = verify_with(&path, Some(&key)).expect("verify");
        assert_eq!(report.first_bad.map(|bad| bad.line), Some(1));
        let log = AuditLog::open_with(&path, Some(key.clone())).expect("reopen");
        assert!(log.warnings().is_empty(), "{:?}", log.warnings());
        // A command without the key is told the log is keyed.
        let log = AuditLog::open(&path).expect("open without key");
        assert!(log.warnings()[0].contains("none is configured here"));
    }

    #[test]
    fn symlinked_log_or_head_is_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep\n").expect("write");
        let path = dir.path().join("audit.log");
        std::os::unix::fs::symlink(&outside, &path).expect("symlink");
        let error = AuditLog::open(&path).expect_err("symlinked log");
        assert_eq!(error.kind(), ErrorKind::Io);
        let message = error.to_string();
        assert!(
            message.contains("audit.log") && message.contains("symbolic link"),
            "{message}"
        );
        assert!(verify(&path).is_err());
        assert!(tail(&path, 1).is_err());
        assert!(export(&path, &mut Vec::new()).is_err());
        assert!(repair_with(&path, None, RepairMode::Cut).is_err());
        assert!(repair(&path).is_err());
        assert_eq!(std::fs::read_to_string(&outside).expect("read"), "keep\n");

        let (_dir, path) = fixture(2);
        let mut log = AuditLog::open(&path).expect("open");
        let head_path = log::head_path(&path);
        std::fs::remove_file(&head_path).expect("rm");
        std::os::unix::fs::symlink(&outside, &head_path).expect("symlink");
        let error = log
            .append("dev.platform.broker.plan", None, serde_json::json!(3))
            .expect_err("symlinked head");
        assert!(error.to_string().contains("audit.log.head"), "{error}");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        let error = AuditLog::open(&path).expect_err("symlinked head");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(verify(&path).is_err());
        assert_eq!(std::fs::read_to_string(&outside).expect("read"), "keep\n");
    }
}
