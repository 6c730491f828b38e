//! Agent releases: the quorum-signed record that lets a node replace its agent.
//!
//! A release names a version and, for each target triple, the SHA-256 and size
//! of the binaries built from the tagged source (builds are reproducible, so
//! every approver can rebuild and compare before signing). It is signed by a
//! quorum of the network's approvers under its own domain string, like a
//! mandate. The node checks the quorum against the policy it holds, the
//! release's validity window, that its own attributes match the rollout's
//! selection, that the version is newer than the one it runs (unless the
//! release allows a downgrade under the same quorum), and then the downloaded
//! bytes against the hash and size. Where the bytes come from does not matter:
//! the hub serves them, and any mirror works.
//!
//! The hub only paces the rollout: it offers a release to the nodes of the
//! waves it has opened ([`Release::wave_of`] places every node in one wave,
//! the same way on hub and node) and stops by itself when too many nodes of a
//! wave rolled back. A hub that misbehaves can at worst offer a signed release
//! sooner or to fewer nodes; it cannot make a node run anything unsigned.

use crate::ProtoError;
use crate::canonical;
use crate::channel::NodeAttrs;
use crate::node::Capabilities;
use crate::policy::{ApprovalError, Policy};
use crate::select::Selection;
use crate::sign::{ApproverKey, Signature};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The release format version this crate speaks.
pub const RELEASE_FORMAT: u32 = 1;
/// Most bytes of a signed release read from the network or a file.
pub const MAX_RELEASE_BYTES: u64 = 64 * 1024;
/// Most bytes a release may declare for one binary (the agent is about 4 MiB).
pub const MAX_BINARY_BYTES: u64 = 64 * 1024 * 1024;
/// Shortest and longest time a node waits, after switching, for the hub to
/// accept a heartbeat from the new agent before it rolls back.
pub const CONFIRM_SECS: std::ops::RangeInclusive<u64> = 30..=86_400;
/// The binaries a release may carry per target.
pub const BINARIES: [&str; 2] = ["vantage-agent", "vantage-provision"];

/// One binary: what its bytes must hash to, and how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// SHA-256 of the file, 64 lower-case hex digits.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl Artifact {
    /// The artifact of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
        }
    }

    /// Whether `bytes` are exactly this artifact; the error names what differs.
    pub fn check(&self, bytes: &[u8]) -> Result<(), ReleaseError> {
        if bytes.len() as u64 != self.size {
            return Err(ReleaseError::SizeMismatch {
                want: self.size,
                got: bytes.len() as u64,
            });
        }
        let got = sha256_hex(bytes);
        if got != self.sha256 {
            return Err(ReleaseError::HashMismatch {
                want: self.sha256.clone(),
                got,
            });
        }
        Ok(())
    }

    fn validate(&self, field: &str) -> Result<(), ProtoError> {
        let hex = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(ProtoError::invalid(
                format!("{field}.sha256"),
                "expected 64 lower-case hex digits",
            ));
        }
        if self.size == 0 || self.size > MAX_BINARY_BYTES {
            return Err(ProtoError::invalid(
                format!("{field}.size"),
                format!("expected 1 to {MAX_BINARY_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How a release reaches the network: which nodes, in which waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// The nodes the release is for; a node outside it refuses the release.
    #[serde(default = "everyone")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub select: Selection,
    /// Cumulative percentages of the matching nodes, one per wave, strictly
    /// increasing, from 1 to 100: `[5, 25, 100]` offers it to 5 % first.
    pub waves: Vec<u8>,
    /// A wave in which more than this percentage of the nodes that tried
    /// rolled back stops the rollout.
    pub max_rollback_percent: u8,
    /// After switching, the new agent must have a heartbeat accepted by the
    /// hub within this many seconds, or the node rolls back.
    pub confirm_secs: u64,
}

fn everyone() -> Selection {
    Selection::Everyone
}

/// A release (the signed part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Format version, always [`RELEASE_FORMAT`].
    pub v: u32,
    /// The agent version (SemVer), as the new agent reports it in heartbeats.
    pub version: String,
    /// Per target triple (`aarch64-unknown-linux-musl`,
    /// `arm-unknown-linux-musleabihf`, …), the binaries by file name
    /// ([`BINARIES`]; `vantage-agent` is required).
    pub targets: BTreeMap<String, BTreeMap<String, Artifact>>,
    /// Extra places to fetch the binaries from (`https://…/`, the file is
    /// `<mirror><version>/<target>/<binary>`); the hub always serves them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// Which nodes, in which waves.
    pub rollout: Rollout,
    /// Whether a node running a newer version may install this one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_downgrade: bool,
    /// Unix seconds from which it is valid.
    pub not_before: u64,
    /// Unix seconds from which it is no longer offered or installed.
    pub expires: u64,
    /// Who proposed it.
    pub proposer: String,
    /// What changed, in words, for approvers and volunteers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

impl Release {
    /// Parses and validates the signed object.
    pub fn from_value(value: &Value) -> Result<Self, ProtoError> {
        let release: Self = serde_json::from_value(value.clone())
            .map_err(|e| ProtoError::invalid("release", e.to_string()))?;
        release.validate()?;
        Ok(release)
    }

    /// The release's own consistency.
    pub fn validate(&self) -> Result<(), ProtoError> {
        if self.v != RELEASE_FORMAT {
            return Err(ProtoError::invalid(
                "release.v",
                format!("version {} is not supported", self.v),
            ));
        }
        self.semver()?;
        if self.targets.is_empty() {
            return Err(ProtoError::invalid("release.targets", "names no target"));
        }
        for (triple, bins) in &self.targets {
            validate_target(triple, bins)?;
        }
        for m in &self.mirrors {
            if !(m.starts_with("https://") && m.ends_with('/')) {
                return Err(ProtoError::invalid(
                    "release.mirrors",
                    format!("{m:?}: expected an https:// URL ending in /"),
                ));
            }
        }
        self.rollout.validate()?;
        if self.expires <= self.not_before {
            return Err(ProtoError::invalid(
                "release.expires",
                "must be after not_before",
            ));
        }
        Ok(())
    }

    /// The version as SemVer.
    pub fn semver(&self) -> Result<semver::Version, ProtoError> {
        semver::Version::parse(&self.version)
            .map_err(|e| ProtoError::invalid("release.version", format!("not SemVer: {e}")))
    }

    /// The artifact of `binary` for `target`, if the release has one.
    pub fn artifact(&self, target: &str, binary: &str) -> Option<&Artifact> {
        self.targets.get(target)?.get(binary)
    }

    /// The wave (index into `rollout.waves`) a node belongs to, or `None` if
    /// the last wave stops short of it. Hub and node compute it the same way:
    /// a node's bucket (0-9999) is taken from SHA-256 of the version and its id,
    /// so each release spreads its first waves over different nodes.
    pub fn wave_of(&self, node_id: &str) -> Option<usize> {
        let bucket = wave_bucket(&self.version, node_id);
        self.rollout
            .waves
            .iter()
            .position(|&pct| bucket < u32::from(pct) * 100)
    }

    /// Checks whether this node should install the release now: the window,
    /// the selection, its target, and the version against the one it runs.
    pub fn check_for_node(
        &self,
        node: &NodeAttrs,
        caps: Option<&Capabilities>,
        target: &str,
        running: &str,
        now: u64,
    ) -> Result<(), ReleaseError> {
        if now < self.not_before {
            return Err(ReleaseError::NotYetValid {
                not_before: self.not_before,
                now,
            });
        }
        if now >= self.expires {
            return Err(ReleaseError::Expired {
                expires: self.expires,
                now,
            });
        }
        if !self.rollout.select.matches(node, caps) {
            return Err(ReleaseError::NotTargeted(self.rollout.select.to_string()));
        }
        if self.artifact(target, BINARIES[0]).is_none() {
            return Err(ReleaseError::NoTarget(target.to_string()));
        }
        self.check_version(running)
    }

    /// Refuses a version that is not newer than `running`, unless the release
    /// allows a downgrade; the same version is [`ReleaseError::AlreadyRunning`].
    pub fn check_version(&self, running: &str) -> Result<(), ReleaseError> {
        let new = self.semver().map_err(ReleaseError::Invalid)?;
        let Ok(old) = semver::Version::parse(running) else {
            return Ok(());
        };
        match new.cmp(&old) {
            std::cmp::Ordering::Equal => Err(ReleaseError::AlreadyRunning(self.version.clone())),
            std::cmp::Ordering::Less if !self.allow_downgrade => Err(ReleaseError::Downgrade {
                release: self.version.clone(),
                running: running.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The release in a few lines of plain words, for approvers.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "release {} proposed by {}\n  valid {} .. {} (unix seconds)\n",
            self.version, self.proposer, self.not_before, self.expires
        );
        for (triple, bins) in &self.targets {
            for (name, a) in bins {
                out.push_str(&format!(
                    "  {triple} {name}: {} bytes, sha256 {}\n",
                    a.size, a.sha256
                ));
            }
        }
        let waves: Vec<String> = self.rollout.waves.iter().map(|w| format!("{w}%")).collect();
        out.push_str(&format!(
            "  rollout to {} in waves {}; stops if more than {}% of a wave roll back; \
             a node rolls back unless the hub accepts its heartbeat within {} s\n",
            self.rollout.select,
            waves.join(", "),
            self.rollout.max_rollback_percent,
            self.rollout.confirm_secs
        ));
        if self.allow_downgrade {
            out.push_str("  ALLOWS DOWNGRADE: nodes running a newer version install it\n");
        }
        if !self.notes.is_empty() {
            out.push_str(&format!("  notes: {}\n", self.notes));
        }
        out
    }
}

fn validate_target(triple: &str, bins: &BTreeMap<String, Artifact>) -> Result<(), ProtoError> {
    let field = format!("release.targets.{triple}");
    let well_formed = !triple.is_empty()
        && triple.len() <= 64
        && triple
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !well_formed {
        return Err(ProtoError::invalid(
            field,
            "a target triple is [A-Za-z0-9_-]{1,64}",
        ));
    }
    if !bins.contains_key(BINARIES[0]) {
        return Err(ProtoError::invalid(field, "has no vantage-agent"));
    }
    for (name, artifact) in bins {
        if !BINARIES.contains(&name.as_str()) {
            return Err(ProtoError::invalid(
                format!("{field}.{name}"),
                format!("unknown binary; expected one of {}", BINARIES.join(", ")),
            ));
        }
        artifact.validate(&format!("{field}.{name}"))?;
    }
    Ok(())
}

impl Rollout {
    fn validate(&self) -> Result<(), ProtoError> {
        let increasing = self.waves.windows(2).all(|w| w[0] < w[1]);
        let in_range = self.waves.iter().all(|&w| (1..=100).contains(&w));
        if self.waves.is_empty() || !increasing || !in_range {
            return Err(ProtoError::invalid(
                "release.rollout.waves",
                "expected strictly increasing percentages from 1 to 100, e.g. [5, 25, 100]",
            ));
        }
        if self.max_rollback_percent > 100 {
            return Err(ProtoError::invalid(
                "release.rollout.max_rollback_percent",
                "expected 0 to 100",
            ));
        }
        if !CONFIRM_SECS.contains(&self.confirm_secs) {
            return Err(ProtoError::invalid(
                "release.rollout.confirm_secs",
                format!(
                    "expected {} to {} seconds",
                    CONFIRM_SECS.start(),
                    CONFIRM_SECS.end()
                ),
            ));
        }
        Ok(())
    }
}

/// A node's bucket for a release's waves, 0-9999.
pub fn wave_bucket(version: &str, node_id: &str) -> u32 {
    let mut input = Vec::with_capacity(version.len() + node_id.len() + 24);
    input.extend_from_slice(b"vantage-release-wave\0");
    input.extend_from_slice(version.as_bytes());
    input.push(0);
    input.extend_from_slice(node_id.as_bytes());
    let d = ring::digest::digest(&ring::digest::SHA256, &input);
    let b = d.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % 10_000
}

/// A release with its approvers' signatures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedRelease {
    /// The release object exactly as signed.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub release: Value,
    /// Approver signatures over [`canonical::release_signing_bytes`] of `release`.
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

impl SignedRelease {
    /// Parses a signed release from JSON text (duplicate keys refused, at most
    /// [`MAX_RELEASE_BYTES`]).
    pub fn from_json(text: &[u8]) -> Result<Self, ProtoError> {
        if text.len() as u64 > MAX_RELEASE_BYTES {
            return Err(ProtoError::invalid(
                "release",
                format!("more than {MAX_RELEASE_BYTES} bytes"),
            ));
        }
        canonical::check_no_duplicate_keys(text)?;
        Ok(serde_json::from_slice(text)?)
    }

    /// Adds one approver's signature (replacing an earlier one of the same key).
    pub fn add_signature(&mut self, key: &ApproverKey) -> Result<(), ProtoError> {
        let sig = key.sign_bytes(&canonical::release_signing_bytes(&self.release)?);
        self.signatures.retain(|s| s.key_id != sig.key_id);
        self.signatures.push(sig);
        Ok(())
    }

    /// The release, if a quorum of `policy`'s approvers signed exactly these
    /// bytes, with the names of the approvers who signed.
    pub fn verify(&self, policy: &Policy) -> Result<(Release, Vec<String>), ReleaseError> {
        let release = Release::from_value(&self.release).map_err(ReleaseError::Invalid)?;
        let bytes =
            canonical::release_signing_bytes(&self.release).map_err(ReleaseError::Invalid)?;
        let approvers = policy
            .check_approvals(&bytes, &self.signatures)
            .map_err(ReleaseError::Approval)?;
        Ok((release, approvers))
    }
}

/// Why a release is refused, or failed on a node. Each has a stable code
/// ([`ReleaseError::code`]) that nodes report in heartbeats and the hub counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The release does not parse or validate.
    #[error("invalid release: {0}")]
    Invalid(ProtoError),
    /// The signatures do not meet the policy.
    #[error("release: {0}")]
    Approval(ApprovalError),
    /// Before `not_before`.
    #[error("not valid before {not_before} (now {now})")]
    NotYetValid {
        /// The release's `not_before`.
        not_before: u64,
        /// The checker's clock.
        now: u64,
    },
    /// `expires` has passed.
    #[error("expired at {expires} (now {now})")]
    Expired {
        /// The release's `expires`.
        expires: u64,
        /// The checker's clock.
        now: u64,
    },
    /// The node is outside the rollout's selection.
    #[error("not targeted: this node is not in the release's selection ({0})")]
    NotTargeted(String),
    /// The release has no binary for the node's target triple.
    #[error("the release has no vantage-agent for target {0}")]
    NoTarget(String),
    /// The node runs this version already.
    #[error("version {0} is already running")]
    AlreadyRunning(String),
    /// The release is older than the running agent and does not allow it.
    #[error(
        "downgrade refused: release {release} is older than the running {running} \
         and does not say allow_downgrade"
    )]
    Downgrade {
        /// The release's version.
        release: String,
        /// The running version.
        running: String,
    },
    /// The downloaded file has another size.
    #[error("size mismatch: the release says {want} bytes, the download has {got}")]
    SizeMismatch {
        /// Declared.
        want: u64,
        /// Downloaded.
        got: u64,
    },
    /// The downloaded file has another SHA-256.
    #[error("hash mismatch: the release says sha256 {want}, the download has {got}")]
    HashMismatch {
        /// Declared.
        want: String,
        /// Downloaded.
        got: String,
    },
    /// Fetching the binary failed.
    #[error("download failed: {0}")]
    Download(String),
    /// The new binary did not pass its self-test on this node.
    #[error("the new binary failed its self-test: {0}")]
    SelfTest(String),
    /// The new agent crashed, failed to start or was not confirmed in time,
    /// and the node went back to the previous one.
    #[error("rolled back: {0}")]
    RolledBack(String),
}

impl ReleaseError {
    /// A stable short code for programs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "release-invalid",
            Self::Approval(ApprovalError::Forged { .. }) => "forged-signature",
            Self::Approval(ApprovalError::UnknownApprover { .. }) => "unknown-approver",
            Self::Approval(ApprovalError::TooFew { .. }) => "too-few-approvals",
            Self::NotYetValid { .. } => "release-not-yet-valid",
            Self::Expired { .. } => "release-expired",
            Self::NotTargeted(_) => "release-not-targeted",
            Self::NoTarget(_) => "release-no-target",
            Self::AlreadyRunning(_) => "release-already-running",
            Self::Downgrade { .. } => "release-downgrade",
            Self::SizeMismatch { .. } => "release-size-mismatch",
            Self::HashMismatch { .. } => "release-hash-mismatch",
            Self::Download(_) => "release-download",
            Self::SelfTest(_) => "release-selftest",
            Self::RolledBack(_) => "release-rolled-back",
        }
    }
}

/// What a node reports about releases in its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseReport {
    /// The release version the node last failed to install or rolled back
    /// from, if any (kept until a later release succeeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedRelease>,
    /// Whether the running agent came from a release (not the image's own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_release: bool,
}

/// A release a node did not keep, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FailedRelease {
    /// Its version.
    pub version: String,
    /// The [`ReleaseError::code`].
    pub code: String,
    /// The error in words.
    pub detail: String,
}

impl fmt::Display for FailedRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.version, self.code, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{key, policy};
    use serde_json::json;

    fn release_value(version: &str) -> Value {
        json!({
            "v": 1, "version": version,
            "targets": {"aarch64-unknown-linux-musl": {"vantage-agent": Artifact::of(b"agent")}},
            "rollout": {"waves": [10, 50, 100], "max_rollback_percent": 20, "confirm_secs": 300},
            "not_before": 100, "expires": 1000, "proposer": "ana"
        })
    }

    fn signed(version: &str, keys: &[u8]) -> SignedRelease {
        let mut s = SignedRelease {
            release: release_value(version),
            signatures: vec![],
        };
        for &k in keys {
            s.add_signature(&key(k)).unwrap();
        }
        s
    }

    fn node() -> NodeAttrs {
        serde_json::from_value(json!({"node_id": "n1", "country": "DE"})).unwrap()
    }

    #[test]
    fn quorum_verifies_and_one_signature_does_not() {
        let (r, who) = signed("0.2.0", &[1, 2]).verify(&policy()).unwrap();
        assert_eq!((r.version.as_str(), who.len()), ("0.2.0", 2));
        let err = signed("0.2.0", &[1]).verify(&policy()).unwrap_err();
        assert_eq!(err.code(), "too-few-approvals");
        let err = signed("0.2.0", &[1, 4]).verify(&policy()).unwrap_err();
        assert_eq!(err.code(), "unknown-approver");
    }

    #[test]
    fn tampered_release_is_forged() {
        let mut s = signed("0.2.0", &[1, 2]);
        s.release["targets"]["aarch64-unknown-linux-musl"]["vantage-agent"]["size"] = json!(6);
        assert_eq!(s.verify(&policy()).unwrap_err().code(), "forged-signature");
    }

    #[test]
    fn another_domain_does_not_verify() {
        let mut s = signed("0.2.0", &[]);
        let bytes = canonical::mandate_signing_bytes(&s.release).unwrap();
        s.signatures = vec![key(1).sign_bytes(&bytes), key(2).sign_bytes(&bytes)];
        assert_eq!(s.verify(&policy()).unwrap_err().code(), "forged-signature");
    }

    #[test]
    fn versions_only_go_up_unless_allowed() {
        let r = Release::from_value(&release_value("0.2.0")).unwrap();
        assert!(r.check_version("0.1.9").is_ok());
        assert_eq!(
            r.check_version("0.2.0").unwrap_err().code(),
            "release-already-running"
        );
        assert_eq!(
            r.check_version("0.10.0").unwrap_err().code(),
            "release-downgrade"
        );
        let mut v = release_value("0.2.0");
        v["allow_downgrade"] = json!(true);
        assert!(
            Release::from_value(&v)
                .unwrap()
                .check_version("0.10.0")
                .is_ok()
        );
    }

    #[test]
    fn node_checks_window_selection_and_target() {
        let mut v = release_value("0.2.0");
        v["rollout"]["select"] = json!({"country": "FR"});
        let r = Release::from_value(&v).unwrap();
        let t = "aarch64-unknown-linux-musl";
        let code = |now, target| {
            r.check_for_node(&node(), None, target, "0.1.0", now)
                .unwrap_err()
                .code()
        };
        assert_eq!(code(50, t), "release-not-yet-valid");
        assert_eq!(code(1000, t), "release-expired");
        assert_eq!(code(500, t), "release-not-targeted");
        let r = Release::from_value(&release_value("0.2.0")).unwrap();
        assert!(r.check_for_node(&node(), None, t, "0.1.0", 500).is_ok());
        assert_eq!(
            r.check_for_node(&node(), None, "x86_64-unknown-linux-musl", "0.1.0", 500)
                .unwrap_err()
                .code(),
            "release-no-target"
        );
    }

    #[test]
    fn bad_releases_are_invalid() {
        for (path, bad) in [
            ("version", json!("two")),
            (
                "rollout",
                json!({"waves": [50, 10], "max_rollback_percent": 5, "confirm_secs": 60}),
            ),
            (
                "rollout",
                json!({"waves": [0], "max_rollback_percent": 5, "confirm_secs": 60}),
            ),
            (
                "rollout",
                json!({"waves": [100], "max_rollback_percent": 5, "confirm_secs": 1}),
            ),
            ("targets", json!({})),
            (
                "targets",
                json!({"a": {"vantage-provision": Artifact::of(b"p")}}),
            ),
            (
                "targets",
                json!({"a": {"vantage-agent": {"sha256": "AB", "size": 1}}}),
            ),
            (
                "targets",
                json!({"a/b": {"vantage-agent": Artifact::of(b"p")}}),
            ),
            ("mirrors", json!(["http://m/"])),
            ("expires", json!(100)),
        ] {
            let mut v = release_value("0.2.0");
            v[path] = bad.clone();
            let err = Release::from_value(&v).unwrap_err();
            assert_eq!(err.code(), "invalid", "{path}={bad}: {err}");
        }
    }

    #[test]
    fn artifact_check_names_the_difference() {
        let a = Artifact::of(b"agent");
        assert!(a.check(b"agent").is_ok());
        assert_eq!(
            a.check(b"agen").unwrap_err().code(),
            "release-size-mismatch"
        );
        assert_eq!(
            a.check(b"agenT").unwrap_err().code(),
            "release-hash-mismatch"
        );
    }

    #[test]
    fn waves_are_cumulative_and_spread() {
        let r = Release::from_value(&release_value("0.2.0")).unwrap();
        let mut per_wave = [0u32; 3];
        for i in 0..10_000 {
            per_wave[r.wave_of(&format!("node-{i}")).unwrap()] += 1;
        }
        // 10 %, 40 %, 50 % of the nodes, within sampling noise.
        assert!((800..1200).contains(&per_wave[0]), "{per_wave:?}");
        assert!((3600..4400).contains(&per_wave[1]), "{per_wave:?}");
        assert!((4600..5400).contains(&per_wave[2]), "{per_wave:?}");
        let mut partial = release_value("0.2.0");
        partial["rollout"]["waves"] = json!([1]);
        let p = Release::from_value(&partial).unwrap();
        let outside = (0..1000)
            .filter(|i| p.wave_of(&format!("node-{i}")).is_none())
            .count();
        assert!(outside > 900, "{outside}");
    }

    #[test]
    fn oversized_text_is_refused_before_parsing() {
        let text = vec![b' '; MAX_RELEASE_BYTES as usize + 1];
        assert_eq!(
            SignedRelease::from_json(&text).unwrap_err().code(),
            "invalid"
        );
    }
}
