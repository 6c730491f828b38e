//! Certificate renewal: at ~70 % of the certificate's life, through the node
//! library's one renewal path (`vantage_node::enrol::renew_stored`, which
//! refuses a certificate for another key than the node's and keeps the
//! current one); then the hub client takes the new certificate. A
//! certificate that expired while the node was offline is reported, not
//! renewed.

use std::time::Duration;

use vantage_node::backoff::Backoff;
use vantage_node::client::{PinnedCa, Timeouts};
use vantage_node::state::DataDir;

use crate::certs::{self, unix_now};
use crate::health::Health;
use crate::hub::Hub;

/// The renewal task's parts.
pub struct Renewal {
    /// Where the certificate is.
    pub data: DataDir,
    /// The network CA.
    pub ca: PinnedCa,
    /// The client that uses the certificate.
    pub hub: Hub,
    /// Where problems are noted.
    pub health: Health,
}

impl Renewal {
    /// Renews forever.
    pub async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(3600));
        loop {
            let cert = self.data.read_cert().ok().flatten().unwrap_or_default();
            let validity = match certs::validity(&cert) {
                Ok(v) => v,
                Err(e) => {
                    self.health
                        .set_error(format!("cannot read the node certificate: {e}"));
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    continue;
                }
            };
            let now = unix_now();
            if validity.expired(now) {
                self.expired(validity.not_after).await;
                continue;
            }
            self.health.set_cert_problem(None);
            let at = validity.renew_at(fastrand::f64());
            if at > now {
                tokio::time::sleep(Duration::from_secs((at - now).min(3600))).await;
                continue;
            }
            match self.renew().await {
                Ok(()) => {
                    backoff.reset();
                    tracing::info!("renewed the node certificate");
                }
                Err(e) => {
                    self.health
                        .set_error(format!("certificate renewal failed: {e}; will retry"));
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Says the certificate expired at `not_after`, waits, and picks up a
    /// certificate written by a new enrolment.
    async fn expired(&self, not_after: u64) {
        let msg = format!(
            "the node certificate expired at {not_after} (Unix time) while the node was offline; \
             the hub refuses it and renewal needs a valid one: re-enrol the node \
             (vantage-provision) to get a new certificate",
        );
        tracing::error!("{msg}");
        self.health
            .set_cert_problem(Some("certificate expired: re-enrol the node".into()));
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&msg)]);
        tokio::time::sleep(Duration::from_secs(60)).await;
        self.hub.reload_identity();
    }

    async fn renew(&self) -> anyhow::Result<()> {
        let (data, ca) = (self.data.clone(), self.ca.clone());
        tokio::task::spawn_blocking(move || {
            vantage_node::enrol::renew_stored(&data, &ca, Timeouts::default())
        })
        .await??;
        self.hub.reload_identity();
        Ok(())
    }
}
