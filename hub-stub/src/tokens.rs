//! One-time enrolment tokens: random text handed to a volunteer, stored only
//! as a hash, bound to the first key that uses it.

use crate::pki::{PkiError, hex};
use base64::Engine;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of every token, so a token is recognisable in a config file.
pub const PREFIX: &str = "vt1.";

/// Creates a new token text (prefix and 24 random bytes, base64url).
pub fn generate() -> Result<String, PkiError> {
    let mut b = [0u8; 24];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| PkiError::Random)?;
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    ))
}

/// The hash under which a token is stored and looked up.
pub fn hash(token: &str) -> String {
    hex(digest::digest(&digest::SHA256, token.trim().as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(hash(&a), hash(&format!(" {a}\n")));
    }
}
