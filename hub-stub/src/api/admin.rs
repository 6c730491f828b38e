//! The network's CA and CRL for anyone; channels, statistics and metrics
//! for operators; operator certificates for the hub's own CLI.

use super::{ApiResult, Operator, Params, full, json, online};
use crate::datadir::now;
use crate::db::CertRole;
use crate::hub::Hub;
use crate::pki;
use crate::sync::lock;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{StatusCode, header};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vantage_proto::api::{ChannelEntry, ErrorBody, Stats};

/// The network CA's certificate (PEM), which nodes and operators trust.
#[utoipa::path(get, path = "/v1/ca", tag = "public",
    responses((status = 200, description = "CA certificate", content_type = "application/x-pem-file", body = String)))]
pub(super) async fn ca(State(hub): State<Arc<Hub>>) -> ApiResult {
    Ok((
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        full(hub.ca.cert_pem().to_string()),
    )
        .into_response())
}

/// The current certificate revocation list: DER, or PEM with `?format=pem`.
#[utoipa::path(get, path = "/v1/crl", tag = "public",
    params(("format" = Option<String>, Query, description = "`pem` for PEM; DER otherwise")),
    responses(
        (status = 200, description = "the CRL", content_type = "application/pkix-crl", body = Vec<u8>),
    ))]
pub(super) async fn crl(State(hub): State<Arc<Hub>>, Params(q): Params) -> ApiResult {
    let der = hub.crl.load_full();
    if q.get("format").map(String::as_str) == Some("pem") {
        let text = ::pem::encode(&::pem::Pem::new("X509 CRL", der.as_slice()));
        return Ok((
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            full(text),
        )
            .into_response());
    }
    Ok((
        [(header::CONTENT_TYPE, "application/pkix-crl")],
        full(der.to_vec()),
    )
        .into_response())
}

/// Every channel the hub holds entries for or has subscribers on.
#[utoipa::path(get, path = "/v1/channels", tag = "operators",
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the channels", body = Vec<ChannelEntry>),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
    ))]
pub(super) async fn channels(State(hub): State<Arc<Hub>>, _: Operator) -> ApiResult {
    let held = hub.db(|db| db.channel_counts()).await?;
    let subs = lock(&hub.channel_subs).clone();
    let mut names: Vec<&String> = held.keys().chain(subs.keys()).collect();
    names.sort();
    names.dedup();
    let list: Vec<ChannelEntry> = names
        .into_iter()
        .map(|c| {
            let (messages, last) = held.get(c).copied().unwrap_or((0, 0));
            ChannelEntry {
                channel: c.clone(),
                subscribers: subs.get(c).copied().unwrap_or(0) as u64,
                messages,
                last_seq: last,
            }
        })
        .collect();
    Ok(json(StatusCode::OK, &list))
}

/// The hub now, and totals since it started.
#[utoipa::path(get, path = "/v1/stats", tag = "operators",
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "statistics", body = Stats),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
    ))]
pub(super) async fn stats(State(hub): State<Arc<Hub>>, _: Operator) -> ApiResult {
    Ok(json(StatusCode::OK, &current(&hub).await?))
}

async fn current(hub: &Arc<Hub>) -> Result<Stats, super::ApiError> {
    let (nodes, pending, log_len) = hub
        .db(|db| Ok((db.nodes()?, db.pending_open()?, db.log_len()?)))
        .await?;
    // One lock at a time: guards in a struct literal live to its end.
    let (subscriptions, subscribed_nodes) = {
        let subs = lock(&hub.subscribed);
        (subs.values().sum::<usize>() as u64, subs.len() as u64)
    };
    let mut s = Stats {
        connections: hub.conns.total() as u64,
        subscriptions,
        subscribed_nodes,
        nodes: nodes.len() as u64,
        nodes_online: nodes
            .iter()
            .filter(|n| n.revoked.is_none() && online(hub, n))
            .count() as u64,
        nodes_revoked: nodes.iter().filter(|n| n.revoked.is_some()).count() as u64,
        pending: pending.len() as u64,
        log_entries: log_len,
        last_seq: hub.last_seq.load(Ordering::SeqCst),
        pruned_through: hub.pruned_through.load(Ordering::SeqCst),
        uptime_secs: hub.started.elapsed().as_secs(),
        ..Stats::default()
    };
    hub.metrics.totals(&mut s);
    s.results_over_volume = hub.result_volume.refused.get();
    Ok(s)
}

/// Prometheus / OpenMetrics text.
#[utoipa::path(get, path = "/metrics", tag = "operators",
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "metrics", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
    ))]
pub(super) async fn metrics(State(hub): State<Arc<Hub>>, _: Operator) -> ApiResult {
    let s = current(&hub).await?;
    let serial = hub.policy.current().map_or(0, |p| p.serial);
    let mut subs: Vec<(String, usize)> = lock(&hub.channel_subs)
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    subs.sort();
    let text = hub.metrics.encode(&s, serial, &subs);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        full(text),
    )
        .into_response())
}

/// Issues an operator certificate (used by the CLI).
pub fn issue_operator(
    ca: &pki::Ca,
    db: &crate::db::Db,
    name: &str,
    lifetime: std::time::Duration,
) -> anyhow::Result<(pki::Issued, String)> {
    vantage_proto::identity::validate_operator_name(name)?;
    let (issued, key) = ca.issue_operator(name, lifetime)?;
    db.insert_cert(
        &issued.serial,
        CertRole::Operator,
        name,
        issued.not_after,
        now(),
    )?;
    db.audit(
        now(),
        "cli",
        "operator.issue",
        name,
        &json!({"serial": issued.serial}),
    )?;
    Ok((issued, key))
}
