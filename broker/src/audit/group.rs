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
        let outcome = log.append_batch(events);
        let mut state = self.lock();
        state.log = Some(log);
        match outcome {
            Ok(events) => {
                for (ticket, event) in tickets.into_iter().zip(events) {
                    state.done.insert(ticket, Ok(event));
                }
            }
            Err(error) => {
                // The whole batch was rolled back (or its head update failed):
                // every appender in it gets the error, none counts as durable.
                let message = error.to_string();
                for ticket in tickets {
                    state
                        .done
                        .insert(ticket, Err((error.kind(), message.clone())));
                }
            }
        }
        self.changed.notify_all();
        state
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave State half-updated in a way that
        // matters: at worst a batch's appenders never hear back, and they
        // are the panicking threads.
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
}
