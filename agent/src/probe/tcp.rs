//! The `tcp` probe: connect time to host:port, or the error.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpStream;
use vantage_proto::probe::TcpArgs;

use super::{Context, ProbeError, ms};

/// Runs a `tcp` probe.
pub async fn run(a: &TcpArgs, ctx: &Context) -> Result<Value, ProbeError> {
    let (addr, dns_ms) = super::resolve_one(&a.host, a.af, ctx).await?;
    let peer = SocketAddr::new(addr, a.port);
    let t = Instant::now();
    match tokio::time::timeout(
        Duration::from_millis(a.timeout_ms.into()),
        TcpStream::connect(peer),
    )
    .await
    {
        Err(_) => Err(ProbeError::Timeout(format!(
            "no answer from {peer} within {} ms",
            a.timeout_ms
        ))),
        Ok(Err(e)) => Err(ProbeError::Failed(format!("connect to {peer}: {e}"))),
        Ok(Ok(_)) => Ok(json!({
            "peer": peer.to_string(),
            "dns_ms": dns_ms,
            "connect_ms": ms(t.elapsed()),
        })),
    }
}
