//! What a rogue node or a hostile stream must not do to the hub: hide a node's
//! trouble from operators, make it skip jobs, or store results nobody asked for.

use serde_json::json;
use vantage_testkit::Hub;

#[test]
fn a_nodes_last_error_is_visible_to_operators() {
    let hub = Hub::start(&[]);
    let op = hub.operator("alice");
    let n = hub.node("DE");
    let (s, v) = n.client.post(
        "/v1/heartbeat",
        &json!({"version": "9", "uptime_secs": 5, "outbox_depth": 2, "outbox_dropped": 1,
                "last_error": "subscription: connecting to https://x/: invalid header\nvalue"}),
    );
    assert_eq!(s, 200, "{v}");
    let (s, nodes) = op.get("/v1/nodes");
    assert_eq!(s, 200);
    let me = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == json!(n.id))
        .unwrap()
        .clone();
    assert_eq!(
        me["last_error"], "subscription: connecting to https://x/: invalid header value",
        "{me}"
    );
    assert_eq!(
        (me["outbox_depth"].clone(), me["outbox_dropped"].clone()),
        (json!(2), json!(1))
    );
    let (_, one) = op.get(&format!("/v1/nodes/{}", n.id));
    assert_eq!(one["last_error"], me["last_error"]);
}

#[test]
fn an_id_the_hub_never_issued_replays_what_it_holds() {
    let hub = Hub::start(&["--retention-entries", "3"]);
    let op = hub.operator("alice");
    let n = hub.node("DE");
    for i in 0..4 {
        let (s, r) = op.post("/v1/jobs", &hub.job(&format!("h{i}"), json!("everyone")));
        assert_eq!(s, 201, "{r}");
    }
    // As a node sends after a forged envelope moved its position to 2^64 - 1.
    let forged = u64::MAX.to_string();
    let sub = n.client.sse("/v1/sub/all", Some(&forged)).unwrap();
    let gap = sub.event();
    assert_eq!(gap.event.as_deref(), Some("gap"));
    let data: serde_json::Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(data["requested"], forged.as_str());
    let held: Vec<_> = (0..3)
        .map(|_| vantage_testkit::envelope(&sub.event())["payload"]["job"]["id"].clone())
        .collect();
    assert_eq!(held, [json!("h1"), json!("h2"), json!("h3")]);
    // The gap's id is just before the oldest held entry, so resuming from it
    // again cannot skip anything either.
    assert_eq!(data["oldest"].to_string(), {
        let next: u64 = gap.id.unwrap().parse().unwrap();
        (next + 1).to_string()
    });
    // The same through a long-poll (how an agent behind Nchan catches up).
    let (s, body) = n.client.get(&format!(
        "/v1/sub/all?mode=poll&timeout=0&last_event_id={forged}"
    ));
    assert_eq!(s, 200);
    let text = body.as_str().unwrap();
    assert!(
        text.contains("event: gap") && text.contains("\"h1\"") && text.contains("\"h3\""),
        "{text}"
    );
}

#[test]
fn results_only_for_jobs_runs_and_nodes_that_exist() {
    let hub = Hub::start(&[]);
    let op = hub.operator("alice");
    let de = hub.node("DE");
    let fr = hub.node("FR");
    let (s, r) = op.post("/v1/jobs", &hub.job("once", json!({"node": de.id})));
    assert_eq!(s, 201, "{r}");
    let (s, r) = op.post(
        "/v1/jobs",
        &hub.job_with("every", json!({"country": "DE"}), |j| {
            j["repeat_secs"] = json!(60)
        }),
    );
    assert_eq!(s, 201, "{r}");
    let result = |job: &str, node: &str, seq: u32| {
        json!({"job_id": job, "node_id": node, "probe": "dns", "started_ms": 1_764_013_201_234u64,
               "duration_ms": 12, "status": "ok", "data": "x".repeat(1000), "seq": seq})
    };
    let post = |n: &vantage_testkit::Node, job: &str, seq: u32| {
        let (s, v) = n.client.post("/v1/results", &result(job, &n.id, seq));
        (s, v["code"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(post(&de, "once", 0), (200, String::new()));
    assert_eq!(post(&de, "once", 1), (422, "run-not-scheduled".into()));
    assert_eq!(post(&de, "every", 1), (200, String::new()));
    assert_eq!(post(&de, "every", 1000), (422, "run-not-scheduled".into()));
    assert_eq!(post(&fr, "once", 0), (403, "not-selected".into()));
    assert_eq!(post(&fr, "every", 0), (403, "not-selected".into()));
    assert_eq!(post(&de, "made-up", 0), (422, "unknown-job".into()));
    // A node enrolled after the job was accepted is on its channel too.
    let late = hub.node("DE");
    assert_eq!(post(&late, "every", 0), (200, String::new()));
    let (_, stats) = op.get("/v1/stats");
    assert_eq!(stats["results_refused"], 5, "{stats}");
    let (_, all) = op.get("/v1/jobs/once/results");
    assert_eq!(all.as_array().unwrap().len(), 1);
}

/// A body that arrives one byte a second, and counts what was taken.
struct Trickle {
    left: usize,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        self.left -= 1;
        self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        buf[0] = b' ';
        Ok(1)
    }
}

#[test]
fn a_trickled_request_body_has_a_deadline() {
    let hub = Hub::start(&["--header-timeout", "2s"]);
    let client = hub.anonymous();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut body = Trickle {
        left: 10,
        sent: sent.clone(),
    };
    let r = client
        .agent
        .post(format!("{}/v1/enrol", client.base))
        .header("content-type", "application/json")
        .send(ureq::SendBody::from_reader(&mut body));
    // Cut off after about 2 of the 10 bytes: a 408, or the connection closed
    // under the sender. Without a deadline all 10 arrive and the hub answers 400.
    match r {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            assert_eq!(status, 408, "{text}");
            assert!(text.contains("request-timeout"), "{text}");
        }
        Err(e) => assert!(sent.load(std::sync::atomic::Ordering::SeqCst) < 10, "{e}"),
    }
}

/// A TCP connection to the hub from another loopback address, sending nothing.
fn silent_from(src: &str, port: u16) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
        sock.connect(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

#[test]
fn silent_connections_are_limited_per_address_before_tls() {
    use std::io::Read;
    let hub = Hub::start(&[
        "--max-handshakes-per-address",
        "3",
        "--header-timeout",
        "30s",
    ]);
    let op = hub.operator("alice");
    let held: Vec<_> = (0..3)
        .map(|_| silent_from("127.0.0.2", hub.port()))
        .collect();
    // The fourth from the same address is closed at once, not held for the
    // 30 s the handshake may take.
    let mut extra = silent_from("127.0.0.2", hub.port());
    extra
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    let n = extra.read(&mut buf).map_err(|e| e.kind());
    assert!(
        matches!(n, Ok(0)) || matches!(n, Err(std::io::ErrorKind::ConnectionReset)),
        "{n:?}"
    );
    // Other addresses, and the operator's requests, are not affected.
    let (s, _) = op.get("/v1/stats");
    assert_eq!(s, 200);
    let _other = silent_from("127.0.0.3", hub.port());
    let (s, stats) = op.get("/v1/stats");
    assert_eq!(s, 200);
    assert!(
        stats["connections_refused"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    drop(held);
}

#[test]
fn one_address_cannot_fill_the_pending_queue() {
    let hub = Hub::start(&["--max-pending-per-address", "3"]);
    let anon = hub.anonymous();
    let keys: Vec<_> = (0..4)
        .map(|_| rcgen::KeyPair::generate().unwrap())
        .collect();
    for k in &keys[..3] {
        let (s, v) = anon.post(
            "/v1/enrol",
            &vantage_testkit::node::enrol_body(k, None, "DE"),
        );
        assert_eq!(s, 202, "{v}");
    }
    let (s, v) = anon.post(
        "/v1/enrol",
        &vantage_testkit::node::enrol_body(&keys[3], None, "DE"),
    );
    assert_eq!(
        (s, v["code"].as_str()),
        (429, Some("pending-per-address")),
        "{v}"
    );
    assert!(
        v["error"].as_str().unwrap().contains("enrol with a token"),
        "{v}"
    );
    // A key already waiting keeps polling, and a token still works.
    let (s, v) = anon.post(
        "/v1/enrol",
        &vantage_testkit::node::enrol_body(&keys[0], None, "DE"),
    );
    assert_eq!(s, 202, "{v}");
    let token = hub.token(&["--country", "DE"]);
    let (s, v) = anon.post(
        "/v1/enrol",
        &vantage_testkit::node::enrol_body(&keys[3], Some(&token), "DE"),
    );
    assert_eq!(s, 200, "{v}");
}

#[test]
fn a_nodes_result_volume_is_bounded() {
    let hub = Hub::start(&["--max-result-bytes-per-node-day", "3000"]);
    let op = hub.operator("alice");
    let de = hub.node("DE");
    let other = hub.node("DE");
    let (s, r) = op.post(
        "/v1/jobs",
        &hub.job_with("every", json!({"country": "DE"}), |j| {
            j["repeat_secs"] = json!(60)
        }),
    );
    assert_eq!(s, 201, "{r}");
    let post = |n: &vantage_testkit::Node, seq: u32| {
        let body = json!({"job_id": "every", "node_id": n.id, "probe": "dns",
            "started_ms": 1_764_013_201_234u64, "duration_ms": 12, "status": "ok",
            "data": "x".repeat(1000), "seq": seq});
        let (s, v) = n.client.post("/v1/results", &body);
        (s, v["code"].as_str().unwrap_or("").to_string())
    };
    // About 1.2 KB each: two fit in 3000 bytes, the third does not.
    assert_eq!(post(&de, 0), (200, String::new()));
    assert_eq!(post(&de, 1), (200, String::new()));
    assert_eq!(post(&de, 2), (429, "result-volume".into()));
    assert_eq!(
        post(&other, 0),
        (200, String::new()),
        "another node's budget"
    );
    let (_, stats) = op.get("/v1/stats");
    assert_eq!(stats["results_over_volume"], 1, "{stats}");
    let (_, all) = op.get("/v1/jobs/every/results");
    assert_eq!(all.as_array().unwrap().len(), 3);
}
