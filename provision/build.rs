//! Records when the binary was built: a clock reading earlier than that is
//! certainly wrong (a Raspberry Pi has no real-time clock).
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    // Reproducible builds set SOURCE_DATE_EPOCH; use it when present.
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=VANTAGE_BUILD_TIME={secs}");
}
