//! The approval policy the node enforces, as a handle for the tasks that
//! check jobs against it and ask the hub for successors (the chain and its
//! verification are `policy_update`'s).

use std::sync::Arc;

use vantage_proto::job::Refusal;
use vantage_proto::policy::Policy;

use crate::health::Health;
use crate::hub::Hub;
use crate::mandate_revocations::MandateRevocations;
use crate::policy_update::PolicyChain;

/// A handle on the node's approval policy.
#[derive(Clone)]
pub struct Approvals {
    chain: Arc<PolicyChain>,
    hub: Hub,
    /// The hub's base URL, where `GET /v1/policy` offers successors.
    hub_url: String,
    health: Health,
}

impl Approvals {
    /// The policy of `chain`, refreshed from the hub at `hub_url`.
    pub fn new(chain: PolicyChain, hub: Hub, hub_url: String, health: Health) -> Approvals {
        Approvals {
            chain: Arc::new(chain),
            hub,
            hub_url,
            health,
        }
    }

    /// The newest verified policy: what jobs are checked against.
    pub fn current(&self) -> Arc<Policy> {
        self.chain.current()
    }

    /// The mandate revocations that verified against the policy.
    pub fn revocations(&self) -> &MandateRevocations {
        self.chain.revocations()
    }

    /// Serial of [`Approvals::current`].
    pub fn serial(&self) -> u64 {
        self.chain.serial()
    }

    /// Whether a refresh is due because a newer policy might lift `reason`.
    pub fn refresh_may_help(&self, reason: &Refusal) -> bool {
        self.chain.refresh_may_help(reason)
    }

    /// Takes what verifies of the hub's policy chain (see `policy_update`).
    pub async fn refresh(&self) {
        let (chain, http, hub) = (self.chain.clone(), self.hub.http(), self.hub_url.clone());
        if let Err(e) = crate::policy_update::refresh(chain, http, hub).await {
            self.health.set_error(e);
        }
    }
}
