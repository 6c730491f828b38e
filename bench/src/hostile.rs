//! Flood benchmark: a real hub on loopback with its default limits, one attack
//! at a time from many loopback source addresses, and a legitimate operator's
//! requests (a new TLS connection with the operator certificate, then
//! `GET /v1/nodes`) timed during each. The point is the operator's latency and
//! success under each attack, next to a no-attack baseline in the same run, and
//! the hub's resident memory.
//!
//! Traffic goes only to 127.0.0.1; attack connections come from 127.0.0.2 and
//! up (Linux routes all of 127.0.0.0/8 to loopback, so binding a source
//! address needs no setup). Every attack is bounded in connections and time.

use crate::client::Poster;
use crate::pki::{Network, server_name};
use crate::procs::{Server, free_port, usage, wait_listening};
use anyhow::{Context, Result, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

/// What to run.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The hub binary.
    pub hub_bin: PathBuf,
    /// Scratch directory.
    pub dir: PathBuf,
    /// Seconds each attack (and the baseline) lasts.
    pub secs: u64,
    /// Source addresses the attacker uses (127.0.0.2 and up, at most 250).
    pub addresses: u8,
    /// Attack connections per source address (held at once, or in flight).
    pub per_address: usize,
    /// Pause between two operator requests.
    pub operator_every: Duration,
    /// Time the attack runs before the operator is measured.
    pub warmup: Duration,
    /// Extra `serve` options for the hub (its limits).
    pub hub_args: Vec<String>,
}

/// The attacks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// No attack: the baseline.
    None,
    /// TCP connections that never start TLS.
    Silent,
    /// TLS, then request headers one byte every two seconds.
    Slowloris,
    /// TLS and headers, then a request body one byte every two seconds.
    SlowBody,
    /// Token-less enrolment requests with valid CSRs, as fast as allowed.
    Enrol,
    /// Junk where a TLS ClientHello should be, connection after connection.
    JunkTls,
}

impl Attack {
    /// Every attack, baseline first.
    pub const ALL: [Attack; 6] = [
        Attack::None,
        Attack::Silent,
        Attack::Slowloris,
        Attack::SlowBody,
        Attack::Enrol,
        Attack::JunkTls,
    ];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Attack::None => "none (baseline)",
            Attack::Silent => "silent TCP, no TLS",
            Attack::Slowloris => "slowloris headers",
            Attack::SlowBody => "slow request body",
            Attack::Enrol => "token-less enrolment flood",
            Attack::JunkTls => "junk TLS handshakes",
        }
    }
}

/// One attack's measurements.
#[derive(Debug, Clone)]
pub struct Row {
    /// The attack.
    pub attack: Attack,
    /// Attack connections opened.
    pub attack_conns: usize,
    /// Operator requests answered 2xx.
    pub ok: usize,
    /// Operator requests that failed, with the first error.
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Operator latency, median, milliseconds.
    pub p50_ms: f64,
    /// Operator latency, worst, milliseconds.
    pub max_ms: f64,
    /// Hub resident memory, largest sample during the attack, KiB.
    pub rss_kib: u64,
}

/// Starts the hub, runs every attack, returns one row per attack.
pub async fn run(opts: &Opts) -> Result<Vec<Row>> {
    if opts.addresses == 0 || opts.addresses > 250 {
        bail!("--addresses must be 1..=250");
    }
    let net = Network::create(&opts.dir, 16)?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let log = opts.dir.join("hub.log");
    let mut cmd = Command::new(&opts.hub_bin);
    cmd.arg("--data-dir")
        .arg(net.dd.root())
        .arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--unsafe-raw-publish")
        .args(&opts.hub_args);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    let mut hub = Server::spawn("vantage-hub", cmd, &log)?;
    wait_listening(&mut hub, addr, &log)?;
    let operator = net.client_tls(&net.operator)?;
    let anonymous = anonymous_tls(&net.ca_file())?;
    let mut rows = Vec::new();
    for attack in Attack::ALL {
        let row = run_one(opts, &hub, addr, &operator, &anonymous, attack).await?;
        hub.check_running(&log)?;
        rows.push(row);
        // Let the hub close what the attack left before the next one starts.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(rows)
}

async fn run_one(
    opts: &Opts,
    hub: &Server,
    addr: SocketAddr,
    operator: &Arc<ClientConfig>,
    anonymous: &Arc<ClientConfig>,
    attack: Attack,
) -> Result<Row> {
    let opened = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let (o, a, n) = (opts.clone(), anonymous.clone(), opened.clone());
        tokio::spawn(async move { flood(&o, addr, a, attack, n).await })
    };
    // Give the attack time to fill what it can before the operator measures.
    if attack != Attack::None {
        tokio::time::sleep(opts.warmup).await;
    }
    let deadline = Instant::now() + Duration::from_secs(opts.secs);
    let mut lat = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    let mut rss = 0;
    while Instant::now() < deadline {
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(15), operator_request(operator, addr))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer in 15 s")));
        match r {
            Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        rss = rss.max(usage(hub.pid())?.rss_kib);
        tokio::time::sleep(opts.operator_every).await;
    }
    // Dropping the attack task's connections ends the attack.
    attacker.abort();
    let _ = attacker.await;
    lat.sort_by(f64::total_cmp);
    Ok(Row {
        attack,
        attack_conns: opened.load(Relaxed),
        ok: lat.len(),
        failed,
        first_error,
        p50_ms: lat.get(lat.len() / 2).copied().unwrap_or(f64::NAN),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        rss_kib: rss,
    })
}

/// What an operator's `vantage nodes` does: a new connection, one request.
async fn operator_request(tls: &Arc<ClientConfig>, addr: SocketAddr) -> Result<()> {
    let mut p = Poster::connect(tls.clone(), addr).await?;
    let body = p.get("/v1/nodes").await?;
    if !body.trim_start().starts_with('[') {
        bail!("/v1/nodes: not a list: {body:.200}");
    }
    Ok(())
}

/// A TLS client with no certificate (what an enrolling node or a stranger is).
pub fn anonymous_tls(ca_file: &Path) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("cannot read {}", ca_file.display()))?
    {
        roots.add(c?)?;
    }
    let cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The `i`th attacker source address: 127.0.0.2 and up.
fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % 250) as u8)
}

async fn tcp_from(src: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src.into(), 0))?;
    sock.connect(addr).await
}

/// Runs `attack` until aborted; counts connections in `opened`.
async fn flood(
    opts: &Opts,
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    attack: Attack,
    opened: Arc<AtomicUsize>,
) {
    if attack == Attack::None {
        return;
    }
    let mut set = JoinSet::new();
    let csrs = if attack == Attack::Enrol {
        Arc::new(enrol_bodies(
            opts.addresses as usize * opts.per_address.min(4),
        ))
    } else {
        Arc::new(Vec::new())
    };
    // Attacks that loop (a new connection as soon as one ends) need only a few
    // at a time per address; more would measure this process's CPU, not the hub.
    let per_address = match attack {
        Attack::Enrol | Attack::JunkTls => opts.per_address.min(4),
        _ => opts.per_address,
    };
    for a in 0..opts.addresses as usize {
        for k in 0..per_address {
            let (tls, opened, csrs) = (tls.clone(), opened.clone(), csrs.clone());
            let src = source(a);
            let idx = a * per_address + k;
            set.spawn(async move {
                let _ = one(attack, src, addr, tls, &opened, csrs.get(idx).cloned()).await;
            });
        }
        // Lets the first connections start while the rest are spawned.
        tokio::task::yield_now().await;
    }
    // Holds the connections (and the set) until the caller aborts this task.
    while set.join_next().await.is_some() {}
    std::future::pending::<()>().await;
}

/// One attacker connection (or, for junk and enrolment, a loop of them).
async fn one(
    attack: Attack,
    src: Ipv4Addr,
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    opened: &AtomicUsize,
    enrol_body: Option<String>,
) -> Result<()> {
    match attack {
        Attack::None => {}
        Attack::Silent => {
            let _s = tcp_from(src, addr).await?;
            opened.fetch_add(1, Relaxed);
            std::future::pending::<()>().await;
        }
        Attack::Slowloris | Attack::SlowBody => {
            slow_request(attack, src, addr, tls, opened).await?
        }
        Attack::Enrol => {
            enrol_flood(src, addr, tls, opened, enrol_body.unwrap_or_default()).await?
        }
        Attack::JunkTls => junk_tls(src, addr, opened).await,
    }
    Ok(())
}

/// A request's head (slowloris) or body, one byte every two seconds.
async fn slow_request(
    attack: Attack,
    src: Ipv4Addr,
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    opened: &AtomicUsize,
) -> Result<()> {
    let slow = Duration::from_secs(2);
    let tcp = tcp_from(src, addr).await?;
    opened.fetch_add(1, Relaxed);
    let mut s = TlsConnector::from(tls).connect(server_name(), tcp).await?;
    let text: &[u8] = if attack == Attack::Slowloris {
        b"GET /v1/nodes HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
    } else {
        s.write_all(b"POST /v1/enrol HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n").await?;
        s.flush().await?;
        &[b' '; 4000]
    };
    for b in text {
        s.write_all(std::slice::from_ref(b)).await?;
        s.flush().await?;
        tokio::time::sleep(slow).await;
    }
    Ok(())
}

/// Several enrolments per connection, new connections when the hub closes
/// one: as many as the hub lets this address make.
async fn enrol_flood(
    src: Ipv4Addr,
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    opened: &AtomicUsize,
    body: String,
) -> Result<()> {
    loop {
        let tcp = tcp_from(src, addr).await?;
        opened.fetch_add(1, Relaxed);
        let s = TlsConnector::from(tls.clone())
            .connect(server_name(), tcp)
            .await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s)).await?;
        let driver = tokio::spawn(conn);
        for _ in 0..4 {
            let req = hyper::Request::post("/v1/enrol")
                .header("host", addr.to_string())
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))?;
            if sender.ready().await.is_err() {
                break;
            }
            match sender.send_request(req).await {
                Ok(r) => {
                    let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                }
                Err(_) => break,
            }
        }
        driver.abort();
    }
}

/// Connections that open with a TLS record header claiming a handshake,
/// then garbage.
async fn junk_tls(src: Ipv4Addr, addr: SocketAddr, opened: &AtomicUsize) -> ! {
    loop {
        let Ok(mut tcp) = tcp_from(src, addr).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        opened.fetch_add(1, Relaxed);
        let mut junk = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
        junk.extend((0..503u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        let _ = tcp.write_all(&junk).await;
        let _ = tcp.shutdown().await;
        let mut buf = [0u8; 512];
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
        )
        .await;
    }
}

/// Distinct valid enrolment requests without a token (each a new key), so
/// every one is a real pending enrolment the hub has to store.
fn enrol_bodies(n: usize) -> Vec<String> {
    (0..n)
        .filter_map(|i| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).ok()?;
            let csr = rcgen::CertificateParams::default()
                .serialize_request(&key)
                .ok()?
                .pem()
                .ok()?;
            Some(
                serde_json::json!({"csr": csr, "declared": {"country": "DE"},
                                   "agent_version": format!("flood-{i}")})
                .to_string(),
            )
        })
        .collect()
}

/// The table, Markdown, with each attack's latency as a ratio of the baseline's.
pub fn table(rows: &[Row], opts: &Opts) -> String {
    let base = rows.iter().find(|r| r.attack == Attack::None);
    let (b50, bmax) = base.map_or((f64::NAN, f64::NAN), |b| (b.p50_ms, b.max_ms));
    let mut out = format!(
        "Attack from {} loopback addresses × {} connections each; operator: new TLS connection + GET /v1/nodes every {} ms for {} s.\n\n",
        opts.addresses,
        opts.per_address,
        opts.operator_every.as_millis(),
        opts.secs
    );
    out.push_str("| attack | attack conns | operator ok / failed | p50 ms (× base) | max ms (× base) | hub RSS MiB |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} / {} | {:.1} (×{:.2}) | {:.1} (×{:.2}) | {:.1} |\n",
            r.attack.name(),
            r.attack_conns,
            r.ok,
            r.failed,
            r.p50_ms,
            r.p50_ms / b50,
            r.max_ms,
            r.max_ms / bmax,
            r.rss_kib as f64 / 1024.0
        ));
    }
    for r in rows {
        if let Some(e) = &r.first_error {
            out.push_str(&format!(
                "\n{}: first operator failure: {e}",
                r.attack.name()
            ));
        }
    }
    out
}
