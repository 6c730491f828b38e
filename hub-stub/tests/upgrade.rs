//! Upgrades: the data directory of a hub from before schema versions
//! (`tests/fixtures/unversioned/`, how it was made is in the README there) is
//! migrated by this hub, which then serves the old network: its nodes, jobs,
//! results and rotated policy. A database of a newer hub is refused.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use vantage_hub::db::SCHEMA_VERSION;
use vantage_proto::sign::ApproverKey;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unversioned")
}

/// The node of the fixture network that ran the jobs (its data directory is
/// the agent's fixture).
fn node_file(name: &str) -> String {
    let node = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agent/tests/fixtures/unversioned/node")
        .join(name);
    read(&node)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A stopped hub on a copy of the fixture's data directory and policy.
fn fixture_hub() -> (Hub, Value) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("hub"), &dir.path().join("hub"));
    std::fs::copy(
        fixture().join("policy.json"),
        dir.path().join("policy.json"),
    )
    .unwrap();
    let facts = serde_json::from_str(&read(&fixture().join("fixture.json"))).unwrap();
    let hub = Hub {
        dir,
        child: None,
        url: String::new(),
        serve_args: Vec::new(),
        keys: approver_keys(),
    };
    (hub, facts)
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
    hub.spawn(None);
    assert_eq!(user_version(&db), SCHEMA_VERSION);

    let ops = fixture().join("operator");
    let op = Client::new(
        &hub.ca_pem(),
        Some((&read(&ops.join("ops.crt")), &read(&ops.join("ops.key")))),
        &hub.url,
    );
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
    let dave = ApproverKey::from_seed(&[4; 32]).unwrap();
    let mut job = hub.job("after-upgrade", json!({"node": node}));
    let sigs: Vec<Value> = [&hub.keys[2], &dave]
        .iter()
        .map(|k| serde_json::to_value(k.sign_job(&job["job"]).unwrap()).unwrap())
        .collect();
    job["signatures"] = json!(sigs);
    let (s, v) = op.post("/v1/jobs", &job);
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["nodes"], json!([node]));

    // Opening again changes nothing.
    hub.kill9();
    hub.spawn(None);
    assert_eq!(user_version(&db), SCHEMA_VERSION);
    let op = Client::new(
        &hub.ca_pem(),
        Some((&read(&ops.join("ops.crt")), &read(&ops.join("ops.key")))),
        &hub.url,
    );
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
