//! The canonical byte form of jobs and policies: what approvers sign.
//!
//! RFC 8785 (JCS) restricted to integer numbers: object keys sorted by their
//! UTF-8 bytes, no white space, minimal string escaping, integers in the
//! range that IEEE doubles represent exactly. A value that has no canonical
//! form (a fraction, an exponent, a too-large integer) is refused rather than
//! rounded, so two implementations can never disagree on the bytes.

use crate::ProtoError;
use serde_json::Value;
use std::fmt::Write as _;

/// Domain-separation prefix of a job's signed bytes.
pub const JOB_DOMAIN: &[u8] = b"vantage-job-v1\0";
/// Domain-separation prefix of a policy's signed bytes.
pub const POLICY_DOMAIN: &[u8] = b"vantage-policy-v1\0";
/// Domain-separation prefix of a mandate's signed bytes.
pub const MANDATE_DOMAIN: &[u8] = b"vantage-mandate-v1\0";
/// Domain-separation prefix of an operator's signature over a job ordered under
/// a mandate: never the job domain, so an operator's signature can never count
/// as an approval, even from a key that is also an approver's.
pub const MANDATED_JOB_DOMAIN: &[u8] = b"vantage-mandated-job-v1\0";
/// Domain-separation prefix of a mandate revocation's signed bytes.
pub const REVOCATION_DOMAIN: &[u8] = b"vantage-mandate-revocation-v1\0";
/// Domain-separation prefix of an agent release's signed bytes.
pub const RELEASE_DOMAIN: &[u8] = b"vantage-release-v1\0";

/// Largest integer magnitude allowed: 2^53 - 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Refuses JSON text in which any object, at any depth, has a key twice.
///
/// Parsers disagree on duplicates (the last wins in serde_json, the first in
/// others), so signed text with a duplicate could mean one thing to the
/// approvers' tools and another to a hub or node. The protocol forbids them;
/// hub and node both check with this before parsing anything signed.
/// Malformed JSON is [`ProtoError::Malformed`], a duplicate
/// [`ProtoError::NotCanonical`].
pub fn check_no_duplicate_keys(text: &[u8]) -> Result<(), ProtoError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    match serde::Deserialize::deserialize(&mut de).and_then(|NoDuplicates| de.end()) {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().starts_with(DUPLICATE) => {
            Err(ProtoError::NotCanonical(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

const DUPLICATE: &str = "duplicate object key";

/// Walks any JSON value, keeping only each object's keys, to find duplicates.
struct NoDuplicates;

impl<'de> serde::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_none<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<NoDuplicates, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while let Some(NoDuplicates) = seq.next_element()? {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut keys = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE} {key:?}")));
            }
            let NoDuplicates = map.next_value()?;
            keys.insert(key);
        }
        Ok(NoDuplicates)
    }
}

/// The canonical JSON text of `value`.
pub fn to_canonical_string(value: &Value) -> Result<String, ProtoError> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

/// The bytes an approver signs for a job: [`JOB_DOMAIN`] then the canonical job.
pub fn job_signing_bytes(job: &Value) -> Result<Vec<u8>, ProtoError> {
    with_domain(JOB_DOMAIN, job)
}

/// The bytes an approver signs for a policy: [`POLICY_DOMAIN`] then the canonical policy.
pub fn policy_signing_bytes(policy: &Value) -> Result<Vec<u8>, ProtoError> {
    with_domain(POLICY_DOMAIN, policy)
}

/// The bytes approvers sign for a mandate: [`MANDATE_DOMAIN`] then the canonical mandate.
pub fn mandate_signing_bytes(mandate: &Value) -> Result<Vec<u8>, ProtoError> {
    with_domain(MANDATE_DOMAIN, mandate)
}

/// The bytes an operator signs for a job under a mandate: [`MANDATED_JOB_DOMAIN`]
/// then the canonical job.
pub fn mandated_job_signing_bytes(job: &Value) -> Result<Vec<u8>, ProtoError> {
    with_domain(MANDATED_JOB_DOMAIN, job)
}

/// The bytes an approver signs to revoke a mandate: [`REVOCATION_DOMAIN`] then
/// the canonical revocation.
pub fn revocation_signing_bytes(revocation: &Value) -> Result<Vec<u8>, ProtoError> {
    with_domain(REVOCATION_DOMAIN, revocation)
}

/// The bytes approvers sign for an agent release: [`RELEASE_DOMAIN`] then the
/// canonical release.
pub fn release_signing_bytes(release: &Value) -> Result<Vec<u8>, ProtoError> {
    with_domain(RELEASE_DOMAIN, release)
}

fn with_domain(domain: &[u8], value: &Value) -> Result<Vec<u8>, ProtoError> {
    let text = to_canonical_string(value)?;
    let mut bytes = Vec::with_capacity(domain.len() + text.len());
    bytes.extend_from_slice(domain);
    bytes.extend_from_slice(text.as_bytes());
    Ok(bytes)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), ProtoError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted explicitly: serde_json's map order depends on a crate feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if !key.is_ascii() {
                    return Err(ProtoError::NotCanonical(format!(
                        "object key {key:?} is not ASCII"
                    )));
                }
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(n: &serde_json::Number, out: &mut String) -> Result<(), ProtoError> {
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(ProtoError::NotCanonical(format!(
                "integer {u} is larger than 2^53-1"
            )));
        }
        write!(out, "{u}").expect("writing to a String cannot fail");
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(ProtoError::NotCanonical(format!(
                "integer {i} is smaller than -(2^53-1)"
            )));
        }
        write!(out, "{i}").expect("writing to a String cannot fail");
    } else {
        return Err(ProtoError::NotCanonical(format!(
            "number {n} is not an integer; jobs and policies carry integers only"
        )));
    }
    Ok(())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                write!(out, "\\u{:04x}", c as u32).expect("writing to a String cannot fail")
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_strips_space() {
        let v = json!({"b": [1, {"z": null, "a": true}], "a": "x"});
        assert_eq!(
            to_canonical_string(&v).unwrap(),
            r#"{"a":"x","b":[1,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn escapes_minimally() {
        let v = json!("q\"b\\\u{8}\t\n\u{c}\r\u{1}\u{1f}é/€");
        assert_eq!(
            to_canonical_string(&v).unwrap(),
            "\"q\\\"b\\\\\\b\\t\\n\\f\\r\\u0001\\u001fé/€\""
        );
    }

    #[test]
    fn refuses_floats_and_huge_integers() {
        assert!(to_canonical_string(&json!(1.5)).is_err());
        assert!(to_canonical_string(&json!(9_007_199_254_740_992u64)).is_err());
        assert!(to_canonical_string(&json!(-9_007_199_254_740_992i64)).is_err());
        assert_eq!(
            to_canonical_string(&json!(-9_007_199_254_740_991i64)).unwrap(),
            "-9007199254740991"
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [
            r#"{"a":1,"a":1}"#,
            r#"{"job":{"probe":{"args":{"name":"a","name":"b"}}}}"#,
            r#"[0,{"x":[{"k":null,"k":true}]}]"#,
            "{\"\\u0061\":1,\"a\":2}",
        ] {
            assert!(
                matches!(
                    check_no_duplicate_keys(text.as_bytes()),
                    Err(ProtoError::NotCanonical(_))
                ),
                "{text}"
            );
        }
        assert!(check_no_duplicate_keys(br#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#).is_ok());
        assert!(matches!(
            check_no_duplicate_keys(b"{\"a\":"),
            Err(ProtoError::Malformed(_))
        ));
        assert!(matches!(
            check_no_duplicate_keys(b"{} {}"),
            Err(ProtoError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_non_ascii_keys() {
        assert!(to_canonical_string(&json!({"é": 1})).is_err());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(MAX_SAFE_INTEGER as i64)..=(MAX_SAFE_INTEGER as i64)).prop_map(|i| json!(i)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map("[ -~]{0,8}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_text_parses_back_to_the_same_value(v in arb_json()) {
            let text = to_canonical_string(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert!(check_no_duplicate_keys(text.as_bytes()).is_ok());
            // Canonicalising is idempotent.
            prop_assert_eq!(to_canonical_string(&back).unwrap(), text);
        }
    }
}
