//! Upgrades: the data directory of a hub from before schema versions
//! (`tests/fixtures/unversioned/`, how it was made is in the README there) is
//! migrated by this hub, which then serves the old network: its nodes, jobs,
//! results and rotated policy. A database of a newer hub is refused.

use std::path::Path;
use vantage_testkit::{Client, Hub, fixtures, jobs, read};

use serde_json::{Value, json};
use vantage_hub::db::SCHEMA_VERSION;

/// The node of the fixture network that ran the jobs (its data directory is
/// the agent's fixture).
fn node_file(name: &str) -> String {
    read(fixtures::unversioned_node().join(name))
}

/// A stopped hub on a copy of the fixture's data directory and policy.
fn fixture_hub() -> (Hub, Value) {
    let hub = Hub::builder().copy_of(&fixtures::unversioned_hub());
    (hub, fixtures::unversioned_facts())
}

fn user_version(db: &Path) -> u32 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_unversioned_hub_is_upgraded_and_serves_its_network() {
    let (mut hub, facts) = fixture_hub();
    let db = hub.data().join("hub.db");
    assert_eq!(user_version(&db), 0, "the fixture predates versions");
    hub.spawn();
    assert_eq!(user_version(&db), SCHEMA_VERSION);

    let op = hub.operator_from(&fixtures::unversioned_hub().join("operator"), "ops");
    let node = facts["node"].as_str().unwrap();
    let other = facts["other_node"].as_str().unwrap();

    // The registry: both enrolled nodes, and the key still waiting for approval.
    let (s, nodes) = op.get("/v1/nodes");
    assert_eq!(s, 200, "{nodes}");
    for id in [node, other] {
        assert!(
            nodes.as_array().unwrap().iter().any(|n| n["id"] == id),
            "{id} missing: {nodes}"
        );
    }
    let (ok, out, err) = hub.cli(&["nodes", "pending", "--json"]);
    assert!(ok, "{err}");
    assert!(out.contains(facts["pending"].as_str().unwrap()), "{out}");

    // Old jobs and their results.
    let (s, job) = op.get("/v1/jobs/delivered");
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["job"]["nodes"], json!([node]), "{job}");
    let (s, results) = op.get("/v1/jobs/delivered/results");
    assert_eq!(s, 200, "{results}");
    assert_eq!(results.as_array().unwrap().len(), 1, "{results}");
    assert_eq!(results[0]["status"], "ok");

    // The node, with the certificate it had, delivers the result it held.
    let me = Client::new(
        &hub.ca_pem(),
        Some((&node_file("cert.pem"), &node_file("key.pem"))),
        &hub.url,
    );
    let waiting = node_file("outbox/00000000000000000001.json");
    let (s, v) = me.post("/v1/results", &serde_json::from_str(&waiting).unwrap());
    assert_eq!(s, 200, "{v}");
    let (_, results) = op.get("/v1/jobs/waiting/results");
    assert_eq!(results.as_array().unwrap().len(), 1, "{results}");
    assert_eq!(results[0]["node_id"], node);

    // The rotated policy holds: approvers of serial 2 (a2 and dave) sign jobs.
    let (s, policy) = op.get("/v1/policy");
    assert_eq!(s, 200, "{policy}");
    assert_eq!(
        policy["chain"][0]["policy"]["serial"], facts["policy_serial"],
        "{policy}"
    );
    // Signed by a2 and dave (the hub's key 3), approvers of the rotated policy.
    let job = hub.sign(
        &jobs::dns_job("after-upgrade", json!({"node": node})),
        &[2, 3],
    );
    let (s, v) = op.post("/v1/jobs", &job);
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["nodes"], json!([node]));

    // Opening again changes nothing.
    hub.kill();
    hub.spawn();
    assert_eq!(user_version(&db), SCHEMA_VERSION);
    let op = hub.operator_from(&fixtures::unversioned_hub().join("operator"), "ops");
    let (_, results) = op.get("/v1/jobs/waiting/results");
    assert_eq!(results.as_array().unwrap().len(), 1, "{results}");
}

#[test]
fn a_database_of_a_newer_hub_is_refused() {
    let (hub, _) = fixture_hub();
    let db = hub.data().join("hub.db");
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    for args in [
        &["nodes", "list"][..],
        &["serve", "--listen", "127.0.0.1:0"][..],
    ] {
        let (ok, _, err) = hub.cli(args);
        assert!(!ok, "{args:?} ran on a newer database");
        assert!(
            err.contains(&format!(
                "schema version {newer}, newer than this vantage-hub"
            )),
            "{args:?}: {err}"
        );
    }
    assert_eq!(user_version(&db), newer, "left as it was");
}
