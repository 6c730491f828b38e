//! The heartbeat: every interval, ask the hub for a newer approval policy
//! and measure which address families reach it, then tell it the node's
//! version, uptime, outbox, last error, policy serial, the refusals counted
//! since the last report, its capabilities and its owner's policy digest,
//! its target triple and its releases; take the release the hub offers.

use std::time::{Duration, Instant};

use vantage_proto::api::HeartbeatAnswer;
use vantage_proto::node::{Capabilities, Heartbeat as Beat};
use vantage_proto::owner::OwnerDigest;

use crate::approvals::Approvals;
use crate::certs::unix_ms;
use crate::health::Health;
use crate::hub::Hub;
use crate::reach::Caps;
use crate::releases::Releases;
use crate::results::Results;
use crate::tally::Refusals;

/// The heartbeat task's parts.
pub struct Heartbeat {
    /// How often.
    pub every: Duration,
    /// The client to the hub.
    pub hub: Hub,
    /// The hub's heartbeat endpoint.
    pub url: String,
    /// The approval policy (refreshed, and its serial reported).
    pub approvals: Approvals,
    /// The outbox (its depth and dropped count).
    pub results: Results,
    /// The last error.
    pub health: Health,
    /// Refusals to report.
    pub refusals: Refusals,
    /// The capabilities, measured before each beat.
    pub caps: Caps,
    /// The hub's base URL (what the capabilities are measured against).
    pub hub_url: String,
    /// The owner's policy digest.
    pub owner: OwnerDigest,
    /// When the agent started.
    pub started: Instant,
    /// Agent releases: reported, confirmed, offered.
    pub releases: Releases,
}

impl Heartbeat {
    /// Beats forever.
    pub async fn run(self) {
        loop {
            self.approvals.refresh().await;
            let caps = self.caps.refresh(&self.hub_url).await;
            self.beat(caps).await;
            tokio::time::sleep(self.every).await;
        }
    }

    async fn beat(&self, caps: Capabilities) {
        let (depth, dropped) = self.results.counts();
        let health = self.health.get();
        let refused = self.refusals.summary(unix_ms());
        let hb = Beat {
            version: crate::version::VERSION.to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            outbox_depth: depth,
            outbox_dropped: dropped,
            last_error: health.error(),
            policy_serial: Some(self.approvals.serial()),
            refused: refused.clone(),
            caps: Some(caps),
            owner: Some(self.owner.clone()),
            release: self.releases.report(),
            target: Some(crate::version::TARGET.to_string()),
        };
        let body = serde_json::to_vec(&hb).unwrap_or_default();
        match self.hub.post(self.url.clone(), body).await {
            Ok((200..=299, answer)) => {
                self.releases.accepted();
                self.releases.offer(offered(&answer));
                if let Some(r) = refused {
                    tracing::info!(
                        "reported {} refused stream message(s) to the hub: {:?}",
                        r.total(),
                        r.counts
                    );
                    self.refusals.reported(&r);
                }
            }
            Ok((s, b)) => {
                tracing::warn!("heartbeat: HTTP {s}: {}", crate::logging::one_line(&b))
            }
            Err(e) => tracing::warn!("heartbeat: {e}"),
        }
    }
}

/// The release the hub offers in its heartbeat answer, if any (a hub from
/// before releases answers without one).
fn offered(answer: &str) -> Option<String> {
    serde_json::from_str::<HeartbeatAnswer>(answer)
        .ok()?
        .release
}
