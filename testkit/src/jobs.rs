//! Job values as tests propose them (unsigned; see [`crate::approvers::sign_job`]).

use crate::now;
use serde_json::{Value, json};

/// A `dns` job for `example.com` to `select`, valid from ten seconds ago for an hour.
pub fn dns_job(id: &str, select: Value) -> Value {
    let now = now();
    json!({"v": 1, "id": id, "probe": {"cmd": "dns", "args": {"name": "example.com"}},
           "select": select, "not_before": now - 10, "expires": now + 3600, "proposer": "alice"})
}

/// A job running `probe` on node `node` at once (no spread), valid for ten minutes.
pub fn node_job(id: &str, node: &str, probe: Value) -> Value {
    let now = now();
    json!({"v": 1, "id": id, "probe": probe, "select": {"node": node},
           "not_before": now - 10, "expires": now + 600, "spread_secs": 0, "proposer": "alice"})
}
