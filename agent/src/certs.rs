//! The node certificate's lifetime: when to renew, and whether it expired.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vantage_node::cert::CertInfo;

/// Validity of a certificate, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: u64,
    /// notAfter.
    pub not_after: u64,
}

/// Reads the validity of the first certificate in a PEM text.
pub fn validity(pem_text: &str) -> Result<Validity, String> {
    let cert = CertInfo::from_pem(pem_text)?;
    Ok(Validity {
        not_before: cert.not_before.max(0) as u64,
        not_after: cert.not_after.max(0) as u64,
    })
}

impl Validity {
    /// When to renew: at 70 % of the lifetime, moved by up to ±5 % of it at random
    /// (so a fleet enrolled together does not renew in the same second).
    pub fn renew_at(&self, jitter: f64) -> u64 {
        let life = self.not_after.saturating_sub(self.not_before) as f64;
        let at = self.not_before as f64 + life * (0.70 + (jitter.clamp(0.0, 1.0) - 0.5) * 0.10);
        at as u64
    }

    /// Whether the certificate has expired at `now`.
    pub fn expired(&self, now: u64) -> bool {
        now >= self.not_after
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_around_seventy_percent() {
        let v = Validity {
            not_before: 1000,
            not_after: 1000 + 100_000,
        };
        assert_eq!(v.renew_at(0.5), 71_000);
        assert_eq!(v.renew_at(0.0), 66_000);
        assert_eq!(v.renew_at(1.0), 76_000);
        assert!(!v.expired(100_999));
        assert!(v.expired(101_000));
    }

    #[test]
    fn reads_a_generated_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["n-1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let v = validity(&cert.pem()).unwrap();
        assert!(v.not_after > v.not_before);
        assert!(validity("garbage").is_err());
    }
}
