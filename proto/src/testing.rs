//! Fixtures the protocol's unit tests share.

use crate::policy::{Approver, Limits, Policy};
use crate::probe::ProbeKind;
use crate::sign::ApproverKey;

/// Approver key `i` (seed of 32 bytes `i`).
pub fn key(i: u8) -> ApproverKey {
    ApproverKey::from_seed(&[i; 32]).unwrap()
}

/// Approvers 1-3 (two of three needed), every probe kind; 4 is no approver.
pub fn policy() -> Policy {
    Policy {
        serial: 1,
        network: "t".into(),
        threshold: 2,
        approvers: (1..=3)
            .map(|i| Approver {
                name: format!("a{i}"),
                key: key(i).public_key(),
            })
            .collect(),
        allowed_probes: ProbeKind::ALL.to_vec(),
        limits: Limits::default(),
    }
}
