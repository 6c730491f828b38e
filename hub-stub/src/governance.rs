//! Approval-policy rotation at the hub: the chain of accepted successors of
//! the shipped policy (`policy-chain.json` in the data directory), the policy
//! jobs are checked against now (the endpoints are in `api::policy`).
//!
//! The hub only ever applies a successor that a quorum of the *current*
//! approvers signed (`Policy::accept_successor`), and re-verifies the stored
//! chain from the shipped policy at every start. Nodes do the same on their
//! own, so a hub that serves a forged chain changes nothing on them.

use crate::datadir::write_atomic;
use crate::server::lock;
use anyhow::{Context, Result, bail};
use arc_swap::ArcSwapOption;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vantage_proto::policy::{ChainDoc, Policy, PolicyChangeError, SignedPolicy, walk};

/// File in the data directory holding the accepted successors, oldest first.
pub const CHAIN_FILE: &str = "policy-chain.json";

/// Largest signed policy the hub takes.
pub const MAX_POLICY_BODY: usize = 64 * 1024;

struct Chain {
    entries: Vec<SignedPolicy>,
    current: Arc<Policy>,
}

/// The hub's approval policy: shipped, plus the accepted successors.
pub struct PolicyState {
    path: PathBuf,
    chain: Option<Mutex<Chain>>,
    current: ArcSwapOption<Policy>,
    reported: Mutex<HashMap<String, u64>>,
    /// Held from a job's per-target count to its storage, so concurrent
    /// submissions cannot both slip under the hourly limit.
    pub submissions: tokio::sync::Mutex<()>,
}

impl PolicyState {
    /// The shipped policy (from `--policy`, if any) with the stored chain of
    /// `data_dir` re-verified and applied on top.
    pub fn open(shipped: Option<Policy>, data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(CHAIN_FILE);
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<ChainDoc>(&text).with_context(|| {
                format!(
                    "{} is not a policy chain; restore it from a backup or move it away (nodes keep their own copy)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ChainDoc::default(),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        };
        let Some(shipped) = shipped else {
            if !stored.chain.is_empty() {
                tracing::warn!(
                    "{} holds {} policy successor(s) but no --policy was given; they are not used",
                    path.display(),
                    stored.chain.len()
                );
            }
            return Ok(Self {
                path,
                chain: None,
                current: ArcSwapOption::empty(),
                reported: Mutex::new(HashMap::new()),
                submissions: tokio::sync::Mutex::new(()),
            });
        };
        let w = walk(&shipped, &stored.chain);
        if let Some((i, e)) = &w.refused {
            tracing::error!(
                "{}: stored successor #{} does not follow from the policy before it ({e}); \
                 it and any after it are ignored. Someone changed this file: check the hub.",
                path.display(),
                i + 1
            );
        }
        let current = Arc::new(w.accepted.last().map(|(_, p)| p.clone()).unwrap_or(shipped));
        if !w.accepted.is_empty() {
            tracing::info!(
                serial = current.serial,
                "applied {} stored policy successor(s)",
                w.accepted.len()
            );
        }
        Ok(Self {
            path,
            current: ArcSwapOption::from(Some(current.clone())),
            chain: Some(Mutex::new(Chain {
                entries: w.accepted.into_iter().map(|(s, _)| s).collect(),
                current,
            })),
            reported: Mutex::new(HashMap::new()),
            submissions: tokio::sync::Mutex::new(()),
        })
    }

    /// The policy jobs are checked against now (none without `--policy`).
    pub fn current(&self) -> Option<Arc<Policy>> {
        self.current.load_full()
    }

    /// The accepted successors of the shipped policy, oldest first.
    pub fn chain(&self) -> Vec<SignedPolicy> {
        self.chain
            .as_ref()
            .map(|c| lock(c).entries.clone())
            .unwrap_or_default()
    }

    /// Accepts `next` if the current policy does, stores the chain durably,
    /// then makes it current. Blocking (writes a file).
    pub fn rotate(&self, next: SignedPolicy) -> Result<Arc<Policy>, RotateError> {
        let chain = self.chain.as_ref().ok_or(RotateError::NoPolicy)?;
        let mut c = lock(chain);
        let accepted = Arc::new(
            c.current
                .accept_successor(&next)
                .map_err(RotateError::Refused)?,
        );
        let mut entries = c.entries.clone();
        entries.push(next);
        let doc = serde_json::to_vec_pretty(&ChainDoc {
            chain: entries.clone(),
        })
        .expect("policies serialise");
        write_atomic(&self.path, &doc, 0o644).map_err(RotateError::Store)?;
        c.entries = entries;
        c.current = accepted.clone();
        self.current.store(Some(accepted.clone()));
        Ok(accepted)
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
    #[error("cannot store the policy chain: {0:#}")]
    Store(anyhow::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use vantage_testkit::approvers::{approver_keys, policy_value, signed_policy};

    #[test]
    fn chain_is_stored_and_reverified_at_start() {
        let k = approver_keys(5);
        let d = tempfile::tempdir().unwrap();
        let shipped = Policy::from_value(&policy_value(1, &[&k[0], &k[1], &k[2]])).unwrap();
        let st = PolicyState::open(Some(shipped.clone()), d.path()).unwrap();
        let two = signed_policy(2, &[&k[1], &k[2], &k[3]], &[&k[0], &k[1]]);
        assert!(matches!(
            st.rotate(signed_policy(2, &[&k[3]], &[&k[0]])),
            Err(RotateError::Refused(_))
        ));
        assert_eq!(st.rotate(two.clone()).unwrap().serial, 2);
        // Signed by the old approvers only: no longer enough.
        let three_old = signed_policy(3, &[&k[4], &k[0]], &[&k[0], &k[1]]);
        let e = st.rotate(three_old).unwrap_err();
        assert!(matches!(&e, RotateError::Refused(c) if c.code() == "unknown-approver"));
        let three = signed_policy(3, &[&k[3], &k[4]], &[&k[2], &k[3]]);
        st.rotate(three).unwrap();
        let again = PolicyState::open(Some(shipped.clone()), d.path()).unwrap();
        assert_eq!(again.current().unwrap().serial, 3);
        assert_eq!(again.chain().len(), 2);

        // A tampered entry on disk stops the walk there.
        let mut doc: ChainDoc =
            serde_json::from_str(&std::fs::read_to_string(d.path().join(CHAIN_FILE)).unwrap())
                .unwrap();
        doc.chain[0].policy["threshold"] = json!(1);
        std::fs::write(d.path().join(CHAIN_FILE), serde_json::to_vec(&doc).unwrap()).unwrap();
        let tampered = PolicyState::open(Some(shipped), d.path()).unwrap();
        assert_eq!(tampered.current().unwrap().serial, 1);
        assert!(tampered.chain().is_empty());
    }

    #[test]
    fn walk_skips_history_and_refuses_forks() {
        let k = approver_keys(5);
        let one = Policy::from_value(&policy_value(1, &[&k[0], &k[1], &k[2]])).unwrap();
        let two = signed_policy(2, &[&k[2], &k[3], &k[4]], &[&k[0], &k[1]]);
        let two_p = one.accept_successor(&two).unwrap();
        // A node already at serial 2 skips it and takes serial 3 from the new approvers.
        let three = signed_policy(3, &[&k[3], &k[4]], &[&k[3], &k[4]]);
        let w = walk(&two_p, &[two.clone(), three.clone()]);
        assert_eq!(w.accepted.len(), 1);
        assert!(w.refused.is_none());
        // A fork signed by the retired approvers is refused at serial 3.
        let fork = signed_policy(3, &[&k[0]], &[&k[0], &k[1]]);
        let w = walk(&one, &[two, fork, three]);
        assert_eq!(w.accepted.len(), 1);
        assert!(matches!(w.refused, Some((1, _))));
    }
}
