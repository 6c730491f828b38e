//! Durations and points in time as people type them (`30m`, `1h`, `2d`,
//! `now`, `+10m`, Unix seconds, RFC 3339).

use crate::error::{CliError, CliResult};
use std::time::{SystemTime, UNIX_EPOCH};
use vantage_human::Duration;

/// Parses a duration like `90s`, `30m`, `1h`, `2d` or `1h30m` into whole seconds.
pub fn parse_duration(text: &str) -> CliResult<u64> {
    let d: Duration = text.parse().map_err(|e| CliError::usage(format!("{e}")))?;
    Ok(d.as_secs())
}

/// Parses a point in time: `now`, `+DURATION` (from `now`), Unix seconds, or
/// RFC 3339 (`2026-11-24T18:00:00Z`).
pub fn parse_time(text: &str, now: u64) -> CliResult<u64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(rest) = t.strip_prefix('+') {
        return Ok(now.saturating_add(parse_duration(rest)?));
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(secs);
    }
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|st| st.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            CliError::usage(format!(
                "{text:?} is not a time; write now, +10m, Unix seconds or 2026-11-24T18:00:00Z"
            ))
        })
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("1h").unwrap(), 3600);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert!(matches!(parse_duration("soon"), Err(CliError::Usage(_))));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn times() {
        let now = 1_764_000_000;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("+10m", now).unwrap(), now + 600);
        assert_eq!(parse_time("1764013200", now).unwrap(), 1_764_013_200);
        assert_eq!(
            parse_time("2025-11-24T18:00:00Z", now).unwrap(),
            1_764_007_200
        );
        assert!(parse_time("tomorrow", now).is_err());
    }
}
