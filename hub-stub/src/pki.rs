//! The network's certificate authority: the CA itself, the hub's server
//! certificate, node and operator certificates issued from CSRs or fresh
//! keys, and the certificate revocation list.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType,
    SerialNumber,
};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
use x509_parser::prelude::{FromDer, X509Certificate, X509CertificationRequest};

/// Everything that can go wrong while issuing or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The CSR is not PEM/DER, or its self-signature does not verify.
    #[error("the CSR is not valid: {0}; send a PEM PKCS#10 request signed by its own key")]
    BadCsr(String),
    /// The CSR's key is of a type the network does not accept.
    #[error("the CSR's key type is not accepted: use an ECDSA P-256 or Ed25519 key")]
    KeyType,
    /// A certificate could not be parsed.
    #[error("certificate could not be read: {0}")]
    BadCert(String),
    /// rcgen refused to build something.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The system random source failed.
    #[error("the system random number generator failed")]
    Random,
}

/// How far back a new certificate's not-before is set, for nodes whose clock lags.
pub const BACKDATE: Duration = Duration::hours(1);

/// The network CA: its certificate and signing key.
pub struct Ca {
    cert_pem: String,
    key: KeyPair,
}

/// A certificate just issued, with what the registry records about it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Serial number, lower-case hex of its DER content octets.
    pub serial: String,
    /// Expiry, Unix seconds.
    pub not_after: i64,
}

/// A public key taken from a verified CSR.
pub struct CsrKey {
    public_key: rcgen::PublicKey,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex.
    pub fingerprint: String,
}

impl Ca {
    /// Creates a new CA (ECDSA P-256, 20 years) for the named network.
    pub fn generate(network: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&format!("vantage network CA {network}"), "vantage");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?.0);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(365 * 20);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// Loads a CA from its certificate and PKCS#8 key, both PEM.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        Issuer::from_ca_cert_pem(cert_pem, &key)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, PkiError> {
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?)
    }

    /// Issues the hub's TLS server certificate for DNS names and IP addresses.
    /// Returns the certificate and its new key (PEM).
    pub fn issue_server(
        &self,
        names: &[String],
        lifetime: std::time::Duration,
    ) -> Result<(Issued, String), PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = dn(&names[0], "vantage hub");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let issued = self.sign(params, &key, lifetime)?;
        Ok((issued, key.serialize_pem()))
    }

    /// Issues a node certificate for a key taken from a CSR.
    pub fn issue_node(
        &self,
        node_id: &str,
        key: &CsrKey,
        lifetime: std::time::Duration,
    ) -> Result<Issued, PkiError> {
        let params = client_params(node_id, "vantage node", &format!("vantage:node:{node_id}"))?;
        self.sign(params, &key.public_key, lifetime)
    }

    /// Issues an operator certificate with a fresh key; returns it and the key (PEM).
    pub fn issue_operator(
        &self,
        name: &str,
        lifetime: std::time::Duration,
    ) -> Result<(Issued, String), PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let params = client_params(
            name,
            "vantage operator",
            &format!("vantage:operator:{name}"),
        )?;
        let issued = self.sign(params, &key, lifetime)?;
        Ok((issued, key.serialize_pem()))
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        public_key: &impl rcgen::PublicKeyData,
        lifetime: std::time::Duration,
    ) -> Result<Issued, PkiError> {
        let (serial, serial_hex) = random_serial()?;
        params.serial_number = Some(serial);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + lifetime;
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.signed_by(public_key, &self.issuer()?)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            serial: serial_hex,
            not_after: params.not_after.unix_timestamp(),
        })
    }

    /// Signs a CRL listing the given (serial hex, revocation time) pairs.
    pub fn crl(
        &self,
        number: u64,
        revoked: &[(String, i64)],
    ) -> Result<rcgen::CertificateRevocationList, PkiError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = revoked
            .iter()
            .filter_map(|(serial, at)| {
                Some(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&hex_decode(serial)?),
                    revocation_time: OffsetDateTime::from_unix_timestamp(*at).ok()?,
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                })
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(7),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer()?)?)
    }
}

fn dn(cn: &str, org: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, org);
    dn
}

fn client_params(cn: &str, org: &str, uri: &str) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn, org);
    params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// A positive 16-byte serial whose DER content octets are exactly these bytes
/// (first byte in 0x40..=0x7f), so the hex we store equals what a parser reads back.
fn random_serial() -> Result<(SerialNumber, String), PkiError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| PkiError::Random)?;
    b[0] = (b[0] & 0x3f) | 0x40;
    Ok((SerialNumber::from_slice(&b), hex(&b)))
}

/// Parses a PEM CSR, verifies its self-signature and key type.
pub fn parse_csr(pem: &str) -> Result<CsrKey, PkiError> {
    let parsed = ::pem::parse(pem).map_err(|e| PkiError::BadCsr(format!("not PEM ({e})")))?;
    let der = parsed.contents();
    let params = CertificateSigningRequestParams::from_der(&der.into())
        .map_err(|e| PkiError::BadCsr(e.to_string()))?;
    let (_, req) =
        X509CertificationRequest::from_der(der).map_err(|e| PkiError::BadCsr(e.to_string()))?;
    let spki = &req.certification_request_info.subject_pki;
    let alg = &spki.algorithm;
    let p256 = alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && alg
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|c| c == OID_EC_P256)
        && spki.subject_public_key.data.len() == 65;
    let ed25519 = alg.algorithm == OID_SIG_ED25519 && spki.subject_public_key.data.len() == 32;
    if !(p256 || ed25519) {
        return Err(PkiError::KeyType);
    }
    Ok(CsrKey {
        public_key: params.public_key,
        fingerprint: hex(digest::digest(&digest::SHA256, spki.raw).as_ref()),
    })
}

/// What the hub reads from a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial, lower-case hex.
    pub serial: String,
    /// Every SAN URI.
    pub uris: Vec<String>,
    /// Expiry, Unix seconds.
    pub not_after: i64,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex.
    pub key_fingerprint: String,
}

/// Reads serial, SAN URIs, expiry and key fingerprint from a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, PkiError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::BadCert(e.to_string()))?;
    let uris = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::BadCert(e.to_string()))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo {
        serial: hex(cert.raw_serial()),
        uris,
        not_after: cert.validity().not_after.timestamp(),
        key_fingerprint: hex(digest::digest(&digest::SHA256, cert.public_key().raw).as_ref()),
    })
}

/// Reads the first certificate of a PEM text.
pub fn cert_info_pem(pem: &str) -> Result<CertInfo, PkiError> {
    let p = ::pem::parse(pem).map_err(|e| PkiError::BadCert(e.to_string()))?;
    cert_info(p.contents())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String, PkiError> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| PkiError::Random)?;
    Ok(hex(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(alg: &'static rcgen::SignatureAlgorithm) -> String {
        let key = KeyPair::generate_for(alg).unwrap();
        CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
    }

    #[test]
    fn node_certificate_carries_identity_and_serial() {
        let ca = Ca::generate("test").unwrap();
        let key = parse_csr(&csr(&rcgen::PKCS_ECDSA_P256_SHA256)).unwrap();
        let issued = ca
            .issue_node(
                "n-0011223344",
                &key,
                std::time::Duration::from_secs(30 * 86_400),
            )
            .unwrap();
        let info = cert_info_pem(&issued.cert_pem).unwrap();
        assert_eq!(info.serial, issued.serial);
        assert_eq!(info.uris, ["vantage:node:n-0011223344"]);
        assert_eq!(info.not_after, issued.not_after);
        assert_eq!(info.key_fingerprint, key.fingerprint);
    }

    #[test]
    fn ed25519_csr_is_accepted_and_p384_refused() {
        parse_csr(&csr(&rcgen::PKCS_ED25519)).unwrap();
        assert!(matches!(
            parse_csr(&csr(&rcgen::PKCS_ECDSA_P384_SHA384)),
            Err(PkiError::KeyType)
        ));
    }

    #[test]
    fn tampered_csr_is_refused() {
        let pem = csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        let p = ::pem::parse(&pem).unwrap();
        let mut der = p.contents().to_vec();
        let n = der.len();
        der[n - 5] ^= 0x01;
        let bad = ::pem::encode(&::pem::Pem::new("CERTIFICATE REQUEST", der));
        assert!(matches!(parse_csr(&bad), Err(PkiError::BadCsr(_))));
        assert!(matches!(parse_csr("garbage"), Err(PkiError::BadCsr(_))));
    }

    proptest::proptest! {
        #[test]
        fn csr_and_cert_parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let pem = ::pem::encode(&::pem::Pem::new("CERTIFICATE REQUEST", bytes.clone()));
            proptest::prop_assert!(parse_csr(&pem).is_err());
            proptest::prop_assert!(cert_info(&bytes).is_err());
        }
    }

    #[test]
    fn ca_round_trips_and_signs_a_crl() {
        let ca = Ca::generate("test").unwrap();
        let again = Ca::load(ca.cert_pem(), &ca.key_pem()).unwrap();
        let crl = again.crl(2, &[("4abc".into(), 1_700_000_000)]).unwrap();
        assert!(crl.pem().unwrap().contains("BEGIN X509 CRL"));
    }
}
