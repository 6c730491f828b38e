//! Upgrades of a running network: a hub data directory and a node data
//! directory written by an earlier release (the fixtures in
//! `tests/fixtures/`) are opened by this one, and the network keeps working.

use crate::support::hub_with;
use std::path::PathBuf;
use vantage_testkit::{
    Agent, Client, Hub, approvers::sign_policy, bin, fixtures, jobs::node_job, node::enrol_body,
    now, wait_for,
};

use serde_json::{Value, json};

const OWNER: &str = "[owner]\nallow_special_addresses = true\n";

/// Certificates in a fixture outlive the tests that read it.
const FIXTURE_LIFETIME: &str = "7300d";

/// Serial 2 of the test policy: a2 stays, key 3 ("dave") joins, threshold 2.
fn successor(hub: &Hub) -> Value {
    json!({"serial": 2, "network": "test", "threshold": 2,
        "approvers": [
            {"name": "a2", "key": hub.keys[2].public_key().to_base64()},
            {"name": "dave", "key": hub.keys[3].public_key().to_base64()}],
        "allowed_probes": ["dns", "http", "tls", "tcp", "ping", "traceroute"]})
}

/// Writes a fixture of what this release leaves on disk into
/// `$VANTAGE_FIXTURE_OUT`: `hub/` (a `vantage-hub backup` of a hub with three
/// enrolments, a rotated policy, two jobs and a result), `policy.json` (its
/// shipped policy), `operator/` (an operator certificate), `node/` (the data
/// directory of the node that ran the jobs: identity, policy chain, replay
/// set, stream position and one result still in its outbox) and
/// `fixture.json` (what a test can expect). Run it before changing a stored
/// format, and commit the result as the fixture of the release before.
#[test]
#[ignore = "makes upgrade fixtures; see tests/fixtures/README.md"]
fn make_fixture() {
    let out = PathBuf::from(
        std::env::var("VANTAGE_FIXTURE_OUT")
            .expect("set VANTAGE_FIXTURE_OUT to an empty directory"),
    );
    let mut hub = hub_with(&[
        "--keepalive",
        "1s",
        "--node-cert-lifetime",
        FIXTURE_LIFETIME,
    ]);
    let (ok, _, err) = hub.cli(&[
        "server-cert",
        "--name",
        "localhost",
        "--name",
        "127.0.0.1",
        "--lifetime",
        FIXTURE_LIFETIME,
    ]);
    assert!(ok, "server-cert: {err}");
    let ops = out.join("operator");
    let (ok, _, err) = hub.cli(&[
        "operator",
        "issue",
        "ops",
        "--out",
        ops.to_str().unwrap(),
        "--lifetime",
        FIXTURE_LIFETIME,
    ]);
    assert!(ok, "operator issue: {err}");
    let op = hub.operator_from(&ops, "ops");

    // The node that runs jobs, another enrolled with a token, a key waiting
    // for approval and a token nobody used.
    let mut agent = Agent::new(&hub, "", OWNER);
    agent.start();
    agent.subscribed(1);
    let node = agent.node_id.clone();
    let other = hub
        .node_with(&["--country", "DE", "--continent", "EU"], "DE")
        .id;
    let key = rcgen::KeyPair::generate().unwrap();
    let (s, pending) = hub
        .anonymous()
        .post("/v1/enrol", &enrol_body(&key, None, "BR"));
    assert_eq!(
        pending["status"], "pending",
        "a token-less enrolment waits for approval: {s} {pending}"
    );
    let fingerprint = pending["fingerprint"].as_str().unwrap().to_string();
    let (ok, _, err) = hub.cli(&["token", "create", "--country", "JP"]);
    assert!(ok, "token create: {err}");

    // A rotated policy, which both the hub and the node store.
    let next = successor(&hub);
    let (s, v) = op.post(
        "/v1/policy",
        &sign_policy(&next, &[&hub.keys[0], &hub.keys[1]]),
    );
    assert_eq!(s, 200, "{v}");
    wait_for("the node to store the new policy", 20, || {
        agent.data().join("policy-chain.json").exists()
    });

    // A job whose result the hub has, and one whose result waits in the
    // node's outbox because the hub went down before it ran.
    let tcp = json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}});
    let job = node_job("delivered", &node, tcp.clone());
    let (s, v) = op.post("/v1/jobs", &hub.sign(&job, &[2, 3]));
    assert_eq!(s, 201, "{v}");
    assert_eq!(hub.result(&op, "delivered", 20)["status"], "ok");
    let mut job = node_job("waiting", &node, tcp);
    job["not_before"] = json!(now() + 3);
    let (s, v) = op.post("/v1/jobs", &hub.sign(&job, &[2, 3]));
    assert_eq!(s, 201, "{v}");
    agent.wait_log("accepted job", 2, 20);
    hub.kill();
    wait_for("the result in the outbox", 20, || agent.outbox_depth() == 1);
    agent.kill9();

    let (ok, _, err) = hub.cli(&["backup", "--out", out.join("hub").to_str().unwrap()]);
    assert!(ok, "backup: {err}");
    std::fs::copy(hub.policy_path(), out.join("policy.json")).unwrap();
    fixtures::copy_dir(&agent.data(), &out.join("node"));
    let facts = json!({"node": node, "other_node": other, "pending": fingerprint,
        "delivered": "delivered", "waiting": "waiting", "policy_serial": 2, "hub_port": hub.port()});
    std::fs::write(
        out.join("fixture.json"),
        serde_json::to_string_pretty(&facts).unwrap() + "\n",
    )
    .unwrap();
}

/// A hub on a copy of the fixture hub's data directory, on a new port.
fn fixture_hub() -> (Hub, Value) {
    let mut hub = Hub::builder().copy_of(&fixtures::unversioned_hub());
    hub.spawn();
    (hub, fixtures::unversioned_facts())
}

/// An agent (not started) on a copy of the fixture node's data directory.
/// The fixture's hub listened on another port: `node.json` is pointed at
/// this one, as the hub's public URL would be kept in production.
fn fixture_agent(hub: &Hub, facts: &Value) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fixtures::copy_dir(&fixtures::unversioned_node(), &data);
    // Git does not keep modes; on a node the key is the agent's alone.
    std::fs::set_permissions(
        data.join("key.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let node_json = data.join("node.json");
    let text = std::fs::read_to_string(&node_json).unwrap();
    let old = format!("localhost:{}", facts["hub_port"]);
    std::fs::write(
        &node_json,
        text.replace(&old, &format!("localhost:{}", hub.port())),
    )
    .unwrap();
    let cfg = format!(
        "data_dir = {data:?}\nca = {:?}\npolicy = {:?}\nheartbeat_secs = 5\n\
         [subscribe]\nkeepalive_timeout_secs = 5\nmin_backoff_secs = 1\nmax_backoff_secs = 2\n{OWNER}",
        hub.ca_path(),
        hub.policy_path(),
    );
    std::fs::write(dir.path().join("agent.toml"), cfg).unwrap();
    Agent {
        dir,
        child: None,
        node_id: facts["node"].as_str().unwrap().to_string(),
    }
}

fn operator(hub: &Hub) -> Client {
    hub.operator_from(&fixtures::unversioned_hub().join("operator"), "ops")
}

#[test]
fn an_unversioned_network_is_upgraded_and_keeps_working() {
    let (hub, facts) = fixture_hub();
    let mut agent = fixture_agent(&hub, &facts);
    let format = agent.data().join("format");
    assert!(!format.exists(), "the fixture predates formats");
    agent.start();
    agent.subscribed(1);
    assert_eq!(
        std::fs::read_to_string(&format).unwrap(),
        format!("{}\n", vantage_node::state::FORMAT)
    );
    assert!(
        agent.log().contains("upgraded from format 0"),
        "{}",
        agent.log()
    );

    // The node kept its identity and its outbox: the result it held arrives.
    let op = operator(&hub);
    let node = agent.node_id.clone();
    let waiting = hub.result(&op, "waiting", 20);
    assert_eq!(waiting["node_id"], node);
    wait_for("an empty outbox", 20, || agent.outbox_depth() == 0);
    assert_eq!(op.results("delivered").len(), 1);

    // And its rotated policy: a job signed by a2 and dave (serial 2) runs.
    let job = node_job(
        "after-upgrade",
        &node,
        json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
    );
    let (s, v) = op.post("/v1/jobs", &hub.sign(&job, &[2, 3]));
    assert_eq!(s, 201, "{v}");
    assert_eq!(hub.result(&op, "after-upgrade", 20)["status"], "ok");

    // A restart finds the current format and changes nothing.
    agent.kill9();
    agent.start();
    agent.subscribed(2);
    assert_eq!(agent.log().matches("upgraded from format").count(), 1);
}

#[test]
fn a_data_directory_of_a_newer_release_is_refused() {
    let (hub, facts) = fixture_hub();
    let agent = fixture_agent(&hub, &facts);
    let newer = format!("{}\n", vantage_node::state::FORMAT + 1);
    std::fs::write(agent.data().join("format"), &newer).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(bin("vantage-agent"))
            .arg("--config")
            .arg(agent.config_path())
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the agent ran: {err}");
    assert!(err.contains("newer than this release"), "{err}");
    let out = run(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("FAIL  the node's data directory is in format"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(agent.data().join("format")).unwrap(),
        newer,
        "left as it was"
    );
}
