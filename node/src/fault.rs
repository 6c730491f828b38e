//! Crash injection for the power-loss tests: when the environment variable
//! `VANTAGE_PROVISION_CRASH_AT` names a step, the process aborts right
//! there, as if the power had been cut. Inert unless the variable is set.

use std::sync::OnceLock;

/// The environment variable naming the step to crash at.
pub const ENV: &str = "VANTAGE_PROVISION_CRASH_AT";

/// Aborts the process if `step` is the one named in [`ENV`].
pub fn point(step: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var(ENV).ok()).as_deref() == Some(step) {
        eprintln!("vantage-provision: crash injected at {step}");
        std::process::abort();
    }
}
