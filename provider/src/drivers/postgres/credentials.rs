//! Short-lived credentials: a login role `VALID UNTIL now() + ttl` that is a
//! member of an existing role (a database's owner, say), opened for one
//! Terraform run (an ephemeral resource) and dropped again when it closes.
//! Even when a close never arrives, PostgreSQL refuses the login after
//! `valid_until`.

use std::time::Duration;

use super::super::DriverError;
use super::pool::Pool;
use super::sql::{
    MARKER_PREFIX, check_name, connection_uri, generate_password, pg_message, quote_ident,
    quote_literal, scram_verifier,
};

const KIND: &str = "postgres.credentials";

/// Opened credentials. `Debug` hides the password.
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub uri: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"(redacted)")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn failed(name: &str, message: impl std::fmt::Display) -> DriverError {
    DriverError::new(format!("{KIND} for \"{name}\": {message}"))
}

/// Parses `90s`, `30m`, `1h`, `2h30m`, `1d`; between 1 minute and 7 days.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("{text:?} is not a duration like 30m, 1h or 2h30m")),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a duration like 30m, 1h or 2h30m"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(format!("{text:?} is not a duration like 30m, 1h or 2h30m"));
    }
    if !(60..=7 * 86_400).contains(&total) {
        return Err(format!("ttl {text:?} must be between 1m and 7d"));
    }
    Ok(Duration::from_secs(total))
}

/// Creates a login role that inherits `member_of`, valid for `ttl`.
pub async fn open(
    pool: &Pool,
    member_of: &str,
    database: &str,
    ttl: Duration,
) -> Result<Credentials, DriverError> {
    check_name("role", member_of).map_err(|e| failed(member_of, e))?;
    check_name("database", database).map_err(|e| failed(member_of, e))?;
    let mut suffix = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix)
        .map_err(|_| failed(member_of, "the system random generator failed"))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    // Role names are at most 63 bytes: shorten the base, keep the suffix.
    let base: String = member_of.chars().take(40).collect();
    let username = format!("{base}_tmp_{suffix}");
    let password = generate_password()?;
    let mut conn = pool.maintenance().await?;
    let client = conn.client()?;
    // The same rule as `member_of`: these credentials join `member_of`.
    if let Some(why) = super::guard::role_refusal(client, pool.settings(), member_of)
        .await
        .map_err(|e| failed(member_of, pg_message(&e)))?
    {
        return Err(DriverError::at_input(
            format!("{KIND} for \"{member_of}\": refused to join role {member_of:?}: {why}"),
            "role",
        ));
    }
    let row = client
        .query_one(
            "SELECT to_char((now() + make_interval(secs => $1)) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[&(ttl.as_secs_f64())],
        )
        .await
        .map_err(|e| failed(member_of, pg_message(&e)))?;
    let expires_at: String = row.get(0);
    let sql = format!(
        "CREATE ROLE {} LOGIN PASSWORD {} VALID UNTIL {} IN ROLE {}",
        quote_ident(&username),
        quote_literal(&scram_verifier(&password)?),
        quote_literal(&expires_at),
        quote_ident(member_of),
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| failed(member_of, pg_message(&e)))?;
    let comment = format!(
        "COMMENT ON ROLE {} IS {}",
        quote_ident(&username),
        quote_literal(&format!(
            "{MARKER_PREFIX} ephemeral=true member_of={member_of}"
        )),
    );
    if let Err(error) = client.batch_execute(&comment).await {
        let _ = client
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&username)))
            .await;
        return Err(failed(member_of, pg_message(&error)));
    }
    let settings = pool.settings();
    let uri = connection_uri(
        &username,
        Some(&password),
        settings.host_or_default(),
        settings.port_or_default(),
        database,
    );
    Ok(Credentials {
        username,
        password,
        uri,
        expires_at,
    })
}

/// Drops a role `open` created. Only roles carrying the ephemeral marker are
/// dropped; one already gone is fine.
pub async fn close(pool: &Pool, username: &str) -> Result<(), DriverError> {
    check_name("role", username).map_err(|e| failed(username, e))?;
    let mut conn = pool.maintenance().await?;
    let client = conn.client()?;
    let row = client
        .query_opt(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
            &[&username],
        )
        .await
        .map_err(|e| failed(username, pg_message(&e)))?;
    let Some(row) = row else { return Ok(()) };
    let comment: Option<String> = row.get(0);
    if !comment.is_some_and(|c| c.starts_with(MARKER_PREFIX) && c.contains("ephemeral=true")) {
        return Err(failed(
            username,
            "the role is not an ephemeral credential of this provider; not dropping it",
        ));
    }
    client
        .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(username)))
        .await
        .map_err(|e| failed(username, pg_message(&e)))
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttl() {
        assert_eq!(parse_ttl("1h").map(|d| d.as_secs()), Ok(3600));
        assert_eq!(parse_ttl("2h30m").map(|d| d.as_secs()), Ok(9000));
        assert_eq!(parse_ttl("90s").map(|d| d.as_secs()), Ok(90));
        assert!(parse_ttl("30").is_err());
        assert!(parse_ttl("10s").is_err());
        assert!(parse_ttl("8d").is_err());
        assert!(parse_ttl("1x").is_err());
    }
}
