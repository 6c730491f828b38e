//! Points in time for people: RFC 3339 in UTC, to the second.

use std::time::{Duration, UNIX_EPOCH};

/// Unix seconds as `2026-11-24T18:00:00Z`; times before 1970 show as 1970.
pub fn utc(unix: impl TryInto<u64>) -> String {
    let secs = unix.try_into().unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_utc() {
        assert_eq!(super::utc(1_795_543_200u64), "2026-11-24T18:00:00Z");
        assert_eq!(super::utc(1_795_543_200i64), "2026-11-24T18:00:00Z");
        assert_eq!(super::utc(-5i64), "1970-01-01T00:00:00Z");
    }
}
