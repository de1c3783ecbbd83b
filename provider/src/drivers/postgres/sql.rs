//! SQL text, values, markers, passwords and errors shared by the primitives.

use std::num::NonZeroU32;

use base64::Engine as _;
use ring::rand::SecureRandom as _;

use super::super::{DriverError, Values};

/// The lifecycle helpers every driver shares, under their old names here.
pub use crate::drivers::common::{
    Claim, MARKER_PREFIX, PASSWORD_LEN, adopted, already_exists, boolean, check_marker,
    check_present, claim_of, fail, found, generate_password, integer, list_value, marker,
    names_resource, opt_string_value, order_like, percent_encode, present, required_string,
    state_name, state_string, string, strings, unknown_inputs, unknown_keys,
};

/// `"…"` with every `"` doubled: the quoted identifier means exactly `name`.
/// Names are checked by [`check_name`] first (no NUL, at most 63 bytes).
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A string literal meaning exactly `value` whatever `standard_conforming_strings`
/// says: `'…'` with `'` doubled, or `E'…'` with `\` doubled too when there is a
/// backslash (as PostgreSQL's own `quote_literal`).
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// PostgreSQL truncates longer identifiers (NAMEDATALEN - 1).
pub const MAX_NAME_BYTES: usize = 63;

/// Why `name` cannot name a PostgreSQL object, if it cannot.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if name.contains('\0') {
        return Err(format!("{what} must not contain a NUL character"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} {name:?} is {} bytes long; PostgreSQL names have at most {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Errors

/// The server's words for a failure: the message (and detail, hint) of a
/// database error, else the client error. Never the statement.
pub fn pg_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_owned();
            if let Some(detail) = db.detail() {
                text.push_str(" (");
                text.push_str(detail);
                text.push(')');
            }
            if let Some(hint) = db.hint() {
                text.push_str("; hint: ");
                text.push_str(hint);
            }
            text
        }
        None => error.to_string(),
    }
}

/// Whether the error carries SQLSTATE `code`.
pub fn has_code(error: &tokio_postgres::Error, code: &tokio_postgres::error::SqlState) -> bool {
    error.code() == Some(code)
}

// ---------------------------------------------------------------------------
// Ownership marker

// ---------------------------------------------------------------------------
// Input values

pub fn name(values: &Values, key: &str) -> Result<String, String> {
    let value = required_string(values, key)?;
    check_name(&format!("input `{key}`"), &value)?;
    Ok(value)
}

/// A connection limit: -1 (none) up to i32::MAX.
pub fn connection_limit(values: &Values, key: &str) -> Result<i32, String> {
    let n = integer(values, key, -1)?;
    if n < -1 {
        return Err(format!(
            "input `{key}` must be -1 (no limit) or more, not {n}"
        ));
    }
    i32::try_from(n).map_err(|_| format!("input `{key}` is too large: {n}"))
}

/// A list of names, duplicates removed (first occurrence kept).
pub fn names(values: &Values, key: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for item in strings(values, key)? {
        check_name(&format!("an element of input `{key}`"), &item)?;
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Passwords

/// The SCRAM-SHA-256 verifier of `password` (RFC 5802/7677, PostgreSQL's
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`), so that the
/// password itself is never sent to the server nor lands in its logs.
/// `password` must be ASCII alphanumeric (SASLprep leaves it as it is).
pub fn scram_verifier(password: &str) -> Result<String, DriverError> {
    const ITERATIONS: NonZeroU32 = NonZeroU32::MIN.saturating_add(4095);
    let rng = ring::rand::SystemRandom::new();
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)
        .map_err(|_| DriverError::new("postgres: the system random generator failed"))?;
    let mut salted = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        ITERATIONS,
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &salted);
    let client_key = ring::hmac::sign(&key, b"Client Key");
    let stored_key = ring::digest::digest(&ring::digest::SHA256, client_key.as_ref());
    let server_key = ring::hmac::sign(&key, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(format!(
        "SCRAM-SHA-256${}:{}${}:{}",
        ITERATIONS,
        b64.encode(salt),
        b64.encode(stored_key.as_ref()),
        b64.encode(server_key.as_ref())
    ))
}

// ---------------------------------------------------------------------------
// URIs

/// `postgres://USER[:PASSWORD]@HOST:PORT/DB`, or for a unix-socket directory
/// `postgres://USER[:PASSWORD]@/DB?host=/dir&port=N`.
pub fn connection_uri(
    user: &str,
    password: Option<&str>,
    host: &str,
    port: u16,
    database: &str,
) -> String {
    let mut userinfo = percent_encode(user, &[]);
    if let Some(password) = password {
        userinfo.push(':');
        userinfo.push_str(&percent_encode(password, &[]));
    }
    let db = percent_encode(database, &[]);
    if host.starts_with('/') {
        format!(
            "postgres://{userinfo}@/{db}?host={}&port={port}",
            percent_encode(host, b"/")
        )
    } else if host.contains(':') {
        format!("postgres://{userinfo}@[{host}]:{port}/{db}")
    } else {
        format!(
            "postgres://{userinfo}@{}:{port}/{db}",
            percent_encode(host, &[])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a"), "\"a\"");
        assert_eq!(
            quote_ident("x\"; DROP ROLE postgres; --"),
            "\"x\"\"; DROP ROLE postgres; --\""
        );
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("name", "ok").is_ok());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", "a\0b").is_err());
        assert!(check_name("name", &"x".repeat(64)).is_err());
        assert!(check_name("name", &"x".repeat(63)).is_ok());
    }

    #[test]
    fn scram_verifiers_hide_the_password() {
        let password = generate_password().expect("password");
        let verifier = scram_verifier(&password).expect("verifier");
        assert!(verifier.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!verifier.contains(&password));
    }

    #[test]
    fn uris() {
        assert_eq!(
            connection_uri("u@x", Some("p:w"), "db.example", 5432, "d/b"),
            "postgres://u%40x:p%3Aw@db.example:5432/d%2Fb"
        );
        assert_eq!(
            connection_uri("u", Some("pw"), "/tmp/pg sock", 5433, "app"),
            "postgres://u:pw@/app?host=/tmp/pg%20sock&port=5433"
        );
        assert_eq!(
            connection_uri("u", None, "::1", 5432, "app"),
            "postgres://u@[::1]:5432/app"
        );
    }
}
