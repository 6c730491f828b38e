//! Results in the RIPE Atlas format: a real hub and a real agent run every
//! exported probe kind against the loopback fixtures, ok and failing, and
//! the hub's `?format=atlas` answer is checked against the native results.
//! With `VANTAGE_ATLAS_OUT` set, both are written there for
//! `ci/atlas/test_sagan.py`, which reads them with RIPE's own parser.

use crate::support::hub_and_fixture_agent;
use serde_json::{Value, json};
use vantage_proto::atlas::{AtlasResult, msm_id, prb_id};
use vantage_testkit::{fixtures::Fixtures, free_port, jobs::node_job};

#[test]
fn atlas_export_of_every_probe_kind() {
    let fx = Fixtures::start();
    let (hub, agent) = hub_and_fixture_agent(&fx);
    let op = hub.operator("ops");
    let node = agent.node_id.clone();

    // A UDP socket that never answers (DNS timeout), a TCP listener that
    // never accepts (HTTP timeout: the kernel completes the handshake), and a
    // closed port (refused).
    let silent_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = free_port();
    let udp = silent_udp.local_addr().unwrap();
    let tcp = silent_tcp.local_addr().unwrap();
    let https_port: u16 = fx
        .https
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let http_port: u16 = fx
        .http
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();

    let jobs: Vec<(&str, &str, Value)> = vec![
        (
            "dns-ok",
            "ok",
            json!({"cmd": "dns", "args": {"name": "www.secure.test", "resolver": fx.dns, "dnssec": true}}),
        ),
        (
            "dns-tcp-nx",
            "ok",
            json!({"cmd": "dns", "args": {"name": "nope.secure.test", "qtype": "AAAA", "resolver": fx.dns, "transport": "tcp"}}),
        ),
        (
            "dns-timeout",
            "timeout",
            json!({"cmd": "dns", "args": {"name": "www.secure.test", "resolver": udp.to_string(), "timeout_ms": 1000}}),
        ),
        (
            "dns-refused",
            "error",
            json!({"cmd": "dns", "args": {"name": "www.secure.test", "resolver": format!("127.0.0.1:{closed}"), "transport": "tcp", "timeout_ms": 1000}}),
        ),
        (
            "ping-ok",
            "ok",
            json!({"cmd": "ping", "args": {"host": "127.0.0.1", "count": 3}}),
        ),
        (
            // No IPv6 address for an IPv4 literal: the ping fails before a
            // packet leaves, which Atlas reports as every packet lost.
            "ping-lost",
            "error",
            json!({"cmd": "ping", "args": {"host": "127.0.0.1", "count": 2, "af": "ipv6"}}),
        ),
        (
            "trace-ok",
            "ok",
            json!({"cmd": "traceroute", "args": {"host": "127.0.0.1", "protocol": "icmp", "max_hops": 4}}),
        ),
        (
            "http-ok",
            "ok",
            json!({"cmd": "http", "args": {"url": fx.http}}),
        ),
        (
            "http-refused",
            "error",
            json!({"cmd": "http", "args": {"url": format!("http://127.0.0.1:{closed}/")}}),
        ),
        (
            "http-timeout",
            "timeout",
            json!({"cmd": "http", "args": {"url": format!("http://{tcp}/"), "timeout_ms": 1000}}),
        ),
        (
            "tls-ok",
            "ok",
            json!({"cmd": "tls", "args": {"host": "localhost", "port": https_port}}),
        ),
        (
            "tls-handshake-error",
            "error",
            json!({"cmd": "tls", "args": {"host": "127.0.0.1", "port": http_port}}),
        ),
    ];
    for (id, _, probe) in &jobs {
        hub.submit(&op, &node_job(id, &node, probe.clone()));
    }
    let mut out = Vec::new();
    for (id, status, _) in &jobs {
        let native = hub.result(&op, id, 40);
        assert_eq!(native["status"], json!(status), "{id}: {native}");
        let (code, atlas) = op.get(&format!("/v1/jobs/{id}/results?format=atlas"));
        assert_eq!(code, 200, "{id}: {atlas}");
        let atlas: Vec<AtlasResult> = serde_json::from_value(atlas).unwrap();
        assert_eq!(atlas.len(), 1, "{id}");
        let a = &atlas[0];
        assert_eq!(a.msm_id, msm_id(id));
        assert_eq!(a.prb_id, prb_id(&node));
        assert_eq!(a.vantage.job_id, *id);
        assert!(a.fw >= 5000 && a.msm_id >= 1_000_000);
        assert_eq!(
            a.timestamp,
            native["started_ms"].as_u64().unwrap() / 1000,
            "{id}"
        );
        out.push(json!({"id": id, "native": native, "atlas": atlas[0]}));
    }

    // tcp has no Atlas type and is left out; an unknown format is refused by code.
    hub.submit(
        &op,
        &node_job(
            "tcp-ok",
            &node,
            json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
        ),
    );
    hub.result(&op, "tcp-ok", 30);
    let (code, v) = op.get("/v1/jobs/tcp-ok/results?format=atlas");
    assert_eq!((code, v), (200, json!([])));
    let (code, v) = op.get("/v1/jobs/tcp-ok/results?format=xml");
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["code"], "unknown-format", "{v}");

    if let Ok(path) = std::env::var("VANTAGE_ATLAS_OUT") {
        std::fs::write(&path, serde_json::to_vec_pretty(&out).unwrap()).unwrap();
    }
}
