//! Approval-policy rotation at the hub: the chain of accepted successors of
//! the shipped policy (`policy-chain.json` in the data directory), the policy
//! jobs are checked against now (the endpoints are in `api::policy`).
//!
//! The hub only ever applies a successor that a quorum of the *current*
//! approvers signed (`Policy::accept_successor`), and re-verifies the stored
//! chain from the shipped policy at every start. Nodes do the same on their
//! own, so a hub that serves a forged chain changes nothing on them.

use crate::datadir::write_atomic;
use crate::sync::lock;
use anyhow::{Result, bail};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use vantage_node::policy_chain::{self, AcceptError, CHAIN_FILE, PolicyChain, StoreError};
use vantage_proto::policy::{Policy, PolicyChangeError, SignedPolicy};

/// Largest signed policy the hub takes.
pub const MAX_POLICY_BODY: usize = 64 * 1024;

/// The hub's approval policy: shipped, plus the accepted successors.
pub struct PolicyState {
    chain: Option<PolicyChain>,
    reported: Mutex<HashMap<String, u64>>,
    /// Held from a job's per-target count to its storage, so concurrent
    /// submissions cannot both slip under the hourly limit.
    pub submissions: tokio::sync::Mutex<()>,
}

impl PolicyState {
    /// The shipped policy (from `--policy`, if any) with the stored chain of
    /// `data_dir` re-verified and applied on top.
    pub fn open(shipped: Option<Policy>, data_dir: &Path) -> Result<Self> {
        let damaged = |e: StoreError| match e {
            StoreError::Damaged { .. } => anyhow::anyhow!(
                "{e}; restore it from a backup or move it away (nodes keep their own copy)"
            ),
            e => anyhow::anyhow!("cannot read {e}"),
        };
        let chain = match shipped {
            Some(shipped) => Some(PolicyChain::open(shipped, data_dir).map_err(damaged)?),
            None => {
                let path = data_dir.join(CHAIN_FILE);
                let stored = policy_chain::read_stored(&path).map_err(damaged)?;
                if !stored.is_empty() {
                    tracing::warn!(
                        "{} holds {} policy successor(s) but no --policy was given; they are not used",
                        path.display(),
                        stored.len()
                    );
                }
                None
            }
        };
        Ok(Self {
            chain,
            reported: Mutex::new(HashMap::new()),
            submissions: tokio::sync::Mutex::new(()),
        })
    }

    /// The policy jobs are checked against now (none without `--policy`).
    pub fn current(&self) -> Option<Arc<Policy>> {
        self.chain.as_ref().map(PolicyChain::current)
    }

    /// The accepted successors of the shipped policy, oldest first.
    pub fn chain(&self) -> Vec<SignedPolicy> {
        self.chain
            .as_ref()
            .map(PolicyChain::entries)
            .unwrap_or_default()
    }

    /// Accepts `next` if the current policy does, stores the chain durably,
    /// then makes it current. Blocking (writes a file).
    pub fn rotate(&self, next: SignedPolicy) -> Result<Arc<Policy>, RotateError> {
        let chain = self.chain.as_ref().ok_or(RotateError::NoPolicy)?;
        chain.accept(&next).map_err(|e| match e {
            AcceptError::Refused(e) => RotateError::Refused(e),
            AcceptError::Store(e) => RotateError::Store(e),
        })
    }

    /// Remembers the policy serial a node reported in its heartbeat.
    pub fn note_reported(&self, node: &str, serial: Option<u64>) {
        let mut r = lock(&self.reported);
        match serial {
            Some(s) => r.insert(node.to_string(), s),
            None => r.remove(node),
        };
    }

    /// The policy serial a node reported in its last heartbeat since the hub started.
    pub fn reported(&self, node: &str) -> Option<u64> {
        lock(&self.reported).get(node).copied()
    }
}

/// Copies the stored chain (if any) from `data_dir` into the backup directory `out`.
pub fn backup_chain(data_dir: &Path, out: &Path) -> Result<()> {
    let from = data_dir.join(CHAIN_FILE);
    match std::fs::read(&from) {
        Ok(bytes) => write_atomic(&out.join(CHAIN_FILE), &bytes, 0o644),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => bail!("cannot copy {}: {e}", from.display()),
    }
}

/// Why a successor was not applied.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The hub runs without a policy.
    #[error("the hub has no approval policy; start it with --policy FILE")]
    NoPolicy,
    /// The current approvers did not authorise it.
    #[error("policy refused: {0}")]
    Refused(PolicyChangeError),
    /// It could not be stored.
    #[error("cannot store the policy chain: {0}")]
    Store(StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_testkit::approvers::{approver_keys, policy_value};

    #[test]
    fn a_damaged_chain_stops_the_hub_with_advice_and_no_policy_refuses_rotation() {
        let d = tempfile::tempdir().unwrap();
        let k = approver_keys(2);
        let value = policy_value(1, &[&k[0], &k[1]]);
        let shipped = Policy::from_value(&value).unwrap();
        let next = SignedPolicy {
            signatures: vec![],
            policy: value,
        };
        let none = PolicyState::open(None, d.path()).unwrap();
        assert!(none.current().is_none() && none.chain().is_empty());
        assert!(matches!(none.rotate(next), Err(RotateError::NoPolicy)));
        std::fs::write(d.path().join(CHAIN_FILE), b"{half").unwrap();
        for shipped in [Some(shipped), None] {
            let e = PolicyState::open(shipped, d.path()).err().unwrap();
            assert!(e.to_string().contains("move it away"), "{e}");
        }
    }
}
