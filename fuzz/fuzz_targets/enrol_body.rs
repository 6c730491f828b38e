//! The body of `POST /v1/enrol` (and `/v1/renew`) as the hub reads it before
//! the CSR is looked at: arbitrary bytes must give an error, never a panic; a
//! request that is taken parses again from its own serialisation with the same
//! CSR and token (the latitude and longitude may differ in the last bit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantage_proto::enrol::{EnrolRequest, RenewRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<EnrolRequest>(data) {
        let text = serde_json::to_vec(&req).expect("serialises");
        let back: EnrolRequest = serde_json::from_slice(&text).expect("its own output parses");
        assert_eq!((back.csr, back.token), (req.csr, req.token));
    }
    if let Ok(req) = serde_json::from_slice::<RenewRequest>(data) {
        let text = serde_json::to_vec(&req).expect("serialises");
        let back: RenewRequest = serde_json::from_slice(&text).expect("its own output parses");
        assert_eq!(back, req);
    }
});
