//! Checks the published test vectors in `proto/testvectors/`: any implementation
//! of the byte form and signatures must reproduce them exactly.

use serde_json::Value;
use std::path::Path;
use vantage_proto::canonical;
use vantage_proto::job::{Job, Mandated, SignedJob};
use vantage_proto::mandate::{Mandate, Revocation, SignedMandate, SignedRevocation};
use vantage_proto::policy::{Policy, SignedPolicy};
use vantage_proto::release::{Release, SignedRelease};
use vantage_proto::sign::{ApproverKey, PublicKey, Signature};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seed(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn check(path: &Path) {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let kind = v["kind"].as_str().unwrap();
    let object = &v[kind];
    let name = path.display();

    let canonical_text = canonical::to_canonical_string(object).unwrap();
    assert_eq!(
        canonical_text,
        v["canonical"].as_str().unwrap(),
        "{name}: canonical form"
    );
    let bytes = match kind {
        "job" => canonical::job_signing_bytes(object).unwrap(),
        "policy" => canonical::policy_signing_bytes(object).unwrap(),
        "mandate" => canonical::mandate_signing_bytes(object).unwrap(),
        "mandated-job" => canonical::mandated_job_signing_bytes(object).unwrap(),
        "revocation" => canonical::revocation_signing_bytes(object).unwrap(),
        "release" => canonical::release_signing_bytes(object).unwrap(),
        other => panic!("{name}: unknown kind {other}"),
    };
    assert_eq!(
        hex(&bytes),
        v["signing_bytes_hex"].as_str().unwrap(),
        "{name}: signing bytes"
    );

    let expected: Vec<Signature> = serde_json::from_value(v["signatures"].clone()).unwrap();
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), expected.len());
    for (k, want) in keys.iter().zip(&expected) {
        let key = ApproverKey::from_seed(&seed(k["seed_hex"].as_str().unwrap())).unwrap();
        let public = PublicKey::from_base64(k["public"].as_str().unwrap()).unwrap();
        assert_eq!(key.public_key(), public, "{name}: public key");
        assert_eq!(
            public.key_id(),
            k["key_id"].as_str().unwrap(),
            "{name}: key id"
        );
        assert_eq!(&key.sign_bytes(&bytes), want, "{name}: signature");
        assert!(public.verify(&bytes, &want.bytes().unwrap()));
    }

    match kind {
        "job" => {
            Job::from_value(object).unwrap();
            let signed = SignedJob {
                job: object.clone(),
                signatures: expected,
                mandated: None,
            };
            let again: SignedJob =
                serde_json::from_str(&serde_json::to_string(&signed).unwrap()).unwrap();
            assert_eq!(again, signed);
        }
        "mandate" => {
            Mandate::from_value(object).unwrap();
        }
        "mandated-job" => {
            assert!(Job::from_value(object).unwrap().mandate.is_some(), "{name}");
        }
        "revocation" => {
            serde_json::from_value::<Revocation>(object.clone()).unwrap();
        }
        "release" => {
            Release::from_value(object).unwrap();
        }
        _ => {
            Policy::from_value(object).unwrap();
            SignedPolicy {
                policy: object.clone(),
                signatures: expected,
            }
            .parse()
            .unwrap();
        }
    }
}

#[test]
fn every_vector_reproduces() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testvectors");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            check(&path);
            n += 1;
        }
    }
    assert!(n >= 3, "expected the shipped vectors in {}", dir.display());
}

fn vector(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testvectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn signatures(v: &Value) -> Vec<Signature> {
    serde_json::from_value(v["signatures"].clone()).unwrap()
}

/// The mandate vectors belong together: the job runs under the mandate signed
/// by the serial-2 policy's approvers, and the revocation is one of theirs.
#[test]
fn mandate_vectors_verify_together() {
    let policy = Policy::from_value(&vector("policy-rotation.json")["policy"]).unwrap();
    let mandate = vector("mandate-everyday.json");
    let job = vector("mandated-job-ping.json");
    let signed = SignedJob {
        job: job["mandated-job"].clone(),
        signatures: vec![],
        mandated: Some(Mandated {
            mandate: SignedMandate {
                mandate: mandate["mandate"].clone(),
                signatures: signatures(&mandate),
            },
            operator: signatures(&job).remove(0),
        }),
    };
    let at = job["mandated-job"]["not_before"].as_u64().unwrap();
    assert_eq!(signed.verify(&policy, at).unwrap().proposer, "olga");
    let revocation = vector("revocation-everyday.json");
    let revoked = SignedRevocation {
        revocation: revocation["revocation"].clone(),
        signature: signatures(&revocation).remove(0),
    }
    .verify(&policy)
    .unwrap();
    assert_eq!(revoked.mandate, "everyday-2026-12");
}

/// The release vector is signed by a quorum of the serial-2 policy, and
/// places nodes in waves the same way in every implementation.
#[test]
fn release_vector_verifies_under_the_rotated_policy() {
    let policy = Policy::from_value(&vector("policy-rotation.json")["policy"]).unwrap();
    let v = vector("release-0.2.0.json");
    let signed = SignedRelease {
        release: v["release"].clone(),
        signatures: signatures(&v),
    };
    let (release, signers) = signed.verify(&policy).unwrap();
    assert_eq!(signers.len(), 2);
    // Bucket (0-9999) from SHA-256 of "vantage-release-wave\0" version "\0" node id:
    // below 500 is the 5 % wave, below 2500 the 25 % one.
    for (id, bucket, wave) in [
        ("n-0000000018", Some(190), 0),
        ("n-0000000014", Some(784), 1),
        ("n-0000000001", None, 2),
    ] {
        if let Some(b) = bucket {
            assert_eq!(vantage_proto::release::wave_bucket("0.2.0", id), b, "{id}");
        }
        assert_eq!(release.wave_of(id), Some(wave), "{id}");
    }
}

#[test]
fn rfc8032_test_key_matches() {
    let key = ApproverKey::from_seed(&seed(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ))
    .unwrap();
    assert_eq!(
        hex(&key.public_key().0),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    // RFC 8032 7.1 TEST 1: the signature of the empty message.
    assert_eq!(
        hex(&key.sign_bytes(b"").bytes().unwrap()),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
}

/// `proto/testvectors/refused/`: signed text every implementation must refuse.
/// Each holds the text as a string (`text`), the refusal's code, and the keys
/// that signed it: the signatures are valid for one reading of the text, which
/// is what makes accepting it dangerous.
#[test]
fn every_refused_vector_is_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testvectors/refused");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.display();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let text = v["text"].as_str().unwrap();
        let err = SignedJob::from_json(text.as_bytes()).unwrap_err();
        assert_eq!(err.code(), v["code"].as_str().unwrap(), "{name}: {err}");
        // A lenient parser (the last duplicate wins) would find valid signatures.
        let lenient: SignedJob = serde_json::from_str(text).unwrap();
        let bytes = canonical::job_signing_bytes(&lenient.job).unwrap();
        for (k, sig) in v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&lenient.signatures)
        {
            let public = PublicKey::from_base64(k["public"].as_str().unwrap()).unwrap();
            assert!(public.verify(&bytes, &sig.bytes().unwrap()), "{name}");
        }
        n += 1;
    }
    assert!(n >= 1, "expected refused vectors in {}", dir.display());
}
