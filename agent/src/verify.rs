//! Verification of every order before anything runs: the network's approval
//! policy (signatures or a mandate, expiry, allowlist, limits), then this
//! node's checks (revoked mandates, replay, targeting, the mandate's nodes,
//! the owner's allowlist) and last the mandate's per-node rate, which counts
//! the job only once everything else let it through.

use vantage_proto::channel::NodeAttrs;
use vantage_proto::job::{Job, Refusal, SignedJob};
use vantage_proto::node::Capabilities;
use vantage_proto::owner::OwnerDigest;
use vantage_proto::policy::Policy;

use crate::mandate_rate::NodeRate;
use crate::mandate_revocations::MandateRevocations;
use crate::replay::ReplaySet;

/// What an order is checked against.
pub struct Verifier<'a> {
    /// The approval policy shipped with the image.
    pub policy: &'a Policy,
    /// This node's attributes (for the job's selection).
    pub attrs: &'a NodeAttrs,
    /// What this node measured it can do (for `cap=` in selections).
    pub caps: Option<&'a Capabilities>,
    /// The owner's policy as the node reports it (the probe kinds allowed).
    pub owner: &'a OwnerDigest,
    /// Jobs already accepted.
    pub replay: &'a ReplaySet,
    /// Mandates an approver revoked.
    pub revoked: &'a MandateRevocations,
    /// Jobs run under each mandate within the hour (counted by `check`).
    pub mandate_rate: &'a NodeRate,
}

impl Verifier<'_> {
    /// Runs every check at `now` (Unix seconds) and returns the job if it may run.
    pub fn check(&self, signed: &SignedJob, now: u64) -> Result<Job, Refusal> {
        let (job, mandate) = signed.verify_with_mandate(self.policy, now)?;
        if let Some(m) = &mandate
            && self.revoked.is_revoked(&m.id)
        {
            return Err(Refusal::MandateRevoked(m.id.clone()));
        }
        if self.replay.contains(&job.id) {
            return Err(Refusal::Replayed(job.id));
        }
        if !job.select.matches(self.attrs, self.caps) {
            return Err(Refusal::NotTargeted(format!(
                "node {} is not selected",
                self.attrs.node_id
            )));
        }
        if let Some(m) = &mandate {
            m.check_node(self.attrs, self.caps)?;
        }
        // The predicate the hub skips nodes by when it picks `limit` of them.
        self.owner.check_kind(job.probe.kind())?;
        if let Some(m) = &mandate {
            self.mandate_rate.take(m, now)?;
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Record;
    use serde_json::{Value, json};
    use vantage_proto::probe::ProbeKind;
    use vantage_proto::sign::ApproverKey;
    use vantage_testkit::approvers::{approver_keys, policy};

    fn attrs() -> NodeAttrs {
        NodeAttrs {
            node_id: "n-0000000001".into(),
            country: "DE".into(),
            continent: Some("EU".into()),
            asn: None,
            tags: vec![],
        }
    }

    const NOW: u64 = 1_764_013_300;

    fn job(id: &str, select: Value, cmd: &str) -> Value {
        let probe = match cmd {
            "ping" => json!({"cmd": "ping", "args": {"host": "192.0.2.1"}}),
            _ => json!({"cmd": "dns", "args": {"name": "example.com"}}),
        };
        json!({"v": 1, "id": id, "probe": probe, "select": select, "limit": null,
               "not_before": NOW - 100, "expires": NOW + 3000, "spread_secs": 0,
               "repeat_secs": null, "proposer": "alice"})
    }

    fn signed(job: Value, by: &[&ApproverKey]) -> SignedJob {
        let signatures = by.iter().map(|k| k.sign_job(&job).unwrap()).collect();
        SignedJob {
            job,
            signatures,
            mandated: None,
        }
    }

    /// A node's stores in a temporary data directory.
    struct Stores {
        _dir: tempfile::TempDir,
        replay: ReplaySet,
        revoked: MandateRevocations,
        rate: NodeRate,
    }

    fn stores() -> Stores {
        let d = tempfile::tempdir().unwrap();
        Stores {
            replay: ReplaySet::open(&d.path().join("replay")).unwrap(),
            revoked: MandateRevocations::open(d.path()),
            rate: NodeRate::open(d.path()),
            _dir: d,
        }
    }

    fn check(s: &SignedJob, allowed: &[&str], st: &Stores) -> Result<Job, Refusal> {
        let k = approver_keys(4);
        let p = policy(&k[..3], ProbeKind::ALL.to_vec());
        let a = attrs();
        let owner = OwnerDigest {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            ..OwnerDigest::default()
        };
        Verifier {
            policy: &p,
            attrs: &a,
            caps: None,
            owner: &owner,
            replay: &st.replay,
            revoked: &st.revoked,
            mandate_rate: &st.rate,
        }
        .check(s, NOW)
    }

    /// Operator olga may ping on nodes in `select`, once per node and hour.
    fn mandated(id: &str, select: Value) -> SignedJob {
        use vantage_testkit::mandates::{mandate, order, sign_mandate};
        let k = approver_keys(2);
        let mut m = mandate("m1", json!({"ping": {}}), select, [9, 9, 1]);
        m["not_before"] = json!(NOW - 100);
        m["expires"] = json!(NOW + 3600);
        let mut j = job(id, json!("everyone"), "ping");
        j["expires"] = json!(NOW + 60);
        serde_json::from_value(order(&j, &sign_mandate(&m, &[&k[0], &k[1]]))).unwrap()
    }

    #[test]
    fn mandated_jobs_meet_the_nodes_own_checks() {
        let st = stores();
        let all = ["dns", "ping"];
        let code = |s: &SignedJob, allowed: &[&str]| check(s, allowed, &st).unwrap_err().code();
        assert_eq!(
            code(&mandated("fr", json!({"country": "FR"})), &all),
            "mandate-selection"
        );
        // The owner's allowlist still wins, and a refused job is not counted.
        let de = json!({"country": "DE"});
        assert_eq!(
            code(&mandated("a", de.clone()), &["dns"]),
            "kind-not-allowed"
        );
        assert_eq!(
            check(&mandated("a", de.clone()), &all, &st).unwrap().id,
            "a"
        );
        assert_eq!(code(&mandated("b", de.clone()), &all), "mandate-rate-node");

        let revocation = vantage_testkit::mandates::revocation("m1", &approver_keys(1)[0]);
        let list = vantage_proto::mandate::RevocationList {
            revocations: vec![serde_json::from_value(revocation).unwrap()],
        };
        let p = policy(&approver_keys(3), ProbeKind::ALL.to_vec());
        st.revoked.offer(&p, list).unwrap();
        assert_eq!(code(&mandated("c", de), &all), "mandate-revoked");
    }

    #[test]
    fn the_node_judges_cap_terms_by_its_own_measurement() {
        let st = stores();
        let k = approver_keys(4);
        let p = policy(&k[..3], ProbeKind::ALL.to_vec());
        let a = attrs();
        let owner = OwnerDigest {
            allowed: vec!["dns".into()],
            ..OwnerDigest::default()
        };
        // (ipv4, ipv6) as measured, or not measured yet.
        for (i, (measured, want)) in [
            (None, Err("not-targeted")),
            (Some((true, false)), Err("not-targeted")),
            (Some((true, true)), Ok(())),
        ]
        .into_iter()
        .enumerate()
        {
            let caps = measured.map(|(ipv4, ipv6)| Capabilities { ipv4, ipv6 });
            let id = format!("c{i}");
            let s = signed(job(&id, json!({"cap": "ipv6"}), "dns"), &[&k[0], &k[1]]);
            let got = Verifier {
                policy: &p,
                attrs: &a,
                caps: caps.as_ref(),
                owner: &owner,
                replay: &st.replay,
                revoked: &st.revoked,
                mandate_rate: &st.rate,
            }
            .check(&s, NOW);
            assert_eq!(got.map(|_| ()).map_err(|r| r.code()), want, "{caps:?}");
        }
    }

    #[test]
    fn refusals_have_codes() {
        let replay = stores();
        let k = approver_keys(4);
        let all = ["dns", "ping"];
        let good = signed(job("j1", json!({"country": "DE"}), "dns"), &[&k[0], &k[1]]);
        assert_eq!(check(&good, &all, &replay).unwrap().id, "j1");

        let code = |s: &SignedJob, allowed: &[&str]| check(s, allowed, &replay).unwrap_err().code();
        let mut forged = good.clone();
        forged.job["id"] = json!("j1-changed");
        assert_eq!(code(&forged, &all), "forged-signature");
        let few = signed(job("j2", json!("everyone"), "dns"), &[&k[0]]);
        assert_eq!(code(&few, &all), "too-few-approvals");
        let unknown = signed(job("j3", json!("everyone"), "dns"), &[&k[0], &k[3]]);
        assert_eq!(code(&unknown, &all), "unknown-approver");
        let mut old = job("j4", json!("everyone"), "dns");
        old["expires"] = json!(NOW - 1);
        assert_eq!(code(&signed(old, &[&k[0], &k[1]]), &all), "expired");
        let elsewhere = signed(job("j5", json!({"country": "FR"}), "dns"), &[&k[0], &k[1]]);
        assert_eq!(code(&elsewhere, &all), "not-targeted");
        let ping = signed(job("j6", json!("everyone"), "ping"), &[&k[0], &k[1]]);
        assert_eq!(code(&ping, &["dns"]), "kind-not-allowed");
        replay
            .replay
            .insert(
                "j1",
                &Record {
                    expires: NOW + 3000,
                    signed: json!({}),
                },
            )
            .unwrap();
        assert_eq!(code(&good, &all), "replayed");
    }
}
