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

/// Parses a duration such as `90s`, `30m`, `12h`, `7d` or `2w` into seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 30m, 12h, 7d or 2w"))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?}; use s, m, h, d or w"
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{text:?} is not a positive duration"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(hash(&a), hash(&format!(" {a}\n")));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(604800));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("d").is_err());
    }

    proptest! {
        #[test]
        fn duration_parser_never_panics(s in ".{0,24}") {
            let _ = parse_duration(&s);
        }
    }
}
