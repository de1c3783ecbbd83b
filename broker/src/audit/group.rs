//! [`SharedLog`]: group commit for many threads appending to one log.
//!
//! A CLI command appends one to three events and pays one fsync each time.
//! Under load (many concurrent appenders in one process, as a server has)
//! one fsync per event caps throughput at the disk's sync rate. Here the
//! first appender to arrive becomes the leader: it takes every event queued
//! so far, writes them with one `append_batch` (one write, one fsync, one
//! head update) and hands each waiting appender its own event. Appenders
//! that arrive meanwhile queue up for the next batch. Every `append` still
//! returns only after its event is durable.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::error::{AuditError, ErrorKind};
use super::event::Event;
use super::log::AuditLog;

type Pending = (String, Option<String>, serde_json::Value);

/// An [`AuditLog`] that any number of threads can append to at once.
pub struct SharedLog {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// `None` while a leader has it out for a batch.
    log: Option<AuditLog>,
    queue: Vec<(u64, Pending)>,
    next_ticket: u64,
    /// Outcomes waiting for their appender: the event, or (kind, message).
    done: HashMap<u64, Result<Event, (ErrorKind, String)>>,
    path: std::path::PathBuf,
}

impl SharedLog {
    pub fn new(log: AuditLog) -> SharedLog {
        let path = log.path().to_path_buf();
        SharedLog {
            state: Mutex::new(State {
                log: Some(log),
                queue: Vec::new(),
                next_ticket: 0,
                done: HashMap::new(),
                path,
            }),
            changed: Condvar::new(),
        }
    }

    /// Appends one event; returns once it is fsynced (in some batch).
    pub fn append(
        &self,
        type_: &str,
        subject: Option<&str>,
        data: serde_json::Value,
    ) -> Result<Event, AuditError> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state
            .queue
            .push((ticket, (type_.to_owned(), subject.map(str::to_owned), data)));
        loop {
            if let Some(outcome) = state.done.remove(&ticket) {
                let path = state.path.clone();
                return outcome.map_err(|(kind, message)| AuditError::new(kind, &path, message));
            }
            if state.log.is_some() && !state.queue.is_empty() {
                state = self.lead(state);
                continue;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Writes everything queued as one batch, without holding the lock
    /// during the write and fsync.
    fn lead<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let Some(mut log) = state.log.take() else {
            return state;
        };
        let batch = std::mem::take(&mut state.queue);
        drop(state);
        let (tickets, events): (Vec<u64>, Vec<Pending>) = batch.into_iter().unzip();
        // A panic inside the batch (say, in a sink) must not strand the
        // other appenders waiting for a log that never comes back.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| log.append_batch(events)));
        let mut state = self.lock();
        state.log = Some(log);
        let failed = |state: &mut State, kind: ErrorKind, message: String| {
            for ticket in &tickets {
                state.done.insert(*ticket, Err((kind, message.clone())));
            }
        };
        match outcome {
            Ok(Ok(events)) => {
                for (ticket, event) in tickets.iter().zip(events) {
                    state.done.insert(*ticket, Ok(event));
                }
            }
            // The whole batch was rolled back (or its head update failed):
            // every appender in it gets the error, none counts as durable.
            Ok(Err(error)) => failed(&mut state, error.kind(), error.to_string()),
            // Where the batch got to is unknown: not durable as far as its
            // appenders know (the next append re-reads the log's tail).
            Err(_) => failed(
                &mut state,
                ErrorKind::Io,
                "the append was interrupted by a panic; it may or may not be in the log".into(),
            ),
        }
        self.changed.notify_all();
        state
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // State changes in small steps under the lock and a panic in a
        // batch is caught in `lead`, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The log back, once no appender is left.
    pub fn into_inner(self) -> Option<AuditLog> {
        self.state
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify;

    #[test]
    fn concurrent_appenders_share_batches_and_one_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let shared = SharedLog::new(AuditLog::open(&path).expect("open"));
        let threads = 8;
        let per_thread = 200;
        let seqs: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let shared = &shared;
                    scope.spawn(move || {
                        (0..per_thread)
                            .map(|i| {
                                shared
                                    .append(
                                        "dev.platform.broker.plan",
                                        Some("ws"),
                                        serde_json::json!({"thread": t, "i": i}),
                                    )
                                    .expect("append")
                                    .seq
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("join"))
                .collect()
        });
        // Each appender got its own seq, in its own order; together 1..=N.
        let mut all: Vec<u64> = seqs.iter().flatten().copied().collect();
        for mine in &seqs {
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        }
        all.sort_unstable();
        let n = (threads * per_thread) as u64;
        assert_eq!(all, (1..=n).collect::<Vec<_>>());
        let report = verify(&path).expect("verify");
        assert!(report.ok && report.events == n, "{report:?}");
        // Each line carries the data its appender gave it.
        let text = std::fs::read_to_string(&path).expect("read");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let (t, i) = (&v["data"]["thread"], &v["data"]["i"]);
            let seq = v["platformseq"].as_u64().expect("seq");
            let t = t.as_u64().expect("thread") as usize;
            let i = i.as_u64().expect("i") as usize;
            assert_eq!(seqs[t][i], seq);
        }
        assert_eq!(shared.into_inner().expect("log").last_seq(), n);
    }

    struct PanicsOnce(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl crate::audit::Sink for PanicsOnce {
        fn send(&mut self, _lines: &[String]) -> std::io::Result<()> {
            if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                panic!("sink failure injected by the test");
            }
            Ok(())
        }
    }

    #[test]
    fn a_panic_in_one_batch_fails_that_batch_and_strands_no_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let mut log = AuditLog::open(&path).expect("open");
        log.add_sink(Box::new(PanicsOnce(Default::default())));
        let shared = SharedLog::new(log);
        let outcomes: Vec<Result<u64, ErrorKind>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let shared = &shared;
                    scope.spawn(move || {
                        (0..20)
                            .map(|i| {
                                shared
                                    .append(
                                        "dev.platform.broker.plan",
                                        None,
                                        serde_json::json!([t, i]),
                                    )
                                    .map(|e| e.seq)
                                    .map_err(|e| e.kind())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("no appender thread panics"))
                .collect()
        });
        let failed = outcomes.iter().filter(|o| o.is_err()).count();
        assert!(failed >= 1 && failed < outcomes.len(), "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(_) | Err(ErrorKind::Io)))
        );
        // The log itself stays sound and usable.
        assert!(verify(&path).expect("verify").ok);
        let mut log = shared.into_inner().expect("log");
        log.append("dev.platform.broker.plan", None, serde_json::json!("after"))
            .expect("append after the panic");
        assert!(verify(&path).expect("verify").ok);
    }

    #[test]
    fn a_keyed_shared_log_keeps_one_authenticated_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let key = crate::key::BrokerKey::from_bytes(b"group-test-broker-key-0123").expect("key");
        let shared = SharedLog::new(AuditLog::open_with(&path, Some(key.clone())).expect("open"));
        std::thread::scope(|scope| {
            for t in 0..4 {
                let shared = &shared;
                scope.spawn(move || {
                    for i in 0..50 {
                        shared
                            .append("dev.platform.broker.plan", None, serde_json::json!([t, i]))
                            .expect("append");
                    }
                });
            }
        });
        let report = crate::audit::verify_with(&path, Some(&key)).expect("verify");
        assert!(
            report.ok && report.authenticated && report.keyed_lines == 200,
            "{report:?}"
        );
        // The same log reopened by another writer continues the chain.
        let mut log = shared.into_inner().expect("log");
        log.append("dev.platform.broker.plan", None, serde_json::json!("after"))
            .expect("append");
        let mut other = AuditLog::open_with(&path, Some(key.clone())).expect("reopen");
        assert!(other.warnings().is_empty(), "{:?}", other.warnings());
        other
            .append("dev.platform.broker.plan", None, serde_json::json!("other"))
            .expect("append");
        log.append("dev.platform.broker.plan", None, serde_json::json!("again"))
            .expect("append");
        let report = crate::audit::verify_with(&path, Some(&key)).expect("verify");
        assert!(report.ok && report.events == 203, "{report:?}");
    }
}
