//! Agent releases for tests: a release of test binaries, signed by approver
//! keys, and heartbeats that report versions and failed releases.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use vantage_proto::release::{Artifact, SignedRelease};
use vantage_proto::sign::ApproverKey;

/// The target triple test nodes report.
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// Test binaries of `version`: per target, `vantage-agent` (and
/// `vantage-provision`) bytes that name the version.
pub fn binaries(version: &str, targets: &[&str]) -> BTreeMap<(String, String), Vec<u8>> {
    targets
        .iter()
        .flat_map(|t| {
            ["vantage-agent", "vantage-provision"].map(|b| {
                let bytes = format!("#!{b} {version} for {t}\n").into_bytes();
                ((t.to_string(), b.to_string()), bytes)
            })
        })
        .collect()
}

/// A release of `bins` valid for the next day: rolled out to everyone in
/// `waves`, stopping above `max_rollback` percent.
pub fn release(
    version: &str,
    bins: &BTreeMap<(String, String), Vec<u8>>,
    waves: &[u8],
    max_rollback: u8,
) -> Value {
    let mut targets: BTreeMap<&str, BTreeMap<&str, Artifact>> = BTreeMap::new();
    for ((t, b), bytes) in bins {
        targets.entry(t).or_default().insert(b, Artifact::of(bytes));
    }
    let now = crate::now();
    json!({"v": 1, "version": version, "targets": targets,
        "rollout": {"waves": waves, "max_rollback_percent": max_rollback, "confirm_secs": 300},
        "not_before": now - 60, "expires": now + 86_400, "proposer": "olga"})
}

/// `release` signed by each of `by`.
pub fn sign(release: &Value, by: &[&ApproverKey]) -> SignedRelease {
    let mut s = SignedRelease {
        release: release.clone(),
        signatures: Vec::new(),
    };
    for k in by {
        s.add_signature(k).unwrap();
    }
    s
}

/// A heartbeat of an agent running `version` built for [`TARGET`] that
/// failed `failed` (a version), if given.
pub fn heartbeat(version: &str, failed: Option<&str>) -> Value {
    let mut hb = json!({"version": version, "uptime_secs": 1, "outbox_depth": 0, "target": TARGET});
    if let Some(f) = failed {
        hb["release"] = json!({"failed": {"version": f, "code": "release-rolled-back",
            "detail": "the new agent was not confirmed in time"}});
    }
    hb
}
