//! The mandate revocation list a node fetches from the hub: arbitrary bytes
//! must give an error, never a panic; text with a duplicate object key is
//! never taken; every entry of a list that parses verifies or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantage_proto::canonical;
use vantage_proto::mandate::{MAX_REVOCATIONS, RevocationList};

fuzz_target!(|data: &[u8]| {
    let policy = vantage_fuzz::policy();
    let strict = canonical::check_no_duplicate_keys(data);
    let parsed = RevocationList::from_json(data);
    if strict.is_err() {
        assert!(parsed.is_err(), "text with a duplicate key was taken");
    }
    if let Ok(list) = parsed {
        assert!(list.revocations.len() <= MAX_REVOCATIONS);
        for r in &list.revocations {
            let _ = r.verify(&policy);
        }
    }
});
