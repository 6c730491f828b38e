//! Talking to the hub's enrolment endpoints: `POST /v1/enrol` (no client
//! certificate; a token gets a certificate at once, no token leaves the node
//! pending until an admin approves its key) and `POST /v1/renew` (mTLS).

use serde::{Deserialize, Serialize};
pub use vantage_proto::enrol::{
    Declared, Endpoints, EnrolRequest, EnrolResponse, EnrolStatus, RenewRequest,
};

use crate::state::NodeState;

/// The largest response body accepted from the hub.
const MAX_BODY: u64 = 1 << 20;

/// A certificate the hub issued, with everything to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// `node.json`.
    pub node: NodeState,
    /// `cert.pem`.
    pub cert_pem: String,
    /// `chain.pem`.
    pub chain_pem: String,
}

/// What an enrolment attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolOutcome {
    /// The node has its certificate.
    Issued(Box<Issued>),
    /// The hub holds the request until an admin approves this fingerprint.
    Pending {
        /// Fingerprint of the node's key as the hub shows it.
        fingerprint: String,
        /// The hub's note for the volunteer or admin, if any.
        message: Option<String>,
    },
}

/// Why enrolment or renewal failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The hub could not be reached, or TLS failed.
    #[error("cannot reach the hub: {0}")]
    Transport(#[from] ureq::Error),
    /// The hub answered with an error status.
    #[error("the hub refused (HTTP {status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The hub's `error` text, or the start of its body.
        message: String,
    },
    /// The hub's answer is not what the protocol says.
    #[error("the hub's answer makes no sense: {0}")]
    BadResponse(String),
}

impl EnrolError {
    /// True when trying again later may help (network, server errors,
    /// rate limits); false when the hub refused the request itself.
    pub fn is_transient(&self) -> bool {
        match self {
            EnrolError::Transport(_) => true,
            EnrolError::Refused { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            EnrolError::BadResponse(_) => true,
        }
    }
}

/// Sends `POST /v1/enrol`. `agent` must trust the network CA (see
/// [`crate::client::agent`]) and need not present a client certificate.
pub fn enrol(
    agent: &ureq::Agent,
    hub: &str,
    req: &EnrolRequest,
) -> Result<EnrolOutcome, EnrolError> {
    let (status, resp) = post(agent, &hub_url(hub, "/v1/enrol"), req)?;
    match (status, resp.status) {
        (200, EnrolStatus::Issued) => issued(resp).map(|i| EnrolOutcome::Issued(Box::new(i))),
        (202, EnrolStatus::Pending) => Ok(EnrolOutcome::Pending {
            fingerprint: resp.fingerprint,
            message: resp.message,
        }),
        (s, st) => Err(EnrolError::BadResponse(format!(
            "HTTP {s} with status {st:?}"
        ))),
    }
}

/// Sends a renewal (`POST` to `renew_url`, the `renew` endpoint stored in
/// `node.json`, normally `<hub>/v1/renew`) with a new CSR for the same or a
/// new key. `agent` must present the node's current certificate.
pub fn renew(agent: &ureq::Agent, renew_url: &str, csr_pem: &str) -> Result<Issued, EnrolError> {
    let req = RenewRequest {
        csr: csr_pem.to_owned(),
    };
    let (status, resp) = post(agent, renew_url, &req)?;
    match (status, resp.status) {
        (200, EnrolStatus::Issued) => issued(resp),
        (s, st) => Err(EnrolError::BadResponse(format!(
            "HTTP {s} with status {st:?}"
        ))),
    }
}

/// The URL of `path` (starting with `/`) on the hub whose base URL is `hub`.
pub fn hub_url(hub: &str, path: &str) -> String {
    format!("{}{}", hub.trim_end_matches('/'), path)
}

fn post<T: Serialize>(
    agent: &ureq::Agent,
    url: &str,
    body: &T,
) -> Result<(u16, EnrolResponse), EnrolError> {
    let body = serde_json::to_vec(body).expect("request serialises");
    let mut resp = agent
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .send(&body[..])?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .lossy_utf8(true)
        .read_to_string()?;
    if !(200..300).contains(&status) {
        return Err(EnrolError::Refused {
            status,
            message: error_message(&text),
        });
    }
    let parsed = serde_json::from_str(&text).map_err(|e| EnrolError::BadResponse(e.to_string()))?;
    Ok((status, parsed))
}

/// The hub's `{"error": "..."}` text, or a short, printable start of the body.
fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let text = match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => body.trim().to_owned(),
    };
    let clean: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if clean.is_empty() {
        "(no reason given)".into()
    } else {
        clean
    }
}

fn issued(resp: EnrolResponse) -> Result<Issued, EnrolError> {
    let node = NodeState::from_response(&resp).ok_or_else(|| {
        EnrolError::BadResponse("issued without node id, attributes or endpoints".into())
    })?;
    let cert_pem = resp
        .certificate
        .ok_or_else(|| EnrolError::BadResponse("issued without a certificate".into()))?;
    Ok(Issued {
        node,
        cert_pem,
        chain_pem: resp.chain.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_short_and_printable() {
        assert_eq!(
            error_message(r#"{"error":"token already used"}"#),
            "token already used"
        );
        assert_eq!(error_message("  Bad Gateway\r\n"), "Bad Gateway");
        assert_eq!(error_message(""), "(no reason given)");
        assert_eq!(error_message(&"x\u{1b}".repeat(1000)).len(), 300);
    }

    #[test]
    fn hub_url_joins_without_double_slash() {
        assert_eq!(
            hub_url("https://h:8443/", "/v1/enrol"),
            "https://h:8443/v1/enrol"
        );
        assert_eq!(
            hub_url("https://h:8443", "/v1/enrol"),
            "https://h:8443/v1/enrol"
        );
    }

    #[test]
    fn transient_errors() {
        let refused = |status| EnrolError::Refused {
            status,
            message: String::new(),
        };
        assert!(refused(503).is_transient());
        assert!(refused(429).is_transient());
        assert!(!refused(403).is_transient());
        assert!(!refused(400).is_transient());
    }
}
