//! What the agent knows about its own health: whether it is subscribed, the
//! last error and a certificate problem. Every task reports here; the
//! heartbeat and the systemd status read it.

use std::sync::{Arc, Mutex};

/// A snapshot of the agent's health.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Subscribed to the hub (the last connection attempt got HTTP 200).
    pub connected: bool,
    /// The last error any task reported.
    pub last_error: Option<String>,
    /// Why the certificate cannot be used (shown instead of everything else).
    pub cert_problem: Option<String>,
}

impl Snapshot {
    /// The last error worth telling the hub: a certificate problem first.
    pub fn error(self) -> Option<String> {
        self.cert_problem.or(self.last_error)
    }

    /// The systemd status line, with the outbox's depth.
    pub fn text(self, outbox_depth: usize) -> String {
        if let Some(c) = self.cert_problem {
            return c;
        }
        format!(
            "{}; outbox {outbox_depth}{}",
            if self.connected {
                "subscribed to the hub"
            } else {
                "not connected to the hub"
            },
            self.last_error
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        )
    }
}

/// A handle on the agent's health, shared by its tasks.
#[derive(Debug, Default, Clone)]
pub struct Health(Arc<Mutex<Snapshot>>);

impl Health {
    fn with<T>(&self, f: impl FnOnce(&mut Snapshot) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Logs an error and keeps it as the last one.
    pub fn set_error(&self, e: impl Into<String>) {
        let e = e.into();
        tracing::warn!("{e}");
        self.with(|h| h.last_error = Some(e));
    }

    /// Records whether the agent is subscribed; returns whether it was before.
    pub fn set_connected(&self, connected: bool) -> bool {
        self.with(|h| std::mem::replace(&mut h.connected, connected))
    }

    /// Sets or clears the certificate problem.
    pub fn set_cert_problem(&self, problem: Option<String>) {
        self.with(|h| h.cert_problem = problem);
    }

    /// The current health.
    pub fn get(&self) -> Snapshot {
        self.with(|h| h.clone())
    }
}
