//! The signed-job path a node runs on every message: envelope / signed job
//! parsing, the canonical byte form, job validation and verification against
//! a policy. Arbitrary bytes must give an error, never a panic; text with a
//! duplicate object key is never taken as a signed job.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantage_proto::canonical;
use vantage_proto::envelope::Envelope;
use vantage_proto::job::{Job, SignedJob};

fuzz_target!(|data: &[u8]| {
    let policy = vantage_fuzz::policy();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(env) = Envelope::from_json(text) {
            let _ = env.payload.verify(&policy, 1_800_000_000);
        }
    }
    let strict = canonical::check_no_duplicate_keys(data);
    let parsed = SignedJob::from_json(data);
    if strict.is_err() {
        assert!(parsed.is_err(), "text with a duplicate key was taken");
    }
    if let Ok(signed) = parsed {
        let _ = signed.verify(&policy, 1_800_000_000);
        if let Ok(job) = Job::from_value(&signed.job) {
            // A job that parses re-encodes to a value that parses to the same job.
            assert_eq!(Job::from_value(&job.to_value()).expect("re-encoded job parses"), job);
            let _ = canonical::job_signing_bytes(&job.to_value());
        }
    }
});
