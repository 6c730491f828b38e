//! What nodes report besides results: heartbeats and gaps.

use serde::{Deserialize, Serialize};

/// `POST /v1/heartbeat` body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
