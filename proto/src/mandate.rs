//! Mandates: standing approvals for everyday measurements.
//!
//! A mandate is signed by a quorum of the network's approvers, like a job or a
//! policy, under its own domain string. It names operator keys that may order
//! jobs under it with their own single signature, and bounds everything such a
//! job may do: the probe kinds and their arguments, the nodes it may run on and
//! how many, how long one job is valid, the rates, and the mandate's own expiry.
//!
//! Every node checks a mandated job itself: the mandate's quorum against the
//! policy the node holds (so a mandate signed by approvers rotated out is
//! refused), the operator's signature, every bound, and its own per-node rate.
//! The hub checks the same at submission only so that the operator hears of a
//! refusal at once. Any single approver may revoke a mandate ([`Revocation`]):
//! revoking only takes power away, so one signature is enough.

use crate::ProtoError;
use crate::canonical;
use crate::job::{Job, Refusal, validate_job_id};
use crate::policy::{ApprovalError, Policy};
use crate::probe::{HttpMethod, Probe, ProbeKind, QType, TraceProtocol};
use crate::select::Selection;
use crate::sign::{ApproverKey, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The mandate format version this crate speaks.
pub const MANDATE_VERSION: u32 = 1;
/// The revocation format version this crate speaks.
pub const REVOCATION_VERSION: u32 = 1;

/// An operator key a mandate names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// A human name, for logs, results and audit.
    pub name: String,
    /// The operator's Ed25519 public key (`vantage keygen`).
    pub key: PublicKey,
}

/// Bounds on one probe kind's arguments. An absent bound leaves the argument
/// to the probe catalog's own ranges; a bound that does not apply to the kind
/// it is listed under is refused when the mandate is read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeBounds {
    /// Destination ports (`tcp`, `tls`, `traceroute`, and the URL's port of `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// Record types (`dns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qtypes: Option<Vec<QType>>,
    /// Whether a `dns` job may name its own resolver (else the node's resolver
    /// only, so a mandate cannot aim the network's queries at one server).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub custom_resolver: bool,
    /// Methods (`http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<HttpMethod>>,
    /// Most echo requests (`ping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u8>,
    /// Highest TTL (`traceroute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hops: Option<u8>,
    /// Packet types (`traceroute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<TraceProtocol>>,
}

/// How often jobs may be ordered under a mandate, per rolling hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Jobs one operator may order (counted by the hub).
    pub per_operator: u32,
    /// Jobs against one target host (counted by the hub).
    pub per_target: u32,
    /// Jobs one node runs (counted by each node, kept across restarts).
    pub per_node: u32,
}

/// Who a mandate's hourly rate is counted for; each has its own refusal code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    /// Jobs of one operator (counted by the hub).
    Operator,
    /// Jobs against one target host (counted by the hub).
    Target,
    /// Jobs run by one node (counted by the node).
    Node,
}

impl RateScope {
    /// The refusal code of a job over this rate.
    pub fn code(self) -> &'static str {
        match self {
            Self::Operator => "mandate-rate-operator",
            Self::Target => "mandate-rate-target",
            Self::Node => "mandate-rate-node",
        }
    }
}

impl fmt::Display for RateScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Rates {
    /// The jobs per rolling hour allowed for `scope`.
    pub fn per(&self, scope: RateScope) -> u32 {
        match scope {
            RateScope::Operator => self.per_operator,
            RateScope::Target => self.per_target,
            RateScope::Node => self.per_node,
        }
    }
}

/// The refusal of a job when `have` jobs were already counted for `scope`
/// within the last hour, or `None` while the rate allows one more.
pub fn over_rate(mandate: &Mandate, scope: RateScope, have: u64) -> Option<Refusal> {
    let max = mandate.rates.per(scope);
    (have >= u64::from(max)).then(|| Refusal::MandateRate {
        scope,
        detail: format!(
            "{have} job(s) in the last hour under mandate {}, which allows {max} per {}",
            mandate.id,
            match scope {
                RateScope::Operator => "operator",
                RateScope::Target => "target host",
                RateScope::Node => "node",
            }
        ),
    })
}

/// A mandate (the signed part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mandate {
    /// Format version, always [`MANDATE_VERSION`].
    pub v: u32,
    /// Unique id, `[A-Za-z0-9._-]{1,64}`; jobs name it and revocations revoke it.
    pub id: String,
    /// Who may order jobs under it.
    pub operators: Vec<Operator>,
    /// The probe kinds allowed, each with its bounds.
    pub probes: BTreeMap<ProbeKind, ProbeBounds>,
    /// The nodes jobs may run on: a node outside it refuses.
    #[serde(default = "everyone")]
    pub select: Selection,
    /// Most nodes one job may ask for (jobs must set `limit`).
    pub max_nodes: u32,
    /// Longest time between a job's `not_before` and `expires`.
    pub max_job_validity_secs: u64,
    /// Rates per rolling hour.
    pub rates: Rates,
    /// Unix seconds from which it is valid.
    pub not_before: u64,
    /// Unix seconds from which it is no longer valid.
    pub expires: u64,
    /// Who proposed it.
    pub proposer: String,
}

fn everyone() -> Selection {
    Selection::Everyone
}

/// Which bound of a mandate a job exceeds; each has its own refusal code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The probe kind is not in the mandate.
    Probe,
    /// A probe argument is outside the kind's bounds.
    Args,
    /// No `limit`, or more nodes than the mandate allows.
    Nodes,
    /// The job is valid for longer than allowed, or beyond the mandate's expiry.
    Validity,
    /// Mandated jobs run once; `repeat_secs` is refused.
    Repeat,
    /// This node is not among the nodes the mandate allows.
    Selection,
    /// The mandate is not yet valid or has expired.
    Time,
}

impl Bound {
    /// The refusal code of a job outside this bound.
    pub fn code(self) -> &'static str {
        match self {
            Self::Probe => "mandate-probe",
            Self::Args => "mandate-args",
            Self::Nodes => "mandate-nodes",
            Self::Validity => "mandate-validity",
            Self::Repeat => "mandate-repeat",
            Self::Selection => "mandate-selection",
            Self::Time => "mandate-time",
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

fn outside(bound: Bound, detail: impl Into<String>) -> Refusal {
    Refusal::OutsideMandate {
        bound,
        detail: detail.into(),
    }
}

impl ProbeBounds {
    /// Refuses bounds listed under a kind they do not apply to.
    fn validate_for(&self, kind: ProbeKind) -> Result<(), ProtoError> {
        use ProbeKind::*;
        let misplaced = [
            (
                "ports",
                self.ports.is_some(),
                &[Tcp, Tls, Http, Traceroute][..],
            ),
            ("qtypes", self.qtypes.is_some(), &[Dns][..]),
            ("custom_resolver", self.custom_resolver, &[Dns][..]),
            ("methods", self.methods.is_some(), &[Http][..]),
            ("max_count", self.max_count.is_some(), &[Ping][..]),
            ("max_hops", self.max_hops.is_some(), &[Traceroute][..]),
            ("protocols", self.protocols.is_some(), &[Traceroute][..]),
        ]
        .into_iter()
        .find(|(_, set, kinds)| *set && !kinds.contains(&kind));
        match misplaced {
            Some((name, _, _)) => Err(ProtoError::invalid(
                format!("mandate.probes.{kind}.{name}"),
                format!("does not apply to {kind} probes"),
            )),
            None => Ok(()),
        }
    }

    /// Whether the probe's arguments lie within these bounds.
    fn check(&self, probe: &Probe) -> Result<(), Refusal> {
        fn within<T: PartialEq + fmt::Debug>(
            what: &str,
            have: T,
            allowed: &Option<Vec<T>>,
        ) -> Result<(), Refusal> {
            match allowed {
                Some(list) if !list.contains(&have) => Err(outside(
                    Bound::Args,
                    format!("{what} {have:?} is not among {list:?}"),
                )),
                _ => Ok(()),
            }
        }
        fn at_most(what: &str, have: u8, max: Option<u8>) -> Result<(), Refusal> {
            match max {
                Some(m) if have > m => Err(outside(
                    Bound::Args,
                    format!("{what} {have} exceeds the mandate's {m}"),
                )),
                _ => Ok(()),
            }
        }
        match probe {
            Probe::Dns(a) => {
                if a.resolver.is_some() && !self.custom_resolver {
                    return Err(outside(
                        Bound::Args,
                        "the mandate allows only the node's own resolver",
                    ));
                }
                within("record type", a.qtype, &self.qtypes)
            }
            Probe::Http(a) => {
                within("method", a.method, &self.methods)?;
                let port = url::Url::parse(&a.url)
                    .ok()
                    .and_then(|u| u.port_or_known_default())
                    .unwrap_or(0);
                within("port", port, &self.ports)
            }
            Probe::Tls(a) => within("port", a.port, &self.ports),
            Probe::Tcp(a) => within("port", a.port, &self.ports),
            Probe::Ping(a) => at_most("packet count", a.count, self.max_count),
            Probe::Traceroute(a) => {
                at_most("hop count", a.max_hops, self.max_hops)?;
                within("protocol", a.protocol, &self.protocols)?;
                within("port", a.effective_port(), &self.ports)
            }
        }
    }
}

impl Mandate {
    /// Parses and validates a mandate object.
    pub fn from_value(value: &Value) -> Result<Self, ProtoError> {
        let m: Mandate = serde_json::from_value(value.clone())
            .map_err(|e| ProtoError::invalid("mandate", e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), ProtoError> {
        if self.v != MANDATE_VERSION {
            return Err(ProtoError::invalid(
                "mandate.v",
                format!(
                    "version {} is not supported (this side speaks {MANDATE_VERSION})",
                    self.v
                ),
            ));
        }
        validate_job_id(&self.id).map_err(|_| {
            ProtoError::invalid(
                "mandate.id",
                format!("{:?} must be 1-64 of A-Z a-z 0-9 . _ -", self.id),
            )
        })?;
        if self.operators.is_empty() {
            return Err(ProtoError::invalid(
                "mandate.operators",
                "names no operator",
            ));
        }
        if self.probes.is_empty() {
            return Err(ProtoError::invalid(
                "mandate.probes",
                "allows no probe kind",
            ));
        }
        for (kind, bounds) in &self.probes {
            bounds.validate_for(*kind)?;
        }
        if self.max_nodes == 0 {
            return Err(ProtoError::invalid(
                "mandate.max_nodes",
                "0 nodes would run nothing",
            ));
        }
        if self.not_before >= self.expires {
            return Err(ProtoError::invalid(
                "mandate.expires",
                "is not after not_before",
            ));
        }
        self.select.validate()
    }

    /// The mandate in plain words, for approvers.
    pub fn describe(&self) -> String {
        let operators: Vec<String> = self
            .operators
            .iter()
            .map(|o| format!("{} ({})", o.name, o.key.key_id()))
            .collect();
        let kinds: Vec<String> = self
            .probes
            .iter()
            .map(|(k, b)| {
                format!(
                    "{k}{}",
                    serde_json::to_string(b)
                        .map(|b| if b == "{}" {
                            String::new()
                        } else {
                            format!(" within {b}")
                        })
                        .unwrap_or_default()
                )
            })
            .collect();
        format!(
            "mandate {} proposed by {}: operators {} may order {} on {}, at most {} nodes per job, \
             each job valid at most {} s, at most {} jobs per operator, {} per target and {} per node per hour; \
             valid {} to {} (Unix time)",
            self.id,
            self.proposer,
            operators.join(", "),
            kinds.join("; "),
            match &self.select {
                Selection::Everyone => "every node".to_string(),
                other => format!("nodes where {other}"),
            },
            self.max_nodes,
            self.max_job_validity_secs,
            self.rates.per_operator,
            self.rates.per_target,
            self.rates.per_node,
            self.not_before,
            self.expires,
        )
    }

    /// The operator with this key id.
    pub fn operator(&self, key_id: &str) -> Option<&Operator> {
        self.operators.iter().find(|o| o.key.key_id() == key_id)
    }

    /// Whether `job` lies within every network-wide bound at `now`: the
    /// mandate's validity, the probe and its arguments, the node count, the
    /// job's validity. (Node-local bounds: [`Mandate::check_node`].)
    pub fn check_job(&self, job: &Job, now: u64) -> Result<(), Refusal> {
        if now < self.not_before || now >= self.expires {
            return Err(outside(
                Bound::Time,
                format!(
                    "mandate {} is valid from {} to {} (now {now})",
                    self.id, self.not_before, self.expires
                ),
            ));
        }
        let kind = job.probe.kind();
        let bounds = self.probes.get(&kind).ok_or_else(|| {
            outside(
                Bound::Probe,
                format!("{kind} is not among the mandate's probe kinds"),
            )
        })?;
        bounds.check(&job.probe)?;
        match job.limit {
            Some(n) if n <= self.max_nodes => {}
            Some(n) => {
                return Err(outside(
                    Bound::Nodes,
                    format!("limit {n} exceeds the mandate's {}", self.max_nodes),
                ));
            }
            None => {
                return Err(outside(
                    Bound::Nodes,
                    format!("a mandated job must set limit (at most {})", self.max_nodes),
                ));
            }
        }
        if job.repeat_secs.is_some() {
            return Err(outside(Bound::Repeat, "mandated jobs run once"));
        }
        let validity = job.expires - job.not_before;
        if validity > self.max_job_validity_secs {
            return Err(outside(
                Bound::Validity,
                format!(
                    "valid for {validity} s, the mandate allows {} s",
                    self.max_job_validity_secs
                ),
            ));
        }
        if job.expires > self.expires {
            return Err(outside(
                Bound::Validity,
                format!("expires after the mandate ({})", self.expires),
            ));
        }
        Ok(())
    }

    /// Whether this node may run jobs under the mandate: it is among the nodes
    /// the mandate allows, with the capabilities it measured.
    pub fn check_node(
        &self,
        node: &crate::channel::NodeAttrs,
        caps: Option<&crate::node::Capabilities>,
    ) -> Result<(), Refusal> {
        if self.select.matches(node, caps) {
            Ok(())
        } else {
            Err(outside(
                Bound::Selection,
                format!(
                    "mandate {} allows only nodes where {}",
                    self.id, self.select
                ),
            ))
        }
    }
}

/// A mandate with the approvals that make it valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedMandate {
    /// The mandate object exactly as signed.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub mandate: Value,
    /// Approver signatures over [`canonical::mandate_signing_bytes`] of `mandate`.
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

impl SignedMandate {
    /// Parses a signed mandate from JSON text (duplicate keys refused).
    pub fn from_json(text: &[u8]) -> Result<Self, ProtoError> {
        canonical::check_no_duplicate_keys(text)?;
        Ok(serde_json::from_slice(text)?)
    }

    /// Adds one approver's signature.
    pub fn add_signature(&mut self, key: &ApproverKey) -> Result<(), ProtoError> {
        let sig = key.sign_bytes(&canonical::mandate_signing_bytes(&self.mandate)?);
        self.signatures.retain(|s| s.key_id != sig.key_id);
        self.signatures.push(sig);
        Ok(())
    }

    /// The mandate, if a quorum of `policy`'s approvers signed exactly these bytes.
    /// Returns it with the names of the approvers who signed.
    pub fn verify(&self, policy: &Policy) -> Result<(Mandate, Vec<String>), Refusal> {
        let mandate = Mandate::from_value(&self.mandate).map_err(Refusal::MandateInvalid)?;
        let bytes =
            canonical::mandate_signing_bytes(&self.mandate).map_err(Refusal::MandateInvalid)?;
        let approvers = policy
            .check_approvals(&bytes, &self.signatures)
            .map_err(Refusal::MandateApproval)?;
        Ok((mandate, approvers))
    }

    /// Checks a job ordered under this mandate: the mandate's quorum, that the
    /// job names it, the operator's signature over the job, and every
    /// network-wide bound. Returns the mandate and the operator's name.
    pub fn verify_job(
        &self,
        policy: &Policy,
        job: &Job,
        job_value: &Value,
        operator_signature: &Signature,
        now: u64,
    ) -> Result<(Mandate, String), Refusal> {
        let (mandate, _) = self.verify(policy)?;
        if job.mandate.as_deref() != Some(mandate.id.as_str()) {
            return Err(Refusal::MandateMismatch(format!(
                "the job names mandate {:?}, the mandate it carries is {:?}",
                job.mandate.as_deref().unwrap_or(""),
                mandate.id
            )));
        }
        let operator = mandate
            .operator(&operator_signature.key_id)
            .ok_or_else(|| Refusal::UnknownOperator(operator_signature.key_id.clone()))?;
        let bytes = canonical::mandated_job_signing_bytes(job_value)?;
        let valid = operator_signature
            .bytes()
            .is_ok_and(|b| operator.key.verify(&bytes, &b));
        if !valid {
            return Err(Refusal::ForgedOperatorSignature(
                operator_signature.key_id.clone(),
            ));
        }
        if job.proposer != operator.name {
            return Err(Refusal::MandateMismatch(format!(
                "the job's proposer {:?} is not the signing operator {:?}",
                job.proposer, operator.name
            )));
        }
        mandate.check_job(job, now)?;
        let name = operator.name.clone();
        Ok((mandate, name))
    }
}

/// A revocation of a mandate (the signed part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Format version, always [`REVOCATION_VERSION`].
    pub v: u32,
    /// The id of the mandate revoked.
    pub mandate: String,
    /// Unix seconds when it was signed.
    pub at: u64,
    /// Why, for the audit log.
    pub reason: String,
}

/// A revocation with the one approver signature that makes it valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedRevocation {
    /// The revocation object exactly as signed.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub revocation: Value,
    /// One approver's signature over [`canonical::revocation_signing_bytes`].
    pub signature: Signature,
}

impl SignedRevocation {
    /// Signs a revocation with one approver key.
    pub fn sign(revocation: &Revocation, key: &ApproverKey) -> Result<Self, ProtoError> {
        let value = serde_json::to_value(revocation)?;
        let signature = key.sign_bytes(&canonical::revocation_signing_bytes(&value)?);
        Ok(Self {
            revocation: value,
            signature,
        })
    }

    /// The revocation, if one of `policy`'s approvers signed exactly these bytes.
    pub fn verify(&self, policy: &Policy) -> Result<Revocation, Refusal> {
        let revocation: Revocation =
            serde_json::from_value(self.revocation.clone()).map_err(|e| {
                Refusal::MandateInvalid(ProtoError::invalid("revocation", e.to_string()))
            })?;
        if revocation.v != REVOCATION_VERSION {
            return Err(Refusal::MandateInvalid(ProtoError::invalid(
                "revocation.v",
                format!("version {} is not supported", revocation.v),
            )));
        }
        validate_job_id(&revocation.mandate).map_err(Refusal::MandateInvalid)?;
        let bytes = canonical::revocation_signing_bytes(&self.revocation)
            .map_err(Refusal::MandateInvalid)?;
        let key_id = &self.signature.key_id;
        let approver = policy.approver(key_id).ok_or_else(|| {
            Refusal::MandateApproval(ApprovalError::UnknownApprover {
                key_ids: key_id.clone(),
                have: 0,
                need: 1,
            })
        })?;
        if self
            .signature
            .bytes()
            .is_ok_and(|b| approver.key.verify(&bytes, &b))
        {
            Ok(revocation)
        } else {
            Err(Refusal::MandateApproval(ApprovalError::Forged {
                key_id: key_id.clone(),
            }))
        }
    }
}

/// Most revocations a hub keeps and a node takes: mandates are few (each
/// needs a quorum), and the bound keeps the list a node fetches small.
pub const MAX_REVOCATIONS: usize = 1024;

/// Most bytes of a revocation list read from the hub or from disk.
pub const MAX_REVOCATION_LIST_BYTES: u64 = 1024 * 1024;

/// Why a hub does not take a revocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    /// It does not verify against the hub's policy (its [`Refusal::code`]).
    #[error("revocation refused: {0}")]
    Refused(Refusal),
    /// The hub keeps [`MAX_REVOCATIONS`] already.
    #[error(
        "the hub keeps at most {MAX_REVOCATIONS} mandate revocations and has them all; \
         to disarm a mandate now, rotate the approval policy so that its signers no longer make a quorum"
    )]
    Full,
}

impl RevocationError {
    /// A stable short code for programs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(r) => r.code(),
            Self::Full => "revocations-full",
        }
    }
}

/// The revocations a hub serves (`GET /v1/mandates/revocations`) and a node
/// keeps, each as signed: whoever reads it verifies every one itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// The signed revocations, oldest first.
    pub revocations: Vec<SignedRevocation>,
}

impl RevocationList {
    /// Parses a list from JSON text (signed text: a duplicate object key
    /// anywhere refuses the whole list; more than [`MAX_REVOCATIONS`] too).
    pub fn from_json(text: &[u8]) -> Result<Self, ProtoError> {
        canonical::check_no_duplicate_keys(text)?;
        let list: Self = serde_json::from_slice(text)?;
        if list.revocations.len() > MAX_REVOCATIONS {
            return Err(ProtoError::invalid(
                "revocations",
                format!("more than {MAX_REVOCATIONS} revocations"),
            ));
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::NodeAttrs;
    use crate::job::SignedJob;
    use crate::testing::{key, policy};
    use serde_json::json;

    /// Operator 9 ("olga") may ping (at most 5 packets), TCP-connect to 443 and
    /// look up A/AAAA records, on nodes in DE or FR, at most 5 nodes per job.
    fn mandate_value() -> Value {
        json!({"v": 1, "id": "everyday", "proposer": "a1",
               "operators": [{"name": "olga", "key": key(9).public_key()}],
               "probes": {"ping": {"max_count": 5}, "tcp": {"ports": [443]},
                          "dns": {"qtypes": ["A", "AAAA"]}},
               "select": {"or": [{"country": "DE"}, {"country": "FR"}]},
               "max_nodes": 5, "max_job_validity_secs": 600,
               "rates": {"per_operator": 60, "per_target": 10, "per_node": 30},
               "not_before": 1000, "expires": 100_000})
    }

    fn signed_mandate(value: Value, by: &[u8]) -> SignedMandate {
        let mut m = SignedMandate {
            mandate: value,
            signatures: vec![],
        };
        for i in by {
            m.add_signature(&key(*i)).unwrap();
        }
        m
    }

    fn job_value() -> Value {
        json!({"v": 1, "id": "q1", "probe": {"cmd": "ping", "args": {"host": "192.0.2.1", "count": 3}},
               "select": {"country": "DE"}, "limit": 2, "not_before": 2000, "expires": 2300,
               "proposer": "olga", "mandate": "everyday"})
    }

    fn order(job: Value, mandate: SignedMandate, operator: u8) -> SignedJob {
        let job = Job::from_value(&job).unwrap();
        SignedJob::sign_under_mandate(&job, mandate, &key(operator)).unwrap()
    }

    fn refusal(job: Value) -> &'static str {
        order(job, signed_mandate(mandate_value(), &[1, 2]), 9)
            .verify(&policy(), 2100)
            .unwrap_err()
            .code()
    }

    fn patched(patch: Value) -> Value {
        let mut v = job_value();
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn one_operator_signature_under_a_quorum_mandate_runs() {
        let signed = order(job_value(), signed_mandate(mandate_value(), &[1, 3]), 9);
        let job = signed.verify(&policy(), 2100).unwrap();
        assert_eq!(job.mandate.as_deref(), Some("everyday"));
        assert!(job.describe().contains("ordered under mandate everyday"));
        // The wire form parses back to the same job.
        let text = serde_json::to_vec(&signed).unwrap();
        assert_eq!(SignedJob::from_json(&text).unwrap(), signed);
    }

    #[test]
    fn every_bound_has_its_code() {
        for (patch, code) in [
            (
                json!({"probe": {"cmd": "http", "args": {"url": "https://example.com/"}}}),
                "mandate-probe",
            ),
            (
                json!({"probe": {"cmd": "ping", "args": {"host": "192.0.2.1", "count": 9}}}),
                "mandate-args",
            ),
            (
                json!({"probe": {"cmd": "tcp", "args": {"host": "192.0.2.1", "port": 22}}}),
                "mandate-args",
            ),
            (
                json!({"probe": {"cmd": "dns", "args": {"name": "example.com", "qtype": "TXT"}}}),
                "mandate-args",
            ),
            (
                json!({"probe": {"cmd": "dns", "args": {"name": "example.com", "resolver": "192.0.2.53"}}}),
                "mandate-args",
            ),
            (json!({"limit": 6}), "mandate-nodes"),
            (json!({"limit": null}), "mandate-nodes"),
            (json!({"expires": 2601}), "mandate-validity"),
            (json!({"repeat_secs": 60}), "mandate-repeat"),
        ] {
            assert_eq!(refusal(patched(patch.clone())), code, "{patch}");
        }
        let ok = order(job_value(), signed_mandate(mandate_value(), &[1, 2]), 9);
        assert_eq!(
            ok.verify(&policy(), 999).unwrap_err().code(),
            "mandate-time"
        );
        let mut late = mandate_value();
        late["expires"] = json!(2200);
        let beyond = order(job_value(), signed_mandate(late, &[1, 2]), 9);
        assert_eq!(
            beyond.verify(&policy(), 2100).unwrap_err().code(),
            "mandate-validity"
        );
    }

    #[test]
    fn the_node_checks_it_is_in_the_mandates_selection() {
        let m = Mandate::from_value(&mandate_value()).unwrap();
        let node = |country: &str| NodeAttrs {
            node_id: "n1".into(),
            country: country.into(),
            ..Default::default()
        };
        assert!(m.check_node(&node("FR"), None).is_ok());
        let e = m.check_node(&node("US"), None).unwrap_err();
        assert_eq!(e.code(), "mandate-selection");
        assert!(e.is_authentic());
    }

    #[test]
    fn mandate_authority_is_checked_before_anything_else() {
        let p = policy();
        let under = |by: &[u8], operator: u8| {
            order(job_value(), signed_mandate(mandate_value(), by), operator)
                .verify(&p, 2100)
                .unwrap_err()
        };
        assert_eq!(under(&[1], 9).code(), "mandate-too-few-approvals");
        // Approvers rotated out (or never in) are unknown to the policy the node holds.
        assert_eq!(under(&[1, 4], 9).code(), "mandate-unknown-approver");
        let e = under(&[1, 2], 4);
        assert_eq!(e.code(), "unknown-operator");
        assert!(!e.is_authentic());
        // Changing a signed byte of the job breaks the operator's signature...
        let mut tampered = order(job_value(), signed_mandate(mandate_value(), &[1, 2]), 9);
        tampered.job["probe"]["args"]["host"] = json!("198.51.100.7");
        assert_eq!(
            tampered.verify(&p, 2100).unwrap_err().code(),
            "forged-operator-signature"
        );
        // ...and of the mandate, the approvals.
        let mut widened = order(job_value(), signed_mandate(mandate_value(), &[1, 2]), 9);
        let m = &mut widened.mandated.as_mut().unwrap().mandate;
        m.mandate["max_nodes"] = json!(10_000);
        assert_eq!(
            widened.verify(&p, 2100).unwrap_err().code(),
            "mandate-forged-signature"
        );
    }

    #[test]
    fn an_operator_signature_never_counts_as_an_approval() {
        // Approvers 1 and 2 are also operators: their operator signatures over a
        // job, moved into the approvals, do not verify (another domain).
        let job = Job::from_value(&patched(json!({"mandate": null}))).unwrap();
        let m = signed_mandate(mandate_value(), &[1, 2]);
        let sigs =
            [1u8, 2].map(|i| SignedJob::sign_under_mandate(&job, m.clone(), &key(i)).unwrap());
        let forged = SignedJob {
            job: job.to_value(),
            signatures: sigs
                .iter()
                .map(|s| s.mandated.clone().unwrap().operator)
                .collect(),
            mandated: None,
        };
        assert_eq!(
            forged.verify(&policy(), 2100).unwrap_err().code(),
            "forged-signature"
        );
    }

    #[test]
    fn a_job_and_its_mandate_must_belong_together() {
        let m = signed_mandate(mandate_value(), &[1, 2]);
        // Names a mandate, carries none.
        let bare =
            SignedJob::sign(&Job::from_value(&job_value()).unwrap(), &[&key(1), &key(2)]).unwrap();
        assert_eq!(
            bare.verify(&policy(), 2100).unwrap_err().code(),
            "mandate-mismatch"
        );
        // Names another mandate.
        let other = order(patched(json!({"mandate": "other"})), m.clone(), 9);
        assert_eq!(
            other.verify(&policy(), 2100).unwrap_err().code(),
            "mandate-mismatch"
        );
        // Claims another proposer than the operator who signed.
        let alias = order(patched(json!({"proposer": "a1"})), m.clone(), 9);
        assert_eq!(
            alias.verify(&policy(), 2100).unwrap_err().code(),
            "mandate-mismatch"
        );
        // Mixes approvals in.
        let mut mixed = order(job_value(), m, 9);
        mixed.signatures.push(key(1).sign_job(&mixed.job).unwrap());
        assert_eq!(
            mixed.verify(&policy(), 2100).unwrap_err().code(),
            "mandate-mismatch"
        );
    }

    #[test]
    fn mandates_that_make_no_sense_are_refused_when_read() {
        for (patch, field) in [
            (json!({"v": 2}), "mandate.v"),
            (json!({"operators": []}), "mandate.operators"),
            (json!({"probes": {}}), "mandate.probes"),
            (
                json!({"probes": {"ping": {"ports": [80]}}}),
                "mandate.probes.ping.ports",
            ),
            (
                json!({"probes": {"tcp": {"qtypes": ["A"]}}}),
                "mandate.probes.tcp.qtypes",
            ),
            (json!({"max_nodes": 0}), "mandate.max_nodes"),
            (json!({"expires": 1000}), "mandate.expires"),
            (json!({"shell": "id"}), "unknown field"),
        ] {
            let mut v = mandate_value();
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            let e = Mandate::from_value(&v).unwrap_err().to_string();
            assert!(e.contains(field), "{patch}: {e}");
        }
        let d = Mandate::from_value(&mandate_value()).unwrap().describe();
        assert!(
            d.contains("olga") && d.contains("at most 5 nodes per job"),
            "{d}"
        );
    }

    #[test]
    fn each_rate_has_its_code_and_counts_up_to_its_bound() {
        let m = Mandate::from_value(&mandate_value()).unwrap();
        for (scope, max, code) in [
            (RateScope::Operator, 60, "mandate-rate-operator"),
            (RateScope::Target, 10, "mandate-rate-target"),
            (RateScope::Node, 30, "mandate-rate-node"),
        ] {
            assert!(over_rate(&m, scope, max - 1).is_none());
            let r = over_rate(&m, scope, max).unwrap();
            assert_eq!(r.code(), code);
            assert!(r.is_authentic());
            assert!(r.to_string().contains("everyday"), "{r}");
        }
    }

    fn revocation(mandate: &str, by: u8) -> SignedRevocation {
        let r = Revocation {
            v: 1,
            mandate: mandate.into(),
            at: 3000,
            reason: "test".into(),
        };
        SignedRevocation::sign(&r, &key(by)).unwrap()
    }

    #[test]
    fn revocation_lists_refuse_duplicate_keys_and_overlong_lists() {
        let list = RevocationList {
            revocations: vec![revocation("a", 1), revocation("b", 2)],
        };
        let text = serde_json::to_vec(&list).unwrap();
        assert_eq!(RevocationList::from_json(&text).unwrap(), list);
        let dup = br#"{"revocations": [], "revocations": []}"#;
        assert_eq!(
            RevocationList::from_json(dup).unwrap_err().code(),
            "not-canonical"
        );
        let long = RevocationList {
            revocations: vec![revocation("a", 1); MAX_REVOCATIONS + 1],
        };
        let e = RevocationList::from_json(&serde_json::to_vec(&long).unwrap()).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a hub sends, parsing gives a list or an error, and a
            /// list that parses verifies entry by entry without panicking.
            #[test]
            fn any_bytes_parse_or_fail_cleanly(data in proptest::collection::vec(any::<u8>(), 0..512)) {
                if let Ok(list) = RevocationList::from_json(&data) {
                    for r in &list.revocations {
                        let _ = r.verify(&policy());
                    }
                }
            }

            /// Lists of signed revocations round-trip and verify as signed.
            #[test]
            fn signed_lists_round_trip(ids in proptest::collection::vec("[a-z0-9._-]{1,20}", 0..6), by in 1u8..=4) {
                let list = RevocationList {
                    revocations: ids.iter().map(|id| revocation(id, by)).collect(),
                };
                let back = RevocationList::from_json(&serde_json::to_vec(&list).unwrap()).unwrap();
                prop_assert_eq!(&back, &list);
                for (r, id) in back.revocations.iter().zip(&ids) {
                    match r.verify(&policy()) {
                        Ok(v) => prop_assert!(by <= 3 && &v.mandate == id),
                        Err(e) => prop_assert!(by == 4 && e.code() == "mandate-unknown-approver"),
                    }
                }
            }
        }
    }

    #[test]
    fn any_single_approver_revokes() {
        let r = Revocation {
            v: 1,
            mandate: "everyday".into(),
            at: 3000,
            reason: "operator key lost".into(),
        };
        let p = policy();
        assert_eq!(
            SignedRevocation::sign(&r, &key(3))
                .unwrap()
                .verify(&p)
                .unwrap(),
            r
        );
        let stranger = SignedRevocation::sign(&r, &key(9)).unwrap();
        assert_eq!(
            stranger.verify(&p).unwrap_err().code(),
            "mandate-unknown-approver"
        );
        let mut altered = SignedRevocation::sign(&r, &key(2)).unwrap();
        altered.revocation["mandate"] = json!("another");
        assert_eq!(
            altered.verify(&p).unwrap_err().code(),
            "mandate-forged-signature"
        );
    }
}
