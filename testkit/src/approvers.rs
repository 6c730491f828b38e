//! Approver keys and policies: the fixed test keys every crate's tests sign
//! with, and the policies built from them.

use serde_json::{Value, json};
use vantage_proto::policy::{Approver, Limits, Policy, SignedPolicy};
use vantage_proto::probe::ProbeKind;
use vantage_proto::sign::ApproverKey;

/// `n` approver keys from the fixed seeds `[1; 32]`, `[2; 32]`, ...: the same
/// keys in every test, so fixtures signed once stay valid.
pub fn approver_keys(n: u8) -> Vec<ApproverKey> {
    (1..=n)
        .map(|i| ApproverKey::from_seed(&[i; 32]).unwrap())
        .collect()
}

/// The keys as approvers named `a0`, `a1`, ...
pub fn approvers(keys: &[ApproverKey]) -> Vec<Approver> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| Approver {
            name: format!("a{i}"),
            key: k.public_key(),
        })
        .collect()
}

/// Serial 1 of network `t`: `keys` approve, two of them needed, `allowed` probes.
pub fn policy(keys: &[ApproverKey], allowed: Vec<ProbeKind>) -> Policy {
    Policy {
        serial: 1,
        network: "t".into(),
        threshold: 2,
        approvers: approvers(keys),
        allowed_probes: allowed,
        limits: Limits::default(),
    }
}

/// The policy object of network `t` at `serial`: `who` approve, two needed, `dns` only.
pub fn policy_value(serial: u64, who: &[&ApproverKey]) -> Value {
    json!({"serial": serial, "network": "t", "threshold": 2,
           "approvers": who.iter().enumerate().map(|(i, k)| json!({"name": format!("a{i}"), "key": k.public_key()})).collect::<Vec<_>>(),
           "allowed_probes": ["dns"]})
}

/// [`policy_value`] signed by `by`.
pub fn signed_policy(serial: u64, who: &[&ApproverKey], by: &[&ApproverKey]) -> SignedPolicy {
    let policy = policy_value(serial, who);
    SignedPolicy {
        signatures: by.iter().map(|k| k.sign_policy(&policy).unwrap()).collect(),
        policy,
    }
}

/// The policy file a test hub serves (network `test`): `keys` approve, two
/// needed, every probe a test runs allowed, `limits` if given.
pub fn hub_policy(keys: &[ApproverKey], limits: Option<Value>) -> Value {
    let mut policy = json!({"policy": {"serial": 1, "network": "test", "threshold": 2,
        "approvers": keys.iter().enumerate().map(|(i, k)| json!({"name": format!("a{i}"), "key": k.public_key().to_base64()})).collect::<Vec<_>>(),
        "allowed_probes": ["dns", "http", "tls", "tcp", "ping", "traceroute"]},
        "signatures": []});
    if let Some(l) = limits {
        policy["policy"]["limits"] = l;
    }
    policy
}

/// `{"policy": policy, "signatures": [...]}` with one signature of each of `by`.
pub fn sign_policy(policy: &Value, by: &[&ApproverKey]) -> Value {
    let sigs: Vec<Value> = by
        .iter()
        .map(|k| serde_json::to_value(k.sign_policy(policy).unwrap()).unwrap())
        .collect();
    json!({"policy": policy, "signatures": sigs})
}

/// `{"job": job, "signatures": [...]}` with one signature of each of `by`.
pub fn sign_job(job: &Value, by: &[&ApproverKey]) -> Value {
    let sigs: Vec<Value> = by
        .iter()
        .map(|k| serde_json::to_value(k.sign_job(job).unwrap()).unwrap())
        .collect();
    json!({"job": job, "signatures": sigs})
}
