//! What nodes report besides results: heartbeats (with what the node can
//! do) and gaps.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::owner::OwnerDigest;

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
    /// The address families that reach the hub from the node (absent from
    /// agents before capabilities, and before the first measurement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Capabilities>,
    /// A digest of the owner's policy (absent from agents before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerDigest>,
    /// Agent releases: whether the running agent came from one, and the last
    /// one that failed here (absent from agents before releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<crate::release::ReleaseReport>,
    /// The target triple the agent was built for (`aarch64-unknown-linux-musl`),
    /// so the hub offers releases with a binary for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// What a node can do from where it is: which address families work,
/// measured by reaching the hub over each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// The hub answered a TCP connection over IPv4.
    #[serde(default)]
    pub ipv4: bool,
    /// The hub answered a TCP connection over IPv6.
    #[serde(default)]
    pub ipv6: bool,
}

impl Capabilities {
    /// Whether the node has `cap`.
    pub fn has(&self, cap: Capability) -> bool {
        match cap {
            Capability::Ipv4 => self.ipv4,
            Capability::Ipv6 => self.ipv6,
        }
    }

    /// The capabilities it has, by name (`ipv4,ipv6`).
    pub fn names(&self) -> Vec<&'static str> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.has(*c))
            .map(Capability::as_str)
            .collect()
    }
}

/// One capability a selection can ask for (`cap=ipv6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// IPv4 works from the node.
    Ipv4,
    /// IPv6 works from the node.
    Ipv6,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 2] = [Self::Ipv4, Self::Ipv6];

    /// Its name in selections.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }

    /// From its name, any case.
    pub fn parse(s: &str) -> Option<Capability> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn heartbeats_of_older_agents_still_parse() {
        let hb: Heartbeat = serde_json::from_value(
            json!({"version": "0.1.0", "uptime_secs": 5, "outbox_depth": 0}),
        )
        .unwrap();
        assert_eq!((hb.caps, hb.owner), (None, None));
        let hb: Heartbeat = serde_json::from_value(json!({"version": "0.2.0",
            "uptime_secs": 5, "outbox_depth": 0, "caps": {"ipv4": true},
            "owner": {"allowed": ["ping"], "max_probes_per_minute": 30}}))
        .unwrap();
        let caps = hb.caps.unwrap();
        assert_eq!(caps.names(), ["ipv4"]);
        assert!(caps.has(Capability::Ipv4) && !caps.has(Capability::Ipv6));
        assert_eq!(hb.owner.unwrap().max_probes_per_minute, 30);
        assert_eq!(Capability::parse("IPv6"), Some(Capability::Ipv6));
        assert_eq!(Capability::parse("ipx"), None);
    }

    proptest! {
        #[test]
        fn heartbeats_round_trip(
            ipv4: bool, ipv6: bool, special: bool, rate: u32,
            allowed in proptest::collection::vec("[a-z]{1,10}", 0..6),
            with_caps: bool, with_owner: bool,
        ) {
            let hb = Heartbeat {
                version: "1".into(),
                caps: with_caps.then_some(Capabilities { ipv4, ipv6 }),
                owner: with_owner.then(|| OwnerDigest {
                    allowed: allowed.clone(),
                    allow_special_addresses: special,
                    max_probes_per_minute: rate,
                }),
                ..Heartbeat::default()
            };
            let text = serde_json::to_string(&hb).unwrap();
            prop_assert_eq!(serde_json::from_str::<Heartbeat>(&text).unwrap(), hb);
        }

        #[test]
        fn heartbeat_parsing_never_panics(s in "\\PC{0,200}") {
            let _ = serde_json::from_str::<Heartbeat>(&s);
        }
    }
}
