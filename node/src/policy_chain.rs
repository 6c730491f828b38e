//! The approval policy and its chain of successors, as the hub and every
//! node keep them: the shipped policy (a file that is never written) is the
//! root; `policy-chain.json` in the data directory holds the accepted
//! successors, oldest first, written atomically, and is walked again from
//! the shipped policy at every start, so an entry that does not verify (an
//! edited file) is dropped with everything after it.
//!
//! The hub takes one successor at a time from an operator
//! ([`PolicyChain::accept`]); a node takes what verifies of the chain the hub
//! offers ([`PolicyChain::offer`]). Either way a successor counts only with
//! a quorum of the approvers of the policy before it
//! (`Policy::accept_successor`), so a stolen hub, or stolen keys of approvers
//! already rotated out, cannot change who approves jobs.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use vantage_proto::policy::{ChainDoc, Policy, PolicyChangeError, SignedPolicy, walk};

use crate::durable::atomic_write;

/// The file in a data directory holding the accepted successors.
pub const CHAIN_FILE: &str = "policy-chain.json";

/// Most bytes of a chain read from disk or from the hub.
pub const MAX_CHAIN_BYTES: u64 = 1024 * 1024;

/// Why the shipped policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// It could not be read.
    #[error("cannot read the approval policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// It is not a signed policy, or the policy is invalid.
    #[error("approval policy {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: vantage_proto::ProtoError,
    },
}

/// Reads the shipped approval policy (`{"policy": ..., "signatures": [...]}`).
pub fn load_policy(path: &Path) -> Result<Policy, PolicyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |reason| PolicyFileError::Invalid {
        path: path.to_owned(),
        reason,
    };
    SignedPolicy::from_json(&text)
        .map_err(invalid)?
        .parse()
        .map_err(invalid)
}

/// A chain document's entries. Signed text, so a duplicate object key
/// anywhere refuses the whole document.
pub fn parse_chain(text: &str) -> Result<Vec<SignedPolicy>, vantage_proto::ProtoError> {
    vantage_proto::canonical::check_no_duplicate_keys(text.as_bytes())?;
    Ok(serde_json::from_str::<ChainDoc>(text)?.chain)
}

/// Why the stored chain cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The file is not a policy chain.
    #[error("{path} is not a policy chain: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: vantage_proto::ProtoError,
    },
}

/// Why [`PolicyChain::accept`] did not apply a successor.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The current approvers did not authorise it.
    #[error("policy refused: {0}")]
    Refused(PolicyChangeError),
    /// It could not be stored; the current policy stays.
    #[error("cannot store the policy chain: {0}")]
    Store(StoreError),
}

/// What came of a chain offered by the hub.
#[derive(Debug)]
pub struct Offered {
    /// The new serial, if the chain moved to a newer policy.
    pub adopted: Option<u64>,
    /// The offered entry that did not verify (its index) and why; the walk
    /// stopped there.
    pub refused: Option<(usize, PolicyChangeError)>,
}

struct State {
    entries: Vec<SignedPolicy>,
    current: Arc<Policy>,
}

/// The shipped policy plus the accepted successors stored beside it.
pub struct PolicyChain {
    path: PathBuf,
    state: RwLock<State>,
}

impl PolicyChain {
    /// The shipped policy with the chain stored in `data_dir` walked on top.
    /// A stored entry that does not verify is logged and dropped with every
    /// entry after it (the file is rewritten at the next change). A file
    /// that cannot be read or parsed is an error: the caller decides whether
    /// to go on with [`PolicyChain::shipped_only`].
    pub fn open(shipped: Policy, data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(CHAIN_FILE);
        let stored = read_stored(&path)?;
        let w = walk(&shipped, &stored);
        if let Some((i, e)) = &w.refused {
            tracing::error!(
                "stored policy successor #{} in {} does not verify from the policy before it \
                 ({e}); ignoring it and everything after it. Someone changed this file.",
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
        let entries = w.accepted.into_iter().map(|(s, _)| s).collect();
        Ok(Self::with(path, entries, current))
    }

    /// The shipped policy alone; the stored chain in `data_dir` is replaced
    /// at the next change.
    pub fn shipped_only(shipped: Policy, data_dir: &Path) -> Self {
        Self::with(data_dir.join(CHAIN_FILE), Vec::new(), Arc::new(shipped))
    }

    fn with(path: PathBuf, entries: Vec<SignedPolicy>, current: Arc<Policy>) -> Self {
        PolicyChain {
            path,
            state: RwLock::new(State { entries, current }),
        }
    }

    /// The newest accepted policy: what jobs are checked against.
    pub fn current(&self) -> Arc<Policy> {
        self.read().current.clone()
    }

    /// The serial of [`PolicyChain::current`].
    pub fn serial(&self) -> u64 {
        self.read().current.serial
    }

    /// The accepted successors of the shipped policy, oldest first.
    pub fn entries(&self) -> Vec<SignedPolicy> {
        self.read().entries.clone()
    }

    /// Applies `next` if the current policy accepts it: stores the chain
    /// durably, then makes it current. Blocking (writes a file).
    pub fn accept(&self, next: &SignedPolicy) -> Result<Arc<Policy>, AcceptError> {
        let mut st = self.write();
        let policy = st
            .current
            .accept_successor(next)
            .map_err(AcceptError::Refused)?;
        self.extend(&mut st, vec![(next.clone(), policy)])
            .map_err(AcceptError::Store)?;
        Ok(st.current.clone())
    }

    /// Takes what verifies of `offered`, a chain from the hub: entries not
    /// newer than the current policy are history and skipped, the walk stops
    /// at the first that does not verify. Blocking (writes a file).
    pub fn offer(&self, offered: &[SignedPolicy]) -> Result<Offered, StoreError> {
        let mut st = self.write();
        let w = walk(&st.current, offered);
        let adopted = w.accepted.last().map(|(_, p)| p.serial);
        if adopted.is_some() {
            self.extend(&mut st, w.accepted)?;
        }
        Ok(Offered {
            adopted,
            refused: w.refused,
        })
    }

    /// Appends accepted successors: written durably before they count.
    fn extend(
        &self,
        st: &mut State,
        accepted: Vec<(SignedPolicy, Policy)>,
    ) -> Result<(), StoreError> {
        let mut entries = st.entries.clone();
        let mut newest = None;
        for (signed, policy) in accepted {
            entries.push(signed);
            newest = Some(policy);
        }
        let Some(newest) = newest else {
            return Ok(());
        };
        let mut doc = serde_json::to_vec_pretty(&ChainDoc {
            chain: entries.clone(),
        })
        .expect("policies serialise");
        doc.push(b'\n');
        atomic_write(&self.path, &doc, 0o644).map_err(|source| StoreError::Io {
            path: self.path.clone(),
            source,
        })?;
        st.entries = entries;
        st.current = Arc::new(newest);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The entries stored at `path` (unverified); none when there is no file yet.
pub fn read_stored(path: &Path) -> Result<Vec<SignedPolicy>, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut text = String::new();
    file.take(MAX_CHAIN_BYTES)
        .read_to_string(&mut text)
        .map_err(io)?;
    parse_chain(&text).map_err(|reason| StoreError::Damaged {
        path: path.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use vantage_proto::sign::ApproverKey;

    fn keys() -> Vec<ApproverKey> {
        (1..=5u8)
            .map(|i| ApproverKey::from_seed(&[i; 32]).unwrap())
            .collect()
    }

    fn value(serial: u64, who: &[&ApproverKey]) -> Value {
        json!({"serial": serial, "network": "t", "threshold": 2,
               "approvers": who.iter().enumerate().map(|(i, k)| json!({"name": format!("a{i}"), "key": k.public_key()})).collect::<Vec<_>>(),
               "allowed_probes": ["dns"]})
    }

    fn signed(serial: u64, who: &[&ApproverKey], by: &[&ApproverKey]) -> SignedPolicy {
        let policy = value(serial, who);
        SignedPolicy {
            signatures: by.iter().map(|k| k.sign_policy(&policy).unwrap()).collect(),
            policy,
        }
    }

    fn tamper(dir: &Path, entry: usize) {
        let p = dir.join(CHAIN_FILE);
        let mut doc: ChainDoc =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        doc.chain[entry].policy["threshold"] = json!(1);
        std::fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
    }

    #[test]
    fn accepted_successors_are_stored_and_reverified_at_start() {
        let k = keys();
        let d = tempfile::tempdir().unwrap();
        let shipped = Policy::from_value(&value(1, &[&k[0], &k[1], &k[2]])).unwrap();
        let st = PolicyChain::open(shipped.clone(), d.path()).unwrap();
        let two = signed(2, &[&k[1], &k[2], &k[3]], &[&k[0], &k[1]]);
        assert!(matches!(
            st.accept(&signed(2, &[&k[3]], &[&k[0]])),
            Err(AcceptError::Refused(_))
        ));
        assert_eq!(st.accept(&two).unwrap().serial, 2);
        // Signed by the old approvers only: no longer enough.
        let three_old = signed(3, &[&k[4], &k[0]], &[&k[0], &k[1]]);
        let e = st.accept(&three_old).unwrap_err();
        assert!(matches!(&e, AcceptError::Refused(c) if c.code() == "unknown-approver"));
        assert!(matches!(
            st.accept(&two),
            Err(AcceptError::Refused(c)) if c.code() == "not-newer"
        ));
        st.accept(&signed(3, &[&k[3], &k[4]], &[&k[2], &k[3]]))
            .unwrap();
        let again = PolicyChain::open(shipped.clone(), d.path()).unwrap();
        assert_eq!(again.serial(), 3);
        assert_eq!(again.entries().len(), 2);

        // A tampered entry on disk stops the walk there.
        tamper(d.path(), 0);
        let tampered = PolicyChain::open(shipped, d.path()).unwrap();
        assert_eq!(tampered.serial(), 1);
        assert!(tampered.entries().is_empty());
    }

    #[test]
    fn offered_chains_skip_history_and_stop_at_what_does_not_verify() {
        let k = keys();
        let d = tempfile::tempdir().unwrap();
        let shipped = Policy::from_value(&value(1, &[&k[0], &k[1], &k[2]])).unwrap();
        let chain = PolicyChain::open(shipped.clone(), d.path()).unwrap();
        let two = signed(2, &[&k[2], &k[3], &k[4]], &[&k[0], &k[1]]);
        let three = signed(3, &[&k[3], &k[4]], &[&k[3], &k[4]]);
        let out = chain.offer(std::slice::from_ref(&two)).unwrap();
        assert_eq!((out.adopted, out.refused.is_none()), (Some(2), true));
        // The hub offers the whole chain again: history is skipped, serial 3 taken.
        assert_eq!(
            chain.offer(&[two.clone(), three.clone()]).unwrap().adopted,
            Some(3)
        );
        assert_eq!(chain.offer(&[two, three]).unwrap().adopted, None);
        assert_eq!(
            PolicyChain::open(shipped.clone(), d.path())
                .unwrap()
                .serial(),
            3
        );
        // A fork signed by the retired approvers is refused where it starts.
        let fork = signed(4, &[&k[0], &k[1]], &[&k[0], &k[1]]);
        let out = chain.offer(&[fork]).unwrap();
        let (at, e) = out.refused.unwrap();
        assert_eq!((at, e.code()), (0, "unknown-approver"), "{e}");
        assert_eq!((out.adopted, chain.serial()), (None, 3));

        tamper(d.path(), 1);
        assert_eq!(
            PolicyChain::open(shipped.clone(), d.path())
                .unwrap()
                .serial(),
            2
        );
        std::fs::write(d.path().join(CHAIN_FILE), b"{not json").unwrap();
        let e = PolicyChain::open(shipped.clone(), d.path()).err().unwrap();
        assert!(e.to_string().contains("not a policy chain"), "{e}");
        assert_eq!(PolicyChain::shipped_only(shipped, d.path()).serial(), 1);
    }

    #[test]
    fn forged_and_underapproved_successors_change_nothing() {
        let k = keys();
        let d = tempfile::tempdir().unwrap();
        let shipped = Policy::from_value(&value(1, &[&k[0], &k[1], &k[2]])).unwrap();
        let chain = PolicyChain::open(shipped, d.path()).unwrap();
        let few = signed(2, &[&k[3], &k[4]], &[&k[0]]);
        let outsiders = signed(2, &[&k[3], &k[4]], &[&k[3], &k[4]]);
        let mut altered = signed(2, &[&k[0], &k[1], &k[2]], &[&k[0], &k[1]]);
        altered.policy["approvers"][0]["key"] = json!(k[4].public_key());
        for (bad, code) in [
            (few, "too-few-approvals"),
            (outsiders, "unknown-approver"),
            (altered, "forged-signature"),
        ] {
            let out = chain.offer(std::slice::from_ref(&bad)).unwrap();
            assert_eq!(out.adopted, None);
            assert_eq!(out.refused.map(|(i, e)| (i, e.code())), Some((0, code)));
            let e = chain.accept(&bad).unwrap_err();
            assert!(
                matches!(&e, AcceptError::Refused(e) if e.code() == code),
                "{e}"
            );
            assert_eq!(chain.serial(), 1);
        }
        assert!(!d.path().join(CHAIN_FILE).exists());
    }

    #[test]
    fn duplicate_keys_refuse_a_stored_chain() {
        let d = tempfile::tempdir().unwrap();
        let text = r#"{"chain": [], "chain": []}"#;
        std::fs::write(d.path().join(CHAIN_FILE), text).unwrap();
        assert!(matches!(
            read_stored(&d.path().join(CHAIN_FILE)),
            Err(StoreError::Damaged { .. })
        ));
        assert!(parse_chain(text).is_err());
    }

    #[test]
    fn the_shipped_policy_file_is_read_and_checked() {
        let k = keys();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("policy.json");
        let one = signed(1, &[&k[0], &k[1]], &[]);
        std::fs::write(&p, serde_json::to_vec(&one).unwrap()).unwrap();
        assert_eq!(load_policy(&p).unwrap().serial, 1);
        std::fs::write(&p, b"{}").unwrap();
        assert!(matches!(
            load_policy(&p),
            Err(PolicyFileError::Invalid { .. })
        ));
        let missing = load_policy(&d.path().join("none")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }
}
