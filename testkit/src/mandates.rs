//! Mandates as tests make them: the operator key that orders under them,
//! mandates signed by approvers, jobs ordered under a mandate, revocations.

use crate::now;
use serde_json::{Value, json};
use vantage_proto::job::{Job, SignedJob};
use vantage_proto::mandate::{Revocation, SignedMandate, SignedRevocation};
use vantage_proto::sign::ApproverKey;

/// The name of the operator every test mandate names.
pub const OPERATOR: &str = "olga";

/// The operator's key (seed `[9; 32]`: no approver of the test policies).
pub fn operator_key() -> ApproverKey {
    ApproverKey::from_seed(&[9; 32]).unwrap()
}

/// A mandate `id` for [`OPERATOR`]: `probes` on nodes in `select`, at most
/// 5 nodes and 15 minutes per job, `[per_operator, per_target, per_node]`
/// jobs per hour; valid from a minute ago for an hour.
pub fn mandate(id: &str, probes: Value, select: Value, rates: [u32; 3]) -> Value {
    let now = now();
    json!({"v": 1, "id": id, "proposer": "a0",
           "operators": [{"name": OPERATOR, "key": operator_key().public_key()}],
           "probes": probes, "select": select, "max_nodes": 5, "max_job_validity_secs": 900,
           "rates": {"per_operator": rates[0], "per_target": rates[1], "per_node": rates[2]},
           "not_before": now - 60, "expires": now + 3600})
}

/// `mandate` with one signature of each of `by`.
pub fn sign_mandate(mandate: &Value, by: &[&ApproverKey]) -> SignedMandate {
    let mut m = SignedMandate {
        mandate: mandate.clone(),
        signatures: vec![],
    };
    for k in by {
        m.add_signature(k).unwrap();
    }
    m
}

/// `job` ordered under `mandate` by [`OPERATOR`]: it names the mandate and
/// the operator as proposer, and asks for one node unless it sets `limit`.
pub fn order(job: &Value, mandate: &SignedMandate) -> Value {
    let mut job = job.clone();
    job["mandate"] = mandate.mandate["id"].clone();
    job["proposer"] = json!(OPERATOR);
    if job.get("limit").is_none_or(Value::is_null) {
        job["limit"] = json!(1);
    }
    let job = Job::from_value(&job).unwrap();
    let signed = SignedJob::sign_under_mandate(&job, mandate.clone(), &operator_key()).unwrap();
    serde_json::to_value(signed).unwrap()
}

/// A revocation of mandate `id`, signed by `by`.
pub fn revocation(id: &str, by: &ApproverKey) -> Value {
    let r = Revocation {
        v: 1,
        mandate: id.into(),
        at: now(),
        reason: "test".into(),
    };
    serde_json::to_value(SignedRevocation::sign(&r, by).unwrap()).unwrap()
}
