//! Fan-out benchmark: N nodes hold SSE subscriptions over TLS to one real hub
//! on loopback; an operator publishes signed jobs; we measure how long until
//! every subscriber has each job, and what the hub costs in memory.
//!
//! `cargo bench -p vantage-hub --bench fanout -- [subscribers] [jobs]`
//! (`make bench-hub`). Defaults: 2000 subscribers, 20 jobs.

#[path = "../tests/common/mod.rs"]
mod common;

use common::Hub;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Finds envelopes (`data: {"id":N,...`) in what arrived; chunked framing around them is ignored.
fn scan(pending: &mut String, tx: &mpsc::UnboundedSender<(u64, Instant)>, now: Instant) {
    const MARK: &str = "\ndata: {\"id\":";
    while let Some(i) = pending.find(MARK) {
        let rest = &pending[i + MARK.len()..];
        let Some(end) = rest.find(',') else { break };
        if let Ok(seq) = rest[..end].parse::<u64>() {
            let _ = tx.send((seq, now));
        }
        pending.drain(..i + MARK.len());
    }
    if pending.len() > 64 * 1024 {
        pending.clear();
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let jobs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let hub = Hub::start(&[
        "--max-conns-per-identity",
        "100000",
        "--rate",
        "100000",
        "--burst",
        "100000",
        "--keepalive-secs",
        "15",
    ]);
    let pid = hub.child.as_ref().unwrap().id();
    let op = hub.operator("bench");
    let node = hub.node("DE");
    let rss_idle = rss_kib(pid);

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(hub.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(node.cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(node.key.as_bytes()).unwrap(),
        )
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let port = hub.port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let t_connect = Instant::now();
    rt.block_on(async {
        let slots = Arc::new(tokio::sync::Semaphore::new(100));
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
        for _ in 0..n {
            let (connector, tx, ready_tx, slots) = (connector.clone(), tx.clone(), ready_tx.clone(), slots.clone());
            tokio::spawn(async move {
                let permit = slots.acquire_owned().await.unwrap();
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let mut s = connector
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await
                    .unwrap();
                s.write_all(b"GET /v1/sub/all HTTP/1.1\r\nhost: localhost\r\naccept: text/event-stream\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = vec![0u8; 16 * 1024];
                let mut pending = String::new();
                let mut permit = Some(permit);
                loop {
                    let k = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => k,
                    };
                    let now = Instant::now();
                    pending.push_str(&String::from_utf8_lossy(&buf[..k]));
                    if permit.is_some() && pending.contains("\r\n\r\n") {
                        assert!(pending.starts_with("HTTP/1.1 200"), "{pending}");
                        // Subscribed: let the next connection start.
                        permit = None;
                        let _ = ready_tx.send(());
                    }
                    scan(&mut pending, &tx, now);
                }
            });
        }
        drop(ready_tx);
        for _ in 0..n {
            ready_rx.recv().await.unwrap();
        }
    });
    let connect_secs = t_connect.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let rss_connected = rss_kib(pid);

    let mut published = Vec::new();
    for j in 0..jobs {
        let t = Instant::now();
        let (s, r) = op.post(
            "/v1/jobs",
            &hub.job(&format!("bench-{j}"), json!("everyone")),
        );
        assert_eq!(s, 201, "{r}");
        published.push((r["seq"].as_u64().unwrap(), t, t.elapsed()));
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut got: std::collections::HashMap<u64, Vec<Instant>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.values().map(Vec::len).sum::<usize>() < n * jobs && Instant::now() < deadline {
        while let Ok((seq, t)) = rx.try_recv() {
            got.entry(seq).or_default().push(t);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut all = Vec::new();
    let mut last = Vec::new();
    let mut ack = Vec::new();
    let mut delivered = 0;
    for (seq, t0, a) in &published {
        ack.push(a.as_secs_f64() * 1000.0);
        let v = got.get(seq).cloned().unwrap_or_default();
        delivered += v.len();
        let lat: Vec<f64> = v
            .iter()
            .map(|t| t.duration_since(*t0).as_secs_f64() * 1000.0)
            .collect();
        if let Some(m) = lat.iter().cloned().reduce(f64::max) {
            last.push(m);
        }
        all.extend(lat);
    }
    println!(
        "\nvantage-hub fan-out on loopback (TLS, SSE, one hub process, debug={})",
        cfg!(debug_assertions)
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| subscribers (TLS connections) | {n} |");
    println!("| time to connect all | {connect_secs:.2} s |");
    println!("| jobs published | {jobs} |");
    println!(
        "| events delivered / expected | {delivered} / {} |",
        n * jobs
    );
    println!(
        "| publish acknowledged (durable), p50 | {:.1} ms |",
        pct(&mut ack, 0.5)
    );
    println!("| delivery latency p50 | {:.1} ms |", pct(&mut all, 0.5));
    println!("| delivery latency p99 | {:.1} ms |", pct(&mut all, 0.99));
    println!(
        "| last subscriber reached, p50 over jobs | {:.1} ms |",
        pct(&mut last, 0.5)
    );
    println!(
        "| hub RSS idle / with subscribers | {} / {} KiB |",
        rss_idle, rss_connected
    );
    println!(
        "| hub RSS per subscriber | {:.1} KiB |",
        (rss_connected.saturating_sub(rss_idle)) as f64 / n as f64
    );
    assert_eq!(delivered, n * jobs, "some events were not delivered");
}
