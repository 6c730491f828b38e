//! The approval policy: who may approve jobs, how many must, and the network's limits.
//!
//! The policy is shipped in the node's image and read by the hub. A newer
//! policy replaces it only when a quorum of the *current* policy's approvers
//! signed it, so neither the hub nor a stolen operator credential can change
//! who approves.

use crate::ProtoError;
use crate::canonical;
use crate::probe::ProbeKind;
use crate::sign::{PublicKey, Signature};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use thiserror::Error;

/// One approver of the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    /// A human name, for logs and audit.
    pub name: String,
    /// The Ed25519 public key.
    pub key: PublicKey,
}

/// Per-job limits every node and the hub enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most nodes one job may ask for with `limit` (and most the hub sends it to).
    pub max_nodes: u32,
    /// Longest spread window.
    pub max_spread_secs: u64,
    /// Longest time between `not_before` and `expires`.
    pub max_validity_secs: u64,
    /// Shortest repeat interval.
    pub min_repeat_secs: u64,
    /// Most jobs the hub accepts against one target host per hour.
    pub max_jobs_per_target_per_hour: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_nodes: 10_000,
            max_spread_secs: 3600,
            max_validity_secs: 7 * 86_400,
            min_repeat_secs: 60,
            max_jobs_per_target_per_hour: 60,
        }
    }
}

/// The approval policy itself (the signed part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Increases with every replacement.
    pub serial: u64,
    /// The network's name, for messages.
    pub network: String,
    /// Approvals a job (or a successor policy) needs.
    pub threshold: u32,
    /// Who may approve.
    pub approvers: Vec<Approver>,
    /// Probe kinds the network runs at all.
    pub allowed_probes: Vec<ProbeKind>,
    /// Per-job limits.
    #[serde(default)]
    pub limits: Limits,
}

/// A policy with the signatures that authorise it (none for the first, shipped one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedPolicy {
    /// The policy object exactly as signed.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub policy: Value,
    /// Signatures over [`canonical::policy_signing_bytes`] of `policy`.
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

/// How a set of signatures fared against a policy.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApprovalError {
    /// A signature claims a known approver's key but does not verify.
    #[error(
        "forged signature: the signature for key {key_id} does not verify (altered job or forged approval)"
    )]
    Forged {
        /// The key id the signature claimed.
        key_id: String,
    },
    /// Valid approvals fall short and some signatures came from keys the policy does not know.
    #[error(
        "unknown approver key(s) {key_ids}: only {have} of the {need} approvals needed are from this network's approvers"
    )]
    UnknownApprover {
        /// Comma-separated unknown key ids.
        key_ids: String,
        /// Valid approvals from known keys.
        have: u32,
        /// The threshold.
        need: u32,
    },
    /// Too few distinct approvers signed.
    #[error("too few approvals: {have} of the {need} needed")]
    TooFew {
        /// Valid approvals.
        have: u32,
        /// The threshold.
        need: u32,
    },
}

impl Policy {
    /// Validates the policy's own consistency.
    pub fn validate(&self) -> Result<(), ProtoError> {
        if self.approvers.is_empty() {
            return Err(ProtoError::invalid(
                "policy.approvers",
                "needs at least one approver",
            ));
        }
        if self.threshold == 0 || self.threshold as usize > self.approvers.len() {
            return Err(ProtoError::invalid(
                "policy.threshold",
                format!(
                    "must be between 1 and the number of approvers ({})",
                    self.approvers.len()
                ),
            ));
        }
        let ids: BTreeSet<String> = self.approvers.iter().map(|a| a.key.key_id()).collect();
        if ids.len() != self.approvers.len() {
            return Err(ProtoError::invalid(
                "policy.approvers",
                "the same key is listed twice",
            ));
        }
        Ok(())
    }

    /// Parses and validates a policy object.
    pub fn from_value(value: &Value) -> Result<Self, ProtoError> {
        let p: Policy = serde_json::from_value(value.clone())
            .map_err(|e| ProtoError::invalid("policy", e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// The approver with this key id.
    pub fn approver(&self, key_id: &str) -> Option<&Approver> {
        self.approvers.iter().find(|a| a.key.key_id() == key_id)
    }

    /// Counts distinct valid approvals of `message` and decides whether they meet the threshold.
    /// Returns the names of the approvers whose signatures verified.
    pub fn check_approvals(
        &self,
        message: &[u8],
        signatures: &[Signature],
    ) -> Result<Vec<String>, ApprovalError> {
        let mut good: Vec<String> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut unknown = Vec::new();
        for s in signatures {
            match self.approver(&s.key_id) {
                None => unknown.push(s.key_id.clone()),
                Some(a) => {
                    let valid = s.bytes().is_ok_and(|b| a.key.verify(message, &b));
                    if !valid {
                        return Err(ApprovalError::Forged {
                            key_id: s.key_id.clone(),
                        });
                    }
                    if seen.insert(s.key_id.clone()) {
                        good.push(a.name.clone());
                    }
                }
            }
        }
        let have = good.len() as u32;
        if have >= self.threshold {
            Ok(good)
        } else if !unknown.is_empty() {
            Err(ApprovalError::UnknownApprover {
                key_ids: unknown.join(","),
                have,
                need: self.threshold,
            })
        } else {
            Err(ApprovalError::TooFew {
                have,
                need: self.threshold,
            })
        }
    }

    /// Accepts `next` as the successor of this policy if its serial is higher and a quorum
    /// of this policy's approvers signed it.
    pub fn accept_successor(&self, next: &SignedPolicy) -> Result<Policy, PolicyChangeError> {
        let policy = Policy::from_value(&next.policy).map_err(PolicyChangeError::Invalid)?;
        if policy.serial <= self.serial {
            return Err(PolicyChangeError::NotNewer {
                current: self.serial,
                offered: policy.serial,
            });
        }
        let bytes =
            canonical::policy_signing_bytes(&next.policy).map_err(PolicyChangeError::Invalid)?;
        self.check_approvals(&bytes, &next.signatures)
            .map_err(PolicyChangeError::Approval)?;
        Ok(policy)
    }
}

impl SignedPolicy {
    /// Parses the policy file's JSON text.
    /// Text with a duplicate object key anywhere is refused.
    pub fn from_json(text: &str) -> Result<Self, ProtoError> {
        crate::canonical::check_no_duplicate_keys(text.as_bytes())?;
        Ok(serde_json::from_str(text)?)
    }

    /// The policy itself, validated (its signatures are not checked here).
    pub fn parse(&self) -> Result<Policy, ProtoError> {
        Policy::from_value(&self.policy)
    }
}

/// Why a successor policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyChangeError {
    /// The new policy is malformed.
    #[error("the new policy is invalid: {0}")]
    Invalid(ProtoError),
    /// The serial does not increase.
    #[error("the new policy's serial {offered} is not newer than the current {current}")]
    NotNewer {
        /// Current serial.
        current: u64,
        /// Offered serial.
        offered: u64,
    },
    /// The current approvers did not authorise it.
    #[error("the new policy is not approved by the current approvers: {0}")]
    Approval(ApprovalError),
}

impl PolicyChangeError {
    /// A stable short code (`invalid-policy`, `not-newer`, `forged-signature`,
    /// `unknown-approver`, `too-few-approvals`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid-policy",
            Self::NotNewer { .. } => "not-newer",
            Self::Approval(ApprovalError::Forged { .. }) => "forged-signature",
            Self::Approval(ApprovalError::UnknownApprover { .. }) => "unknown-approver",
            Self::Approval(ApprovalError::TooFew { .. }) => "too-few-approvals",
        }
    }
}

/// The successors of a shipped policy, oldest first: the body of the hub's
/// `GET /v1/policy` and the chain file hubs and nodes keep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChainDoc {
    /// Successors of the shipped policy, in the order they were accepted.
    pub chain: Vec<SignedPolicy>,
}

/// What came of offering successors to a policy.
#[derive(Debug)]
pub struct Walk {
    /// Successors accepted, in order, with their parsed policies.
    pub accepted: Vec<(SignedPolicy, Policy)>,
    /// The first successor refused (its position in the offer) and why; the rest were not tried.
    pub refused: Option<(usize, PolicyChangeError)>,
}

/// Applies `offered` on top of `base` in order. Entries with a serial not
/// above the policy reached so far are history and skipped; every other one
/// must be accepted by the policy before it, and the walk stops at the first
/// that is not, so a chain that branches off an older policy is refused.
pub fn walk(base: &Policy, offered: &[SignedPolicy]) -> Walk {
    let mut current = base.clone();
    let mut accepted = Vec::new();
    for (i, next) in offered.iter().enumerate() {
        if next.parse().is_ok_and(|p| p.serial <= current.serial) {
            continue;
        }
        match current.accept_successor(next) {
            Ok(p) => {
                current = p.clone();
                accepted.push((next.clone(), p));
            }
            Err(e) => {
                return Walk {
                    accepted,
                    refused: Some((i, e)),
                };
            }
        }
    }
    Walk {
        accepted,
        refused: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::ApproverKey;
    use serde_json::json;

    fn keys(n: u8) -> Vec<ApproverKey> {
        (1..=n)
            .map(|i| ApproverKey::from_seed(&[i; 32]).unwrap())
            .collect()
    }

    fn policy_value(serial: u64, keys: &[ApproverKey], threshold: u32) -> Value {
        json!({
            "serial": serial, "network": "test", "threshold": threshold,
            "approvers": keys.iter().enumerate().map(|(i, k)| json!({"name": format!("a{i}"), "key": k.public_key()})).collect::<Vec<_>>(),
            "allowed_probes": ["dns", "http"],
        })
    }

    #[test]
    fn rotation_needs_a_quorum_of_the_current_approvers() {
        let k = keys(4);
        let current = Policy::from_value(&policy_value(1, &k[..3], 2)).unwrap();
        let next_value = policy_value(2, &k[1..], 2);
        let bytes = canonical::policy_signing_bytes(&next_value).unwrap();
        let one = SignedPolicy {
            policy: next_value.clone(),
            signatures: vec![k[0].sign_bytes(&bytes)],
        };
        assert!(matches!(
            current.accept_successor(&one),
            Err(PolicyChangeError::Approval(ApprovalError::TooFew {
                have: 1,
                need: 2
            }))
        ));
        // The new approver (k[3]) does not count towards the current quorum.
        let with_new = SignedPolicy {
            policy: next_value.clone(),
            signatures: vec![k[0].sign_bytes(&bytes), k[3].sign_bytes(&bytes)],
        };
        assert!(matches!(
            current.accept_successor(&with_new),
            Err(PolicyChangeError::Approval(
                ApprovalError::UnknownApprover { have: 1, .. }
            ))
        ));
        let two = SignedPolicy {
            policy: next_value,
            signatures: vec![k[0].sign_bytes(&bytes), k[2].sign_bytes(&bytes)],
        };
        let accepted = current.accept_successor(&two).unwrap();
        assert_eq!(accepted.serial, 2);
        // Replaying an older or equal policy is refused.
        assert!(matches!(
            accepted.accept_successor(&two),
            Err(PolicyChangeError::NotNewer { .. })
        ));
    }

    #[test]
    fn duplicate_signatures_count_once_and_forgeries_are_named() {
        let k = keys(3);
        let p = Policy::from_value(&policy_value(1, &k, 2)).unwrap();
        let msg = b"m";
        let s = k[0].sign_bytes(msg);
        assert!(matches!(
            p.check_approvals(msg, &[s.clone(), s.clone()]),
            Err(ApprovalError::TooFew { have: 1, need: 2 })
        ));
        let mut forged = k[1].sign_bytes(b"other");
        forged.key_id = k[1].public_key().key_id();
        assert!(matches!(
            p.check_approvals(msg, &[s, forged]),
            Err(ApprovalError::Forged { .. })
        ));
    }

    #[test]
    fn invalid_policies_are_refused() {
        let k = keys(2);
        assert!(Policy::from_value(&policy_value(1, &k, 3)).is_err());
        assert!(Policy::from_value(&policy_value(1, &k, 0)).is_err());
        let dup = [
            ApproverKey::from_seed(&[1; 32]).unwrap(),
            ApproverKey::from_seed(&[1; 32]).unwrap(),
        ];
        assert!(Policy::from_value(&policy_value(1, &dup, 1)).is_err());
    }
}
