//! Probe results as nodes report them.

use crate::ProtoError;
use crate::probe::ProbeKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest serialised result a node sends and a hub accepts.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// Outcome of one run of a job on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The probe ran and produced data.
    Ok,
    /// The probe ran and failed (`reason` says how).
    Error,
    /// The probe did not finish in time.
    Timeout,
    /// The node refused the job (`reason` says why); nothing ran.
    Refused,
}

/// A result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProbeResult {
    /// The job's id (or `"-"` when a refused payload had none).
    pub job_id: String,
    /// The reporting node; the hub checks it against the client certificate.
    pub node_id: String,
    /// The probe kind, if the job parsed far enough to tell.
    pub probe: Option<ProbeKind>,
    /// Start, Unix milliseconds.
    pub started_ms: u64,
    /// How long it ran.
    pub duration_ms: u64,
    /// Outcome.
    pub status: Status,
    /// Why, for `error`, `timeout` and `refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Stable short code of a refusal (`forged-signature`, `expired`, ...), or
    /// of a `dns` probe's network failure (`port-unreachable`, `no-answer`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Probe-specific data.
    #[serde(default)]
    pub data: Value,
    /// Run number of a repeated job (0 for one-shot jobs).
    #[serde(default)]
    pub seq: u32,
}

impl ProbeResult {
    /// Serialises, refusing results over [`MAX_RESULT_BYTES`].
    pub fn to_json(&self) -> Result<Vec<u8>, ProtoError> {
        let bytes = serde_json::to_vec(self)?;
        if bytes.len() > MAX_RESULT_BYTES {
            return Err(ProtoError::invalid(
                "result",
                format!(
                    "{} bytes is over the {MAX_RESULT_BYTES}-byte limit",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Parses a result, refusing oversized input before parsing it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtoError> {
        if bytes.len() > MAX_RESULT_BYTES {
            return Err(ProtoError::invalid(
                "result",
                format!(
                    "{} bytes is over the {MAX_RESULT_BYTES}-byte limit",
                    bytes.len()
                ),
            ));
        }
        let r: Self = serde_json::from_slice(bytes)?;
        crate::job::validate_job_id(&r.job_id)
            .or_else(|e| if r.job_id == "-" { Ok(()) } else { Err(e) })?;
        crate::channel::validate_node_id(&r.node_id)?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample() -> ProbeResult {
        ProbeResult {
            job_id: "j1".into(),
            node_id: "n-1".into(),
            probe: Some(ProbeKind::Dns),
            started_ms: 1,
            duration_ms: 2,
            status: Status::Refused,
            reason: Some("expired".into()),
            code: Some("expired".into()),
            data: json!({}),
            seq: 0,
        }
    }

    #[test]
    fn round_trip_and_size_limit() {
        let r = sample();
        assert_eq!(ProbeResult::from_json(&r.to_json().unwrap()).unwrap(), r);
        let mut big = sample();
        big.data = json!("x".repeat(MAX_RESULT_BYTES));
        assert!(big.to_json().unwrap_err().to_string().contains("limit"));
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = ProbeResult::from_json(&bytes);
        }
    }
}
