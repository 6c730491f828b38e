//! The message a node receives on a channel.

use crate::ProtoError;
use crate::job::SignedJob;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// `{"id": 9372, "channel": "cc.DE", "time": "Sun, 22 Jul 2012 23:30:24 GMT", "payload": {...}}`,
/// the form nginx push-stream users already consume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The hub's job-log sequence number.
    pub id: u64,
    /// The channel it was published on.
    pub channel: String,
    /// Publish time, IMF-fixdate.
    pub time: String,
    /// The signed job.
    pub payload: SignedJob,
}

impl Envelope {
    /// Wraps a signed job published now.
    pub fn new(id: u64, channel: impl Into<String>, payload: SignedJob, at: SystemTime) -> Self {
        Self {
            id,
            channel: channel.into(),
            time: httpdate::fmt_http_date(at),
            payload,
        }
    }

    /// Parses an envelope from the `data` of an event.
    /// Its signed job may not have a duplicate object key anywhere, and
    /// neither may the envelope.
    pub fn from_json(text: &str) -> Result<Self, ProtoError> {
        crate::canonical::check_no_duplicate_keys(text.as_bytes())?;
        Ok(serde_json::from_str(text)?)
    }

    /// The compact JSON text (one line, as SSE data needs).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serialises")
    }

    /// The publish time, if `time` is a valid HTTP date.
    pub fn published(&self) -> Result<SystemTime, ProtoError> {
        httpdate::parse_http_date(&self.time)
            .map_err(|e| ProtoError::invalid("envelope.time", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn legacy_example_parses() {
        let text = r#"{"id": 9372, "channel": "cc.DE", "time": "Sun, 22 Jul 2012 23:30:24 GMT",
                       "payload": {"job": {"v": 1}, "signatures": []}}"#;
        let e = Envelope::from_json(text).unwrap();
        assert_eq!(e.id, 9372);
        assert_eq!(
            e.published().unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_342_999_824)
        );
        let again = Envelope::from_json(&e.to_json()).unwrap();
        assert_eq!(again, e);
        assert!(!e.to_json().contains('\n'));
        let made = Envelope::new(
            1,
            "all",
            SignedJob {
                job: json!({}),
                signatures: vec![],
            },
            UNIX_EPOCH + Duration::from_secs(1_342_999_824),
        );
        assert_eq!(made.time, "Sun, 22 Jul 2012 23:30:24 GMT");
    }
}
