//! The hub's shared state, [`Hub`]: its data directory, database, TLS
//! configuration, the live subscriptions and the frames published to them,
//! and the types its handlers and background tasks share (`Caller`,
//! `NodeHealth`). Below `api`, `stream` and `server`, which all use it.

use crate::datadir::{DataDir, now};
use crate::db::{Db, JobRecord};
use crate::limits::{Admission, ConnCounter, LogThrottle, RateLimiter, ResultVolume};
use crate::pki::{Ca, cert_info};
use crate::sync::lock;
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use vantage_proto::identity::Role;
use vantage_proto::sse::Event;

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
    /// Node certificate lifetime.
    pub node_cert_lifetime: Duration,
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
    /// Nodes heard from within this time count in a release's waves.
    pub release_window: Duration,
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
    /// Results on their way into the database (group commit).
    pub ingest: crate::ingest::Ingest,
    /// Approval policy: shipped, plus accepted successors.
    pub policy: crate::governance::PolicyState,
    /// Accepted agent releases and their rollouts.
    pub releases: crate::releases::Catalog,
    pub(crate) tls: ArcSwap<ServerConfig>,
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
    pub(crate) public_url: std::sync::OnceLock<String>,
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
pub fn one_line(text: &str) -> String {
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
    pub(crate) fn from_certs(certs: Option<&[CertificateDer<'_>]>) -> Self {
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
        let releases = crate::releases::Catalog::load(&db)?;
        let db = Arc::new(db);
        let ingest = crate::ingest::Ingest::start(db.clone());
        metrics.register_counter(
            "result_commits",
            "transactions that stored results (results stored per commit: the group-commit batch)",
            ingest.commits.clone(),
        );
        Ok(Arc::new(Self {
            dd,
            ca,
            ingest,
            db,
            policy,
            releases,
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

    /// Counts every release's waves, opens the next wave or stops a rollout
    /// where it should, sets the release gauges, and returns each release's
    /// status, newest first.
    pub async fn evaluate_releases(
        self: &Arc<Self>,
    ) -> Result<Vec<vantage_proto::api::ReleaseStatus>, crate::db::DbError> {
        let h = self.clone();
        let all = self
            .db(move |db| {
                h.releases
                    .evaluate(db, h.dd.root(), now(), h.cfg.release_window)
            })
            .await?;
        self.metrics.set_release_nodes(&all);
        Ok(all)
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
            .map(|c| (c.clone(), event_frame(seq, c, t, &payload)))
            .collect();
        // No receivers is fine: nobody is subscribed right now.
        let _ = self.log_tx.send(Arc::new(Published { seq, frames }));
        if let Some(n) = self.nchan.get() {
            n.enqueue(seq, t, &channels, &payload);
        }
        Ok(seq)
    }

    pub(crate) fn reload_tls(&self) -> Result<()> {
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

/// An SSE frame carrying one envelope: `{"id","channel","time","payload"}`.
pub fn event_frame(seq: u64, channel: &str, time: i64, payload: &str) -> Bytes {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.max(0) as u64);
    let data = vantage_proto::envelope::Envelope::encode(seq, channel, at, payload);
    Bytes::from(Event::message(seq.to_string(), data).encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_proto::envelope::Envelope;
    use vantage_proto::sse::{Decoder, Frame};

    #[test]
    fn event_frames_carry_protocol_envelopes() {
        let job = serde_json::json!({"job": {"v": 1, "id": "j1"}, "signatures": [{"key_id": "00", "sig": "AA=="}]});
        let frame = event_frame(42, "cc.DE", 1_343_000_000, &job.to_string());
        let mut dec = Decoder::new(1 << 16, 1 << 20);
        let frames = dec.feed(&frame);
        let [Ok(Frame::Event(ev))] = frames.as_slice() else {
            panic!("one event expected: {frames:?}")
        };
        assert_eq!(ev.id.as_deref(), Some("42"));
        let env = Envelope::from_json(&ev.data).unwrap();
        assert_eq!((env.id, env.channel.as_str()), (42, "cc.DE"));
        assert_eq!(env.time, "Sun, 22 Jul 2012 23:33:20 GMT");
        assert_eq!(serde_json::to_value(&env.payload).unwrap(), job);
    }
}
