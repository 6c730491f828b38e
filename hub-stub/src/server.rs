//! The HTTPS server: TLS with client-certificate verification against the
//! network CA and its CRL, connection limits and timeouts, and the background
//! tasks (revocation watch, retention, registry upkeep).

use crate::api;
use crate::datadir::{DataDir, now};
use crate::db::{Db, JobRecord};
use crate::limits::{Admission, ConnCounter, LogThrottle, NoSlot, RateLimiter, ResultVolume};
use crate::pki::{Ca, cert_info};
use anyhow::{Context, Result, bail};
use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use vantage_proto::identity::Role;

/// Everything `serve` can be told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Base URL nodes use to reach this hub (what enrolment hands out);
    /// default `https://<default_host>:<bound port>`.
    pub public_url: Option<String>,
    /// Host for the default public URL (the first server name).
    pub default_host: String,
    /// Approval policy file, if any (jobs are refused without one).
    pub policy: Option<std::path::PathBuf>,
    /// Enables `POST /v1/publish/<channel>` without signature checks (tests only).
    pub unsafe_raw_publish: bool,
    /// Keep-alive comment interval on event streams.
    pub keepalive: Duration,
    /// Entries kept in the job log at most.
    pub retention_entries: u64,
    /// Age after which job-log entries are dropped.
    pub retention_age: Duration,
    /// Enrolments waiting for approval, at most: in all and per source address.
    pub pending_caps: crate::db::PendingCaps,
    /// Node certificate lifetime, days.
    pub node_cert_days: i64,
    /// A node counts as online this long after it was last seen.
    pub online_window: Duration,
    /// How often the database is checked for new revocations.
    pub revocation_poll: Duration,
    /// Open connections in total, TLS handshakes included.
    pub max_connections: usize,
    /// Slots of `max_connections` that connections without a verified
    /// certificate cannot take, so nodes and operators find room in a flood.
    pub reserved_for_identified: usize,
    /// Open connections per node or operator (per address for callers without a certificate).
    pub max_conns_per_identity: usize,
    /// Connections per source address whose TLS handshake has not finished,
    /// counted from `accept`: connections that never start TLS cannot fill
    /// `max_connections` from one address.
    pub max_handshakes_per_address: usize,
    /// Requests a second per identity, sustained.
    pub rate: f64,
    /// Request burst per identity.
    pub burst: f64,
    /// Time allowed for the TLS handshake and for request headers.
    pub header_timeout: Duration,
    /// A connection with no bytes moving for this long is closed.
    pub idle_timeout: Duration,
    /// Where to write the bound address (for tests and scripts).
    pub addr_file: Option<std::path::PathBuf>,
    /// Jobs per target host and hour, if stricter than the policy's limit.
    pub max_target_rate: Option<u32>,
    /// Result bytes stored per node and day, at most.
    pub result_bytes_per_node_day: u64,
}

/// A job-log entry on its way to subscribers: one pre-encoded SSE frame per channel.
#[derive(Debug)]
pub struct Published {
    /// Sequence number.
    pub seq: u64,
    /// (channel, encoded event) pairs.
    pub frames: Vec<(String, Bytes)>,
}

/// A stored result on its way to followers.
#[derive(Debug)]
pub struct ResultEvent {
    /// Job id.
    pub job_id: String,
    /// Row id.
    pub id: i64,
    /// JSON text.
    pub body: String,
}

/// Shared state of a running hub.
pub struct Hub {
    /// Configuration.
    pub cfg: ServeConfig,
    /// Data directory.
    pub dd: DataDir,
    /// The network CA.
    pub ca: Ca,
    /// The database.
    pub db: Arc<Db>,
    /// Approval policy: shipped, plus accepted successors.
    pub policy: crate::governance::PolicyState,
    tls: ArcSwap<ServerConfig>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    /// Current CRL, DER.
    pub crl: ArcSwap<Vec<u8>>,
    /// Live job-log entries.
    pub log_tx: broadcast::Sender<Arc<Published>>,
    /// Live results.
    pub results_tx: broadcast::Sender<Arc<ResultEvent>>,
    /// Bumped whenever the set of revoked certificates changes.
    pub revoked_tx: watch::Sender<u64>,
    /// Serialises append + broadcast so subscribers see sequence numbers in order.
    pub publish_lock: tokio::sync::Mutex<()>,
    /// Last sequence number written.
    pub last_seq: AtomicU64,
    /// Highest sequence number dropped by retention.
    pub pruned_through: AtomicU64,
    /// Open subscriptions per node.
    pub subscribed: Mutex<HashMap<String, usize>>,
    /// Nodes seen since the last registry flush, with their address
    /// (batched: one transaction every 30 s instead of one per request).
    pub seen: Mutex<HashMap<String, String>>,
    /// What each node said about itself in its last heartbeat since the hub
    /// started (kept in memory: it is replaced every few minutes anyway).
    pub health: Mutex<HashMap<String, NodeHealth>>,
    /// Open subscriptions per channel.
    pub channel_subs: Mutex<HashMap<String, usize>>,
    /// Connection slots per identity.
    pub conns: Arc<ConnCounter>,
    /// Request rate per identity.
    pub rates: RateLimiter,
    /// Log lines about refused connections and failed handshakes.
    pub refusal_log: LogThrottle,
    /// Connections per source address still before the end of their TLS handshake.
    pub handshakes: Arc<ConnCounter>,
    /// The `--max-connections` slots.
    pub admission: Arc<Admission>,
    /// Result bytes per node and day.
    pub result_volume: ResultVolume,
    /// Counters, gauges and latencies.
    pub metrics: crate::metrics::Metrics,
    /// When the hub started.
    pub started: Instant,
    /// Nchan publisher, when `--nchan-publish-url` is given (set once after `new`).
    pub nchan: std::sync::OnceLock<Arc<crate::nchan::Publisher>>,
    public_url: std::sync::OnceLock<String>,
}

/// A node's own report from its last heartbeat, shown in the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeHealth {
    /// When the heartbeat arrived (Unix seconds).
    pub reported: i64,
    /// The agent's last error, on one line and bounded.
    pub last_error: Option<String>,
    /// Results waiting in the node's outbox.
    pub outbox_depth: u64,
    /// Results the node dropped.
    pub outbox_dropped: u64,
    /// The last summary of stream data the node refused (kept until a newer one).
    pub refused: Option<vantage_proto::node::RefusalSummary>,
    /// Stream data the node refused since the hub started, per code.
    pub refused_totals: std::collections::BTreeMap<String, u64>,
}

/// Longest `last_error` the registry keeps, in characters.
pub const MAX_LAST_ERROR: usize = 512;

impl NodeHealth {
    /// From a heartbeat: the error text made one line and cut to [`MAX_LAST_ERROR`]
    /// characters, so a node cannot grow the registry or break its display.
    pub fn from_heartbeat(
        hb: &vantage_proto::node::Heartbeat,
        now: i64,
        previous: Option<&NodeHealth>,
    ) -> Self {
        let last_error = hb.last_error.as_deref().map(one_line);
        // The sample quotes stream data: made one line like the error text.
        let refused = hb.refused.clone().map(|mut r| {
            r.sample = r.sample.as_deref().map(one_line);
            r
        });
        Self {
            reported: now,
            last_error,
            outbox_depth: hb.outbox_depth,
            outbox_dropped: hb.outbox_dropped,
            refused: refused.or_else(|| previous.and_then(|p| p.refused.clone())),
            refused_totals: {
                let mut t = previous
                    .map(|p| p.refused_totals.clone())
                    .unwrap_or_default();
                for (code, n) in hb.refused.iter().flat_map(|r| &r.counts) {
                    let c = t.entry(code.clone()).or_insert(0);
                    *c = c.saturating_add(*n);
                }
                t
            },
        }
    }
}

/// Text from a node as one line of at most [`MAX_LAST_ERROR`] characters.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > MAX_LAST_ERROR {
        let mut cut: String = flat.chars().take(MAX_LAST_ERROR - 1).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

/// Who is calling, from the verified client certificate only.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No client certificate.
    Anonymous,
    /// A certificate from this CA that names a role.
    Known {
        /// The role and name.
        role: Role,
        /// Certificate serial.
        serial: String,
        /// Certificate expiry, Unix seconds.
        not_after: i64,
    },
    /// A certificate from this CA without a usable vantage SAN URI.
    Unusable(String),
}

impl Caller {
    fn from_certs(certs: Option<&[CertificateDer<'_>]>) -> Self {
        let Some(first) = certs.and_then(|c| c.first()) else {
            return Caller::Anonymous;
        };
        match cert_info(first) {
            Ok(info) => match info.uris.iter().find_map(|u| Role::from_san_uri(u).ok()) {
                Some(role) => Caller::Known {
                    role,
                    serial: info.serial,
                    not_after: info.not_after,
                },
                None => {
                    Caller::Unusable("the certificate names no vantage node or operator".into())
                }
            },
            Err(e) => Caller::Unusable(e.to_string()),
        }
    }

    /// Key for per-identity limits.
    pub fn limit_key(&self, peer: &SocketAddr) -> String {
        match self {
            Caller::Known { role, .. } => role.san_uri(),
            _ => format!("addr:{}", peer.ip()),
        }
    }
}

impl Hub {
    /// Opens the data directory and prepares TLS; does not listen yet.
    pub fn new(dd: DataDir, cfg: ServeConfig) -> Result<Arc<Self>> {
        let (ca, db) = dd.open()?;
        let policy = cfg
            .policy
            .as_deref()
            .map(vantage_node::policy_chain::load_policy)
            .transpose()?;
        let policy = crate::governance::PolicyState::open(policy, dd.root())?;
        let server_chain = CertificateDer::pem_file_iter(dd.server_cert())
            .with_context(|| format!("cannot read {}", dd.server_cert().display()))?
            .collect::<Result<Vec<_>, _>>()
            .context("server.pem holds an invalid certificate")?;
        let server_key = PrivateKeyDer::from_pem_file(dd.server_key())
            .with_context(|| format!("cannot read {}", dd.server_key().display()))?;
        let crl = dd.write_crl(&ca, &db)?;
        let pruned = db.prune(
            cfg.retention_entries,
            now() - cfg.retention_age.as_secs() as i64,
        )?;
        let last = db.last_seq()?;
        let tls = build_tls(&ca, &server_chain, &server_key, &crl)?;
        let rates = RateLimiter::new(cfg.rate, cfg.burst);
        let result_volume = ResultVolume::new(cfg.result_bytes_per_node_day, 86_400);
        let metrics = crate::metrics::Metrics::new();
        metrics.register_counter(
            "results_over_volume",
            "results refused because their node's daily volume was used up",
            result_volume.refused.clone(),
        );
        Ok(Arc::new(Self {
            dd,
            ca,
            db: Arc::new(db),
            policy,
            tls: ArcSwap::from_pointee(tls),
            server_chain,
            server_key,
            crl: ArcSwap::from_pointee(crl),
            log_tx: broadcast::channel(1024).0,
            results_tx: broadcast::channel(1024).0,
            revoked_tx: watch::channel(0).0,
            publish_lock: tokio::sync::Mutex::new(()),
            last_seq: AtomicU64::new(last),
            pruned_through: AtomicU64::new(pruned),
            subscribed: Mutex::new(HashMap::new()),
            channel_subs: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            conns: Arc::new(ConnCounter::default()),
            refusal_log: LogThrottle::new(Duration::from_secs(10)),
            handshakes: Arc::new(ConnCounter::default()),
            admission: Admission::new(cfg.max_connections, cfg.reserved_for_identified),
            result_volume,
            rates,
            metrics,
            started: Instant::now(),
            nchan: std::sync::OnceLock::new(),
            public_url: std::sync::OnceLock::new(),
            cfg,
        }))
    }

    /// Runs a database call on a blocking thread.
    pub async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Db) -> Result<T, crate::db::DbError> + Send + 'static,
    ) -> Result<T, crate::db::DbError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .expect("database task panicked")
    }

    /// Writes a payload to the job log (durably), then hands it to subscribers.
    pub async fn publish(
        self: &Arc<Self>,
        channels: Vec<String>,
        payload: String,
        job: Option<JobRecord>,
    ) -> Result<u64, crate::db::DbError> {
        let _order = self.publish_lock.lock().await;
        let t = now();
        let (ch, p) = (channels.clone(), payload.clone());
        let (keep, age) = (
            self.cfg.retention_entries,
            self.cfg.retention_age.as_secs() as i64,
        );
        let (seq, pruned) = self
            .db(move |db| {
                let seq = db.append(t, &ch, &p, job.as_ref())?;
                Ok((seq, db.prune(keep, t - age)?))
            })
            .await?;
        self.last_seq.store(seq, Ordering::SeqCst);
        self.pruned_through.store(pruned, Ordering::SeqCst);
        let frames = channels
            .iter()
            .map(|c| (c.clone(), api::event_frame(seq, c, t, &payload)))
            .collect();
        // No receivers is fine: nobody is subscribed right now.
        let _ = self.log_tx.send(Arc::new(Published { seq, frames }));
        if let Some(n) = self.nchan.get() {
            n.enqueue(seq, t, &channels, &payload);
        }
        Ok(seq)
    }

    fn reload_tls(&self) -> Result<()> {
        let crl = self.dd.write_crl(&self.ca, &self.db)?;
        let tls = build_tls(&self.ca, &self.server_chain, &self.server_key, &crl)?;
        self.tls.store(Arc::new(tls));
        self.crl.store(Arc::new(crl));
        Ok(())
    }

    /// The base URL handed to nodes (known once listening).
    pub fn public_url(&self) -> &str {
        self.public_url.get().map(String::as_str).unwrap_or("")
    }

    /// Marks a node subscribed on channels; the guard undoes it.
    pub fn subscribe(self: &Arc<Self>, node: &str, channels: &[String]) -> SubGuard {
        *lock(&self.subscribed).entry(node.to_string()).or_insert(0) += 1;
        let mut cs = lock(&self.channel_subs);
        for c in channels {
            *cs.entry(c.clone()).or_insert(0) += 1;
        }
        SubGuard {
            hub: self.clone(),
            node: node.to_string(),
            channels: channels.to_vec(),
        }
    }

    /// Whether a node has a subscription open or was seen since the last registry flush.
    pub fn is_present(&self, node: &str) -> bool {
        lock(&self.subscribed).contains_key(node) || lock(&self.seen).contains_key(node)
    }
}

/// Locks a mutex, surviving poisoning (counters stay usable after a panic elsewhere).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Undoes [`Hub::subscribe`] when dropped.
pub struct SubGuard {
    hub: Arc<Hub>,
    node: String,
    channels: Vec<String>,
}

impl Drop for SubGuard {
    fn drop(&mut self) {
        let mut s = lock(&self.hub.subscribed);
        if let Some(n) = s.get_mut(&self.node) {
            *n -= 1;
            if *n == 0 {
                s.remove(&self.node);
            }
        }
        drop(s);
        let mut cs = lock(&self.hub.channel_subs);
        for c in &self.channels {
            if let Some(n) = cs.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    cs.remove(c);
                }
            }
        }
    }
}

fn build_tls(
    ca: &Ca,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    crl: &[u8],
) -> Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let ca_der =
        CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).context("CA certificate")?;
    roots.add(ca_der)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls([CertificateRevocationListDer::from(crl.to_vec())])
        .allow_unauthenticated()
        .build()?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.to_vec(), key.clone_key())
        .context("server certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Listens and serves until the process is stopped.
pub async fn serve(hub: Arc<Hub>) -> Result<()> {
    let listener = TcpListener::bind(hub.cfg.listen).await.with_context(|| {
        format!(
            "cannot listen on {}; is another hub running, or use --listen",
            hub.cfg.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let url = hub.cfg.public_url.clone().unwrap_or_else(|| {
        let h = &hub.cfg.default_host;
        let host = if h.contains(':') {
            format!("[{h}]")
        } else {
            h.clone()
        };
        format!("https://{host}:{}", addr.port())
    });
    hub.public_url.set(url).expect("serve runs once");
    if hub.cfg.unsafe_raw_publish {
        tracing::warn!(
            "UNSAFE: --unsafe-raw-publish is on; operators can put unsigned payloads on any channel. Never use this for a real network."
        );
    }
    if hub.policy.current().is_none() {
        tracing::warn!("no --policy given: POST /v1/jobs refuses every job");
    }
    println!("listening on {addr}");
    if let Some(f) = &hub.cfg.addr_file {
        crate::datadir::write_atomic(f, addr.to_string().as_bytes(), 0o644)?;
    }
    tracing::info!(%addr, public_url = %hub.public_url(), "vantage-hub serving");
    // Under systemd (Type=notify): ready once listening. Elsewhere a no-op.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    spawn_background(&hub);
    let app = api::router(hub.clone());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Counted before any byte is read, so silence costs the sender its own
        // address's slots first; released when the handshake ends.
        let Some(handshake) = hub.handshakes.acquire(
            &format!("addr:{}", peer.ip()),
            hub.cfg.max_handshakes_per_address,
        ) else {
            hub.metrics.conn_refused.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::warn!(%peer, left_out, "connection refused: --max-handshakes-per-address ({}) reached", hub.cfg.max_handshakes_per_address);
            }
            continue;
        };
        let Some((slot, evicted)) = hub.admission.admit(peer.ip()) else {
            hub.metrics.conn_refused.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::warn!(%peer, left_out, "connection refused: --max-connections ({}) established connections", hub.cfg.max_connections);
            }
            continue;
        };
        if evicted {
            hub.metrics.handshakes_evicted.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::warn!(%peer, left_out, "--max-connections ({}) reached: the oldest unfinished TLS handshake was cancelled for this connection", hub.cfg.max_connections);
            }
        }
        let (hub, app) = (hub.clone(), app.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(hub, app, tcp, peer, handshake, slot).await {
                tracing::debug!(%peer, "connection: {e:#}");
            }
        });
    }
}

async fn connection(
    hub: Arc<Hub>,
    app: axum::Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    handshake: crate::limits::ConnGuard,
    mut slot: crate::limits::Handshake,
) -> Result<()> {
    tcp.set_nodelay(true)?;
    let activity = Arc::new(AtomicU64::new(0));
    let tracked = Tracked {
        inner: tcp,
        activity: activity.clone(),
        epoch: hub.started,
    };
    let acceptor = TlsAcceptor::from(hub.tls.load_full());
    let shake = tokio::select! {
        r = tokio::time::timeout(hub.cfg.header_timeout, acceptor.accept(tracked)) => r,
        // Counted and logged where the newer connection was admitted.
        () = slot.evicted() => return Ok(()),
    };
    let tls = match shake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            hub.metrics.conn_refused.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::info!(%peer, left_out, "TLS handshake refused: {e}");
            }
            return Ok(());
        }
        Err(_) => bail!("TLS handshake timed out"),
    };
    drop(handshake);
    let caller = Caller::from_certs(tls.get_ref().1.peer_certificates());
    let identified = matches!(caller, Caller::Known { .. });
    let _slot = match slot.finish(identified) {
        Ok(s) => s,
        Err(NoSlot::Evicted) => return Ok(()),
        Err(NoSlot::AnonymousFull) => {
            hub.metrics.conn_refused.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::warn!(%peer, left_out, "connection without a client certificate closed: such connections hold all of --max-connections ({}) but --reserved-for-identified ({})", hub.cfg.max_connections, hub.cfg.reserved_for_identified);
            }
            return Ok(());
        }
    };
    let key = caller.limit_key(&peer);
    let guard = hub.conns.acquire(&key, hub.cfg.max_conns_per_identity);
    let over_limit = guard.is_none();
    // The verified identity travels with each request; the router's
    // extractors and limits read it from there.
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let x = req.extensions_mut();
        x.insert(caller.clone());
        x.insert(api::Peer(peer));
        if over_limit {
            x.insert(api::OverLimit);
        }
        app.clone().oneshot(req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(hub.cfg.header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(tls), service)
        .without_shutdown();
    tokio::pin!(conn);
    let idle = hub.cfg.idle_timeout;
    let check = (idle / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                // Boxed: held inline, the TLS stream and timer of a close
                // would stay reserved in every idle connection's task (2.5 KiB
                // per connection measured with make bench-fanout).
                Box::pin(linger(r?.io.into_inner(), hub.cfg.header_timeout)).await;
                break;
            }
            _ = tokio::time::sleep(check) => {
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if hub.started.elapsed().saturating_sub(last) > idle {
                    tracing::debug!(%peer, "closing idle connection");
                    break;
                }
            }
        }
    }
    drop(guard);
    Ok(())
}

/// Closes a connection the way nginx's lingering close does: say so
/// (TLS close_notify, then FIN), then read and drop what the client still
/// sends, for a bounded time and size. A client that was refused before its
/// request body was read (rate limit, wrong certificate, too large) is
/// usually still uploading; closing at once would reset the connection
/// under it and lose the answer it is about to read.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, within: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MAX_LINGER_BYTES: usize = 8 << 20;
    let drain = async {
        if io.shutdown().await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        let mut left = MAX_LINGER_BYTES;
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(within, drain).await;
}

/// A socket that records when bytes last moved, so idle or stalled
/// connections (a reader that stopped reading) can be closed.
struct Tracked<T> {
    inner: T,
    activity: Arc<AtomicU64>,
    epoch: Instant,
}

impl<T> Tracked<T> {
    fn touch(&self) {
        self.activity
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn spawn_background(hub: &Arc<Hub>) {
    // Revocations (made by `vantage-hub nodes revoke` on the same database):
    // new CRL, new TLS config, and open streams re-check their certificate.
    let h = hub.clone();
    tokio::spawn(async move {
        let mut marker = h.db(|db| db.revocation_marker()).await.ok();
        let mut tick = tokio::time::interval(h.cfg.revocation_poll);
        loop {
            tick.tick().await;
            let m = h.db(|db| db.revocation_marker()).await.ok();
            if m.is_some() && m != marker {
                marker = m;
                let h2 = h.clone();
                match tokio::task::spawn_blocking(move || h2.reload_tls()).await {
                    Ok(Ok(())) => {
                        tracing::info!("revocations changed: CRL and TLS configuration reloaded")
                    }
                    Ok(Err(e)) => tracing::error!("cannot reload the CRL: {e:#}"),
                    Err(e) => tracing::error!("CRL reload task failed: {e}"),
                }
                h.revoked_tx.send_modify(|g| *g += 1);
            }
        }
    });
    // Retention, registry upkeep, bucket sweep, CRL refresh before it expires.
    let h = hub.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        let mut crl_age = Instant::now();
        loop {
            tick.tick().await;
            let (keep, age) = (
                h.cfg.retention_entries,
                h.cfg.retention_age.as_secs() as i64,
            );
            if let Ok(p) = h.db(move |db| db.prune(keep, now() - age)).await {
                h.pruned_through.store(p, Ordering::SeqCst);
            }
            let mut seen: HashMap<String, Option<String>> = lock(&h.subscribed)
                .keys()
                .map(|k| (k.clone(), None))
                .collect();
            seen.extend(
                std::mem::take(&mut *lock(&h.seen))
                    .into_iter()
                    .map(|(k, a)| (k, Some(a))),
            );
            let seen: Vec<_> = seen.into_iter().collect();
            if let Err(e) = h.db(move |db| db.touch_nodes(&seen, now())).await {
                tracing::warn!("registry update: {e}");
            }
            h.rates.sweep(Instant::now());
            if crl_age.elapsed() > Duration::from_secs(86400) {
                crl_age = Instant::now();
                let h2 = h.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || h2.reload_tls()).await {
                    tracing::error!("cannot refresh the CRL: {e:#}");
                }
            }
        }
    });
}
