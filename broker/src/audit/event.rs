//! One audit event and its wire form: a single CloudEvents 1.0 JSON line.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{AuditError, ErrorKind};
use crate::key::BrokerKey;

/// The CloudEvents `source` of every event the broker writes.
pub const SOURCE: &str = "platform-broker";

/// `platformprev` of the first event of a log: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The MAC domain of a keyed line's `platformmac` (which is also the value
/// the next line's `platformprev` records).
pub(crate) const LINE_DOMAIN: &str = "platform-broker audit chain";

/// How a keyed line ends: this member, 64 hex digits, `"}`.
const MAC_MEMBER: &[u8] = b",\"platformmac\":\"";
const MAC_SUFFIX_LEN: usize = MAC_MEMBER.len() + 64 + 2;

/// One audit event as written by [`super::AuditLog`].
///
/// `seq` and `prev` are the chain: `seq` counts events from 1 (so in a log
/// that was never rotated, event `seq` is line `seq`), and `prev` is the
/// previous line's *link*: the hex SHA-256 of that line exactly as stored
/// (without its newline) when it is unkeyed, its `platformmac` when it is
/// keyed. They travel as the CloudEvents extension attributes `platformseq`
/// and `platformprev` (extension names must be lowercase alphanumeric).
///
/// A line written with the broker key also carries `platformkey` (the key's
/// id) and, as its last member, `platformmac`: the HMAC-SHA256 (domain
/// `platform-broker audit chain`) of every byte of the line before
/// `,"platformmac":`. So each keyed line authenticates itself, seq, link and
/// all, and the next line's `platformprev` is a keyed MAC of it.
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
    /// The previous line's link (hex SHA-256 of an unkeyed line, the
    /// `platformmac` of a keyed one); [`GENESIS_PREV`] for the first event.
    pub prev: String,
    /// `platformkey`: the id of the broker key that authenticates the line.
    pub key_id: Option<String>,
    /// `platformmac`: the line's own MAC (hex), present with `key_id`.
    pub mac: Option<String>,
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
            .field("key_id", &self.key_id)
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
    #[serde(skip_serializing_if = "Option::is_none")]
    platformkey: Option<&'a str>,
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
    #[serde(default)]
    platformkey: Option<String>,
    #[serde(default)]
    platformmac: Option<String>,
}

/// Only the chain attributes: what `verify` needs, without building `data`.
#[derive(Deserialize)]
pub(crate) struct ChainFields<'a> {
    pub(crate) specversion: &'a str,
    pub(crate) platformseq: u64,
    pub(crate) platformprev: &'a str,
    #[serde(default, borrow)]
    pub(crate) platformkey: Option<&'a str>,
    #[serde(default, borrow)]
    pub(crate) platformmac: Option<&'a str>,
}

/// What `repair` reports about an event it adopts or cuts.
#[derive(Deserialize)]
pub(crate) struct NameFields {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) type_: String,
}

/// How a line authenticates, when it does not with the key at hand. The
/// messages quote nothing from the line but a well-formed key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `platformkey`: written without a key (or by someone without it).
    Unkeyed,
    /// Keyed with another key (its id when well formed).
    OtherKey(Option<String>),
    /// Claims our key, but its `platformmac` does not verify.
    BadMac,
}

impl AuthFailure {
    pub(crate) fn describe(&self, line: usize, ours: &str) -> String {
        match self {
            AuthFailure::Unkeyed => format!(
                "line {line} is not authenticated with the broker key (written without a key, or forged)"
            ),
            AuthFailure::OtherKey(Some(other)) => {
                format!("line {line} was written with key {other}, not the configured {ours}")
            }
            AuthFailure::OtherKey(None) => {
                format!("line {line} names a malformed key id, not the configured {ours} (forged)")
            }
            AuthFailure::BadMac => format!(
                "line {line} is not authenticated with the broker key {ours}: its platformmac does not verify (edited, or forged)"
            ),
        }
    }
}

/// `k-` and 8 lower-case hex digits: the only key id text ever shown.
pub(crate) fn valid_key_id(id: &str) -> bool {
    id.len() == 10
        && id.starts_with("k-")
        && id[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A keyed line split into the bytes its MAC covers and the MAC (hex); `None`
/// when the line does not end in a well-formed `platformmac` member.
pub(crate) fn split_mac(line: &[u8]) -> Option<(&[u8], &str)> {
    if line.len() < MAC_SUFFIX_LEN || !line.ends_with(b"\"}") {
        return None;
    }
    let at = line.len() - MAC_SUFFIX_LEN;
    if &line[at..at + MAC_MEMBER.len()] != MAC_MEMBER {
        return None;
    }
    let mac = std::str::from_utf8(&line[at + MAC_MEMBER.len()..line.len() - 2]).ok()?;
    unhex(mac)?;
    Some((&line[..at], mac))
}

/// The line's link: what the next line's `platformprev` must record. `Err`
/// (a reason, quoting nothing) when a keyed line's MAC member is malformed.
pub(crate) fn link(line: &[u8], fields: &ChainFields<'_>) -> Result<[u8; 32], &'static str> {
    match (fields.platformkey, fields.platformmac) {
        (None, None) => Ok(sha256(line)),
        (Some(_), Some(mac)) => match split_mac(line) {
            Some((_, suffix)) if suffix == mac => unhex(mac).ok_or("malformed platformmac"),
            _ => Err("a keyed line must end with its platformmac (64 hex digits)"),
        },
        (Some(_), None) => Err("a keyed line without its platformmac"),
        (None, Some(_)) => Err("a platformmac without a platformkey"),
    }
}

/// Whether `line` (already known to parse as `fields`, with a well-formed
/// link) is authenticated by `key`.
pub(crate) fn authenticate(
    key: &BrokerKey,
    line: &[u8],
    fields: &ChainFields<'_>,
) -> Result<(), AuthFailure> {
    let Some(id) = fields.platformkey else {
        return Err(AuthFailure::Unkeyed);
    };
    if id != key.id() {
        return Err(AuthFailure::OtherKey(
            valid_key_id(id).then(|| id.to_owned()),
        ));
    }
    match split_mac(line) {
        Some((covered, mac)) if key.verify(LINE_DOMAIN, covered, mac) => Ok(()),
        _ => Err(AuthFailure::BadMac),
    }
}

impl Event {
    /// The event's line, without the newline, exactly as the log holds it
    /// (with `platformmac` last when the event has one).
    pub fn to_line(&self) -> Result<String, AuditError> {
        let mut line = self.unsigned_prefix()?;
        match &self.mac {
            Some(mac) => push_mac(&mut line, mac),
            None => line.push('}'),
        }
        Ok(line)
    }

    /// Writes the line for this event with `key`: sets `key_id` and `mac`,
    /// and returns the line and its link (the MAC's bytes).
    pub(crate) fn seal(&mut self, key: &BrokerKey) -> Result<(String, [u8; 32]), AuditError> {
        self.key_id = Some(key.id().to_owned());
        self.mac = None;
        let mut line = self.unsigned_prefix()?;
        let mac = key.mac_bytes(LINE_DOMAIN, line.as_bytes());
        let mac_hex = hex(&mac);
        push_mac(&mut line, &mac_hex);
        self.mac = Some(mac_hex);
        Ok((line, mac))
    }

    /// The JSON object without its closing brace (and without `platformmac`).
    fn unsigned_prefix(&self) -> Result<String, AuditError> {
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
            platformkey: self.key_id.as_deref(),
        };
        // The serde message is dropped on purpose: it may quote `data`.
        let mut line = serde_json::to_string(&wire).map_err(|_| {
            AuditError::new(
                ErrorKind::Encode,
                Path::new(""),
                "an event could not be encoded as JSON",
            )
        })?;
        // A struct always serializes as an object: drop its closing brace.
        line.pop();
        Ok(line)
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
            key_id: wire.platformkey,
            mac: wire.platformmac,
        })
    }
}

fn push_mac(line: &mut String, mac_hex: &str) {
    line.push_str(",\"platformmac\":\"");
    line.push_str(mac_hex);
    line.push_str("\"}");
}

/// One event's line chained after `prev` (the previous line's link, hex;
/// [`GENESIS_PREV`] first) at `seq`, sealed with `key` when there is one:
/// `(line, link)`, the link being what the next line's `prev` records. For
/// logs kept elsewhere than a file (the server's store).
pub fn chain_line(
    type_: &str,
    subject: Option<&str>,
    data: serde_json::Value,
    seq: u64,
    prev: &str,
    key: Option<&BrokerKey>,
) -> Result<(String, String), AuditError> {
    let mut event = Event {
        id: IdGen::new().next_id(),
        source: SOURCE.to_owned(),
        type_: type_.to_owned(),
        time: now_rfc3339()?,
        subject: subject.map(str::to_owned),
        data,
        seq,
        prev: prev.to_owned(),
        key_id: None,
        mac: None,
    };
    let (line, link) = match key {
        Some(key) => event.seal(key)?,
        None => {
            let line = event.to_line()?;
            let link = sha256(line.as_bytes());
            (line, link)
        }
    };
    Ok((line, hex(&link)))
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
