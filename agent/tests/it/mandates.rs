//! Jobs ordered under a mandate, end to end: one operator signature runs a
//! job; the node refuses what lies outside the mandate's nodes, over its
//! per-node rate (also after a restart) or under a revoked mandate, even
//! when the hub is bypassed (raw publish onto the node's channel).

use crate::support::hub;
use serde_json::{Value, json};
use vantage_proto::mandate::SignedMandate;
use vantage_testkit::mandates::{mandate, order, revocation, sign_mandate};
use vantage_testkit::{Agent, Hub, jobs::node_job};

/// A mandate `id` for TCP connections to the hub's port, on nodes in
/// `select`, `per_node` jobs per node and hour.
fn tcp_mandate(hub: &Hub, id: &str, select: Value, per_node: u32) -> SignedMandate {
    let probes = json!({"tcp": {"ports": [hub.port()]}});
    let value = mandate(id, probes, select, [99, 99, per_node]);
    sign_mandate(&value, &[&hub.keys[0], &hub.keys[1]])
}

/// A TCP connection to the hub from `node`, ordered under `m`.
fn connect(hub: &Hub, id: &str, node: &str, m: &SignedMandate) -> Value {
    let probe = json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}});
    order(&node_job(id, node, probe), m)
}

/// An agent of a DE node that may probe loopback (the hub).
fn agent(hub: &Hub) -> Agent {
    let mut agent = Agent::new(hub, "", "[owner]\nallow_special_addresses = true\n");
    agent.start();
    agent.subscribed(1);
    agent
}

/// Waits for the agent's refusal of job `id` and checks its code.
fn refused(agent: &Agent, id: &str, code: &str) {
    let needle = format!("refused job {id}:");
    agent.wait_log(&needle, 1, 20);
    let log = agent.log();
    let line = log.lines().find(|l| l.contains(&needle)).unwrap();
    assert!(line.contains(&format!("({code})")), "{id}: {line}");
}

#[test]
fn mandated_jobs_run_within_the_nodes_bounds_and_rate_across_restarts() {
    let hub = hub();
    let op = hub.operator("ops");
    let mut agent = agent(&hub);
    let node = agent.node_id.clone();
    let channel = format!("node.{node}");
    let m = tcp_mandate(&hub, "everyday", json!({"country": "DE"}), 2);

    // One operator signature, no approver's: the job runs.
    op.submit(&connect(&hub, "q1", &node, &m));
    let r = hub.result(&op, "q1", 20);
    assert_eq!(r["status"], "ok", "{r}");

    // A mandate for other nodes: the node refuses, whoever delivers the job.
    let fr = tcp_mandate(&hub, "fr-only", json!({"country": "FR"}), 9);
    hub.raw(&op, &channel, &connect(&hub, "fr1", &node, &fr));
    refused(&agent, "fr1", "mandate-selection");

    // Two jobs per hour on this node: the second runs, the third is refused
    // although it bypasses the hub...
    op.submit(&connect(&hub, "q2", &node, &m));
    assert_eq!(hub.result(&op, "q2", 20)["status"], "ok");
    hub.raw(&op, &channel, &connect(&hub, "q3", &node, &m));
    refused(&agent, "q3", "mandate-rate-node");
    // ...and after a restart too: the count is kept in the data directory.
    agent.kill9();
    agent.start();
    agent.subscribed(2);
    hub.raw(&op, &channel, &connect(&hub, "q4", &node, &m));
    refused(&agent, "q4", "mandate-rate-node");
    // Jobs approved by a quorum are not counted under any mandate.
    let probe = json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}});
    hub.submit(&op, &node_job("quorum", &node, probe));
    assert_eq!(hub.result(&op, "quorum", 20)["status"], "ok");
}

#[test]
fn a_revocation_posted_to_the_hub_stops_the_mandate_on_the_node() {
    let hub = hub();
    let op = hub.operator("ops");
    let agent = agent(&hub);
    let node = agent.node_id.clone();
    let m = tcp_mandate(&hub, "everyday", json!("everyone"), 9);
    op.submit(&connect(&hub, "before", &node, &m));
    assert_eq!(hub.result(&op, "before", 20)["status"], "ok");

    // One approver revokes; the node fetches it with the policy chain
    // (every heartbeat) and verifies it itself.
    let (s, e) = op.post(
        "/v1/mandates/revocations",
        &revocation("everyday", &hub.keys[2]),
    );
    assert_eq!(s, 201, "{e}");
    agent.wait_log("mandate everyday revoked by an approver", 1, 20);
    let stored = vantage_testkit::read(agent.data().join("mandate-revocations.json"));
    assert!(stored.contains("everyday"), "{stored}");

    // Refused at the hub...
    let (s, e) = op.post("/v1/jobs", &connect(&hub, "after", &node, &m));
    assert_eq!(
        (s, e["code"].as_str()),
        (422, Some("mandate-revoked")),
        "{e}"
    );
    // ...and on the node when the hub is bypassed.
    hub.raw(
        &op,
        &format!("node.{node}"),
        &connect(&hub, "bypass", &node, &m),
    );
    refused(&agent, "bypass", "mandate-revoked");
}
