//! Is the clock right? A Raspberry Pi has no real-time clock, so the first
//! boot may start decades in the past, and TLS then fails in confusing ways.
//! A reading earlier than this binary's build time, or than the network CA's
//! start of validity, is certainly wrong.

use std::path::Path;

/// Where systemd-timesyncd signals that it has set the clock from the network.
pub const DEFAULT_TIMESYNC_FLAG: &str = "/run/systemd/timesync/synchronized";

/// When this binary was built, Unix seconds.
pub fn build_time() -> i64 {
    env!("VANTAGE_BUILD_TIME").parse().unwrap_or(0)
}

pub use vantage_node::time::now;

/// The earliest time the clock can plausibly show: the later of the build
/// time and the CA certificates' start of validity.
pub fn floor(ca_not_before: impl IntoIterator<Item = i64>) -> i64 {
    ca_not_before.into_iter().fold(build_time(), i64::max)
}

/// True when systemd-timesyncd has synchronised the clock since boot.
pub fn synchronised(flag: &Path) -> bool {
    flag.exists()
}

/// A Unix time as a UTC date for people (`2026-11-24 20:31 UTC`).
pub fn human(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_time_is_recent_and_bounds_the_floor() {
        assert!(build_time() > 1_700_000_000);
        assert_eq!(floor([0]), build_time());
        assert_eq!(floor([build_time() + 5]), build_time() + 5);
        assert!(now() >= build_time());
    }

    #[test]
    fn human_dates() {
        assert_eq!(human(0), "1970-01-01 00:00 UTC");
        assert_eq!(human(1_764_013_200), "2025-11-24 19:40 UTC");
        assert_eq!(human(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(human(-86_400), "1969-12-31 00:00 UTC");
    }
}
