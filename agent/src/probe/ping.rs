//! The `ping` probe: ICMP echo with surge-ping (an unprivileged ICMP socket
//! where `net.ipv4.ping_group_range` allows it, a raw one with CAP_NET_RAW otherwise).

use std::net::IpAddr;
use std::time::Duration;

use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};
use vantage_proto::data::{PingData, PingPacket};
use vantage_proto::probe::PingArgs;

use super::{Context, ProbeError, ms};

const INTERVAL: Duration = Duration::from_millis(500);

/// Runs a `ping` probe.
pub async fn run(a: &PingArgs, ctx: &Context) -> Result<PingData, ProbeError> {
    let (addr, dns_ms) = super::resolve_one(&a.host, a.af, ctx).await?;
    let kind = match addr {
        IpAddr::V4(_) => ICMP::V4,
        IpAddr::V6(_) => ICMP::V6,
    };
    let client = Client::new(&Config::builder().kind(kind).build())
        .map_err(|e| ProbeError::Failed(format!("cannot open an ICMP socket: {e}")))?;
    let mut pinger = client.pinger(addr, PingIdentifier(fastrand::u16(..))).await;
    pinger.timeout(Duration::from_millis(a.timeout_ms.into()));
    let payload = [0u8; 56];
    let mut packets = Vec::new();
    let mut got = Vec::new();
    for seq in 0..u16::from(a.count) {
        if seq > 0 {
            tokio::time::sleep(INTERVAL).await;
        }
        let (rtt_ms, error) = match pinger.ping(PingSequence(seq), &payload).await {
            Ok((_, rtt)) => {
                got.push(ms(rtt));
                (Some(ms(rtt)), None)
            }
            Err(SurgeError::Timeout { .. }) => (None, None),
            Err(e) => (None, Some(e.to_string())),
        };
        packets.push(PingPacket { seq, rtt_ms, error });
    }
    let sent = u32::from(a.count);
    let received = got.len() as u32;
    let mut out = PingData {
        target: addr.to_string(),
        dns_ms,
        sent,
        received,
        loss_pct: f64::from(sent - received) * 100.0 / f64::from(sent),
        packets,
        min_ms: None,
        avg_ms: None,
        max_ms: None,
    };
    if !got.is_empty() {
        let avg = got.iter().sum::<f64>() / f64::from(received);
        out.min_ms = Some(got.iter().copied().fold(f64::INFINITY, f64::min));
        out.avg_ms = Some((avg * 1000.0).round() / 1000.0);
        out.max_ms = Some(got.iter().copied().fold(0.0, f64::max));
    }
    Ok(out)
}
