//! The probes. Each takes its validated arguments from `vantage_proto::probe`
//! and returns the result's typed `data` (`vantage_proto::data`), or why it could not.

pub mod anchors;
pub mod dns;
pub mod http;
pub mod ping;
pub mod tcp;
pub mod tls;
pub mod trace;
pub mod upstream;
pub mod validate;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use tokio::net::TcpStream;
use vantage_proto::data::ProbeData;
use vantage_proto::probe::{AddressFamily, Probe};

use crate::owner::{Denied, OwnerPolicy};

/// Why a probe produced no data.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProbeError {
    /// The owner's policy forbids the resolved target.
    #[error("{0}")]
    Refused(String),
    /// A step did not finish in time.
    #[error("{0}")]
    Timeout(String),
    /// The measurement failed (the failure is the finding).
    #[error("{0}")]
    Failed(String),
    /// A DNS server could not be reached or did not answer; the failure
    /// carries its stable code (`port-unreachable`, `no-answer`, ...).
    #[error("{0}")]
    Net(wire::WireError),
}

impl ProbeError {
    /// Wraps an owner-policy denial.
    pub fn refused(d: Denied) -> ProbeError {
        ProbeError::Refused(d.to_string())
    }
}

/// What every probe shares: the system resolver, the owner's policy, DNSSEC trust anchors.
pub struct Context {
    resolver: Option<TokioResolver>,
    /// The owner's address and name policy.
    pub owner: OwnerPolicy,
    /// Trust anchors for DNSSEC validation.
    pub anchors: Arc<anchors::Anchors>,
}

impl Context {
    /// Builds the probe context; `trust_anchor` replaces the built-in root anchors.
    pub fn new(owner: OwnerPolicy, trust_anchor: Option<&Path>) -> anyhow::Result<Context> {
        let anchors = match trust_anchor {
            Some(p) => Arc::new(anchors::Anchors::load(p).map_err(|e| {
                anyhow::anyhow!(
                    "trust anchor file {}: {e}; it must hold DNSKEY or DS records in zone-file form",
                    p.display()
                )
            })?),
            None => Arc::new(anchors::Anchors::default()),
        };
        // A node without /etc/resolv.conf can still run probes on IP literals.
        let resolver = TokioResolver::builder_tokio()
            .ok()
            .and_then(|b| b.build().ok());
        Ok(Context {
            resolver,
            owner,
            anchors,
        })
    }
}

/// Milliseconds with microsecond precision, for reports.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Resolves `host` to the addresses of the family `af` that the owner
/// allows, in the resolver's order; returns them with the resolution time in
/// milliseconds. Refuses when the owner allows none of them.
pub async fn resolve(
    host: &str,
    af: AddressFamily,
    ctx: &Context,
) -> Result<(Vec<IpAddr>, f64), ProbeError> {
    let t = Instant::now();
    let addrs: Vec<IpAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![ip]
    } else {
        ctx.owner.check_name(host).map_err(ProbeError::refused)?;
        let resolver = ctx
            .resolver
            .as_ref()
            .ok_or_else(|| ProbeError::Failed("no system resolver configured".into()))?;
        resolver
            .lookup_ip(host)
            .await
            .map_err(|e| ProbeError::Failed(format!("resolving {host}: {e}")))?
            .iter()
            .collect()
    };
    let dns_ms = ms(t.elapsed());
    let family: Vec<IpAddr> = addrs.into_iter().filter(|a| af.admits(a)).collect();
    if family.is_empty() {
        return Err(ProbeError::Failed(format!(
            "{host} has no address of the family {af:?}"
        )));
    }
    let mut first_denial = None;
    let allowed: Vec<IpAddr> = family
        .into_iter()
        .filter(|ip| match ctx.owner.check_ip(*ip) {
            Ok(()) => true,
            Err(d) => {
                first_denial.get_or_insert(d);
                false
            }
        })
        .collect();
    match (allowed.is_empty(), first_denial) {
        (true, Some(d)) => Err(ProbeError::refused(d)),
        _ => Ok((allowed, dns_ms)),
    }
}

/// Like [`resolve`], the first address only (for probes that send packets to one target).
pub async fn resolve_one(
    host: &str,
    af: AddressFamily,
    ctx: &Context,
) -> Result<(IpAddr, f64), ProbeError> {
    let (addrs, dns_ms) = resolve(host, af, ctx).await?;
    Ok((addrs[0], dns_ms))
}

/// A TCP connection to the first of `host`'s addresses that accepts:
/// the stream, the peer, DNS and connect milliseconds.
pub async fn connect(
    host: &str,
    port: u16,
    af: AddressFamily,
    ctx: &Context,
) -> Result<(TcpStream, SocketAddr, f64, f64), ProbeError> {
    let (addrs, dns_ms) = resolve(host, af, ctx).await?;
    let mut errors = Vec::new();
    for ip in addrs {
        let peer = SocketAddr::new(ip, port);
        let t = Instant::now();
        match TcpStream::connect(peer).await {
            Ok(s) => return Ok((s, peer, dns_ms, ms(t.elapsed()))),
            Err(e) => errors.push(format!("connect to {peer}: {e}")),
        }
    }
    Err(ProbeError::Failed(errors.join("; ")))
}

/// Runs one probe with a hard time limit.
pub async fn run(probe: &Probe, ctx: &Context, limit: Duration) -> Result<ProbeData, ProbeError> {
    let work = async {
        match probe {
            Probe::Dns(a) => dns::run(a, ctx).await.map(ProbeData::Dns),
            Probe::Http(a) => http::run(a, ctx).await.map(ProbeData::Http),
            Probe::Tls(a) => tls::run(a, ctx).await.map(ProbeData::Tls),
            Probe::Tcp(a) => tcp::run(a, ctx).await.map(ProbeData::Tcp),
            Probe::Ping(a) => ping::run(a, ctx).await.map(ProbeData::Ping),
            Probe::Traceroute(a) => trace::run(a, ctx).await.map(ProbeData::Traceroute),
        }
    };
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(ProbeError::Timeout(format!(
            "the probe ran longer than the node's limit of {} s",
            limit.as_secs()
        )))
    })
}
