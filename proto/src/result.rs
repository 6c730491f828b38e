//! Probe results as nodes report them.

use crate::ProtoError;
use crate::data::{ProbeData, TruncatedData};
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
    /// Probe-specific data: for `ok` results a [`ProbeData`] of the probe's
    /// kind (read it with [`ProbeResult::probe_data`]), or a [`TruncatedData`]
    /// when the node dropped it for size; `null` otherwise.
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

    /// The typed data of an `ok` result; `None` for other results and when
    /// the node dropped the data as too large ([`TruncatedData`], `reason`
    /// says so). An error when the data is not that of the result's probe kind.
    pub fn probe_data(&self) -> Result<Option<ProbeData>, ProtoError> {
        if self.status != Status::Ok
            || TruncatedData::deserialize(&self.data).is_ok_and(|t| t.truncated)
        {
            return Ok(None);
        }
        let kind = self
            .probe
            .ok_or_else(|| ProtoError::invalid("probe", "an ok result names its probe kind"))?;
        ProbeData::from_value(kind, &self.data)
            .map(Some)
            .map_err(|e| {
                ProtoError::invalid("data", format!("not the data of a {kind} probe: {e}"))
            })
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

    #[test]
    fn typed_data_by_kind_status_and_truncation() {
        let mut r = sample();
        assert_eq!(r.probe_data(), Ok(None), "a refusal has no data");
        r.status = Status::Ok;
        r.probe = Some(ProbeKind::Tcp);
        r.data = json!({"peer": "127.0.0.1:1", "dns_ms": 0.0, "connect_ms": 0.5});
        let Ok(Some(ProbeData::Tcp(d))) = r.probe_data() else {
            panic!("{:?}", r.probe_data())
        };
        assert_eq!(d.connect_ms, 0.5);
        r.probe = Some(ProbeKind::Ping);
        assert!(r.probe_data().unwrap_err().to_string().contains("ping"));
        r.probe = None;
        assert!(r.probe_data().is_err());
        r.data = json!({"truncated": true, "result_bytes": 70000});
        assert_eq!(r.probe_data(), Ok(None));
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = ProbeResult::from_json(&bytes);
        }
    }
}
