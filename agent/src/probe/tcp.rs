//! The `tcp` probe: connect time to host:port, or the error.

use std::time::Duration;

use serde_json::{Value, json};
use vantage_proto::probe::TcpArgs;

use super::{Context, ProbeError};

/// Runs a `tcp` probe.
pub async fn run(a: &TcpArgs, ctx: &Context) -> Result<Value, ProbeError> {
    match tokio::time::timeout(
        Duration::from_millis(a.timeout_ms.into()),
        super::connect(&a.host, a.port, a.af, ctx),
    )
    .await
    {
        Err(_) => Err(ProbeError::Timeout(format!(
            "no connection to {}:{} within {} ms",
            a.host, a.port, a.timeout_ms
        ))),
        Ok(Err(e)) => Err(e),
        Ok(Ok((_, peer, dns_ms, connect_ms))) => Ok(json!({
            "peer": peer.to_string(),
            "dns_ms": dns_ms,
            "connect_ms": connect_ms,
        })),
    }
}
