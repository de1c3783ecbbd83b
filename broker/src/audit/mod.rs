//! Audit trail: every broker action as one CloudEvents 1.0 JSON line in an
//! append-only, hash-chained file.
//!
//! The key decision: the chain is over the bytes of each line as written,
//! not over a re-serialization, so verifying needs no canonical JSON and
//! cannot disagree with the writer about what was signed. Each line carries
//! `platformseq` (1, 2, …) and `platformprev` (hex SHA-256 of the previous
//! line, 64 zeros for the first); `<log>.head` records the last seq and hash
//! outside the log, so a cut at the end shows too. [`AuditLog`] is the only
//! writer; [`repair`] is the one documented exception to append-only.
//!
//! A chain without a key proves order and integrity against edits, not
//! authorship: someone who can rewrite both the log and its head can forge a
//! consistent history. Shipping lines to a sink the writer cannot rewrite
//! (stdout into a CI log, later a signed webhook) is what closes that gap.
//!
//! Secrets: callers redact `data` before appending; this module never formats
//! `data` (or any text read back from a log line) into an error, a `Debug`
//! output or a log message.

mod error;
mod event;
mod group;
mod log;
mod verify;
pub mod webhook;

pub use error::{AuditError, ErrorKind};
pub use event::{Event, GENESIS_PREV, SOURCE};
pub use group::SharedLog;
pub use log::{AuditLog, Sink, StdoutSink, repair};
pub use verify::{export, tail, verify};
pub use webhook::{FlushReport, Secret, Webhook, WebhookError};

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Complete lines in the log.
    pub events: u64,
    /// True when the chain, the seqs and the head sidecar all agree.
    pub ok: bool,
    /// The first problem, in line order.
    pub first_bad: Option<BadEvent>,
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

    /// Builds a log of `n` events in a fresh directory.
    fn fixture(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let mut log = AuditLog::open(&path).expect("open");
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
    fn head_sidecar_survives_a_torn_slot_and_reads_the_earlier_form() {
        // Five single appends: seq 5 in slot 1, seq 4 in slot 0.
        let (_dir, path) = fixture(5);
        let head_path = log::head_path(&path);
        let sidecar = std::fs::read(&head_path).expect("head");
        assert_eq!(sidecar.len(), 320, "two fixed-size slots");
        assert_eq!(log::read_head(&path).expect("read").map(|h| h.seq), Some(5));

        // A crash tore the newest slot: the older head reads, the log is
        // ahead of it, and opening the log brings the head forward.
        let mut torn = sidecar.clone();
        torn[160 + 20] ^= 0x01;
        std::fs::write(&head_path, &torn).expect("tear");
        assert_eq!(log::read_head(&path).expect("read").map(|h| h.seq), Some(4));
        let mut log = AuditLog::open(&path).expect("open after a torn head");
        assert_eq!(log::read_head(&path).expect("read").map(|h| h.seq), Some(5));
        log.append("dev.platform.broker.plan", None, serde_json::json!({}))
            .expect("append");
        assert_eq!(log::read_head(&path).expect("read").map(|h| h.seq), Some(6));
        assert!(verify(&path).expect("verify").ok);

        // An earlier version's sidecar (one JSON line) still reads, and the
        // next append moves it to slots.
        let last = lines(&path).pop().expect("line");
        let hash = event::hex(&event::sha256(last.as_bytes()));
        std::fs::write(&head_path, format!("{{\"seq\":6,\"hash\":\"{hash}\"}}\n"))
            .expect("legacy head");
        assert!(verify(&path).expect("verify legacy").ok);
        let mut log = AuditLog::open(&path).expect("open with a legacy head");
        log.append("dev.platform.broker.plan", None, serde_json::json!({}))
            .expect("append");
        assert_eq!(log::read_head(&path).expect("read").map(|h| h.seq), Some(7));
        assert!(verify(&path).expect("verify").ok);

        // Both slots unreadable is a malformed sidecar, never a silent pass.
        std::fs::write(&head_path, vec![b' '; 320]).expect("blank");
        assert!(!verify(&path).expect("verify").ok);
    }

    #[test]
    fn head_sidecar_corruption_never_yields_a_head_that_was_not_written() {
        // Every truncation and every single-bit flip of a two-slot sidecar
        // reads as one of the two heads really written, or as malformed.
        let (_dir, path) = fixture(5);
        let head_path = log::head_path(&path);
        let genuine = std::fs::read(&head_path).expect("head");
        let written: Vec<log::Head> = [4, 5]
            .iter()
            .map(|&seq| {
                let mut only = genuine.clone();
                // Blank the other slot to read each genuine head alone.
                let other = if seq % 2 == 0 { 160..320 } else { 0..160 };
                only[other].fill(b' ');
                std::fs::write(&head_path, &only).expect("write");
                log::read_head(&path).expect("read").expect("head")
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
        for bytes in variants {
            std::fs::write(&head_path, &bytes).expect("write");
            match log::read_head(&path) {
                Ok(Some(head)) => assert!(written.contains(&head), "{head:?} was never written"),
                Ok(None) => panic!("an existing sidecar read as missing"),
                Err(error) => assert_eq!(error.kind(), ErrorKind::Tampered),
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
                first_bad: None
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
    fn crash_between_log_and_head_is_adopted_on_open() {
        let (_dir, path) = fixture(2);
        let old_head = std::fs::read(log::head_path(&path)).expect("head");
        AuditLog::open(&path)
            .expect("open")
            .append("dev.platform.broker.plan", None, serde_json::json!(3))
            .expect("append");
        std::fs::write(log::head_path(&path), old_head).expect("roll back head");

        let report = verify(&path).expect("verify");
        assert_eq!(
            report.first_bad.map(|bad| (bad.line, bad.seq)),
            Some((3, Some(3)))
        );
        let log = AuditLog::open(&path).expect("adopt");
        assert_eq!(log.last_seq(), 3);
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
                first_bad: None
            }
        );
    }
}
