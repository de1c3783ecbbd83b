//! Dates and durations: parsing (`YYYY-MM-DD`, `500ms`/`2s`/`1m`), today's
//! UTC date (pinned by `PLATFORM_TODAY`, as the provider's deprecation rules
//! are), and RFC 3339 timestamps. Policy exceptions, budgets, bundle expiry
//! and drift acknowledgements all read dates through here.

use std::time::Duration;

/// `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<time::Date, String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &fmt)
        .map_err(|_| format!("\"{s}\" is not a date of the form YYYY-MM-DD (e.g. 2027-01-31)"))
}

/// `1500ms`, `2s`, `1.5s`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("duration \"{s}\" is not like 500ms, 2s or 1m");
    let (num, unit_secs) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(bad());
    };
    let value: f64 = num.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value <= 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(value * unit_secs).map_err(|_| bad())
}

pub fn format_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Today's date in UTC.
pub fn today_utc() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// Today's date (UTC), or `PLATFORM_TODAY=YYYY-MM-DD` when set, so a budget
/// month can be pinned.
pub fn today() -> Result<time::Date, String> {
    match std::env::var("PLATFORM_TODAY") {
        Ok(text) if !text.trim().is_empty() => {
            parse_date(&text).map_err(|e| format!("PLATFORM_TODAY: {e}"))
        }
        _ => Ok(today_utc()),
    }
}

/// The current time (UTC).
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// RFC 3339 (`2026-12-07T10:00:00Z`).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}
