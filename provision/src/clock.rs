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
}
