//! The `tcp` probe: connect time to host:port, or the error.

use std::time::Duration;

use vantage_proto::data::TcpData;
use vantage_proto::probe::TcpArgs;

use super::{Context, ProbeError};

/// Runs a `tcp` probe.
pub async fn run(a: &TcpArgs, ctx: &Context) -> Result<TcpData, ProbeError> {
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
        Ok(Ok((_, peer, dns_ms, connect_ms))) => Ok(TcpData {
            peer: peer.to_string(),
            dns_ms,
            connect_ms,
        }),
    }
}
