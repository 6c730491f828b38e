//! Approval-policy rotation on the node, without trusting the hub.
//!
//! The shipped policy (`/etc/vantage/policy.json`, read-only) is the root.
//! The hub offers its chain of successors (`GET /v1/policy`); the node accepts
//! each one only if a quorum of the approvers of the policy it holds at that
//! point signed it (`Policy::accept_successor`), keeps the verified chain in
//! its data directory (`policy-chain.json`, written atomically) and walks it
//! again from the shipped policy at every start. A successor that does not
//! verify is logged loudly and ignored: a stolen hub, or stolen keys of
//! approvers who were already rotated out, cannot change who approves jobs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use vantage_proto::job::Refusal;
use vantage_proto::policy::{ChainDoc, Policy, SignedPolicy, walk};

/// File in the agent's data directory holding the verified successors, oldest first.
pub const CHAIN_FILE: &str = "policy-chain.json";

/// Most bytes of a chain read from the hub or from disk.
const MAX_CHAIN_BYTES: u64 = 1024 * 1024;

/// Fewest seconds between policy fetches caused by refused jobs.
const REFUSAL_FETCH_SECS: u64 = 30;

struct State {
    chain: Vec<SignedPolicy>,
    current: Arc<Policy>,
    last_refusal: Option<String>,
}

/// The policy this node enforces: the shipped one plus verified successors.
pub struct PolicyChain {
    path: PathBuf,
    state: RwLock<State>,
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

/// A chain document's entries; signed text, so a duplicate object key
/// anywhere refuses the whole document (as the hub would refuse it).
fn parse_chain(text: &str) -> Result<Vec<SignedPolicy>, String> {
    vantage_proto::canonical::check_no_duplicate_keys(text.as_bytes())
        .map_err(|e| e.to_string())?;
    serde_json::from_str::<ChainDoc>(text)
        .map(|d| d.chain)
        .map_err(|e| e.to_string())
}

impl PolicyChain {
    /// The shipped policy with the stored chain of `data_dir` verified on top.
    /// A stored entry that does not verify is reported and dropped with
    /// everything after it (the file is rewritten at the next update).
    pub fn open(shipped: Policy, data_dir: &Path) -> Self {
        let path = data_dir.join(CHAIN_FILE);
        let stored = match read_limited(&path) {
            Ok(Some(text)) => match parse_chain(&text) {
                Ok(chain) => chain,
                Err(e) => {
                    tracing::error!(
                        "{} is not a policy chain ({e}); using the shipped policy serial {} until the hub offers a verified chain",
                        path.display(),
                        shipped.serial
                    );
                    Vec::new()
                }
            },
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!(
                    "cannot read {} ({e}); using the shipped policy serial {}",
                    path.display(),
                    shipped.serial
                );
                Vec::new()
            }
        };
        let w = walk(&shipped, &stored);
        if let Some((i, e)) = &w.refused {
            tracing::error!(
                "stored policy successor #{} in {} does not verify from the shipped policy ({e}); \
                 ignoring it and everything after it",
                i + 1,
                path.display()
            );
        }
        let current = Arc::new(w.accepted.last().map(|(_, p)| p.clone()).unwrap_or(shipped));
        if !w.accepted.is_empty() {
            tracing::info!(
                "approval policy serial {} (shipped policy plus {} verified successor(s))",
                current.serial,
                w.accepted.len()
            );
        }
        PolicyChain {
            path,
            state: RwLock::new(State {
                chain: w.accepted.into_iter().map(|(s, _)| s).collect(),
                current,
                last_refusal: None,
            }),
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
            "unknown-approver" | "too-few-approvals" | "probe-not-allowed" | "over-limit"
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
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .clone()
    }

    /// Serial of [`PolicyChain::current`].
    pub fn serial(&self) -> u64 {
        self.current().serial
    }

    /// Takes what verifies of the hub's chain. The verified chain is written
    /// durably before the node switches to it.
    pub fn offer(&self, offered: &[SignedPolicy]) -> std::io::Result<Outcome> {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        let w = walk(&st.current, offered);
        let refused = w.refused.map(|(i, e)| {
            let serial = offered[i]
                .parse()
                .map(|p| p.serial.to_string())
                .unwrap_or_else(|_| "?".into());
            format!(
                "refused the hub's policy serial {serial}: {e}; keeping serial {}",
                w.accepted
                    .last()
                    .map(|(_, p)| p.serial)
                    .unwrap_or(st.current.serial)
            )
        });
        let mut adopted = None;
        if let Some((_, newest)) = w.accepted.last() {
            let mut chain = st.chain.clone();
            chain.extend(w.accepted.iter().map(|(s, _)| s.clone()));
            let doc = serde_json::to_vec_pretty(&ChainDoc {
                chain: chain.clone(),
            })
            .expect("policies serialise");
            crate::durable::write(&self.path, &doc)?;
            adopted = Some(newest.serial);
            st.current = Arc::new(newest.clone());
            st.chain = chain;
        }
        match &refused {
            Some(r) if st.last_refusal.as_ref() != Some(r) => tracing::error!(
                "POLICY UPDATE REFUSED: {r}. The hub offers a policy the current approvers did not sign; \
                 this node ignores it. Tell the network's operators."
            ),
            Some(r) => tracing::warn!("policy update still refused: {r}"),
            None => {}
        }
        st.last_refusal = refused.clone();
        if let Some(s) = adopted {
            tracing::warn!(
                "approval policy rotated to serial {s}: jobs now need {} of {} approvers ({})",
                st.current.threshold,
                st.current.approvers.len(),
                st.current
                    .approvers
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(Outcome { adopted, refused })
    }
}

fn read_limited(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.take(MAX_CHAIN_BYTES).read_to_string(&mut text)?;
    Ok(Some(text))
}

/// `GET <hub>/v1/policy`; a hub without the endpoint (404) offers nothing.
pub fn fetch(http: &ureq::Agent, hub_base: &str) -> Result<Vec<SignedPolicy>, String> {
    let url = format!("{}/v1/policy", hub_base.trim_end_matches('/'));
    let mut resp = http
        .get(&url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Ok(Vec::new()),
        s => return Err(format!("GET {url}: HTTP {s}")),
    }
    let text = resp
        .body_mut()
        .with_config()
        .limit(MAX_CHAIN_BYTES)
        .read_to_string()
        .map_err(|e| format!("GET {url}: {e}"))?;
    parse_chain(&text).map_err(|e| format!("GET {url}: not a policy chain: {e}"))
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
        chain
            .offer(&offered)
            .map(Some)
            .map_err(|e| format!("cannot store the verified policy chain: {e}"))
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
    use serde_json::json;
    use vantage_testkit::approvers::{approver_keys, policy_value, signed_policy};

    #[test]
    fn verified_successors_are_kept_and_reverified_at_start() {
        let k = approver_keys(5);
        let d = tempfile::tempdir().unwrap();
        let shipped = Policy::from_value(&policy_value(1, &[&k[0], &k[1], &k[2]])).unwrap();
        let chain = PolicyChain::open(shipped.clone(), d.path());
        assert_eq!(chain.serial(), 1);
        let two = signed_policy(2, &[&k[2], &k[3], &k[4]], &[&k[0], &k[1]]);
        let three = signed_policy(3, &[&k[3], &k[4]], &[&k[3], &k[4]]);
        let out = chain.offer(std::slice::from_ref(&two)).unwrap();
        assert_eq!(
            out,
            Outcome {
                adopted: Some(2),
                refused: None
            }
        );
        // The hub offers the whole chain again: history is skipped, serial 3 taken.
        let out = chain.offer(&[two.clone(), three.clone()]).unwrap();
        assert_eq!(out.adopted, Some(3));
        assert_eq!(chain.offer(&[two, three]).unwrap().adopted, None);
        let again = PolicyChain::open(shipped.clone(), d.path());
        assert_eq!(again.serial(), 3);

        // Someone edits the stored file: the node falls back to what verifies.
        let p = d.path().join(CHAIN_FILE);
        let mut doc: ChainDoc =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        doc.chain[1].policy["threshold"] = json!(1);
        std::fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(PolicyChain::open(shipped.clone(), d.path()).serial(), 2);
        std::fs::write(&p, b"{not json").unwrap();
        assert_eq!(PolicyChain::open(shipped, d.path()).serial(), 1);
    }

    #[test]
    fn refusals_a_newer_policy_might_lift_trigger_one_fetch_per_interval() {
        use vantage_proto::policy::ApprovalError;
        let k = approver_keys(5);
        let d = tempfile::tempdir().unwrap();
        let shipped = Policy::from_value(&policy_value(1, &[&k[0], &k[1], &k[2]])).unwrap();
        let chain = PolicyChain::open(shipped, d.path());
        let few = Refusal::Approval(ApprovalError::TooFew { have: 1, need: 2 });
        assert!(!chain.refresh_may_help(&Refusal::Replayed("j".into())));
        assert!(chain.refresh_may_help(&few));
        assert!(
            !chain.refresh_may_help(&few),
            "not again within the interval"
        );
    }

    #[test]
    fn forged_and_underapproved_successors_change_nothing() {
        let k = approver_keys(5);
        let d = tempfile::tempdir().unwrap();
        let shipped = Policy::from_value(&policy_value(1, &[&k[0], &k[1], &k[2]])).unwrap();
        let chain = PolicyChain::open(shipped, d.path());
        let few = signed_policy(2, &[&k[3], &k[4]], &[&k[0]]);
        let outsiders = signed_policy(2, &[&k[3], &k[4]], &[&k[3], &k[4]]);
        let mut altered = signed_policy(2, &[&k[0], &k[1], &k[2]], &[&k[0], &k[1]]);
        altered.policy["approvers"][0]["key"] = json!(k[4].public_key());
        for (bad, words) in [
            (few, "too few approvals"),
            (outsiders, "unknown approver"),
            (altered, "forged signature"),
        ] {
            let out = chain.offer(&[bad]).unwrap();
            assert_eq!(out.adopted, None);
            let r = out.refused.unwrap();
            assert!(r.contains(words) && r.contains("keeping serial 1"), "{r}");
            assert_eq!(chain.serial(), 1);
        }
        assert!(!d.path().join(CHAIN_FILE).exists());
    }
}
