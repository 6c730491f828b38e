//! What the fuzz targets share.

use vantage_proto::policy::{Approver, Limits, Policy};
use vantage_proto::probe::ProbeKind;
use vantage_proto::sign::ApproverKey;

/// A policy of one approver (a fixed key) that allows every probe kind: the
/// fuzzed input is checked against it, so signatures made with any other key
/// are refused and the verification path runs to its end.
pub fn policy() -> Policy {
    let key = ApproverKey::from_seed(&[7; 32]).expect("fixed seed");
    Policy {
        serial: 1,
        network: "fuzz".into(),
        threshold: 1,
        approvers: vec![Approver { name: "a".into(), key: key.public_key() }],
        allowed_probes: ProbeKind::ALL.to_vec(),
        limits: Limits::default(),
    }
}
