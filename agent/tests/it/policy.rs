//! Approval-policy rotation on a real node: the agent takes a successor the
//! current approvers signed from the real hub, keeps it across restarts and
//! runs jobs signed under it; given a forged chain by a (test-only) HTTPS
//! server in the hub's place it keeps its policy. (Single-signature jobs
//! forced through the hub's raw publish are covered in `refusals.rs`.)

use crate::support::hub;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use vantage_testkit::{
    Agent, Client, Hub, approvers::sign_job, approvers::sign_policy, jobs::node_job, wait_for,
};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use vantage_proto::sign::ApproverKey;

const OWNER: &str = "[owner]\nallow_special_addresses = true\n";

fn erin() -> ApproverKey {
    ApproverKey::from_seed(&[5; 32]).unwrap()
}

/// Serial 2: a2 stays, key 3 ("dave", outside serial 1) and erin join, threshold 2.
fn successor(hub: &Hub) -> Value {
    json!({"serial": 2, "network": "test", "threshold": 2,
        "approvers": [
            {"name": "a2", "key": hub.keys[2].public_key().to_base64()},
            {"name": "dave", "key": hub.keys[3].public_key().to_base64()},
            {"name": "erin", "key": erin().public_key().to_base64()}],
        "allowed_probes": ["dns", "http", "tls", "tcp", "ping", "traceroute"]})
}

fn reported_serial(op: &Client, node: &str) -> Option<u64> {
    let (s, v) = op.get(&format!("/v1/nodes/{node}"));
    assert_eq!(s, 200, "{v}");
    v["policy_serial"].as_u64()
}

fn tcp_to_hub(hub: &Hub, id: &str, node: &str) -> Value {
    node_job(
        id,
        node,
        json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
    )
}

#[test]
fn a_node_takes_a_rotated_policy_and_runs_jobs_signed_under_it() {
    let hub = hub();
    let op = hub.operator("ops");
    let mut agent = Agent::new(&hub, "", OWNER);
    agent.start();
    agent.subscribed(1);
    let node = agent.node_id.clone();
    wait_for("the node to report serial 1", 20, || {
        reported_serial(&op, &node) == Some(1)
    });

    let next = sign_policy(&successor(&hub), &[&hub.keys[0], &hub.keys[1]]);
    assert_eq!(op.post("/v1/policy", &next), (200, json!({"serial": 2})));
    wait_for("the node to report serial 2", 20, || {
        reported_serial(&op, &node) == Some(2)
    });
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(agent.data().join("policy-chain.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stored, json!({"chain": [next]}));

    // Signed by the new approvers: the hub accepts it and the node runs it.
    let job = tcp_to_hub(&hub, "by-new", &node);
    let (s, r) = op.post("/v1/jobs", &sign_job(&job, &[&hub.keys[3], &erin()]));
    assert_eq!(s, 201, "{r}");
    let r = hub.result(&op, "by-new", 20);
    assert_eq!(r["status"], "ok", "{r}");
    // Signed by retired approvers and forced onto the node's channel: refused there.
    let old = tcp_to_hub(&hub, "by-old", &node);
    hub.raw(
        &op,
        &format!("node.{node}"),
        &sign_job(&old, &[&hub.keys[0], &hub.keys[1]]),
    );
    // Without a quorum's signatures it is counted for the heartbeat, not queued as a result.
    agent.wait_log("refused job by-old", 1, 20);
    assert!(
        agent.log().contains("(unknown-approver)"),
        "{}",
        agent.log()
    );
    assert!(op.results("by-old").is_empty());

    // After a restart the node verifies its stored chain from the shipped policy again.
    agent.kill9();
    agent.start();
    agent.wait_log(
        "approval policy serial 2 (shipped policy plus 1 verified successor(s))",
        1,
        20,
    );
    agent.subscribed(2);
    let again = tcp_to_hub(&hub, "by-new-again", &node);
    let (s, r) = op.post("/v1/jobs", &sign_job(&again, &[&hub.keys[2], &erin()]));
    assert_eq!(s, 201, "{r}");
    assert_eq!(hub.result(&op, "by-new-again", 20)["status"], "ok");
}

#[test]
fn a_node_fetches_the_policy_when_a_job_signed_under_a_newer_one_arrives() {
    let hub = hub();
    let op = hub.operator("ops");
    let mut agent = Agent::new(&hub, "", OWNER);
    // No heartbeat (and so no periodic fetch) during the test.
    let cfg = std::fs::read_to_string(agent.config_path()).unwrap();
    std::fs::write(
        agent.config_path(),
        cfg.replace("heartbeat_secs = 5", "heartbeat_secs = 3600"),
    )
    .unwrap();
    agent.start();
    agent.subscribed(1);
    let node = agent.node_id.clone();
    wait_for("the start-up heartbeat", 20, || {
        reported_serial(&op, &node) == Some(1)
    });
    // Let the fetch after connecting finish before the rotation.
    std::thread::sleep(std::time::Duration::from_millis(500));

    let next = sign_policy(&successor(&hub), &[&hub.keys[0], &hub.keys[1]]);
    assert_eq!(op.post("/v1/policy", &next), (200, json!({"serial": 2})));
    let job = tcp_to_hub(&hub, "first-under-2", &node);
    let (s, r) = op.post("/v1/jobs", &sign_job(&job, &[&hub.keys[3], &erin()]));
    assert_eq!(s, 201, "{r}");
    let r = hub.result(&op, "first-under-2", 20);
    assert_eq!(r["status"], "ok", "{r}");
    assert!(
        agent
            .log()
            .contains("asking the hub for a newer approval policy"),
        "{}",
        agent.log()
    );
    assert!(agent.data().join("policy-chain.json").exists());
}

/// A loopback HTTPS server with the hub's own certificate that answers every
/// request with `body`; returns its port and a request counter.
fn impostor(hub_data: &Path, body: String) -> (u16, Arc<AtomicUsize>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(hub_data.join("server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(hub_data.join("server.key")).unwrap();
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            if !head.starts_with(b"GET /v1/policy ") {
                continue;
            }
            count.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, served)
}

#[test]
fn a_node_keeps_its_policy_when_offered_a_forged_chain() {
    let hub = hub();
    let op = hub.operator("ops");
    let mut agent = Agent::new(&hub, "", OWNER);
    let node = agent.node_id.clone();

    // The successor the approvers signed, then changed to make outsiders approvers.
    let mut forged = sign_policy(&successor(&hub), &[&hub.keys[0], &hub.keys[1]]);
    forged["policy"]["approvers"][0]["key"] = json!(
        ApproverKey::from_seed(&[9; 32])
            .unwrap()
            .public_key()
            .to_base64()
    );
    let (port, served) = impostor(&hub.data(), json!({"chain": [forged]}).to_string());
    // The node asks the impostor for policies; everything else goes to the real hub.
    let node_json = agent.data().join("node.json");
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&node_json).unwrap()).unwrap();
    state["endpoints"]["hub"] = json!(format!("https://localhost:{port}"));
    std::fs::write(&node_json, state.to_string()).unwrap();

    agent.start();
    agent.subscribed(1);
    agent.wait_log("POLICY UPDATE REFUSED", 1, 20);
    assert!(served.load(Ordering::SeqCst) >= 1);
    assert!(agent.log().contains("forged signature"), "{}", agent.log());
    wait_for("a heartbeat after the refusal", 20, || {
        reported_serial(&op, &node) == Some(1)
    });
    assert!(!agent.data().join("policy-chain.json").exists());

    // The forged policy's approvers get nothing run; the real ones still do.
    let by_forgers = tcp_to_hub(&hub, "by-forgers", &node);
    hub.raw(
        &op,
        &format!("node.{node}"),
        &sign_job(&by_forgers, &[&hub.keys[3], &erin()]),
    );
    agent.wait_log("refused job by-forgers", 1, 20);
    assert!(
        agent.log().contains("(unknown-approver)"),
        "{}",
        agent.log()
    );
    hub.submit(&op, &tcp_to_hub(&hub, "by-approvers", &node));
    assert_eq!(hub.result(&op, "by-approvers", 20)["status"], "ok");
}
