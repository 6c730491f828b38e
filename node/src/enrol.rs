//! Talking to the hub's enrolment endpoints: `POST /v1/enrol` (no client
//! certificate; a token gets a certificate at once, no token leaves the node
//! pending until an admin approves its key) and `POST /v1/renew` (mTLS).

use serde::{Deserialize, Serialize};
pub use vantage_proto::enrol::{
    AttrsChange, AttrsRequest, AttrsResponse, Declared, Endpoints, EnrolRequest, EnrolResponse,
    EnrolStatus, RenewRequest,
};

use crate::cert::CertInfo;
use crate::client::{self, ClientIdentity, PinnedCa, Timeouts};
use crate::csr::NodeKey;
use crate::state::{DataDir, NodeState};

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
    /// The status and reason when the hub refused the request itself, so
    /// that asking again the same way cannot help; `None` when trying again
    /// later may help (network, server errors, rate limits).
    pub fn permanent_refusal(&self) -> Option<(u16, &str)> {
        match self {
            EnrolError::Refused { status, message }
                if !(*status >= 500 || *status == 429 || *status == 408) =>
            {
                Some((*status, message))
            }
            _ => None,
        }
    }

    /// True when trying again later may help.
    pub fn is_transient(&self) -> bool {
        self.permanent_refusal().is_none()
    }
}

/// Sends `POST /v1/enrol`. `agent` must trust the network CA (see
/// [`crate::client::agent`]) and need not present a client certificate.
pub fn enrol(
    agent: &ureq::Agent,
    hub: &str,
    req: &EnrolRequest,
) -> Result<EnrolOutcome, EnrolError> {
    let (status, resp): (u16, EnrolResponse) = post(agent, &hub_url(hub, "/v1/enrol"), req)?;
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
    let (status, resp): (u16, EnrolResponse) = post(agent, renew_url, &req)?;
    match (status, resp.status) {
        (200, EnrolStatus::Issued) => issued(resp),
        (s, st) => Err(EnrolError::BadResponse(format!(
            "HTTP {s} with status {st:?}"
        ))),
    }
}

/// Why renewing the stored identity failed.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The node has no usable identity to renew (not enrolled, damaged files).
    #[error("no identity to renew: {0}")]
    NoIdentity(String),
    /// The hub could not be reached or refused.
    #[error(transparent)]
    Hub(#[from] EnrolError),
    /// The new certificate could not be stored; the old one is still in place.
    #[error("cannot store the renewed certificate: {0}")]
    Store(String),
}

/// Renews the node's certificate for its current key (what the agent calls
/// when a third of the lifetime is left): mTLS with the stored identity to
/// the `renew` endpoint in `node.json`, then the new certificate, chain and
/// `node.json` are stored atomically. The key never changes, so a crash at
/// any point leaves a matching key and certificate.
pub fn renew_stored(
    data: &DataDir,
    ca: &PinnedCa,
    timeouts: Timeouts,
) -> Result<Issued, RenewError> {
    let no = |e: &dyn std::fmt::Display| RenewError::NoIdentity(e.to_string());
    let node = data
        .read_node()
        .map_err(|e| no(&e))?
        .ok_or_else(|| no(&"node.json is missing"))?;
    let key_pem = data
        .read_key()
        .map_err(|e| no(&e))?
        .ok_or_else(|| no(&"key.pem is missing"))?;
    let key = NodeKey::from_pem(&key_pem).map_err(|e| no(&e))?;
    let identity = ClientIdentity::load(data).map_err(|e| no(&e))?;
    let csr = key.csr_pem(Some(&node.node_id)).map_err(|e| no(&e))?;
    let agent = client::agent(ca, Some(&identity), timeouts);
    let issued = renew(&agent, &node.endpoints.renew, &csr)?;
    let cert = CertInfo::from_pem(&issued.cert_pem)
        .map_err(|e| EnrolError::BadResponse(format!("renewed certificate: {e}")))?;
    if cert.spki_der != key.public_key_der() {
        return Err(EnrolError::BadResponse(
            "the renewed certificate is for another key than this node's; keeping the \
                 current certificate"
                .into(),
        )
        .into());
    }
    data.store_issued(&issued.node, &issued.cert_pem, &issued.chain_pem)
        .map_err(|e| RenewError::Store(e.to_string()))?;
    Ok(issued)
}

/// Sends `POST /v1/attrs`: the attributes the settings file declares now.
/// `agent` must present the node's certificate. The answer holds the
/// attributes in force afterwards and what waits for the admin's approval.
pub fn update_attrs(
    agent: &ureq::Agent,
    hub: &str,
    declared: &Declared,
) -> Result<AttrsResponse, EnrolError> {
    let req = AttrsRequest {
        declared: declared.clone(),
    };
    let (_, resp) = post(agent, &hub_url(hub, "/v1/attrs"), &req)?;
    Ok(resp)
}

/// The URL of `path` (starting with `/`) on the hub whose base URL is `hub`.
pub fn hub_url(hub: &str, path: &str) -> String {
    format!("{}{}", hub.trim_end_matches('/'), path)
}

fn post<T: Serialize, R: serde::de::DeserializeOwned>(
    agent: &ureq::Agent,
    url: &str,
    body: &T,
) -> Result<(u16, R), EnrolError> {
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
    node.attrs
        .validate()
        .map_err(|e| EnrolError::BadResponse(format!("node attributes: {e}")))?;
    if node.attrs.node_id != node.node_id {
        return Err(EnrolError::BadResponse(
            "attributes name another node".into(),
        ));
    }
    let cert = CertInfo::from_pem(&cert_pem)
        .map_err(|e| EnrolError::BadResponse(format!("certificate: {e}")))?;
    if cert.node_id.as_deref() != Some(node.node_id.as_str()) {
        return Err(EnrolError::BadResponse(format!(
            "the certificate is not for node {}",
            node.node_id
        )));
    }
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

    fn response_for(cert_node: &str, node: &str) -> EnrolResponse {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(
            format!("vantage:node:{cert_node}").try_into().unwrap(),
        )];
        let cert = params.self_signed(&key).unwrap();
        let attrs = vantage_proto::channel::NodeAttrs {
            node_id: node.into(),
            country: "DE".into(),
            ..Default::default()
        };
        EnrolResponse {
            status: EnrolStatus::Issued,
            fingerprint: "00".into(),
            node_id: Some(node.into()),
            certificate: Some(cert.pem()),
            chain: None,
            channels: attrs.channels(),
            attrs: Some(attrs),
            endpoints: Some(Endpoints::for_hub("https://h:8443")),
            message: None,
        }
    }

    #[test]
    fn issued_answers_are_checked() {
        let ok = issued(response_for("n-0011223344", "n-0011223344")).unwrap();
        assert_eq!(ok.node.node_id, "n-0011223344");
        assert_eq!(ok.node.endpoints.renew, "https://h:8443/v1/renew");
        let err = issued(response_for("n-9999999999", "n-0011223344")).unwrap_err();
        assert!(
            err.to_string().contains("not for node n-0011223344"),
            "{err}"
        );
        let mut bad = response_for("n-0011223344", "n-0011223344");
        bad.attrs.as_mut().unwrap().country = "Germany".into();
        assert!(issued(bad).is_err());
        let mut missing = response_for("n-0011223344", "n-0011223344");
        missing.endpoints = None;
        assert!(issued(missing).is_err());
    }

    proptest::proptest! {
        #[test]
        fn error_message_takes_any_body(body in proptest::prelude::any::<String>()) {
            let m = error_message(&body);
            proptest::prop_assert!(!m.is_empty() && m.chars().count() <= 300);
            proptest::prop_assert!(!m.chars().any(char::is_control));
        }
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
