//! Approver keys and Ed25519 signatures over jobs and policies.

use crate::ProtoError;
use crate::canonical;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// PEM label of an approver's private key file (PKCS#8, as `openssl genpkey -algorithm ed25519` writes).
pub const PRIVATE_KEY_PEM_TAG: &str = "PRIVATE KEY";

/// An approver's Ed25519 public key (32 bytes), written as standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Parses the base64 form used in policies.
    pub fn from_base64(text: &str) -> Result<Self, ProtoError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| ProtoError::Crypto(format!("public key is not base64: {e}")))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            ProtoError::Crypto(format!(
                "an Ed25519 public key has 32 bytes, this one has {}",
                b.len()
            ))
        })?;
        Ok(Self(arr))
    }

    /// Standard base64 with padding.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// First 8 bytes of SHA-256 of the key, lower-case hex: the `key_id` in signatures.
    pub fn key_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.0);
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Checks `sig` over `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, sig)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// One approver's signature as carried in a signed job or policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// [`PublicKey::key_id`] of the signing key.
    pub key_id: String,
    /// The 64-byte Ed25519 signature, standard base64.
    pub sig: String,
}

impl Signature {
    /// The raw signature bytes, or an error if `sig` is not base64 of 64 bytes.
    pub fn bytes(&self) -> Result<[u8; 64], ProtoError> {
        let raw = B64
            .decode(&self.sig)
            .map_err(|e| ProtoError::Crypto(format!("signature is not base64: {e}")))?;
        raw.try_into().map_err(|b: Vec<u8>| {
            ProtoError::Crypto(format!(
                "an Ed25519 signature has 64 bytes, this one has {}",
                b.len()
            ))
        })
    }
}

/// An approver's private key.
pub struct ApproverKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for ApproverKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApproverKey({})", self.public_key().key_id())
    }
}

impl ApproverKey {
    /// A fresh random key, with its PKCS#8 PEM text for the key file.
    pub fn generate() -> Result<(Self, String), ProtoError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| ProtoError::Crypto("the system random generator failed".into()))?;
        let pem_text = pem::encode(&pem::Pem::new(PRIVATE_KEY_PEM_TAG, doc.as_ref().to_vec()));
        Ok((Self::from_pem(&pem_text)?, pem_text))
    }

    /// Reads a PKCS#8 PEM key (v1 from OpenSSL or v2 from [`ApproverKey::generate`]).
    pub fn from_pem(text: &str) -> Result<Self, ProtoError> {
        let parsed = pem::parse(text)
            .map_err(|e| ProtoError::Crypto(format!("approver key is not PEM: {e}")))?;
        if parsed.tag() != PRIVATE_KEY_PEM_TAG {
            return Err(ProtoError::Crypto(format!(
                "expected a PEM block {PRIVATE_KEY_PEM_TAG:?}, found {:?}",
                parsed.tag()
            )));
        }
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(parsed.contents())
            .map_err(|e| ProtoError::Crypto(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(Self { pair })
    }

    /// A key from its 32-byte RFC 8032 seed (test vectors use this).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, ProtoError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| ProtoError::Crypto(format!("bad Ed25519 seed: {e}")))?;
        Ok(Self { pair })
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let mut arr = [0u8; 32];
        arr.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(arr)
    }

    /// Signs raw bytes (already domain-separated).
    pub fn sign_bytes(&self, message: &[u8]) -> Signature {
        Signature {
            key_id: self.public_key().key_id(),
            sig: B64.encode(self.pair.sign(message).as_ref()),
        }
    }

    /// Signs a job object (the value of `"job"`).
    pub fn sign_job(&self, job: &Value) -> Result<Signature, ProtoError> {
        Ok(self.sign_bytes(&canonical::job_signing_bytes(job)?))
    }

    /// Signs a policy object (the value of `"policy"`).
    pub fn sign_policy(&self, policy: &Value) -> Result<Signature, ProtoError> {
        Ok(self.sign_bytes(&canonical::policy_signing_bytes(policy)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_verify() {
        let (key, pem_text) = ApproverKey::generate().unwrap();
        let again = ApproverKey::from_pem(&pem_text).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let sig = key.sign_bytes(b"hello");
        assert_eq!(sig.key_id, key.public_key().key_id());
        assert!(key.public_key().verify(b"hello", &sig.bytes().unwrap()));
        assert!(!key.public_key().verify(b"hellO", &sig.bytes().unwrap()));
    }

    #[test]
    fn reads_openssl_pkcs8_v1() {
        // `openssl genpkey -algorithm ed25519` output for the RFC 8032 test 1 seed.
        let pem_text = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";
        let key = ApproverKey::from_pem(pem_text).unwrap();
        assert_eq!(
            key.public_key().to_base64(),
            "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
    }

    #[test]
    fn rejects_wrong_lengths() {
        assert!(PublicKey::from_base64("AAAA").is_err());
        let bad = Signature {
            key_id: "x".into(),
            sig: "AAAA".into(),
        };
        assert!(bad.bytes().is_err());
    }
}
