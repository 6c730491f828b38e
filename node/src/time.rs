//! The wall clock, as the node's files record it.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time, Unix seconds (negative before 1970).
pub fn now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
