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

/// Largest integer magnitude allowed: 2^53 - 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

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
            // Canonicalising is idempotent.
            prop_assert_eq!(to_canonical_string(&back).unwrap(), text);
        }
    }
}
