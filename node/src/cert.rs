//! The few facts about a certificate that a node acts on: validity period,
//! public key and node id.

use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a node needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// The node id from a `vantage:node:<id>` SAN URI, if there is one.
    pub node_id: Option<String>,
}

impl CertInfo {
    /// Reads the first certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let (_, pem) = parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
        if pem.label != "CERTIFICATE" {
            return Err(format!("expected a CERTIFICATE, found {}", pem.label));
        }
        Self::from_der(&pem.contents)
    }

    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("not a certificate: {e}"))?;
        let node_id = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::URI(u) => u.strip_prefix("vantage:node:").map(str::to_owned),
                    _ => None,
                })
            });
        Ok(CertInfo {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            spki_der: cert.public_key().raw.to_vec(),
            node_id,
        })
    }

    /// True when `now` (Unix seconds) lies within the validity period.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};

    #[test]
    fn reads_validity_key_and_node_id() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(
            "vantage:node:n-00aa11bb22".try_into().unwrap(),
        )];
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 2, 1);
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::from_pem(&cert.pem()).unwrap();
        assert_eq!(info.node_id.as_deref(), Some("n-00aa11bb22"));
        assert_eq!(info.not_before, 1_767_225_600);
        assert_eq!(info.not_after, 1_769_904_000);
        assert!(info.valid_at(1_768_000_000) && !info.valid_at(1_769_904_001));
        use rcgen::PublicKeyData;
        assert_eq!(info.spki_der, key.subject_public_key_info());
    }

    #[test]
    fn rejects_non_certificates() {
        assert!(CertInfo::from_pem("").is_err());
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        assert!(CertInfo::from_pem(&key.serialize_pem()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_garbage(der in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = CertInfo::from_der(&der);
            let pem = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                String::from_utf8_lossy(&der));
            let _ = CertInfo::from_pem(&pem);
        }
    }
}
