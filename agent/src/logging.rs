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

/// Longest server answer quoted in a log line or error, in characters.
pub const MAX_QUOTED: usize = 200;

/// A server's answer as one bounded line for the log: an error page from a
/// proxy (whole HTML documents) would otherwise become dozens of log lines,
/// and a hostile server could make them as long as it likes.
pub fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX_QUOTED {
        return flat;
    }
    let mut cut: String = flat.chars().take(MAX_QUOTED - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_one_bounded_line() {
        let page = format!(
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\n<body>\n{}\x1b[31m</body></html>\n",
            "x".repeat(1000)
        );
        let line = one_line(&page);
        assert!(!line.contains(['\n', '\r', '\x1b']), "{line}");
        assert!(line.starts_with("<html> <head><title>502 Bad Gateway</title></head> <body> xx"));
        assert_eq!(line.chars().count(), MAX_QUOTED);
        assert_eq!(one_line(" {\"error\": \"no\"}\n"), "{\"error\": \"no\"}");
    }
}
