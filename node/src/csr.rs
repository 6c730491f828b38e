//! The node's key pair (ECDSA P-256, generated on the device, never sent
//! anywhere) and its certificate signing requests.

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};

use crate::state::{DataDir, StateError};

/// Common name of a CSR when the volunteer asked for no hostname.
pub const DEFAULT_CN: &str = "vantage-node";

/// Errors creating or loading a key or CSR.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// The key or CSR could not be generated or parsed.
    #[error("key or CSR: {0}")]
    Crypto(#[from] rcgen::Error),
    /// The key file could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The node's private key.
pub struct NodeKey {
    pair: KeyPair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl NodeKey {
    /// Generates a fresh P-256 key.
    pub fn generate() -> Result<Self, CsrError> {
        Ok(NodeKey {
            pair: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
        })
    }

    /// Parses a PKCS#8 PEM key.
    pub fn from_pem(pem: &str) -> Result<Self, CsrError> {
        Ok(NodeKey {
            pair: KeyPair::from_pem(pem)?,
        })
    }

    /// The key in PKCS#8 PEM.
    pub fn to_pem(&self) -> String {
        self.pair.serialize_pem()
    }

    /// Loads the key from the data directory, or generates one and stores it
    /// (0600, write + fsync + rename) before returning, so a CSR is never
    /// sent for a key that a power cut could lose. The bool is true when the
    /// key is new.
    pub fn load_or_generate(data: &DataDir) -> Result<(Self, bool), CsrError> {
        if let Some(pem) = data.read_key()? {
            return Ok((Self::from_pem(&pem)?, false));
        }
        let key = Self::generate()?;
        data.write_key(&key.to_pem())?;
        Ok((key, true))
    }

    /// The DER SubjectPublicKeyInfo of the public key.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex: what the hub
    /// admin compares before approving a node.
    pub fn fingerprint(&self) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, &self.public_key_der()).as_ref())
    }

    /// A PEM CSR for this key with `CN = common_name` (or [`DEFAULT_CN`]).
    pub fn csr_pem(&self, common_name: Option<&str>) -> Result<String, CsrError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name.unwrap_or(DEFAULT_CN));
        Ok(params.serialize_request(&self.pair)?.pem()?)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::prelude::FromDer;

    #[test]
    fn key_is_persisted_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let (k1, new1) = NodeKey::load_or_generate(&data).unwrap();
        let (k2, new2) = NodeKey::load_or_generate(&data).unwrap();
        assert!(new1 && !new2);
        assert_eq!(k1.fingerprint(), k2.fingerprint());
        assert_eq!(k1.fingerprint().len(), 64);
        let mode = std::fs::metadata(data.key_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn csr_carries_the_key_and_the_name() {
        let key = NodeKey::generate().unwrap();
        let pem = key.csr_pem(Some("pi-kitchen")).unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&der.contents).unwrap();
        let info = &csr.certification_request_info;
        assert_eq!(info.subject_pki.raw, key.public_key_der());
        let cn = info
            .subject
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, "pi-kitchen");
        let default = key.csr_pem(None).unwrap();
        assert!(default.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    }
}
