//! The `traceroute` probe, driven by trippy's tracing engine (one round:
//! every TTL up to the target or `max_hops`), run on a blocking thread.

use std::net::IpAddr;
use std::time::Duration;

use trippy_core::{Builder, Port, PortDirection, PrivilegeMode, Protocol};
use vantage_proto::data::{TraceData, TraceHop};
use vantage_proto::probe::{TraceProtocol, TracerouteArgs};

use super::{Context, ProbeError, ms};

/// Runs a `traceroute` probe.
pub async fn run(a: &TracerouteArgs, ctx: &Context) -> Result<TraceData, ProbeError> {
    let (addr, dns_ms) = super::resolve_one(&a.host, a.af, ctx).await?;
    let args = a.clone();
    let hops = tokio::task::spawn_blocking(move || trace(addr, &args))
        .await
        .map_err(|e| ProbeError::Failed(format!("traceroute thread: {e}")))??;
    Ok(TraceData {
        target: addr.to_string(),
        dns_ms,
        protocol: a.protocol,
        hops,
    })
}

/// A count as the wire has it; a traceroute never sends 2^32 probes per hop.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn trace(addr: IpAddr, a: &TracerouteArgs) -> Result<Vec<TraceHop>, ProbeError> {
    let protocol = match a.protocol {
        TraceProtocol::Udp => Protocol::Udp,
        TraceProtocol::Icmp => Protocol::Icmp,
        TraceProtocol::Tcp => Protocol::Tcp,
    };
    let per_hop = Duration::from_millis(a.timeout_ms.into());
    let mut last_err = None;
    // Raw sockets need CAP_NET_RAW; without it try the unprivileged mode.
    for mode in [PrivilegeMode::Privileged, PrivilegeMode::Unprivileged] {
        let mut b = Builder::new(addr)
            .protocol(protocol)
            .privilege_mode(mode)
            .max_ttl(a.max_hops)
            .max_rounds(Some(1))
            .min_round_duration(Duration::from_millis(10))
            .max_round_duration(per_hop)
            .tcp_connect_timeout(per_hop)
            .drop_privileges(false);
        if protocol != Protocol::Icmp {
            b = b.port_direction(PortDirection::FixedDest(Port(a.effective_port())));
        }
        let tracer = match b.build() {
            Ok(t) => t,
            Err(e) => {
                last_err = Some(e.to_string());
                continue;
            }
        };
        if let Err(e) = tracer.run() {
            last_err = Some(e.to_string());
            continue;
        }
        let state = tracer.snapshot();
        return Ok(state
            .hops()
            .iter()
            .map(|h| TraceHop {
                ttl: h.ttl(),
                addrs: h.addrs().map(|a| a.to_string()).collect(),
                rtts_ms: h.samples().iter().map(|d| ms(*d)).collect(),
                sent: count(h.total_sent()),
                received: count(h.total_recv()),
            })
            .collect());
    }
    Err(ProbeError::Failed(format!(
        "traceroute could not run: {}",
        last_err.unwrap_or_default()
    )))
}
