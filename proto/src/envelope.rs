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

    /// The JSON text of an envelope whose signed job is already JSON text
    /// (`payload`, inserted as it is): the form a hub publishes, on its own
    /// stream and to Nchan alike. A hub keeps each job as text and sends it
    /// on every channel, so it encodes envelopes without parsing the job
    /// again; for a compact `payload` the text equals [`Envelope::to_json`]
    /// of the parsed envelope.
    pub fn encode(id: u64, channel: &str, at: SystemTime, payload: &str) -> String {
        // Only the channel and the time need JSON quoting; the field order is
        // the struct's, as `to_json` writes it.
        let quoted = |s: &str| serde_json::to_string(s).expect("a string always serialises");
        format!(
            "{{\"id\":{id},\"channel\":{},\"time\":{},\"payload\":{payload}}}",
            quoted(channel),
            quoted(&httpdate::fmt_http_date(at)),
        )
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
                mandated: None,
            },
            UNIX_EPOCH + Duration::from_secs(1_342_999_824),
        );
        assert_eq!(made.time, "Sun, 22 Jul 2012 23:30:24 GMT");
    }

    #[test]
    fn encode_is_to_json_of_the_parsed_envelope() {
        let at = UNIX_EPOCH + Duration::from_secs(1_342_999_824);
        let payload = SignedJob {
            job: json!({"id": "j1", "v": 1, "note": "a \"quoted\" word"}),
            signatures: vec![],
            mandated: None,
        };
        let compact = serde_json::to_string(&payload).unwrap();
        let text = Envelope::encode(9372, "cc.DE", at, &compact);
        assert_eq!(
            text,
            Envelope::new(9372, "cc.DE", payload.clone(), at).to_json()
        );
        let back = Envelope::from_json(&text).unwrap();
        assert_eq!((back.id, back.payload), (9372, payload));
        // A channel name is validated elsewhere; here it is quoted whatever it holds.
        assert!(Envelope::from_json(&Envelope::encode(1, "a\"b", at, &compact)).is_ok());
    }
}
