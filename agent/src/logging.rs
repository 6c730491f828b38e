//! Logging: to journald when started by systemd, to stderr otherwise.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// `info`, except hickory's DNSSEC validator below `error`: it logs whole
/// messages (kilobytes) at `warn` for every answer it finds bogus, and the
/// verdict is already in the probe's result. `VANTAGE_LOG` overrides.
const DEFAULT_FILTER: &str = "info,hickory_net=error,hickory_proto=error";

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("VANTAGE_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// Logs to stderr (interactive commands).
pub fn init_stderr() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logs to journald when systemd started us (it sets `JOURNAL_STREAM`), else to stderr.
pub fn init() {
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(layer) = tracing_journald::layer()
    {
        let _ = tracing_subscriber::registry()
            .with(filter())
            .with(layer.with_syslog_identifier("vantage-agent".into()))
            .try_init();
        return;
    }
    init_stderr();
}
