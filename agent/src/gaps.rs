//! Gaps in the stream: the server lost messages the node never saw. Each
//! is logged and reported to the hub (`/v1/gap`) by its own task, retried a
//! few times with backoff.

use std::time::Duration;

use vantage_node::backoff::Backoff;
use vantage_proto::node::{GapEvent, GapReport};

use crate::health::Health;
use crate::hub::Hub;

/// Where gaps are reported.
#[derive(Clone)]
pub struct Gaps {
    /// The client to the hub.
    pub hub: Hub,
    /// The hub's gap endpoint.
    pub url: String,
    /// Where a report that could not be delivered is noted.
    pub health: Health,
}

impl Gaps {
    /// Logs a gap the server reported and reports it to the hub in the background.
    pub fn report(&self, gap: GapEvent) {
        tracing::warn!(
            "the hub lost messages after {} (oldest held: {})",
            gap.requested,
            gap.oldest
        );
        let report = GapReport {
            requested: gap.requested,
            oldest: Some(gap.oldest),
            detail: None,
        };
        let me = self.clone();
        tokio::spawn(async move { me.deliver(report).await });
    }

    async fn deliver(self, report: GapReport) {
        let body = serde_json::to_vec(&report).unwrap_or_default();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..5 {
            match self.hub.post(self.url.clone(), body.clone()).await {
                Ok((200..=299, _)) => return,
                Ok((s, b)) => {
                    tracing::warn!("gap report: HTTP {s}: {}", crate::logging::one_line(&b))
                }
                Err(e) => tracing::warn!("gap report: {e}"),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        self.health
            .set_error(format!("could not report a gap after {}", report.requested));
    }
}
