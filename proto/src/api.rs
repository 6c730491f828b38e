//! The hub's HTTP answers: one type per answer, shared by the hub (which
//! serialises them), the operator CLI and the tests (which read them back).
//! Requests that nodes send live next to their subject (`enrol`, `node`,
//! `result`, `job`, `policy`). With the `openapi` feature every type here
//! also describes itself for the hub's OpenAPI document.

use crate::job::SignedJob;
use crate::node::RefusalSummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every refusal the hub sends: a sentence that says what to do, and a
/// stable machine code (see `docs/hub.md`, "Error codes") that programs and
/// tests match instead of the sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong and what to do, for people.
    pub error: String,
    /// Stable short code, for programs (`unknown-job`, `rate-limited`, ...).
    pub code: String,
}

/// The answer of requests that only need to be taken (heartbeat, gap report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ack {
    /// Always true.
    pub ok: bool,
}

impl Ack {
    /// The one value.
    pub const OK: Ack = Ack { ok: true };
}

/// What became of a result a node posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultStored {
    /// Whether this request stored it (false: it was stored before).
    pub stored: bool,
    /// True when the same job, node and run were already stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Where a registry entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Subscribed now, or seen within the hub's online window.
    Online,
    /// Enrolled but not seen lately.
    Offline,
    /// Its certificate was revoked.
    Revoked,
    /// A token-less enrolment waiting for the hub admin (no node id yet).
    Pending,
}

impl NodeStatus {
    /// The status word, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Revoked => "revoked",
            Self::Pending => "pending",
        }
    }

    /// Parses a status word (`online`, `offline`, `revoked`, `pending`).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Online, Self::Offline, Self::Revoked, Self::Pending]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One entry of `GET /v1/nodes`: an enrolled node, or a pending enrolment
/// (`status` `pending`, no `id`, the `requested`/`last_poll`/`approved` times).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeEntry {
    /// Node id; none while pending.
    pub id: Option<String>,
    /// Where it stands.
    pub status: NodeStatus,
    /// ISO 3166-1 alpha-2 country.
    pub country: String,
    /// Continent code.
    #[serde(default)]
    pub continent: Option<String>,
    /// Autonomous system number.
    #[serde(default)]
    pub asn: Option<u32>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// SHA-256 fingerprint of the node's key.
    pub key_fingerprint: String,
    /// Peer address of its last request.
    #[serde(default)]
    pub address: Option<String>,
    /// Serial of its current certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_serial: Option<String>,
    /// Expiry of its current certificate, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_not_after: Option<i64>,
    /// Enrolment time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled: Option<i64>,
    /// `token` or `approved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_via: Option<String>,
    /// Revocation time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<i64>,
    /// Last request or open subscription, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    /// Agent version from its last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// The target triple its agent reported (agents from before releases do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether its running agent came from a release (not the image's own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_release: bool,
    /// The release it last reported failed (rolled back or refused), until a later one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_release: Option<crate::release::FailedRelease>,
    /// Channels its attributes give it.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Serial of the approval policy it last reported enforcing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_serial: Option<u64>,
    /// The agent's last error, one bounded line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Results waiting in its outbox at the last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_depth: Option<u64>,
    /// Results it dropped since its agent started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_dropped: Option<u64>,
    /// When its last heartbeat arrived, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<i64>,
    /// The last summary of stream data it refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusalSummary>,
    /// Stream data it refused since the hub started, per code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_totals: Option<BTreeMap<String, u64>>,
    /// What it last reported it can do (which address families reach the hub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<crate::node::Capabilities>,
    /// What it last reported of its owner's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::owner::OwnerDigest>,
    /// Pending only: when the enrolment was first asked for, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<i64>,
    /// Pending only: the node's last poll, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<i64>,
    /// Pending only: when the admin approved it, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<i64>,
}

/// The answer to an accepted `POST /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobAccepted {
    /// The job's id.
    pub job_id: String,
    /// Its position in the hub's log.
    pub seq: u64,
    /// Channels it was published on.
    pub channels: Vec<String>,
    /// Nodes the selection covered at acceptance.
    pub nodes: Vec<String>,
}

/// The answer to an accepted `POST /v1/publish/<channel>` (test networks only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    /// Its position in the hub's log.
    pub seq: u64,
    /// The channel it went to.
    pub channels: Vec<String>,
}

/// A job as the hub holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRecord {
    /// Job id.
    pub id: String,
    /// Log sequence number.
    pub seq: u64,
    /// The signed job as submitted.
    pub signed_job: SignedJob,
    /// Acceptance time, Unix seconds.
    pub submitted: i64,
    /// Operator whose certificate submitted it.
    pub submitter: String,
    /// The job's proposer.
    pub proposer: Option<String>,
    /// Key ids of the signatures that counted.
    pub signers: Vec<String>,
    /// Channels it was published on.
    pub channels: Vec<String>,
    /// Nodes the selection resolved to at acceptance.
    pub nodes: Vec<String>,
    /// The host the probe measures (for the per-target hourly limit).
    pub target: String,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Unix seconds.
    pub time: i64,
    /// Who (operator name, node id, `cli`).
    pub actor: String,
    /// What (`job.accept`, `node.enrol`, ...).
    pub action: String,
    /// On what.
    pub subject: String,
    /// Details, by action.
    pub detail: serde_json::Value,
}

/// Where a job is in its life, by the hub's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobPhase {
    /// Before `not_before`.
    Scheduled,
    /// Between `not_before` and `expires`.
    Active,
    /// After `expires`.
    Expired,
}

impl JobPhase {
    /// The phase at `now` (Unix seconds) of a job valid from `not_before` to `expires`.
    pub fn at(now: u64, not_before: u64, expires: u64) -> Self {
        if now < not_before {
            Self::Scheduled
        } else if now < expires {
            Self::Active
        } else {
            Self::Expired
        }
    }

    /// The phase word, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::Expired => "expired",
        }
    }
}

/// `GET /v1/jobs/<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobStatus {
    /// The job as the hub holds it.
    pub job: JobRecord,
    /// Where it is in its life.
    pub status: JobPhase,
    /// Results stored for it.
    pub results: u64,
    /// Its audit trail, oldest first.
    pub audit: Vec<AuditEntry>,
}

/// One entry of `GET /v1/jobs`: a job and how far it got, without its signed body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSummary {
    /// Job id.
    pub id: String,
    /// Log sequence number (the listing's order and cursor).
    pub seq: u64,
    /// Acceptance time, Unix seconds.
    pub submitted: i64,
    /// Operator whose certificate submitted it.
    pub submitter: String,
    /// The job's proposer.
    pub proposer: Option<String>,
    /// The probe's command (`dns`, `http`, ...), as signed.
    pub probe: String,
    /// The host the probe measures.
    pub target: String,
    /// Key ids of the signatures that counted.
    pub signers: Vec<String>,
    /// Where it is in its life.
    pub status: JobPhase,
    /// Valid from, Unix seconds.
    pub not_before: u64,
    /// Valid until, Unix seconds.
    pub expires: u64,
    /// Nodes the selection resolved to at acceptance.
    pub selected: u64,
    /// Distinct nodes that sent at least one result.
    pub answered: u64,
    /// Results stored for it.
    pub results: u64,
}

/// `GET /v1/jobs`: one page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobList {
    /// At most `limit` jobs, newest (highest `seq`) first.
    pub jobs: Vec<JobSummary>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
}

/// One entry of `GET /v1/channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelEntry {
    /// Channel name.
    pub channel: String,
    /// Open subscriptions to it now.
    pub subscribers: u64,
    /// Log entries held for it.
    pub messages: u64,
    /// Its newest log entry's sequence number (0: none).
    pub last_seq: u64,
}

/// `GET /v1/stats`: the hub now, and totals since it started.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// Open connections after their TLS handshake.
    pub connections: u64,
    /// Open channel subscriptions.
    pub subscriptions: u64,
    /// Nodes with at least one open subscription.
    pub subscribed_nodes: u64,
    /// Enrolled nodes (revoked ones included).
    pub nodes: u64,
    /// Nodes online now.
    pub nodes_online: u64,
    /// Revoked nodes.
    pub nodes_revoked: u64,
    /// Enrolments waiting for approval.
    pub pending: u64,
    /// Entries in the hub's log.
    pub log_entries: u64,
    /// The log's newest sequence number.
    pub last_seq: u64,
    /// Entries up to this sequence number were pruned.
    pub pruned_through: u64,
    /// Requests since start.
    pub requests: u64,
    /// Requests refused by the rate limit since start.
    pub rate_limited: u64,
    /// Connections refused since start.
    pub connections_refused: u64,
    /// Unfinished TLS handshakes cancelled for a newer connection since start.
    pub handshakes_evicted: u64,
    /// Jobs accepted since start.
    pub jobs_accepted: u64,
    /// Jobs refused since start.
    pub jobs_refused: u64,
    /// Events sent to subscribers since start.
    pub events_sent: u64,
    /// Results stored since start.
    pub results_stored: u64,
    /// Results that were already stored, since start.
    pub results_duplicate: u64,
    /// Results refused since start (unknown job or run, node not selected).
    pub results_refused: u64,
    /// Results refused since start because their node's daily volume was used up.
    pub results_over_volume: u64,
    /// Nodes enrolled since start.
    pub enrolments: u64,
    /// Seconds since start.
    pub uptime_secs: u64,
}

/// `POST /v1/policy` accepted: the serial now in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyAccepted {
    /// Serial of the policy now in force.
    pub serial: u64,
}

/// `POST /v1/mandates/revocations` took the revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevocationAccepted {
    /// The mandate revoked.
    pub mandate: String,
    /// False if the hub held a revocation of it already (this one is not kept).
    pub new: bool,
}

/// The answer to a heartbeat: taken, and the agent release the hub offers
/// this node now (absent when none; agents from before releases read only `ok`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatAnswer {
    /// Always true.
    pub ok: bool,
    /// The version the node should fetch (`GET /v1/releases/{version}`),
    /// verify against the policy it holds, and install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// `POST /v1/releases` accepted (or its signatures replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseAccepted {
    /// The release's version.
    pub version: String,
    /// Names of the approvers whose signatures counted.
    pub signers: Vec<String>,
    /// False when the hub held this release already (its signatures were replaced).
    pub new: bool,
}

/// `PUT /v1/releases/{version}/{target}/{binary}` stored the binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BinaryStored {
    /// The release's version.
    pub version: String,
    /// Target triple.
    pub target: String,
    /// File name (`vantage-agent`, `vantage-provision`).
    pub binary: String,
    /// Bytes stored.
    pub size: u64,
    /// Their SHA-256, as the release says.
    pub sha256: String,
}

/// Where a release is, by the hub's clock and its nodes' reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseState {
    /// Some binaries are not uploaded yet: offered to nobody.
    WaitingBinaries,
    /// Before its `not_before`.
    Scheduled,
    /// Offered to the nodes of its open waves.
    RollingOut,
    /// Every wave is open and every node in them runs it (or failed it).
    Complete,
    /// Stopped by the hub: too many nodes of a wave rolled back.
    Stopped,
    /// Past its `expires`: offered to nobody.
    Expired,
}

impl ReleaseState {
    /// The state word, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WaitingBinaries => "waiting-binaries",
            Self::Scheduled => "scheduled",
            Self::RollingOut => "rolling-out",
            Self::Complete => "complete",
            Self::Stopped => "stopped",
            Self::Expired => "expired",
        }
    }
}

/// One wave of a release's rollout and its nodes now. Its nodes are those the
/// hub heard from lately (`--release-window`) that match the selection, fall
/// in this wave and run an agent that reports its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaveStatus {
    /// Cumulative percentage of the matching nodes this wave reaches.
    pub percent: u8,
    /// Whether the hub offers the release to this wave's nodes.
    pub open: bool,
    /// Nodes in this wave.
    pub nodes: u64,
    /// Of those, nodes that run this version (or a newer one).
    pub updated: u64,
    /// Of those, nodes that report this version failed (rolled back, refused).
    pub failed: u64,
    /// Of those, nodes that have neither.
    pub pending: u64,
}

/// Why and when the hub stopped a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseStop {
    /// Unix seconds.
    pub at: i64,
    /// In words.
    pub reason: String,
}

/// One entry of `GET /v1/releases`: a release and its rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseStatus {
    /// The release's version.
    pub version: String,
    /// Where it is.
    pub state: ReleaseState,
    /// Acceptance time, Unix seconds.
    pub submitted: i64,
    /// Operator whose certificate submitted it.
    pub submitter: String,
    /// Names of the approvers whose signatures counted.
    pub signers: Vec<String>,
    /// Valid from, Unix seconds.
    pub not_before: u64,
    /// Valid until, Unix seconds.
    pub expires: u64,
    /// `<target>/<binary>` the release names that are not uploaded yet.
    #[serde(default)]
    pub missing: Vec<String>,
    /// Index of the newest open wave (0: the first).
    pub wave: usize,
    /// Every wave, first to last.
    pub waves: Vec<WaveStatus>,
    /// Set when the hub stopped the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<ReleaseStop>,
    /// Its audit trail, oldest first: accepted, signatures replaced, binaries
    /// uploaded, waves opened, stopped.
    #[serde(default)]
    pub audit: Vec<AuditEntry>,
}

/// `GET /v1/releases`: every release the hub holds, newest version first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseList {
    /// The releases.
    pub releases: Vec<ReleaseStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_round_trip() {
        for s in ["online", "offline", "revoked", "pending"] {
            let v = NodeStatus::parse(s).unwrap();
            assert_eq!(v.as_str(), s);
            assert_eq!(serde_json::to_value(v).unwrap(), s);
        }
        assert_eq!(NodeStatus::parse("gone"), None);
    }

    #[test]
    fn job_phases_follow_the_clock() {
        assert_eq!(JobPhase::at(5, 10, 20), JobPhase::Scheduled);
        assert_eq!(JobPhase::at(10, 10, 20), JobPhase::Active);
        assert_eq!(JobPhase::at(20, 10, 20), JobPhase::Expired);
    }

    #[test]
    fn a_pending_entry_reads_back() {
        let text = r#"{"id":null,"status":"pending","key_fingerprint":"ab","country":"DE",
            "continent":null,"asn":null,"tags":[],"address":"127.0.0.1","requested":5,"last_poll":6,"approved":null}"#;
        let e: NodeEntry = serde_json::from_str(text).unwrap();
        assert_eq!((e.id, e.status), (None, NodeStatus::Pending));
        assert_eq!((e.requested, e.last_poll), (Some(5), Some(6)));
    }
}
