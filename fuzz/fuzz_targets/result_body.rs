//! The body of `POST /v1/results` as the hub reads it: arbitrary bytes must
//! give an error, never a panic; a result that is taken has a valid job and
//! node id, and what the hub stores (its serialisation) parses again to the
//! same result key (job, node, run).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantage_proto::result::ProbeResult;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = ProbeResult::from_json(data) else {
        return;
    };
    assert!(r.job_id == "-" || vantage_proto::job::validate_job_id(&r.job_id).is_ok());
    assert!(vantage_proto::channel::validate_node_id(&r.node_id).is_ok());
    // Input within the size limit can still serialise longer (escapes); the
    // limit must then refuse it, never panic.
    if let Ok(text) = r.to_json() {
        let back = ProbeResult::from_json(&text).expect("its own output parses");
        // Numbers inside `data` may differ in the last bit after a round trip
        // (serde_json without float_roundtrip), so the key is compared, not all.
        assert_eq!((back.job_id, back.node_id, back.seq), (r.job_id, r.node_id, r.seq));
    }
});
