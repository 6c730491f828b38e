//! Governance at the real hub: approval-policy rotation (quorum of the current
//! approvers, durable chain re-verified at start), `limit` spread over places,
//! and the per-target hourly rate.

use serde_json::{Value, json};
use vantage_proto::sign::ApproverKey;
use vantage_testkit::{
    Client, Hub, Node, approvers::approver_keys, approvers::sign_job, approvers::sign_policy, jobs,
    read,
};

/// Serial 2: approvers a2 (kept), dave and erin (new), threshold 2.
fn successor(hub: &Hub, signers: &[&ApproverKey]) -> Value {
    let k = approver_keys(5);
    let (dave, erin) = (&k[3], &k[4]);
    let policy = json!({"serial": 2, "network": "test", "threshold": 2,
        "approvers": [
            {"name": "a2", "key": hub.keys[2].public_key().to_base64()},
            {"name": "dave", "key": dave.public_key().to_base64()},
            {"name": "erin", "key": erin.public_key().to_base64()}],
        "allowed_probes": ["dns", "http", "tls", "tcp", "ping", "traceroute"]});
    sign_policy(&policy, signers)
}

/// A job on example.com signed by `by`.
fn job_by(id: &str, by: &[&ApproverKey]) -> Value {
    sign_job(&jobs::dns_job(id, json!("everyone")), by)
}

fn audit_actions(hub: &Hub, subject: &str) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open_with_flags(
        hub.data().join("hub.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut st = db
        .prepare("SELECT actor, action FROM audit WHERE subject=?1 ORDER BY id")
        .unwrap();
    st.query_map([subject], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn rotation_needs_a_quorum_of_the_current_approvers_and_survives_restart() {
    let mut hub = Hub::start(&[]);
    let op = hub.operator("ops");
    let node = hub.node("DE");
    let k = approver_keys(5);
    let (dave, erin) = (&k[3], &k[4]);

    assert_eq!(op.get("/v1/policy"), (200, json!({"chain": []})));
    assert_eq!(node.client.get("/v1/policy"), (200, json!({"chain": []})));
    assert_eq!(hub.anonymous().get("/v1/policy").0, 401);

    // Fewer than the threshold, or an incoming approver's signature: refused with a code.
    let (s, e) = op.post("/v1/policy", &successor(&hub, &[&k[0]]));
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["code"], "too-few-approvals", "{e}");
    assert!(e["error"].as_str().unwrap().contains("1 of the 2"), "{e}");
    let (s, e) = op.post("/v1/policy", &successor(&hub, &[&k[0], dave]));
    assert_eq!(
        (s, e["code"].as_str()),
        (422, Some("unknown-approver")),
        "{e}"
    );
    let mut forged = successor(&hub, &[&k[0], &k[1]]);
    forged["policy"]["threshold"] = json!(1);
    let (s, e) = op.post("/v1/policy", &forged);
    assert_eq!(
        (s, e["code"].as_str()),
        (422, Some("forged-signature")),
        "{e}"
    );
    // Only operators rotate.
    let (s, _) = node
        .client
        .post("/v1/policy", &successor(&hub, &[&k[0], &k[1]]));
    assert_eq!(s, 403);
    assert_eq!(op.post("/v1/policy", &json!({"nope": 1})).0, 400);

    let next = successor(&hub, &[&k[0], &k[1]]);
    assert_eq!(op.post("/v1/policy", &next), (200, json!({"serial": 2})));
    assert_eq!(
        node.client.get("/v1/policy"),
        (200, json!({"chain": [next]}))
    );
    let (s, e) = op.post("/v1/policy", &next);
    assert_eq!((s, e["code"].as_str()), (422, Some("not-newer")), "{e}");
    assert_eq!(
        audit_actions(&hub, "policy:2"),
        [("ops".to_string(), "policy.rotate".to_string())]
    );

    let check_jobs = |op: &Client, tag: &str| {
        let (s, r) = op.post("/v1/jobs", &job_by(&format!("new-{tag}"), &[dave, erin]));
        assert_eq!(s, 201, "signed by the new approvers: {r}");
        let (s, e) = op.post("/v1/jobs", &job_by(&format!("old-{tag}"), &[&k[0], &k[1]]));
        assert_eq!(s, 422, "{e}");
        assert_eq!(e["code"], "unknown-approver", "retired approvers: {e}");
    };
    check_jobs(&op, "1");

    // After a restart the stored chain is verified again and applied.
    hub.kill();
    hub.spawn();
    let op = hub.operator("ops");
    assert_eq!(op.get("/v1/policy"), (200, json!({"chain": [next]})));
    check_jobs(&op, "2");
    let backup = hub.dir.path().join("backup");
    let (ok, _, err) = hub.cli(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(
        read(backup.join("policy-chain.json")),
        read(hub.data().join("policy-chain.json"))
    );

    // A chain file changed behind the hub's back is not applied.
    hub.kill();
    let path = hub.data().join("policy-chain.json");
    let mut doc: Value = serde_json::from_str(&read(&path)).unwrap();
    doc["chain"][0]["policy"]["threshold"] = json!(1);
    std::fs::write(&path, doc.to_string()).unwrap();
    hub.spawn();
    let op = hub.operator("ops");
    assert_eq!(op.get("/v1/policy"), (200, json!({"chain": []})));
    let (s, r) = op.post("/v1/jobs", &job_by("old-3", &[&k[0], &k[1]]));
    assert_eq!(s, 201, "back on the shipped policy: {r}");
}

#[test]
fn limit_spreads_over_countries_then_networks() {
    let hub = Hub::start(&[]);
    let op = hub.operator("ops");
    let places = [
        ("DE", "3320"),
        ("DE", "3320"),
        ("DE", "680"),
        ("FR", "3215"),
        ("FR", "3215"),
        ("BR", "28573"),
    ];
    let nodes: Vec<(Node, &str, &str)> = places
        .iter()
        .map(|(c, a)| (hub.node_with(&["--country", c, "--asn", a], c), *c, *a))
        .collect();
    // One more node in DE that is offline: never picked.
    hub.node_with(&["--country", "DE", "--asn", "8881"], "DE");
    let hb = json!({"version": "0.1.0", "uptime_secs": 1, "outbox_depth": 0});
    for (n, _, _) in &nodes {
        assert_eq!(n.client.post("/v1/heartbeat", &hb).0, 200);
    }
    let place_of = |id: &str| {
        let (_, c, a) = nodes.iter().find(|(n, _, _)| n.id == id).unwrap();
        (*c, *a)
    };
    let picked = |id: &str, limit: u32, target: &str| -> Vec<(&str, &str)> {
        let job = hub.job_with(id, json!("everyone"), |j| {
            j["probe"]["args"]["name"] = json!(target);
            j["limit"] = json!(limit);
        });
        let (s, r) = op.post("/v1/jobs", &job);
        assert_eq!(s, 201, "{r}");
        let ids: Vec<String> = serde_json::from_value(r["nodes"].clone()).unwrap();
        assert_eq!(
            r["channels"],
            json!(ids.iter().map(|i| format!("node.{i}")).collect::<Vec<_>>())
        );
        ids.iter().map(|i| place_of(i)).collect()
    };
    // Three nodes: one per country, although DE has the most nodes.
    let three = picked("three", 3, "a.example");
    let mut countries: Vec<&str> = three.iter().map(|p| p.0).collect();
    countries.sort();
    assert_eq!(countries, ["BR", "DE", "FR"], "{three:?}");
    // Five: the second round takes DE's other network before a second AS3320 node.
    let five = picked("five", 5, "b.example");
    let mut got = five.clone();
    got.sort();
    assert_eq!(
        got,
        [
            ("BR", "28573"),
            ("DE", "3320"),
            ("DE", "680"),
            ("FR", "3215"),
            ("FR", "3215")
        ],
        "{five:?}"
    );
    // A selection narrows the places first.
    let de = hub.job_with("de", json!({"country": "DE"}), |j| {
        j["probe"]["args"]["name"] = json!("c.example");
        j["limit"] = json!(2);
    });
    let (s, r) = op.post("/v1/jobs", &de);
    assert_eq!(s, 201, "{r}");
    let ids: Vec<String> = serde_json::from_value(r["nodes"].clone()).unwrap();
    let mut asns: Vec<&str> = ids.iter().map(|i| place_of(i).1).collect();
    asns.sort();
    assert_eq!(asns, ["3320", "680"]);
}

#[test]
fn per_target_rate_of_the_hub_is_stricter_than_the_policy() {
    let hub = Hub::start(&["--max-target-rate", "1"]);
    let op = hub.operator("ops");
    hub.node("DE");
    let (s, r) = op.post("/v1/jobs", &hub.job("first", json!("everyone")));
    assert_eq!(s, 201, "{r}");
    let (s, e) = op.post("/v1/jobs", &hub.job("second", json!("everyone")));
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["code"], "target-rate");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("example.com") && msg.contains("allows 1 per target and hour"),
        "{msg}"
    );
    // Another target is not affected, and the refused job was not stored.
    let other = hub.job_with("other", json!("everyone"), |j| {
        j["probe"]["args"]["name"] = json!("example.net")
    });
    assert_eq!(op.post("/v1/jobs", &other).0, 201);
    assert_eq!(op.get("/v1/jobs/second").0, 404);
}
