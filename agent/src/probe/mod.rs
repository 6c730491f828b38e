//! The probes. Each takes its validated arguments from `vantage_proto::probe`
//! and returns the result's `data`, or why it could not.

pub mod dns;
pub mod http;
pub mod ping;
pub mod tcp;
pub mod tls;
pub mod trace;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::dnssec::TrustAnchors;
use serde_json::Value;
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
    pub trust_anchors: Arc<TrustAnchors>,
}

impl Context {
    /// Builds the probe context; `trust_anchor` replaces the built-in root anchors.
    pub fn new(owner: OwnerPolicy, trust_anchor: Option<&Path>) -> anyhow::Result<Context> {
        let trust_anchors = match trust_anchor {
            Some(p) => Arc::new(TrustAnchors::from_file(p).map_err(|e| {
                anyhow::anyhow!(
                    "trust anchor file {}: {e}; it must hold DNSKEY records in zone-file form",
                    p.display()
                )
            })?),
            None => Arc::new(TrustAnchors::default()),
        };
        // A node without /etc/resolv.conf can still run probes on IP literals.
        let resolver = TokioResolver::builder_tokio()
            .ok()
            .and_then(|b| b.build().ok());
        Ok(Context {
            resolver,
            owner,
            trust_anchors,
        })
    }
}

/// Milliseconds with microsecond precision, for reports.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Resolves `host` to one address of the family `af` that the owner allows;
/// returns it with the resolution time in milliseconds.
pub async fn resolve_one(
    host: &str,
    af: AddressFamily,
    ctx: &Context,
) -> Result<(IpAddr, f64), ProbeError> {
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
    let ip = addrs
        .into_iter()
        .find(|a| af.admits(a))
        .ok_or_else(|| ProbeError::Failed(format!("{host} has no address of the family {af:?}")))?;
    ctx.owner.check_ip(ip).map_err(ProbeError::refused)?;
    Ok((ip, dns_ms))
}

/// Runs one probe with a hard time limit.
pub async fn run(probe: &Probe, ctx: &Context, limit: Duration) -> Result<Value, ProbeError> {
    let work = async {
        match probe {
            Probe::Dns(a) => dns::run(a, ctx).await,
            Probe::Http(a) => http::run(a, ctx).await,
            Probe::Tls(a) => tls::run(a, ctx).await,
            Probe::Tcp(a) => tcp::run(a, ctx).await,
            Probe::Ping(a) => ping::run(a, ctx).await,
            Probe::Traceroute(a) => trace::run(a, ctx).await,
        }
    };
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(ProbeError::Timeout(format!(
            "the probe ran longer than the node's limit of {} s",
            limit.as_secs()
        )))
    })
}
