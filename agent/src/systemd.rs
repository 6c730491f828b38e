//! Watchdog pings and the status line for systemd (`Type=notify`); nothing,
//! and no wake-ups, when not started by systemd.

use std::time::Duration;

use crate::health::Health;
use crate::results::Results;

/// Pings the watchdog at half its period (at most every 30 s) and sends the
/// status line when it changed.
pub async fn run(health: Health, results: Results) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
    let period = if watchdog {
        Duration::from_micros(usec / 2).min(Duration::from_secs(30))
    } else {
        Duration::from_secs(30)
    };
    let mut last = String::new();
    loop {
        let mut states = Vec::new();
        if watchdog {
            states.push(sd_notify::NotifyState::Watchdog);
        }
        let text = health.get().text(results.depth());
        if text != last {
            states.push(sd_notify::NotifyState::Status(&text));
        }
        if !states.is_empty() {
            let _ = sd_notify::notify(false, &states);
        }
        last = text;
        tokio::time::sleep(period).await;
    }
}
