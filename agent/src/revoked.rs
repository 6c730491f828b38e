//! The hub refused the node's certificate as revoked: say so once, leave the
//! marker for `vantage-provision` (which tells the volunteer; the agent may
//! not write the boot partition) and stop for good. Retrying could never
//! help, and would only keep the node saying ENROLLED while it does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use vantage_node::revocation::{Evidence, Marker};
use vantage_node::state::DataDir;

/// The agent's exit code when the hub revoked the node's certificate. The
/// unit does not restart on it (`RestartPreventExitStatus=`): nothing the
/// node does can help, only a new enrolment.
pub const EXIT_REVOKED: u8 = 77;

/// Where any task reports a revocation; the main task waits on it to stop.
#[derive(Clone)]
pub struct Revoked(Arc<Inner>);

struct Inner {
    data: DataDir,
    node_id: String,
    /// Set once the hub has refused the node's certificate as revoked.
    seen: AtomicBool,
    /// Wakes the main task to stop with [`EXIT_REVOKED`].
    stop: Notify,
}

impl Revoked {
    /// For the node `node_id`, whose marker goes into `data`.
    pub fn new(data: DataDir, node_id: String) -> Revoked {
        Revoked(Arc::new(Inner {
            data,
            node_id,
            seen: AtomicBool::new(false),
            stop: Notify::new(),
        }))
    }

    /// Logs the revocation, writes the marker, sets the systemd status and
    /// wakes [`Revoked::wait`]; only the first report counts.
    pub fn report(&self, evidence: Evidence, url: &str, detail: &str) {
        let me = &self.0;
        if me.seen.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::error!(
            "this node ({}) has been revoked: {} ({url}: {detail}); stopping for good with exit \
             code {EXIT_REVOKED}; only a new enrolment (vantage-reset and a new token) brings \
             it back",
            me.node_id,
            evidence.describe()
        );
        let marker = Marker::new(&me.node_id, evidence, url, detail);
        if let Err(e) = marker.write(&me.data) {
            tracing::error!(
                "cannot write {}: {e}; the status file will not say REVOKED",
                Marker::path(&me.data).display()
            );
        }
        let _ = sd_notify::notify(
            false,
            &[sd_notify::NotifyState::Status(&format!(
                "revoked by the hub: {}",
                evidence.describe()
            ))],
        );
        me.stop.notify_one();
    }

    /// Returns once a revocation was reported.
    pub async fn wait(&self) {
        self.0.stop.notified().await;
    }
}
