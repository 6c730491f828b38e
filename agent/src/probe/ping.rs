//! The `ping` probe: ICMP echo with surge-ping (an unprivileged ICMP socket
//! where `net.ipv4.ping_group_range` allows it, a raw one with CAP_NET_RAW otherwise).

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};
use vantage_proto::probe::PingArgs;

use super::{Context, ProbeError, ms};

const INTERVAL: Duration = Duration::from_millis(500);

/// Runs a `ping` probe.
pub async fn run(a: &PingArgs, ctx: &Context) -> Result<Value, ProbeError> {
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
    let mut rtts: Vec<Value> = Vec::new();
    let mut got = Vec::new();
    for seq in 0..u16::from(a.count) {
        if seq > 0 {
            tokio::time::sleep(INTERVAL).await;
        }
        match pinger.ping(PingSequence(seq), &payload).await {
            Ok((_, rtt)) => {
                let m = ms(rtt);
                got.push(m);
                rtts.push(json!({"seq": seq, "rtt_ms": m}));
            }
            Err(SurgeError::Timeout { .. }) => rtts.push(json!({"seq": seq, "rtt_ms": null})),
            Err(e) => rtts.push(json!({"seq": seq, "rtt_ms": null, "error": e.to_string()})),
        }
    }
    let sent = usize::from(a.count);
    let received = got.len();
    let mut out = json!({
        "target": addr.to_string(),
        "dns_ms": dns_ms,
        "sent": sent,
        "received": received,
        "loss_pct": (sent - received) as f64 * 100.0 / sent as f64,
        "packets": rtts,
    });
    if !got.is_empty() {
        let min = got.iter().copied().fold(f64::INFINITY, f64::min);
        let max = got.iter().copied().fold(0.0, f64::max);
        let avg = got.iter().sum::<f64>() / received as f64;
        out["min_ms"] = json!(min);
        out["avg_ms"] = json!((avg * 1000.0).round() / 1000.0);
        out["max_ms"] = json!(max);
    }
    Ok(out)
}
