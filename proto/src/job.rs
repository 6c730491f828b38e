//! Jobs, signed jobs, and the checks every hub and node make before accepting one.

use crate::ProtoError;
use crate::canonical;
use crate::mandate::{Bound, Mandate, RateScope, SignedMandate};
use crate::policy::{ApprovalError, Policy};
use crate::probe::{Probe, ProbeKind};
use crate::select::Selection;
use crate::sign::{ApproverKey, Signature};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// The job format version this crate speaks.
pub const JOB_VERSION: u32 = 1;

/// A job: one measurement, for a selection of nodes, within a time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// Format version, always [`JOB_VERSION`].
    pub v: u32,
    /// Unique id, `[A-Za-z0-9._-]{1,64}`.
    pub id: String,
    /// The measurement.
    pub probe: Probe,
    /// Which nodes run it.
    pub select: Selection,
    /// If set, the hub sends the job to at most this many matching online nodes.
    pub limit: Option<u32>,
    /// Unix seconds before which nodes do not start it.
    pub not_before: u64,
    /// Unix seconds from which nodes no longer run it.
    pub expires: u64,
    /// Nodes start after a random delay in `[0, spread_secs)`.
    pub spread_secs: u64,
    /// If set, nodes repeat the job every `repeat_secs` until it expires.
    pub repeat_secs: Option<u64>,
    /// Who proposed it (under a mandate: the ordering operator's name).
    pub proposer: String,
    /// The id of the mandate it is ordered under, if not approved by a quorum itself.
    pub mandate: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobWire {
    v: u32,
    id: String,
    probe: Value,
    select: Selection,
    #[serde(default)]
    limit: Option<u32>,
    not_before: u64,
    expires: u64,
    #[serde(default)]
    spread_secs: u64,
    #[serde(default)]
    repeat_secs: Option<u64>,
    proposer: String,
    #[serde(default)]
    mandate: Option<String>,
}

impl Job {
    /// Parses and validates a job object.
    pub fn from_value(value: &Value) -> Result<Self, ProtoError> {
        let w: JobWire = serde_json::from_value(value.clone())
            .map_err(|e| ProtoError::invalid("job", e.to_string()))?;
        if w.v != JOB_VERSION {
            return Err(ProtoError::invalid(
                "job.v",
                format!(
                    "version {} is not supported (this node speaks {JOB_VERSION})",
                    w.v
                ),
            ));
        }
        validate_job_id(&w.id)?;
        if w.proposer.is_empty()
            || w.proposer.len() > 64
            || w.proposer.chars().any(char::is_control)
        {
            return Err(ProtoError::invalid(
                "job.proposer",
                "1-64 printable characters",
            ));
        }
        if w.not_before > w.expires {
            return Err(ProtoError::invalid("job.expires", "is before not_before"));
        }
        if w.limit == Some(0) {
            return Err(ProtoError::invalid(
                "job.limit",
                "0 nodes would run nothing",
            ));
        }
        if w.repeat_secs == Some(0) {
            return Err(ProtoError::invalid("job.repeat_secs", "must be positive"));
        }
        w.select.validate()?;
        Ok(Job {
            v: w.v,
            id: w.id,
            probe: Probe::from_value(&w.probe)?,
            select: w.select,
            limit: w.limit,
            not_before: w.not_before,
            expires: w.expires,
            spread_secs: w.spread_secs,
            repeat_secs: w.repeat_secs,
            proposer: w.proposer,
            mandate: w.mandate,
        })
    }

    /// The job as the JSON object approvers sign.
    pub fn to_value(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("a job always serialises");
        if let Value::Object(m) = &mut v {
            // Absent optional fields are omitted rather than null, to keep the signed form small.
            m.retain(|_, x| !x.is_null());
        }
        v
    }

    /// The job in plain words, for approvers.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "job {} proposed by {}: {} on {}",
            self.id,
            self.proposer,
            self.probe.describe(),
            match &self.select {
                Selection::Everyone => "every node".to_string(),
                other => format!("nodes where {other}"),
            }
        );
        if let Some(n) = self.limit {
            s += &format!(" (at most {n} nodes)");
        }
        s += &format!(
            ", valid {} to {} (Unix time, {} s)",
            self.not_before,
            self.expires,
            self.expires - self.not_before
        );
        if self.spread_secs > 0 {
            s += &format!(", start spread over {} s", self.spread_secs);
        }
        if let Some(r) = self.repeat_secs {
            s += &format!(", repeated every {r} s");
        }
        if let Some(m) = &self.mandate {
            s += &format!(", ordered under mandate {m}");
        }
        s
    }

    /// Checks the job against a policy's allowlist and limits (not its signatures).
    pub fn check_limits(&self, policy: &Policy) -> Result<(), Refusal> {
        let kind = self.probe.kind();
        if !policy.allowed_probes.contains(&kind) {
            return Err(Refusal::ProbeNotAllowed(kind));
        }
        let l = &policy.limits;
        let over = |what: &str, have: u64, max: u64| {
            Refusal::OverLimit(format!(
                "{what} {have} exceeds the network's limit of {max}"
            ))
        };
        if self.expires - self.not_before > l.max_validity_secs {
            return Err(over(
                "validity (s)",
                self.expires - self.not_before,
                l.max_validity_secs,
            ));
        }
        if self.spread_secs > l.max_spread_secs {
            return Err(over(
                "spread window (s)",
                self.spread_secs,
                l.max_spread_secs,
            ));
        }
        if let Some(n) = self.limit.filter(|n| *n > l.max_nodes) {
            return Err(over("node count", n.into(), l.max_nodes.into()));
        }
        if let Some(r) = self.repeat_secs.filter(|r| *r < l.min_repeat_secs) {
            return Err(Refusal::OverLimit(format!(
                "repeat interval {r} s is shorter than the network's minimum of {} s",
                l.min_repeat_secs
            )));
        }
        Ok(())
    }
}

/// Checks a job id.
pub fn validate_job_id(id: &str) -> Result<(), ProtoError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ProtoError::invalid(
            "job.id",
            format!("{id:?} must be 1-64 of A-Z a-z 0-9 . _ -"),
        ))
    }
}

/// A job with its approvals: the `payload` of an envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedJob {
    /// The job object exactly as signed (never re-encoded from [`Job`]).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub job: Value,
    /// Approver signatures over [`canonical::job_signing_bytes`] of `job`.
    #[serde(default)]
    pub signatures: Vec<Signature>,
    /// For a job ordered under a mandate (instead of approver signatures):
    /// the mandate and the operator's signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandated: Option<Mandated>,
}

/// The authority of a job ordered under a mandate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mandated {
    /// The mandate, with its approvals.
    pub mandate: SignedMandate,
    /// The operator's signature over [`canonical::mandated_job_signing_bytes`] of the job.
    pub operator: Signature,
}

/// Why a job is not run (or not accepted). The `Display` text is the reason
/// reported in a `refused` result; [`Refusal::code`] is a stable short code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The job does not parse or validate.
    #[error("invalid job: {0}")]
    Invalid(#[from] ProtoError),
    /// The signatures do not meet the policy.
    #[error("{0}")]
    Approval(#[from] ApprovalError),
    /// `expires` has passed.
    #[error("expired at {expires} (now {now})")]
    Expired {
        /// The job's `expires`.
        expires: u64,
        /// The checker's clock.
        now: u64,
    },
    /// The network's policy does not allow this probe kind.
    #[error("probe kind {0} is not allowed by the network's approval policy")]
    ProbeNotAllowed(ProbeKind),
    /// A per-job limit of the policy is exceeded.
    #[error("over limit: {0}")]
    OverLimit(String),
    /// The node has already run this job.
    #[error("replayed: job {0} was already run on this node")]
    Replayed(String),
    /// The job's selection does not include this node.
    #[error("not targeted: this node is not in the job's selection ({0})")]
    NotTargeted(String),
    /// The node's owner does not allow this probe kind.
    #[error("probe kind {0} is not on this node's allowlist")]
    KindNotOnAllowlist(ProbeKind),
    /// The node's owner policy forbids the target.
    #[error("forbidden by the node owner's policy: {0}")]
    OwnerPolicy(String),
    /// The node's probe rate cap is reached.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// The mandate a job carries does not parse or validate.
    #[error("invalid mandate: {0}")]
    MandateInvalid(ProtoError),
    /// The mandate's approvals do not meet the policy.
    #[error("mandate: {0}")]
    MandateApproval(ApprovalError),
    /// The job and its mandate do not belong together.
    #[error("mandate mismatch: {0}")]
    MandateMismatch(String),
    /// The job's signer is not an operator of the mandate.
    #[error("operator key {0} is not named by the mandate")]
    UnknownOperator(String),
    /// The operator's signature does not verify.
    #[error("forged operator signature: the signature for key {0} does not verify")]
    ForgedOperatorSignature(String),
    /// The job exceeds one of the mandate's bounds.
    #[error("outside the mandate ({bound}): {detail}")]
    OutsideMandate {
        /// Which bound.
        bound: Bound,
        /// What exceeds it.
        detail: String,
    },
    /// An approver revoked the mandate.
    #[error("mandate {0} was revoked")]
    MandateRevoked(String),
    /// One of the mandate's hourly rates is used up.
    #[error("mandate rate ({scope}): {detail}")]
    MandateRate {
        /// Which rate.
        scope: RateScope,
        /// What is used up, and until when.
        detail: String,
    },
}

impl Refusal {
    /// Whether a quorum of approvers signed the job: the refusal came from a
    /// check after the signatures. Anything else may be made up by whoever
    /// sent it, so nothing it carries (a sequence number, an id) is trusted.
    pub fn is_authentic(&self) -> bool {
        !matches!(
            self,
            Self::Invalid(_)
                | Self::Approval(_)
                | Self::MandateInvalid(_)
                | Self::MandateApproval(_)
                | Self::MandateMismatch(_)
                | Self::UnknownOperator(_)
                | Self::ForgedOperatorSignature(_)
        )
    }

    /// A stable short code for programs and dashboards.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::Approval(ApprovalError::Forged { .. }) => "forged-signature",
            Self::Approval(ApprovalError::UnknownApprover { .. }) => "unknown-approver",
            Self::Approval(ApprovalError::TooFew { .. }) => "too-few-approvals",
            Self::Expired { .. } => "expired",
            Self::ProbeNotAllowed(_) => "probe-not-allowed",
            Self::OverLimit(_) => "over-limit",
            Self::Replayed(_) => "replayed",
            Self::NotTargeted(_) => "not-targeted",
            Self::KindNotOnAllowlist(_) => "kind-not-allowed",
            Self::OwnerPolicy(_) => "owner-policy",
            Self::RateLimited(_) => "rate-limited",
            Self::MandateInvalid(_) => "mandate-invalid",
            Self::MandateApproval(ApprovalError::Forged { .. }) => "mandate-forged-signature",
            Self::MandateApproval(ApprovalError::UnknownApprover { .. }) => {
                "mandate-unknown-approver"
            }
            Self::MandateApproval(ApprovalError::TooFew { .. }) => "mandate-too-few-approvals",
            Self::MandateMismatch(_) => "mandate-mismatch",
            Self::UnknownOperator(_) => "unknown-operator",
            Self::ForgedOperatorSignature(_) => "forged-operator-signature",
            Self::OutsideMandate { bound, .. } => bound.code(),
            Self::MandateRevoked(_) => "mandate-revoked",
            Self::MandateRate { scope, .. } => scope.code(),
        }
    }
}

impl SignedJob {
    /// Parses a signed job from JSON text.
    /// Text with a duplicate object key anywhere is refused (see
    /// [`canonical::check_no_duplicate_keys`]).
    pub fn from_json(text: &[u8]) -> Result<Self, ProtoError> {
        canonical::check_no_duplicate_keys(text)?;
        Ok(serde_json::from_slice(text)?)
    }

    /// Signs `job` with `keys`.
    pub fn sign(job: &Job, keys: &[&ApproverKey]) -> Result<Self, ProtoError> {
        let value = job.to_value();
        let signatures = keys
            .iter()
            .map(|k| k.sign_job(&value))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            job: value,
            signatures,
            mandated: None,
        })
    }

    /// Orders `job` under `mandate`, signed by the operator's `key`.
    pub fn sign_under_mandate(
        job: &Job,
        mandate: SignedMandate,
        key: &ApproverKey,
    ) -> Result<Self, ProtoError> {
        let value = job.to_value();
        let operator = key.sign_bytes(&canonical::mandated_job_signing_bytes(&value)?);
        Ok(Self {
            job: value,
            signatures: Vec::new(),
            mandated: Some(Mandated { mandate, operator }),
        })
    }

    /// Adds one approver's signature.
    pub fn add_signature(&mut self, key: &ApproverKey) -> Result<(), ProtoError> {
        let sig = key.sign_job(&self.job)?;
        self.signatures.retain(|s| s.key_id != sig.key_id);
        self.signatures.push(sig);
        Ok(())
    }

    /// The job's id, if the job has one (for refusals of jobs that do not parse).
    pub fn job_id(&self) -> Option<&str> {
        self.job.get("id").and_then(Value::as_str)
    }

    /// Every network-wide check: the job parses; a quorum of the policy's approvers
    /// signed exactly these bytes, or, for a job under a mandate, a quorum signed
    /// the mandate, an operator it names signed the job, and the job lies within
    /// every bound of the mandate; it has not expired at `now` (Unix seconds); and
    /// it respects the policy's allowlist and limits. Node-local checks (replay,
    /// targeting, a mandate's node bounds and revocation, the owner's policy)
    /// come after this.
    pub fn verify(&self, policy: &Policy, now: u64) -> Result<Job, Refusal> {
        self.verify_with_mandate(policy, now).map(|(job, _)| job)
    }

    /// [`SignedJob::verify`], returning also the mandate a job is ordered
    /// under (for the checks that follow on the node and at the hub).
    pub fn verify_with_mandate(
        &self,
        policy: &Policy,
        now: u64,
    ) -> Result<(Job, Option<Mandate>), Refusal> {
        let job = Job::from_value(&self.job)?;
        let mut mandate = None;
        match (&self.mandated, &job.mandate) {
            (None, None) => {
                let bytes = canonical::job_signing_bytes(&self.job)?;
                policy.check_approvals(&bytes, &self.signatures)?;
            }
            (Some(m), Some(_)) if self.signatures.is_empty() => {
                let (m, _) = m
                    .mandate
                    .verify_job(policy, &job, &self.job, &m.operator, now)?;
                mandate = Some(m);
            }
            (Some(_), Some(_)) => {
                return Err(Refusal::MandateMismatch(
                    "a job under a mandate carries no approver signatures".into(),
                ));
            }
            (None, Some(id)) => {
                return Err(Refusal::MandateMismatch(format!(
                    "the job names mandate {id} but carries none"
                )));
            }
            (Some(_), None) => {
                return Err(Refusal::MandateMismatch(
                    "the job carries a mandate but does not name it".into(),
                ));
            }
        }
        if now >= job.expires {
            return Err(Refusal::Expired {
                expires: job.expires,
                now,
            });
        }
        job.check_limits(policy)?;
        Ok((job, mandate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Approver, Limits};
    use serde_json::json;

    fn keys() -> Vec<ApproverKey> {
        (1..=4u8)
            .map(|i| ApproverKey::from_seed(&[i; 32]).unwrap())
            .collect()
    }

    fn policy(k: &[ApproverKey]) -> Policy {
        Policy {
            serial: 1,
            network: "t".into(),
            threshold: 2,
            approvers: k[..3]
                .iter()
                .enumerate()
                .map(|(i, k)| Approver {
                    name: format!("a{i}"),
                    key: k.public_key(),
                })
                .collect(),
            allowed_probes: vec![ProbeKind::Dns, ProbeKind::Http],
            limits: Limits::default(),
        }
    }

    fn job_value() -> Value {
        json!({"v": 1, "id": "j1", "probe": {"cmd": "dnslookup", "args": "example.com"},
               "select": "everyone", "not_before": 100, "expires": 200, "proposer": "alice"})
    }

    fn signed(keys: &[&ApproverKey]) -> SignedJob {
        let job = job_value();
        let signatures = keys.iter().map(|k| k.sign_job(&job).unwrap()).collect();
        SignedJob {
            job,
            signatures,
            mandated: None,
        }
    }

    #[test]
    fn quorum_runs_and_every_refusal_has_its_code() {
        let k = keys();
        let p = policy(&k);
        assert_eq!(signed(&[&k[0], &k[1]]).verify(&p, 150).unwrap().id, "j1");
        assert_eq!(
            signed(&[&k[0]]).verify(&p, 150).unwrap_err().code(),
            "too-few-approvals"
        );
        assert_eq!(
            signed(&[&k[0], &k[3]]).verify(&p, 150).unwrap_err().code(),
            "unknown-approver"
        );
        assert_eq!(
            signed(&[&k[0], &k[1]]).verify(&p, 200).unwrap_err().code(),
            "expired"
        );
        let mut tampered = signed(&[&k[0], &k[1]]);
        tampered.job["probe"]["args"] = json!("evil.example");
        assert_eq!(
            tampered.verify(&p, 150).unwrap_err().code(),
            "forged-signature"
        );
        let mut ping = signed(&[]);
        ping.job["probe"] = json!({"cmd": "ping", "args": {"host": "x.example"}});
        ping.signatures = vec![
            k[0].sign_job(&ping.job).unwrap(),
            k[2].sign_job(&ping.job).unwrap(),
        ];
        assert_eq!(
            ping.verify(&p, 150).unwrap_err().code(),
            "probe-not-allowed"
        );
    }

    #[test]
    fn sign_and_to_value_round_trip() {
        let k = keys();
        let job = Job::from_value(&job_value()).unwrap();
        let s = SignedJob::sign(&job, &[&k[0], &k[2]]).unwrap();
        assert_eq!(s.verify(&policy(&k), 150).unwrap(), job);
        assert!(job.describe().contains("DNS query A example.com"));
    }

    #[test]
    fn invalid_jobs_are_refused_with_reasons() {
        for (patch, want) in [
            (json!({"v": 2}), "version 2"),
            (json!({"id": "a b"}), "job.id"),
            (json!({"expires": 50}), "before not_before"),
            (json!({"limit": 0}), "0 nodes"),
            (json!({"shell": "id"}), "unknown field"),
            (json!({"select": {"country": "Germany"}}), "two-letter"),
        ] {
            let mut v = job_value();
            for (key, val) in patch.as_object().unwrap() {
                v[key] = val.clone();
            }
            let e = Job::from_value(&v).unwrap_err().to_string();
            assert!(e.contains(want), "{patch}: {e}");
        }
    }
}
