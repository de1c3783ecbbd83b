//! One audit event and its wire form: a single CloudEvents 1.0 JSON line.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{AuditError, ErrorKind};

/// The CloudEvents `source` of every event the broker writes.
pub const SOURCE: &str = "platform-broker";

/// `platformprev` of the first event of a log: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit event as written by [`super::AuditLog`].
///
/// `seq` and `prev` are the chain: `seq` counts events from 1 (so in a log
/// that was never rotated, event `seq` is line `seq`), and `prev` is the hex
/// SHA-256 of the previous event's line, exactly as stored, without its
/// newline. They travel as the CloudEvents extension attributes `platformseq`
/// and `platformprev` (extension names must be lowercase alphanumeric).
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    /// Random, UUID-shaped hex.
    pub id: String,
    /// Always [`SOURCE`] for events this module writes.
    pub source: String,
    /// For example `dev.platform.broker.plan`.
    pub type_: String,
    /// RFC 3339, UTC.
    pub time: String,
    /// The workspace the event is about, when there is one.
    pub subject: Option<String>,
    /// The payload. The caller redacts secrets before it gets here.
    pub data: serde_json::Value,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Hex SHA-256 of the previous line, [`GENESIS_PREV`] for the first event.
    pub prev: String,
}

/// `data` is left out: it is the one part of an event that might hold
/// something a log line or panic message must not show.
impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("type_", &self.type_)
            .field("time", &self.time)
            .field("subject", &self.subject)
            .field("seq", &self.seq)
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    specversion: &'static str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    type_: &'a str,
    time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    datacontenttype: &'static str,
    data: &'a serde_json::Value,
    platformseq: u64,
    platformprev: &'a str,
}

#[derive(Deserialize)]
struct WireIn {
    specversion: String,
    id: String,
    source: String,
    #[serde(rename = "type")]
    type_: String,
    time: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    data: serde_json::Value,
    platformseq: u64,
    platformprev: String,
}

/// Only the chain attributes: what `verify` needs, without building `data`.
#[derive(Deserialize)]
pub(crate) struct ChainFields<'a> {
    pub(crate) specversion: &'a str,
    pub(crate) platformseq: u64,
    pub(crate) platformprev: &'a str,
}

impl Event {
    /// The event's line, without the newline. Its SHA-256 is what the next
    /// event's `prev` records.
    pub fn to_line(&self) -> Result<String, AuditError> {
        let wire = WireOut {
            specversion: "1.0",
            id: &self.id,
            source: &self.source,
            type_: &self.type_,
            time: &self.time,
            subject: self.subject.as_deref(),
            datacontenttype: "application/json",
            data: &self.data,
            platformseq: self.seq,
            platformprev: &self.prev,
        };
        // The serde message is dropped on purpose: it may quote `data`.
        serde_json::to_string(&wire).map_err(|_| {
            AuditError::new(
                ErrorKind::Encode,
                Path::new(""),
                "an event could not be encoded as JSON",
            )
        })
    }

    /// Parses one line written by [`Event::to_line`]. Errors give the column
    /// only, never the text.
    pub fn from_line(line: &str) -> Result<Event, AuditError> {
        let wire: WireIn = serde_json::from_str(line).map_err(|error| {
            AuditError::new(
                ErrorKind::Tampered,
                Path::new(""),
                format!(
                    "not a valid audit event (JSON error at column {})",
                    error.column()
                ),
            )
        })?;
        if wire.specversion != "1.0" {
            return Err(AuditError::new(
                ErrorKind::Tampered,
                Path::new(""),
                "specversion is not 1.0",
            ));
        }
        Ok(Event {
            id: wire.id,
            source: wire.source,
            type_: wire.type_,
            time: wire.time,
            subject: wire.subject,
            data: wire.data,
            seq: wire.platformseq,
            prev: wire.platformprev,
        })
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub(crate) fn hex(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

pub(crate) fn unhex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (idx, pair) in bytes.chunks_exact(2).enumerate() {
        out[idx] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

pub(crate) fn now_rfc3339() -> Result<String, AuditError> {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            AuditError::new(
                ErrorKind::Encode,
                Path::new(""),
                "the current time cannot be formatted as RFC 3339",
            )
        })
}

/// Makes event ids: SHA-256 of a per-process random seed and a counter.
///
/// Ids only have to be unique and unguessable enough not to collide across
/// hosts, so this avoids a new dependency: std's `RandomState` is keyed from
/// the OS random source, and the seed also mixes in the clock and the pid.
pub(crate) struct IdGen {
    seed: [u8; 32],
    counter: u64,
}

impl IdGen {
    pub(crate) fn new() -> IdGen {
        let mut hasher = Sha256::new();
        for salt in 0u64..4 {
            hasher.update(RandomState::new().hash_one(salt).to_le_bytes());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        hasher.update(nanos.to_le_bytes());
        hasher.update(std::process::id().to_le_bytes());
        IdGen {
            seed: hasher.finalize().into(),
            counter: 0,
        }
    }

    /// A UUID-v4-shaped id: 8-4-4-4-12 lowercase hex.
    pub(crate) fn next_id(&mut self) -> String {
        self.counter += 1;
        let mut hasher = Sha256::new();
        hasher.update(self.seed);
        hasher.update(self.counter.to_le_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut digits = hex_16(&bytes);
        for at in [20, 16, 12, 8] {
            digits.insert(at, '-');
        }
        digits
    }
}

fn hex_16(bytes: &[u8; 16]) -> String {
    let mut padded = [0u8; 32];
    padded[..16].copy_from_slice(bytes);
    let mut text = hex(&padded);
    text.truncate(32);
    text
}
