//! Enrol → subscribe → job → every probe kind against the loopback fixtures
//! → results stored at the hub with the expected content. Real hub, real agent.

mod common;

use common::{Agent, Fixtures, Hub};
use serde_json::{Value, json};

#[test]
fn every_probe_kind_reports_through_the_hub() {
    let fx = Fixtures::start();
    let hub = Hub::start();
    let op = hub.operator();
    let top = format!("trust_anchor = {:?}", fx.trust_anchor);
    let mut agent = Agent::new(&hub, &top, "[owner]\nallow_special_addresses = true\n");
    agent.start();
    agent.subscribed(1);
    let node = agent.node_id.clone();

    let jobs: Vec<(&str, Value)> = vec![
        (
            "dns-secure",
            json!({"cmd": "dns", "args": {"name": "www.secure.test", "resolver": fx.dns, "dnssec": true, "nsid": true}}),
        ),
        (
            "dns-bogus",
            json!({"cmd": "dns", "args": {"name": "www.bogus.test", "resolver": fx.dns, "dnssec": true}}),
        ),
        (
            "dns-tcp-aaaa",
            json!({"cmd": "dns", "args": {"name": "www.secure.test", "qtype": "AAAA", "resolver": fx.dns, "transport": "tcp"}}),
        ),
        (
            "http",
            json!({"cmd": "http", "args": {"url": fx.http, "headers": ["X-Fixture"]}}),
        ),
        (
            "https",
            json!({"cmd": "http", "args": {"url": format!("{}big.txt", fx.https), "max_body": 1000}}),
        ),
        (
            "tls",
            json!({"cmd": "tls", "args": {"host": "localhost", "port": fx.https.rsplit(':').next().unwrap().trim_end_matches('/').parse::<u16>().unwrap()}}),
        ),
        (
            "tcp",
            json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port}}),
        ),
        (
            "ping",
            json!({"cmd": "ping", "args": {"host": "127.0.0.1", "count": 2}}),
        ),
        (
            "ping6",
            json!({"cmd": "ping", "args": {"host": "::1", "count": 1, "af": "ipv6"}}),
        ),
        (
            "trace",
            json!({"cmd": "traceroute", "args": {"host": "127.0.0.1", "max_hops": 4}}),
        ),
        (
            "trace-icmp",
            json!({"cmd": "traceroute", "args": {"host": "127.0.0.1", "protocol": "icmp", "max_hops": 4}}),
        ),
    ];
    for (id, probe) in &jobs {
        hub.submit(&op, &hub.job(id, &node, probe.clone()));
    }
    let r = |id: &str| {
        let r = hub.result(&op, id, 30);
        assert_eq!(r["node_id"], json!(node));
        assert_eq!(r["status"], json!("ok"), "{id}: {r}");
        r["data"].clone()
    };

    let d = r("dns-secure");
    assert_eq!(d["dnssec"]["verdict"], "secure", "{d}");
    assert_eq!(d["dnssec"]["reason"], "validated", "{d}");
    assert_eq!(d["transport"], "udp", "{d}");
    assert!(d["query_ms"].as_f64().is_some(), "{d}");
    assert_eq!(d["rcode"], "NOERROR");
    assert_eq!(d["nsid"]["text"], "vantage-fixture");
    assert!(
        d["answers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["data"] == "192.0.2.10" && a["ttl"] == 300),
        "{d}"
    );
    let d = r("dns-bogus");
    assert_eq!(d["dnssec"]["verdict"], "bogus", "{d}");
    assert_eq!(d["dnssec"]["reason"], "signature-invalid", "{d}");
    assert_eq!(d["rcode"], "NOERROR", "{d}");
    assert!(!d["answers"].as_array().unwrap().is_empty(), "{d}");
    let d = r("dns-tcp-aaaa");
    assert_eq!(d["transport"], "tcp");
    assert!(
        d["answers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["data"] == "2001:db8::10"),
        "{d}"
    );

    let d = r("http");
    assert_eq!(d["status"], 200);
    assert_eq!(d["headers"]["x-fixture"], "vantage");
    assert_eq!(d["body_bytes"], 31);
    assert!(d["first_byte_ms"].as_f64().is_some() && d["connect_ms"].as_f64().is_some());
    let d = r("https");
    assert_eq!(d["status"], 200);
    assert_eq!(d["body_bytes"], 1000);
    assert_eq!(d["body_truncated"], true);
    assert_eq!(
        d["peer"].as_str().unwrap().split(':').next(),
        Some("127.0.0.1")
    );
    assert_eq!(
        d["tls"]["valid"], false,
        "the fixture CA is not a web PKI root: {d}"
    );
    assert_eq!(d["tls"]["chain"][0]["subject"], "CN=localhost");
    let d = r("tls");
    assert_eq!(d["chain"][0]["issuer"], "CN=vantage fixture CA");
    assert!(d["version"].as_str().unwrap().starts_with("TLS"), "{d}");
    assert!(
        d["invalid_reason"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer"),
        "{d}"
    );

    let d = r("tcp");
    assert!(d["connect_ms"].as_f64().unwrap() >= 0.0);
    let d = r("ping");
    assert_eq!(d["received"], 2, "{d}");
    assert_eq!(d["loss_pct"], 0.0);
    assert!(d["min_ms"].as_f64().unwrap() <= d["max_ms"].as_f64().unwrap());
    let d = r("ping6");
    assert_eq!(d["target"], "::1");
    for id in ["trace", "trace-icmp"] {
        let d = r(id);
        let hops = d["hops"].as_array().unwrap();
        assert_eq!(hops.len(), 1, "{d}");
        assert_eq!(hops[0]["addrs"], json!(["127.0.0.1"]), "{d}");
        assert_eq!(hops[0]["rtts_ms"].as_array().unwrap().len(), 1, "{d}");
    }
}
