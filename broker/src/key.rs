//! The broker key and the redaction fingerprint.
//!
//! The broker key (`PLATFORM_BROKER_KEY`, or the file named by `key_file` in
//! the configuration's `trust` block) authenticates what the broker leaves in
//! its home for a later command: a run's identity, its approvals and every
//! audit event (HMAC-SHA256, keyed chain). Whoever can write the working
//! directory but does not hold the key cannot forge any of them.
//!
//! Every MAC is taken over a *domain* and the bytes (`domain`, a zero byte,
//! then the data), so a MAC computed for one purpose never validates another.
//!
//! The redaction fingerprint keys the `(sensitive:…)` markers in reports: with
//! a key, derived from it; without one, a random salt kept in the broker home
//! (`redaction.salt`, 0600). Either way a reader of a report cannot confirm a
//! guessed secret offline, and equal secrets in one home still get equal
//! markers.
//!
//! Secrets: neither the key nor the salt is ever formatted into an error, a
//! `Debug` output or a log line; the key is known by its id (`k-` and 8 hex
//! digits of a MAC of a fixed domain), which reveals nothing about it.

use std::path::Path;

use ring::hmac;

use crate::config::TrustConfig;

/// The environment variable holding the key itself.
pub const KEY_ENV: &str = "PLATFORM_BROKER_KEY";
/// Shortest key accepted, in bytes: a 128-bit random key written as text is
/// longer than this; a short password is refused.
pub const MIN_KEY_LEN: usize = 16;

/// Why the key could not be loaded. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{KEY_ENV} is too short ({0} bytes; at least {MIN_KEY_LEN}): use e.g. `openssl rand -hex 32`"
    )]
    EnvTooShort(usize),
    #[error(
        "{path}: the broker key is too short ({len} bytes; at least {MIN_KEY_LEN}): use e.g. `openssl rand -hex 32`"
    )]
    FileTooShort { path: String, len: usize },
    #[error("{path}: cannot read the broker key file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: the broker key file lies under {under}, which anyone who can change the \
         working directory can read; keep it outside (a CI secret, /run/secrets, ...)"
    )]
    UnderWorkingDir { path: String, under: String },
    #[error(
        "no broker key: the configuration says require_key = true; set {KEY_ENV} or trust.key_file \
         (docs/broker-config.md)"
    )]
    Required,
    #[error("{path}: {message}")]
    Salt { path: String, message: String },
}

/// The broker key, ready to authenticate.
#[derive(Clone)]
pub struct BrokerKey {
    key: hmac::Key,
    id: String,
}

impl std::fmt::Debug for BrokerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BrokerKey({})", self.id)
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn tag(key: &hmac::Key, domain: &str, data: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(domain.as_bytes());
    ctx.update(&[0]);
    ctx.update(data);
    ctx.sign()
}

impl BrokerKey {
    /// A key from its bytes (surrounding whitespace, such as the newline of a
    /// key file, is not part of it). `Err` holds the length when it is too short.
    pub fn from_text(bytes: &[u8]) -> Result<BrokerKey, usize> {
        let text = bytes.trim_ascii();
        if text.len() < MIN_KEY_LEN {
            return Err(text.len());
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, text);
        let id = format!(
            "k-{}",
            &hex(tag(&key, "platform-broker key id", b"").as_ref())[..8]
        );
        Ok(BrokerKey { key, id })
    }

    /// A key for tests and callers that already hold the bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<BrokerKey, KeyError> {
        BrokerKey::from_text(bytes).map_err(KeyError::EnvTooShort)
    }

    /// The key's public name, for messages and audit events.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 of `data` in `domain`, as 64 hex digits.
    pub fn mac(&self, domain: &str, data: &[u8]) -> String {
        hex(tag(&self.key, domain, data).as_ref())
    }

    /// The raw 32-byte MAC (for chains that store binary hashes).
    pub fn mac_bytes(&self, domain: &str, data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(tag(&self.key, domain, data).as_ref());
        out
    }

    /// Whether `mac_hex` is the MAC of `data` in `domain` (constant time).
    pub fn verify(&self, domain: &str, data: &[u8], mac_hex: &str) -> bool {
        let Some(mac) = unhex(mac_hex) else {
            return false;
        };
        let mut msg = Vec::with_capacity(domain.len() + 1 + data.len());
        msg.extend_from_slice(domain.as_bytes());
        msg.push(0);
        msg.extend_from_slice(data);
        hmac::verify(&self.key, &msg, &mac).is_ok()
    }
}

/// Loads the key: `PLATFORM_BROKER_KEY` first, else `trust.key_file`. A key
/// file under any of `forbidden` (the working directory, the broker home) is
/// refused. `Ok(None)` without a key unless `require_key` is set.
pub fn load(trust: &TrustConfig, forbidden: &[&Path]) -> Result<Option<BrokerKey>, KeyError> {
    if let Some(value) = std::env::var_os(KEY_ENV).filter(|v| !v.is_empty()) {
        use std::os::unix::ffi::OsStrExt;
        return BrokerKey::from_text(value.as_bytes())
            .map(Some)
            .map_err(KeyError::EnvTooShort);
    }
    if let Some(path) = &trust.key_file {
        let shown = path.display().to_string();
        let real = std::fs::canonicalize(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        for under in forbidden {
            let under = std::fs::canonicalize(under).unwrap_or_else(|_| under.to_path_buf());
            if real.starts_with(&under) {
                return Err(KeyError::UnderWorkingDir {
                    path: shown,
                    under: under.display().to_string(),
                });
            }
        }
        let bytes = std::fs::read(&real).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        return BrokerKey::from_text(&bytes)
            .map(Some)
            .map_err(|len| KeyError::FileTooShort { path: shown, len });
    }
    if trust.require_key {
        return Err(KeyError::Required);
    }
    Ok(None)
}

/// The keyed fingerprint behind redaction markers.
#[derive(Clone)]
pub struct Fingerprint {
    key: hmac::Key,
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprint(..)")
    }
}

/// The salt file's name under the broker home.
pub const SALT_FILE: &str = "redaction.salt";

impl Fingerprint {
    /// Derived from the broker key, so every home sharing the key marks a
    /// secret alike (a plan job and an apply job on different runners).
    pub fn from_key(key: &BrokerKey) -> Fingerprint {
        Fingerprint {
            key: hmac::Key::new(
                hmac::HMAC_SHA256,
                &key.mac_bytes("platform-broker redaction", b""),
            ),
        }
    }

    /// From fixed bytes (tests, and callers that hold a salt already).
    pub fn from_salt(salt: &[u8]) -> Fingerprint {
        Fingerprint {
            key: hmac::Key::new(hmac::HMAC_SHA256, salt),
        }
    }

    /// The home's random salt, created (32 bytes from the OS, 0600) on first
    /// use. The file is never followed through a symlink.
    pub fn for_home(home: &Path) -> Result<Fingerprint, KeyError> {
        let path = home.join(SALT_FILE);
        let err = |message: String| KeyError::Salt {
            path: path.display().to_string(),
            message,
        };
        match crate::fsx::read_nofollow(&path) {
            Ok(bytes) => {
                let salt = unhex(String::from_utf8_lossy(&bytes).trim())
                    .filter(|s| s.len() == 32)
                    .ok_or_else(|| {
                        err("not a salt (64 hex digits); remove it to make a new one".into())
                    })?;
                return Ok(Fingerprint::from_salt(&salt));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e.to_string())),
        }
        let mut salt = [0u8; 32];
        crate::bundle::fill_random(&mut salt);
        match crate::fsx::create_new(&path, format!("{}\n", hex(&salt)).as_bytes(), 0o600) {
            Ok(()) => Ok(Fingerprint::from_salt(&salt)),
            // Another command made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Fingerprint::for_home(home),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// The first `n` hex digits of the keyed hash of `data`.
    pub fn short(&self, data: &[u8], n: usize) -> String {
        let full = hex(hmac::sign(&self.key, data).as_ref());
        full[..n.min(full.len())].to_owned()
    }
}

/// The key (if any) and the fingerprint of one broker home: what a command
/// needs to authenticate and redact.
#[derive(Debug, Clone)]
pub struct Trust {
    pub key: Option<BrokerKey>,
    pub fingerprint: Fingerprint,
}

impl Trust {
    /// The broker's note when it runs without a key (printed once per
    /// command by the front end).
    pub const UNKEYED_WARNING: &'static str = "no broker key (PLATFORM_BROKER_KEY): run identities, approvals and the audit log are not authenticated; apply still re-derives the plan's verdict";

    /// Loads the key and the home's fingerprint.
    pub fn load(config: &TrustConfig, working_dir: &Path, home: &Path) -> Result<Trust, KeyError> {
        let key = load(config, &[working_dir, home])?;
        let fingerprint = match &key {
            Some(key) => Fingerprint::from_key(key),
            None => Fingerprint::for_home(home)?,
        };
        Ok(Trust { key, fingerprint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_domain_separated_and_verify_in_constant_time() {
        let key = BrokerKey::from_bytes(b"0123456789abcdef0123").expect("key");
        let mac = key.mac("identity", b"{}");
        assert_eq!(mac.len(), 64);
        assert!(key.verify("identity", b"{}", &mac));
        assert!(!key.verify("approval", b"{}", &mac));
        assert!(!key.verify("identity", b"{ }", &mac));
        assert!(!key.verify("identity", b"{}", "zz"));
        let other = BrokerKey::from_bytes(b"0123456789abcdef0124").expect("key");
        assert!(!other.verify("identity", b"{}", &mac));
        assert_ne!(key.id(), other.id());
        assert!(!format!("{key:?}").contains("0123456789"));
    }

    #[test]
    fn short_keys_are_refused_and_whitespace_is_trimmed() {
        assert!(matches!(
            BrokerKey::from_bytes(b"short"),
            Err(KeyError::EnvTooShort(5))
        ));
        let a = BrokerKey::from_bytes(b"0123456789abcdef\n").expect("key");
        let b = BrokerKey::from_bytes(b"0123456789abcdef").expect("key");
        assert_eq!(a.id(), b.id());
    }

    #[test]
    fn key_file_under_the_working_dir_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("broker.key");
        std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").expect("write");
        let trust = TrustConfig {
            key_file: Some(file.clone()),
            require_key: false,
        };
        // SAFETY of the test: no other test in this binary sets KEY_ENV.
        if std::env::var_os(KEY_ENV).is_some() {
            return;
        }
        let error = load(&trust, &[dir.path()]).expect_err("under DIR");
        assert!(error.to_string().contains("lies under"), "{error}");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        assert!(load(&trust, &[elsewhere.path()]).expect("ok").is_some());
        let required = TrustConfig {
            key_file: None,
            require_key: true,
        };
        assert!(matches!(load(&required, &[]), Err(KeyError::Required)));
    }

    #[test]
    fn home_salts_differ_and_persist() {
        let a = tempfile::tempdir().expect("a");
        let b = tempfile::tempdir().expect("b");
        let fa = Fingerprint::for_home(a.path()).expect("salt a");
        let fa2 = Fingerprint::for_home(a.path()).expect("salt a again");
        let fb = Fingerprint::for_home(b.path()).expect("salt b");
        assert_eq!(fa.short(b"hunter2", 8), fa2.short(b"hunter2", 8));
        assert_ne!(fa.short(b"hunter2", 8), fb.short(b"hunter2", 8));
        std::fs::write(a.path().join(SALT_FILE), "nonsense").expect("write");
        assert!(Fingerprint::for_home(a.path()).is_err());
    }
}
