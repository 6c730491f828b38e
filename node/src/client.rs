//! The node's HTTPS client: trusts only the pinned network CA (never the web
//! PKI) and presents the node's certificate when it has one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::state::DataDir;

/// Where the image ships the network CA.
pub const DEFAULT_CA_PATH: &str = "/etc/vantage/ca.pem";

/// Errors loading the TLS material.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A file is not valid PEM or holds the wrong kind of item.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
}

/// The network CA certificates this node trusts (usually exactly one).
#[derive(Debug, Clone)]
pub struct PinnedCa {
    certs: Arc<Vec<Certificate<'static>>>,
}

impl PinnedCa {
    /// Reads the CA certificate(s) from a PEM file.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let pem = read(path)?;
        Self::from_pem(&pem).map_err(|what| ClientError::Pem {
            path: path.to_owned(),
            what,
        })
    }

    /// Parses CA certificate(s) from PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let certs = certs_from_pem(pem)?;
        if certs.is_empty() {
            return Err("no CERTIFICATE found".into());
        }
        Ok(PinnedCa {
            certs: Arc::new(certs),
        })
    }

    /// The certificates in DER form.
    pub fn ders(&self) -> impl Iterator<Item = &[u8]> {
        self.certs.iter().map(|c| c.der())
    }
}

/// A client certificate chain and its private key, for mTLS.
#[derive(Debug, Clone)]
pub struct ClientIdentity(ClientCert);

impl ClientIdentity {
    /// Builds an identity from the certificate PEM (leaf first, optionally
    /// followed by intermediates) and the PKCS#8 key PEM.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        let certs = certs_from_pem(cert_pem)?;
        if certs.is_empty() {
            return Err("no CERTIFICATE found".into());
        }
        let key =
            PrivateKey::from_pem(key_pem).map_err(|e| format!("no usable private key: {e}"))?;
        Ok(ClientIdentity(ClientCert::new_with_certs(&certs, key)))
    }

    /// Loads the node's identity from its data directory (`cert.pem`,
    /// `chain.pem` if present, `key.pem`).
    pub fn load(data: &DataDir) -> Result<Self, ClientError> {
        let mut certs = read(&data.cert_path())?;
        if let Ok(chain) = std::fs::read(data.chain_path()) {
            certs.push(b'\n');
            certs.extend_from_slice(&chain);
        }
        let key = read(&data.key_path())?;
        Self::from_pem(&certs, &key).map_err(|what| ClientError::Pem {
            path: data.root().to_owned(),
            what,
        })
    }
}

/// Timeouts of the client. The defaults suit short request/response calls;
/// a long-lived event stream wants `call: None` and its own read deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Resolving and connecting (TCP and TLS handshake).
    pub connect: Duration,
    /// The whole call, from connecting to the last byte of the response.
    pub call: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(15),
            call: Some(Duration::from_secs(60)),
        }
    }
}

/// The TLS settings of a node: roots = the pinned CA only, client
/// certificate = `identity` if given.
pub fn tls_config(ca: &PinnedCa, identity: Option<&ClientIdentity>) -> TlsConfig {
    TlsConfig::builder()
        .root_certs(RootCerts::Specific(ca.certs.clone()))
        .client_cert(identity.map(|i| i.0.clone()))
        .build()
}

/// An HTTPS agent for talking to the hub. HTTP error statuses are returned
/// as responses (not errors) so callers can read the hub's `{"error": ...}`.
pub fn agent(ca: &PinnedCa, identity: Option<&ClientIdentity>, timeouts: Timeouts) -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(tls_config(ca, identity))
        .https_only(true)
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("vantage-node/", env!("CARGO_PKG_VERSION")))
        .timeout_resolve(Some(timeouts.connect))
        .timeout_connect(Some(timeouts.connect))
        .timeout_global(timeouts.call)
        .build()
        .new_agent()
}

/// The TLS error behind a failed request, if there is one: ureq reports
/// handshake failures as its own variant, and failures on an established
/// connection (a TLS 1.3 server refuses a client certificate only after the
/// client's first flight) as I/O errors wrapping rustls' error.
pub fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs_from_pem(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| format!("not valid PEM: {e}"))? {
            certs.push(c);
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn loads_ca_and_identity() {
        let (cert, key) = self_signed();
        let ca = PinnedCa::from_pem(cert.as_bytes()).unwrap();
        assert_eq!(ca.ders().count(), 1);
        let id = ClientIdentity::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let tls = tls_config(&ca, Some(&id));
        assert!(matches!(tls.root_certs(), RootCerts::Specific(c) if c.len() == 1));
        assert!(tls.client_cert().is_some());
    }

    #[test]
    fn rejects_files_without_certificates() {
        let (_, key) = self_signed();
        assert!(PinnedCa::from_pem(b"").is_err());
        assert!(PinnedCa::from_pem(key.as_bytes()).is_err());
        assert!(ClientIdentity::from_pem(key.as_bytes(), key.as_bytes()).is_err());
        let (cert, _) = self_signed();
        assert!(ClientIdentity::from_pem(cert.as_bytes(), cert.as_bytes()).is_err());
    }
}
