//! Approval-policy rotation on the node, without trusting the hub.
//!
//! The shipped policy (`/etc/vantage/policy.json`, read-only) is the root.
//! The hub offers its chain of successors (`GET /v1/policy`); the node takes
//! what verifies of it into its own copy of the chain
//! (`vantage_node::policy_chain`, `policy-chain.json` in the data directory).
//! A successor that does not verify is logged loudly and ignored: a stolen
//! hub, or stolen keys of approvers who were already rotated out, cannot
//! change who approves jobs.
//!
//! Mandate revocations travel the same way (`GET /v1/mandates/revocations`,
//! fetched right after the chain and verified against the policy it
//! yields; see `mandate_revocations`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use vantage_node::policy_chain::{self, MAX_CHAIN_BYTES};
use vantage_proto::job::Refusal;
use vantage_proto::mandate::{MAX_REVOCATION_LIST_BYTES, RevocationList};
use vantage_proto::policy::{Policy, SignedPolicy};

use crate::mandate_revocations::MandateRevocations;

/// Fewest seconds between policy fetches caused by refused jobs.
const REFUSAL_FETCH_SECS: u64 = 30;

/// The policy this node enforces: the shipped one plus verified successors,
/// and the mandates its approvers revoked.
pub struct PolicyChain {
    store: policy_chain::PolicyChain,
    revocations: MandateRevocations,
    last_refusal: Mutex<Option<String>>,
    refusal_fetch: Mutex<Option<Instant>>,
}

/// What an offer from the hub changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The new serial, if the node moved to a newer policy.
    pub adopted: Option<u64>,
    /// Why a successor was refused, if one was.
    pub refused: Option<String>,
}

impl PolicyChain {
    /// The shipped policy with the stored chain of `data_dir` verified on
    /// top. A stored file that cannot be read leaves the shipped policy
    /// until the hub offers a verified chain.
    pub fn open(shipped: Policy, data_dir: &Path) -> Self {
        let serial = shipped.serial;
        let store = policy_chain::PolicyChain::open(shipped.clone(), data_dir).unwrap_or_else(|e| {
            tracing::error!(
                "{e}; using the shipped policy serial {serial} until the hub offers a verified chain"
            );
            policy_chain::PolicyChain::shipped_only(shipped, data_dir)
        });
        PolicyChain {
            store,
            revocations: MandateRevocations::open(data_dir),
            last_refusal: Mutex::new(None),
            refusal_fetch: Mutex::new(None),
        }
    }

    /// Whether a job refused for `reason` might pass under a newer policy
    /// (other approvers, a lower threshold, more probes, higher limits) and a
    /// fetch for that reason is due: nodes catch up with a rotation as soon as
    /// the first job signed under it arrives, not only at the next heartbeat.
    pub fn refresh_may_help(&self, reason: &Refusal) -> bool {
        let may = matches!(
            reason.code(),
            "unknown-approver"
                | "too-few-approvals"
                | "probe-not-allowed"
                | "over-limit"
                | "mandate-unknown-approver"
                | "mandate-too-few-approvals"
        );
        let mut last = self.refusal_fetch.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|t| t.elapsed().as_secs() >= REFUSAL_FETCH_SECS);
        if may && due {
            *last = Some(Instant::now());
        }
        may && due
    }

    /// The newest verified policy: what jobs are checked against.
    pub fn current(&self) -> Arc<Policy> {
        self.store.current()
    }

    /// The mandates revoked by an approver, as far as this node verified.
    pub fn revocations(&self) -> &MandateRevocations {
        &self.revocations
    }

    /// Takes the revocations of `offered` that verify against the current
    /// policy; logs what does not (a hub may serve what it likes).
    pub fn offer_revocations(&self, offered: RevocationList) -> Result<(), String> {
        let out = self
            .revocations
            .offer(&self.current(), offered)
            .map_err(|e| format!("cannot store the mandate revocations: {e}"))?;
        for id in &out.added {
            tracing::warn!("mandate {id} revoked by an approver: jobs under it are refused");
        }
        for e in &out.refused {
            tracing::warn!(
                "ignored a mandate revocation from the hub: {e} ({}); not signed by an approver of policy serial {}",
                e.code(),
                self.serial()
            );
        }
        Ok(())
    }

    /// Serial of [`PolicyChain::current`].
    pub fn serial(&self) -> u64 {
        self.store.serial()
    }

    /// Takes what verifies of the hub's chain. The verified chain is written
    /// durably before the node switches to it.
    pub fn offer(&self, offered: &[SignedPolicy]) -> Result<Outcome, policy_chain::StoreError> {
        let out = self.store.offer(offered)?;
        let refused = out.refused.map(|(i, e)| {
            let serial = offered[i]
                .parse()
                .map(|p| p.serial.to_string())
                .unwrap_or_else(|_| "?".into());
            format!(
                "refused the hub's policy serial {serial}: {e}; keeping serial {}",
                self.serial()
            )
        });
        let mut last = self.last_refusal.lock().unwrap_or_else(|p| p.into_inner());
        match &refused {
            Some(r) if last.as_ref() != Some(r) => tracing::error!(
                "POLICY UPDATE REFUSED: {r}. The hub offers a policy the current approvers did not sign; \
                 this node ignores it. Tell the network's operators."
            ),
            Some(r) => tracing::warn!("policy update still refused: {r}"),
            None => {}
        }
        *last = refused.clone();
        if let Some(s) = out.adopted {
            let current = self.current();
            tracing::warn!(
                "approval policy rotated to serial {s}: jobs now need {} of {} approvers ({})",
                current.threshold,
                current.approvers.len(),
                current
                    .approvers
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(Outcome {
            adopted: out.adopted,
            refused,
        })
    }
}

/// `GET <hub><path>`, at most `limit` bytes; `None` from a hub without the
/// endpoint (404).
fn fetch_text(
    http: &ureq::Agent,
    hub_base: &str,
    path: &str,
    limit: u64,
) -> Result<Option<String>, String> {
    let url = format!("{}{path}", hub_base.trim_end_matches('/'));
    let mut resp = http
        .get(&url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Ok(None),
        s => return Err(format!("GET {url}: HTTP {s}")),
    }
    resp.body_mut()
        .with_config()
        .limit(limit)
        .read_to_string()
        .map(Some)
        .map_err(|e| format!("GET {url}: {e}"))
}

/// `GET <hub>/v1/policy`; a hub without the endpoint (404) offers nothing.
pub fn fetch(http: &ureq::Agent, hub_base: &str) -> Result<Vec<SignedPolicy>, String> {
    match fetch_text(http, hub_base, "/v1/policy", MAX_CHAIN_BYTES)? {
        None => Ok(Vec::new()),
        Some(text) => policy_chain::parse_chain(&text)
            .map_err(|e| format!("GET /v1/policy: not a policy chain: {e}")),
    }
}

/// `GET <hub>/v1/mandates/revocations`; a hub without the endpoint offers none.
pub fn fetch_revocations(http: &ureq::Agent, hub_base: &str) -> Result<RevocationList, String> {
    let path = "/v1/mandates/revocations";
    match fetch_text(http, hub_base, path, MAX_REVOCATION_LIST_BYTES)? {
        None => Ok(RevocationList::default()),
        Some(text) => RevocationList::from_json(text.as_bytes())
            .map_err(|e| format!("GET {path}: not a revocation list: {e}")),
    }
}

/// Fetches the hub's chain and takes what verifies. Returns the refusal or
/// storage problem worth reporting (an unreachable hub is only logged: the
/// heartbeat and the subscription report that already).
pub async fn refresh(
    chain: Arc<PolicyChain>,
    http: ureq::Agent,
    hub_base: String,
) -> Result<(), String> {
    let fetched = tokio::task::spawn_blocking(move || {
        let offered = match fetch(&http, &hub_base) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("policy update: {e}");
                return Ok(None);
            }
        };
        let out = chain
            .offer(&offered)
            .map_err(|e| format!("cannot store the verified policy chain: {e}"))?;
        // Verified against the policy just taken: revocations by new approvers count.
        match fetch_revocations(&http, &hub_base) {
            Ok(list) => chain.offer_revocations(list)?,
            Err(e) => tracing::warn!("mandate revocations: {e}"),
        }
        Ok::<_, String>(Some(out))
    })
    .await
    .map_err(|e| format!("policy update thread: {e}"))??;
    match fetched.and_then(|o| o.refused) {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use vantage_proto::sign::ApproverKey;
    use vantage_testkit::approvers::{approver_keys, policy_value};

    /// Serial 1 of `network` "t": two of the approvers with seeds 1, 2, 3.
    fn shipped() -> (Value, Vec<ApproverKey>) {
        let k = approver_keys(3);
        (policy_value(1, &[&k[0], &k[1], &k[2]]), k)
    }

    #[test]
    fn refusals_a_newer_policy_might_lift_trigger_one_fetch_per_interval() {
        use vantage_proto::policy::ApprovalError;
        let d = tempfile::tempdir().unwrap();
        let chain = PolicyChain::open(Policy::from_value(&shipped().0).unwrap(), d.path());
        let few = Refusal::Approval(ApprovalError::TooFew { have: 1, need: 2 });
        assert!(!chain.refresh_may_help(&Refusal::Replayed("j".into())));
        assert!(chain.refresh_may_help(&few));
        assert!(
            !chain.refresh_may_help(&few),
            "not again within the interval"
        );
    }

    #[test]
    fn a_refused_successor_is_reported_and_the_policy_kept() {
        let (mut v, k) = shipped();
        let d = tempfile::tempdir().unwrap();
        let chain = PolicyChain::open(Policy::from_value(&v).unwrap(), d.path());
        v["serial"] = json!(2);
        let one_approval = SignedPolicy {
            signatures: vec![k[0].sign_policy(&v).unwrap()],
            policy: v,
        };
        let out = chain.offer(&[one_approval]).unwrap();
        assert_eq!(out.adopted, None);
        let r = out.refused.unwrap();
        assert!(
            r.contains("policy serial 2") && r.contains("too few approvals"),
            "{r}"
        );
        assert!(r.contains("keeping serial 1"), "{r}");
        assert_eq!(chain.serial(), 1);
    }
}
