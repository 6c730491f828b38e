//! A `dns` probe that gets no answer says precisely why, as `error` or
//! `timeout` with a stable `code`; an answer, whatever its DNSSEC verdict,
//! is never one of those (agent/tests/dnssec_differential.rs).

use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};
use vantage_testkit::bin;

use serde_json::{Value, json};

fn probe(dir: &std::path::Path, args: Value) -> (Value, Duration) {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n[owner]\nallow_special_addresses = true\n",
            dir.join("data")
        ),
    )
    .unwrap();
    let t = Instant::now();
    let out = Command::new(bin("vantage-agent"))
        .arg("--config")
        .arg(&cfg)
        .arg("probe")
        .arg(json!({"cmd": "dns", "args": args}).to_string())
        .output()
        .unwrap();
    let took = t.elapsed();
    (serde_json::from_slice(&out.stdout).unwrap(), took)
}

#[test]
fn no_answer_is_named_precisely() {
    let dir = tempfile::tempdir().unwrap();
    // A UDP port nothing listens on: ICMP port unreachable, noticed at once.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (r, took) = probe(
        dir.path(),
        json!({"name": "example.", "resolver": closed.to_string(), "timeout_ms": 5000}),
    );
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["code"], "port-unreachable", "{r}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A UDP server that never answers: a timeout, every time.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    for dnssec in [false, true] {
        let (r, _) = probe(
            dir.path(),
            json!({"name": "example.", "resolver": silent.local_addr().unwrap().to_string(),
                   "timeout_ms": 300, "dnssec": dnssec}),
        );
        assert_eq!(r["status"], "timeout", "{r}");
        assert_eq!(r["code"], "no-answer", "{r}");
    }

    // TCP to a closed port: refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (r, _) = probe(
        dir.path(),
        json!({"name": "example.", "resolver": format!("127.0.0.1:{port}"), "transport": "tcp"}),
    );
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["code"], "connection-refused", "{r}");
}
