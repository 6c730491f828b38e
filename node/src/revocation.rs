//! The node's certificate revoked by its hub: how the node tells revocation
//! from any other failure, and the marker the agent leaves in the data
//! directory so that `vantage-provision` (the only program allowed to write
//! the boot partition) can tell the volunteer.
//!
//! Only two answers count, both from the hub itself: the TLS alert
//! `certificate_revoked` (the hub's CRL refuses the certificate in the
//! handshake), or HTTP 403 with the code `certificate-revoked` (the hub's
//! database refuses it, before the CRL is reloaded or on a connection opened
//! earlier). Anything else (no network, timeouts, other alerts, other
//! refusals) may pass, and must never stop a node for good.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vantage_proto::api::ErrorBody;

use crate::client::rustls_error;
use crate::durable::atomic_write;
use crate::state::DataDir;

/// Name of the marker file in the data directory.
pub const FILE_NAME: &str = "revoked";

/// The hub's machine code for a revoked client certificate (docs/hub.md).
pub const HUB_CODE: &str = "certificate-revoked";

/// How the node learnt that its certificate is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The hub ended the TLS handshake with the alert `certificate_revoked`.
    TlsAlert,
    /// The hub answered HTTP 403 with the code `certificate-revoked`.
    HubAnswer,
}

impl Evidence {
    /// Stable machine code, stored in the marker.
    pub fn code(self) -> &'static str {
        match self {
            Evidence::TlsAlert => "tls-alert-certificate-revoked",
            Evidence::HubAnswer => "http-403-certificate-revoked",
        }
    }

    /// The evidence a stored [`Evidence::code`] names.
    pub fn from_code(code: &str) -> Option<Evidence> {
        [Evidence::TlsAlert, Evidence::HubAnswer]
            .into_iter()
            .find(|e| e.code() == code)
    }

    /// The evidence in words, for the log and the volunteer.
    pub fn describe(self) -> &'static str {
        match self {
            Evidence::TlsAlert => {
                "the hub refused the node's certificate as revoked when connecting (TLS alert \
                 certificate_revoked)"
            }
            Evidence::HubAnswer => {
                "the hub answered that the node's certificate is revoked (HTTP 403, code \
                 certificate-revoked)"
            }
        }
    }
}

/// Revocation, if a failed request to the hub shows it: only the TLS alert
/// `certificate_revoked` from the server counts. (An `InvalidCertificate`
/// error about the *hub's* certificate is the node judging the hub, not the
/// hub judging the node.)
pub fn from_error(e: &ureq::Error) -> Option<Evidence> {
    match rustls_error(e)? {
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRevoked) => {
            Some(Evidence::TlsAlert)
        }
        _ => None,
    }
}

/// Revocation, if the hub's answer shows it: HTTP 403 whose JSON body has
/// the code `certificate-revoked`.
pub fn from_answer(status: u16, body: &str) -> Option<Evidence> {
    if status != 403 {
        return None;
    }
    let answer: ErrorBody = serde_json::from_str(body).ok()?;
    (answer.code == HUB_CODE).then_some(Evidence::HubAnswer)
}

/// What the agent leaves in the data directory (`revoked`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// When the agent saw it (Unix time, seconds).
    pub at: i64,
    /// The node whose certificate was revoked.
    pub node_id: String,
    /// [`Evidence::code`].
    pub evidence: String,
    /// The request that was refused.
    pub url: String,
    /// The error or the hub's sentence, one line.
    pub detail: String,
}

impl Marker {
    /// A marker for now.
    pub fn new(node_id: &str, evidence: Evidence, url: &str, detail: &str) -> Self {
        Marker {
            at: crate::time::now(),
            node_id: node_id.to_owned(),
            evidence: evidence.code().to_owned(),
            url: url.to_owned(),
            detail: detail
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect(),
        }
    }

    /// Where the marker lives.
    pub fn path(data: &DataDir) -> PathBuf {
        data.root().join(FILE_NAME)
    }

    /// Stores the marker (write, fsync, rename, fsync dir): it must survive
    /// the power cut a volunteer answers a stopped node with.
    pub fn write(&self, data: &DataDir) -> io::Result<()> {
        let mut json = serde_json::to_vec_pretty(self).expect("Marker serialises");
        json.push(b'\n');
        atomic_write(&Self::path(data), &json, 0o644)
    }

    /// The marker if there is one. A marker that cannot be read or parsed
    /// still means the agent saw the node revoked: it is returned with what
    /// is wrong with it as its detail, so the node never falls back to
    /// saying ENROLLED.
    pub fn read(data: &DataDir) -> Option<Marker> {
        let path = Self::path(data);
        let damaged = |why: String| Marker {
            at: 0,
            node_id: String::new(),
            evidence: "unknown".into(),
            url: String::new(),
            detail: format!("{} cannot be read: {why}", path.display()),
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| damaged(e.to_string())))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some(damaged(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::AlertDescription as A;

    fn io_wrapped(e: rustls::Error) -> ureq::Error {
        ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn only_the_revoked_alert_counts() {
        let alert = rustls::Error::AlertReceived(A::CertificateRevoked);
        assert_eq!(
            from_error(&ureq::Error::Rustls(alert.clone())),
            Some(Evidence::TlsAlert)
        );
        // rustls' stream wraps its errors in io::Error on reads and writes.
        assert_eq!(from_error(&io_wrapped(alert)), Some(Evidence::TlsAlert));
        for other in [
            rustls::Error::AlertReceived(A::HandshakeFailure),
            rustls::Error::AlertReceived(A::CertificateExpired),
            rustls::Error::AlertReceived(A::BadCertificate),
            // The hub's own certificate revoked: not this node's.
            rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked),
        ] {
            assert_eq!(
                from_error(&ureq::Error::Rustls(other.clone())),
                None,
                "{other:?}"
            );
            assert_eq!(from_error(&io_wrapped(other.clone())), None, "{other:?}");
        }
    }

    #[test]
    fn network_errors_are_not_revocation() {
        for e in [
            ureq::Error::ConnectionFailed,
            ureq::Error::HostNotFound,
            ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused)),
            ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset)),
            ureq::Error::Io(io::Error::other("certificate revoked")),
        ] {
            assert_eq!(from_error(&e), None, "{e}");
        }
    }

    #[test]
    fn only_a_403_with_the_hubs_code_counts() {
        let body =
            |code: &str| format!(r#"{{"error": "client certificate revoked", "code": "{code}"}}"#);
        assert_eq!(
            from_answer(403, &body("certificate-revoked")),
            Some(Evidence::HubAnswer)
        );
        assert_eq!(from_answer(403, &body("certificate-expired")), None);
        assert_eq!(from_answer(403, &body("certificate-unknown")), None);
        assert_eq!(from_answer(401, &body("certificate-revoked")), None);
        assert_eq!(from_answer(500, &body("certificate-revoked")), None);
        // A proxy's error page that merely mentions it.
        assert_eq!(from_answer(403, "<html>certificate-revoked</html>"), None);
        assert_eq!(from_answer(403, ""), None);
    }

    #[test]
    fn marker_round_trips_and_a_damaged_one_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        assert_eq!(Marker::read(&data), None);
        let m = Marker::new(
            "n-0123456789",
            Evidence::TlsAlert,
            "https://hub:8443/v1/heartbeat",
            "received fatal alert:\nCertificateRevoked",
        );
        assert_eq!(m.detail, "received fatal alert:CertificateRevoked");
        m.write(&data).unwrap();
        assert_eq!(Marker::read(&data), Some(m));
        std::fs::write(Marker::path(&data), "{half").unwrap();
        let damaged = Marker::read(&data).unwrap();
        assert_eq!(damaged.evidence, "unknown");
        assert!(damaged.detail.contains("cannot be read"), "{damaged:?}");
    }
}
