//! Mandates revoked by an approver, as this node knows them.
//!
//! The hub serves the revocations it was sent (`GET /v1/mandates/revocations`,
//! fetched with the policy chain, see `policy_update`); the node verifies each
//! one itself against the policy it holds and keeps those that verify in
//! `mandate-revocations.json` in the data directory (written atomically).
//! A revocation the node cannot verify (forged, or signed by an approver no
//! longer in the policy) is logged and ignored. Revocations only take power
//! away, so one kept is never dropped again: not when its signer is later
//! rotated out, not at a restart (the stored file is read back as it is).

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use vantage_proto::job::Refusal;
use vantage_proto::mandate::{
    MAX_REVOCATION_LIST_BYTES, MAX_REVOCATIONS, RevocationList, SignedRevocation,
};
use vantage_proto::policy::Policy;

use crate::durable;

/// The file in the data directory.
pub const FILE: &str = "mandate-revocations.json";

#[derive(Default)]
struct State {
    list: Vec<SignedRevocation>,
    ids: HashSet<String>,
    /// Signatures of offered revocations that did not verify: reported once,
    /// not at every refresh.
    refused: HashSet<String>,
}

impl State {
    fn add(&mut self, id: String, signed: SignedRevocation) {
        self.ids.insert(id);
        self.list.push(signed);
    }
}

/// What an offered list changed.
#[derive(Debug, Default)]
pub struct Offered {
    /// Mandates newly revoked.
    pub added: Vec<String>,
    /// Offered revocations that do not verify, and why (each only the first
    /// time it is offered).
    pub refused: Vec<Refusal>,
}

/// The revocations this node verified, kept across restarts.
pub struct MandateRevocations {
    path: PathBuf,
    state: RwLock<State>,
}

impl MandateRevocations {
    /// The revocations stored in `data_dir`. A file that cannot be read is
    /// logged and the hub's list is fetched again at the next refresh.
    pub fn open(data_dir: &Path) -> Self {
        let path = data_dir.join(FILE);
        let mut state = State::default();
        match read(&path) {
            Ok(list) => {
                for signed in list.revocations {
                    if let Ok(r) = serde_json::from_value::<vantage_proto::mandate::Revocation>(
                        signed.revocation.clone(),
                    ) {
                        state.add(r.mandate, signed);
                    }
                }
            }
            Err(e) => tracing::error!(
                "cannot read the mandate revocations {}: {e}; fetching them again from the hub",
                path.display()
            ),
        }
        Self {
            path,
            state: RwLock::new(state),
        }
    }

    /// Whether an approver revoked the mandate `id`.
    pub fn is_revoked(&self, id: &str) -> bool {
        self.read().ids.contains(id)
    }

    /// Takes the revocations of `offered` that one of `policy`'s approvers
    /// signed. They count at once; the error is a failure to store them
    /// (they are stored with the next one that arrives).
    pub fn offer(&self, policy: &Policy, offered: RevocationList) -> io::Result<Offered> {
        let mut out = Offered::default();
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        for signed in offered.revocations {
            match signed.verify(policy) {
                Ok(r) if st.ids.contains(&r.mandate) => {}
                Ok(_) if st.list.len() >= MAX_REVOCATIONS => {
                    tracing::error!(
                        "this node keeps at most {MAX_REVOCATIONS} mandate revocations; ignoring the rest"
                    );
                    break;
                }
                Ok(r) => {
                    out.added.push(r.mandate.clone());
                    st.add(r.mandate, signed);
                }
                Err(e) => {
                    if st.refused.len() >= MAX_REVOCATIONS {
                        st.refused.clear();
                    }
                    if st.refused.insert(signed.signature.sig.clone()) {
                        out.refused.push(e);
                    }
                }
            }
        }
        if !out.added.is_empty() {
            let doc = RevocationList {
                revocations: st.list.clone(),
            };
            durable::write(
                &self.path,
                &serde_json::to_vec_pretty(&doc).expect("revocations serialise"),
            )?;
        }
        Ok(out)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn read(path: &Path) -> io::Result<RevocationList> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RevocationList::default()),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    file.take(MAX_REVOCATION_LIST_BYTES)
        .read_to_end(&mut text)?;
    RevocationList::from_json(&text).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_proto::probe::ProbeKind;
    use vantage_proto::sign::ApproverKey;
    use vantage_testkit::approvers::{approver_keys, policy};

    fn revocation(id: &str, by: &ApproverKey) -> SignedRevocation {
        serde_json::from_value(vantage_testkit::mandates::revocation(id, by)).unwrap()
    }

    #[test]
    fn verified_revocations_are_kept_across_restarts_and_others_refused() {
        let d = tempfile::tempdir().unwrap();
        let k = approver_keys(4);
        let p = policy(&k[..3], ProbeKind::ALL.to_vec());
        let store = MandateRevocations::open(d.path());
        let mut forged = revocation("c", &k[1]);
        forged.revocation["mandate"] = serde_json::json!("d");
        let offered = RevocationList {
            revocations: vec![
                revocation("a", &k[0]),
                revocation("b", &k[3]),
                forged,
                revocation("a", &k[2]),
            ],
        };
        let out = store.offer(&p, offered.clone()).unwrap();
        assert_eq!(out.added, ["a"]);
        let codes: Vec<_> = out.refused.iter().map(Refusal::code).collect();
        assert_eq!(
            codes,
            ["mandate-unknown-approver", "mandate-forged-signature"]
        );
        // Offered again, the refusals are not reported again.
        assert!(store.offer(&p, offered).unwrap().refused.is_empty());
        assert!(store.is_revoked("a") && !store.is_revoked("b") && !store.is_revoked("d"));

        let again = MandateRevocations::open(d.path());
        assert!(again.is_revoked("a"));
        // Offered again: nothing new, nothing written.
        let out = again
            .offer(
                &p,
                RevocationList {
                    revocations: vec![revocation("a", &k[1])],
                },
            )
            .unwrap();
        assert!(out.added.is_empty());

        std::fs::write(d.path().join(FILE), b"{\"revocations\": 5}").unwrap();
        assert!(!MandateRevocations::open(d.path()).is_revoked("a"));
    }
}
