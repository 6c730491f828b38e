//! Enrol → subscribe → job → every probe kind against the loopback fixtures
//! → results stored at the hub with the expected content. Real hub, real agent.

use crate::support::hub_and_fixture_agent;
use serde_json::{Value, json};
use vantage_proto::data::{Certificate, ProbeData, SecurityStatus};
use vantage_proto::probe::{DnsTransport, QType};
use vantage_proto::result::ProbeResult;
use vantage_testkit::{fixtures::Fixtures, jobs::node_job};

#[test]
fn every_probe_kind_reports_through_the_hub() {
    let fx = Fixtures::start();
    let (hub, agent) = hub_and_fixture_agent(&fx);
    let op = hub.operator("ops");
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
            json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
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
        hub.submit(&op, &node_job(id, &node, probe.clone()));
    }
    // Every result's data reads as the typed data of its probe kind: what
    // the agent sends is exactly the contract in vantage_proto::data.
    let r = |id: &str| {
        let r = hub.result(&op, id, 30);
        assert_eq!(r["node_id"], json!(node));
        assert_eq!(r["status"], json!("ok"), "{id}: {r}");
        let typed: ProbeResult = serde_json::from_value(r.clone()).unwrap();
        let d = typed
            .probe_data()
            .unwrap_or_else(|e| panic!("{id}: {e}: {r}"))
            .unwrap_or_else(|| panic!("{id}: no data: {r}"));
        // Nothing is lost or added by the types.
        assert_eq!(d.to_value(), r["data"], "{id}");
        d
    };
    let dns = |id: &str| match r(id) {
        ProbeData::Dns(d) => d,
        other => panic!("{id}: {other:?}"),
    };
    let http = |id: &str| match r(id) {
        ProbeData::Http(d) => d,
        other => panic!("{id}: {other:?}"),
    };
    let ping = |id: &str| match r(id) {
        ProbeData::Ping(d) => d,
        other => panic!("{id}: {other:?}"),
    };
    let leaf = |chain: &[Certificate]| match chain.first() {
        Some(Certificate::Summary(c)) => c.clone(),
        other => panic!("no leaf summary: {other:?}"),
    };

    let d = dns("dns-secure");
    let v = d.dnssec.clone().unwrap();
    assert_eq!(v.verdict, SecurityStatus::Secure, "{d:?}");
    assert_eq!(v.reason, "validated", "{d:?}");
    assert!(d.validation_ms.is_some(), "{d:?}");
    assert_eq!(d.transport, DnsTransport::Udp, "{d:?}");
    assert_eq!(d.rcode, "NOERROR");
    assert_eq!(d.nsid.clone().flatten().unwrap().text, "vantage-fixture");
    assert!(d.abuf.is_some(), "{d:?}");
    assert!(
        d.answers
            .iter()
            .any(|a| a.data == "192.0.2.10" && a.ttl == 300),
        "{d:?}"
    );
    let d = dns("dns-bogus");
    let v = d.dnssec.clone().unwrap();
    assert_eq!(v.verdict, SecurityStatus::Bogus, "{d:?}");
    assert_eq!(v.reason, "signature-invalid", "{d:?}");
    assert_eq!(d.rcode, "NOERROR", "{d:?}");
    assert!(!d.answers.is_empty(), "{d:?}");
    // NSID not asked: absent, not null.
    assert_eq!(d.nsid, None);
    let d = dns("dns-tcp-aaaa");
    assert_eq!(d.transport, DnsTransport::Tcp);
    assert_eq!(d.qtype, QType::AAAA);
    assert!(d.dnssec.is_none());
    assert!(d.answers.iter().any(|a| a.data == "2001:db8::10"), "{d:?}");

    let d = http("http");
    assert_eq!(d.status, 200);
    assert_eq!(d.headers["x-fixture"], "vantage");
    assert_eq!(d.body_bytes, Some(31));
    assert_eq!(d.body_truncated, Some(false));
    assert!(d.head_bytes.is_some_and(|h| h > 0) && d.first_byte_ms >= 0.0);
    assert!(d.tls.is_none() && d.tls_ms.is_none());
    let d = http("https");
    assert_eq!(d.status, 200);
    assert_eq!(d.body_bytes, Some(1000));
    assert_eq!(d.body_truncated, Some(true));
    assert_eq!(d.peer.split(':').next(), Some("127.0.0.1"));
    let tls = d.tls.unwrap();
    assert!(!tls.valid, "the fixture CA is not a web PKI root: {tls:?}");
    assert_eq!(leaf(&tls.chain).subject, "CN=localhost");
    let ProbeData::Tls(d) = r("tls") else {
        panic!("tls")
    };
    assert_eq!(leaf(&d.session.chain).issuer, "CN=vantage fixture CA");
    assert_eq!(d.sni.as_deref(), Some("localhost"));
    assert!(!d.session.chain_pem.is_empty());
    assert!(
        d.session.version.as_deref().unwrap().starts_with("TLS"),
        "{d:?}"
    );
    assert!(
        d.session
            .invalid_reason
            .as_deref()
            .unwrap()
            .contains("UnknownIssuer"),
        "{d:?}"
    );

    let ProbeData::Tcp(d) = r("tcp") else {
        panic!("tcp")
    };
    assert!(d.connect_ms >= 0.0);
    let d = ping("ping");
    assert_eq!(d.received, 2, "{d:?}");
    assert_eq!(d.loss_pct, 0.0);
    assert!(d.min_ms.unwrap() <= d.max_ms.unwrap());
    assert_eq!(d.packets.len(), 2);
    let d = ping("ping6");
    assert_eq!(d.target, "::1");
    for id in ["trace", "trace-icmp"] {
        let ProbeData::Traceroute(d) = r(id) else {
            panic!("{id}")
        };
        assert_eq!(d.hops.len(), 1, "{d:?}");
        assert_eq!(d.hops[0].addrs, ["127.0.0.1"], "{d:?}");
        assert_eq!(d.hops[0].rtts_ms.len(), 1, "{d:?}");
    }
}
