//! What nodes report besides results: heartbeats and gaps.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest sample a refusal summary carries, in bytes.
pub const MAX_REFUSAL_SAMPLE: usize = 512;

/// What a node refused from its stream since its last heartbeat, in one
/// report instead of one result per message: unreadable messages, jobs
/// without a quorum of valid signatures, replays. Anyone who can put bytes on
/// the stream can make these, so they never compete with real results.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefusalSummary {
    /// Start of the counted interval (Unix milliseconds).
    pub since_ms: u64,
    /// End of the counted interval (Unix milliseconds).
    pub until_ms: u64,
    /// Refusals per code (`invalid`, `forged-signature`, `replayed`, ...).
    pub counts: BTreeMap<String, u64>,
    /// One of them described (the first of the interval), at most
    /// [`MAX_REFUSAL_SAMPLE`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
}

impl RefusalSummary {
    /// All refusals counted.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// `POST /v1/heartbeat` body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Agent version.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_secs: u64,
    /// Results waiting in the outbox.
    pub outbox_depth: u64,
    /// Results dropped because the outbox was full, since the agent started.
    #[serde(default)]
    pub outbox_dropped: u64,
    /// The last error the agent saw, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Serial of the approval policy the node enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_serial: Option<u64>,
    /// Stream data refused since the last heartbeat the hub took, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusalSummary>,
}

/// Data of a `gap` event from the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapEvent {
    /// The last event id the subscriber had.
    pub requested: String,
    /// Oldest sequence number the hub still holds.
    pub oldest: u64,
}

/// `POST /v1/gap` body: the node tells the hub it missed messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GapReport {
    /// The last event id the node had.
    pub requested: String,
    /// Oldest sequence number the server still held, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<u64>,
    /// Free-text detail (e.g. "Nchan answered 410" or the event's data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
