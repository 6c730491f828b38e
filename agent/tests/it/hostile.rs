//! A hostile event-stream server the agent trusts by CA: what it sends must
//! never stop the node, make it skip real work, or crowd out real results.

use crate::support::hub;
use serde_json::json;
use vantage_testkit::{Agent, Client, Hub, jobs::node_job, sse_server::Hostile, wait_for};

fn agent_on(hub: &Hub, server: &Hostile) -> Agent {
    Agent::new(
        hub,
        "",
        &format!(
            "url = \"{}\"\n[owner]\nallow_special_addresses = true\n",
            server.url()
        ),
    )
}

#[test]
fn unusable_event_ids_never_stop_reconnects() {
    let hub = hub();
    let huge = "7".repeat(200 * 1024);
    let server = Hostile::start(
        &hub,
        vec![
            b"id: 41\n\n".to_vec(),
            b"id: 42\x01x\ndata: junk\n\n".to_vec(),
            format!("id: {huge}\ndata: junk\n\n").into_bytes(),
            b":ka\n\n".to_vec(),
        ],
    );
    let mut agent = agent_on(&hub, &server);
    // As left by an agent that stored ids unchecked: it must not stop this one.
    std::fs::create_dir_all(agent.data()).unwrap();
    std::fs::write(agent.data().join("last-event-id"), "9\u{7}9").unwrap();
    agent.start();
    wait_for("five connections to the hostile server", 30, || {
        server.requests().len() >= 5
    });
    assert_eq!(server.last_event_id(0), None, "{:?}", server.requests());
    for i in 1..5 {
        assert_eq!(
            server.last_event_id(i).as_deref(),
            Some("41"),
            "request {i}: {:?}",
            server.requests()
        );
    }
    let log = agent.log();
    assert!(log.contains("ignoring the stored last event id"), "{log}");
    assert!(log.contains("id of 4 bytes ignored"), "{log}");
    assert!(
        log.contains(&format!("id of {} bytes ignored", huge.len())),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(agent.data().join("last-event-id")).unwrap(),
        "41"
    );
}

#[test]
fn a_forged_envelope_never_moves_the_hub_sequence() {
    let hub = hub();
    let op = hub.operator("ops");
    let mut forged = hub.sign(
        &node_job(
            "forged",
            "n-0000000000",
            json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": 1}}),
        ),
        &[0, 1],
    );
    forged["job"]["probe"]["args"]["port"] = json!(2);
    let envelope = json!({"id": u64::MAX, "channel": "all",
        "time": httpdate::fmt_http_date(std::time::SystemTime::now()), "payload": forged});
    let server = Hostile::start_gated(
        &hub,
        vec![
            format!("id: 1\ndata: {envelope}\n\nid: 2\ndata: not json\n\n").into_bytes(),
            b":ka\n\n".to_vec(),
        ],
        1,
    );
    let mut agent = agent_on(&hub, &server);
    agent.start();
    // Handled in order: once the second event is refused, the first one was too.
    agent.wait_log("refused an unreadable message", 1, 30);
    assert!(
        agent.log().contains("refused job forged"),
        "{}",
        agent.log()
    );
    let seq = std::fs::read_to_string(agent.data().join("hub-seq")).unwrap_or_default();
    assert_ne!(seq.trim(), u64::MAX.to_string(), "{}", agent.log());
    // A job the hub holds is caught up on the next connection.
    hub.submit(
        &op,
        &node_job(
            "held",
            &agent.node_id,
            json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
        ),
    );
    server.release();
    let r = hub.result(&op, "held", 30);
    assert_eq!(r["status"], "ok", "{r}");
}

#[test]
fn junk_is_counted_and_reported_never_queued_ahead_of_real_results() {
    let hub = hub();
    let op = hub.operator("ops");
    let mut junk = String::new();
    for i in 0..40 {
        junk += &format!("id: {}\ndata: junk {i}\n\n", 100 + i);
    }
    for i in 0..10 {
        let mut forged = hub.sign(
            &node_job(
                &format!("forged-{i}"),
                "n-0000000000",
                json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": 1}}),
            ),
            &[0, 1],
        );
        forged["job"]["probe"]["args"]["port"] = json!(2);
        let envelope = json!({"id": 1, "channel": "all",
            "time": httpdate::fmt_http_date(std::time::SystemTime::now()), "payload": forged});
        junk += &format!("id: {}\ndata: {envelope}\n\n", 200 + i);
    }
    // Duplicate keys in a signed job are refused like any unreadable message.
    junk += &format!(
        "id: 300\ndata: {{\"id\":1,\"channel\":\"all\",\"time\":\"{}\",\"payload\":{{\"job\":{{\"id\":\"a\",\"id\":\"b\"}},\"signatures\":[]}}}}\n\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    let server = Hostile::start(&hub, vec![junk.into_bytes(), b":ka\n\n".to_vec()]);
    // A small outbox: one result per junk message would push real ones out.
    let mut agent = Agent::new(
        &hub,
        "",
        &format!(
            "url = \"{}\"\n[owner]\nallow_special_addresses = true\n[outbox]\nmax_results = 3\n",
            server.url()
        ),
    );
    agent.start();
    agent.wait_log("refused job forged-", 1, 30);
    hub.submit(
        &op,
        &node_job(
            "real",
            &agent.node_id,
            json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
        ),
    );
    let r = hub.result(&op, "real", 30);
    assert_eq!(r["status"], "ok", "{r}");
    let node = |op: &Client| {
        let (_, v) = op.get(&format!("/v1/nodes/{}", agent.node_id));
        v
    };
    wait_for("the refusal counts at the hub", 30, || {
        node(&op)["refused_totals"]
            == json!({"malformed": 40, "forged-signature": 10, "not-canonical": 1})
    });
    let n = node(&op);
    assert_eq!(n["outbox_dropped"], 0, "{n}");
    assert!(
        n["refused"]["sample"].as_str().unwrap().contains("junk 0"),
        "{n}"
    );
    assert!(op.results("-").is_empty());
    assert!(op.results("forged-0").is_empty());
    // One log line per kind (malformed, not-canonical), not one per message.
    let lines = agent.log().matches("refused an unreadable message").count();
    assert!((2..=4).contains(&lines), "{lines} lines: {}", agent.log());
}

#[test]
fn a_connection_the_server_took_resets_the_backoff() {
    let hub = hub();
    // Takes every connection, then closes it (as a restarting hub or proxy might).
    let server = Hostile::start(&hub, vec![b":ka\n\n".to_vec()]);
    let mut agent = Agent::new(
        &hub,
        "",
        &format!(
            "keepalive_timeout_secs = 5\nmin_backoff_secs = 1\nmax_backoff_secs = 60\nurl = \"{}\"\n",
            server.url()
        ),
    );
    agent.start();
    // Growing delays (1, 2, 4, 8 s ...) would allow about five connections in
    // 15 s; starting over after each accepted one, one a second or so.
    wait_for("eight connections", 15, || server.requests().len() >= 8);
}

/// A busy server's `Retry-After` holds the node back that long (plus jitter)
/// instead of its usual one-second first retry: after a hub restart,
/// thousands of nodes come back when the hub says, not all at once.
#[test]
fn a_busy_servers_retry_after_is_honoured() {
    let hub = hub();
    let server = Hostile::start(
        &hub,
        vec![
            b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 4\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
            b"id: 7\n\n".to_vec(),
        ],
    );
    let mut agent = agent_on(&hub, &server);
    agent.start();
    wait_for("the first connection", 30, || !server.requests().is_empty());
    let refused = std::time::Instant::now();
    wait_for("a second connection", 30, || server.requests().len() >= 2);
    let waited = refused.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(3),
        "came back after {waited:?}, before the 4 s the server asked for"
    );
    let log = agent.log();
    assert!(log.contains("answered HTTP 503"), "{log}");
}
