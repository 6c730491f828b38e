//! A node's subscription to its channels (the job log as an event stream).

use super::{ApiError, ApiResult, Node, Params, Peer, Seg, touch};
use crate::hub::{Caller, Hub};
use axum::Extension;
use axum::extract::State;
use http::HeaderMap;
use std::sync::Arc;
use vantage_proto::api::ErrorBody;
use vantage_proto::channel;

/// The job log for the node's channels as Server-Sent Events (or one batch
/// with `?mode=poll`), from `Last-Event-ID` on, with a `gap` event where
/// entries were pruned.
#[utoipa::path(get, path = "/v1/sub/{channels}", tag = "nodes",
    params(
        ("channels" = String, Path, description = "comma-separated channels assigned to the node"),
        ("mode" = Option<String>, Query, description = "`poll` for one long-poll answer"),
        ("timeout" = Option<u64>, Query, description = "long-poll wait in seconds (at most 60)"),
        ("last_event_id" = Option<String>, Query, description = "as the Last-Event-ID header"),
    ),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "unreadable channel list", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not a node, or a channel not assigned to it", body = ErrorBody),
    ))]
pub(super) async fn subscribe(
    State(hub): State<Arc<Hub>>,
    Node(node): Node,
    Extension(caller): Extension<Caller>,
    Extension(Peer(peer)): Extension<Peer>,
    Seg(list): Seg,
    Params(q): Params,
    headers: HeaderMap,
) -> ApiResult {
    let channels = subscription_channels(&hub, &node, &list).await?;
    touch(&hub, &node, peer);
    let cert = match caller {
        Caller::Known {
            serial, not_after, ..
        } => (serial, not_after),
        _ => (String::new(), 0),
    };
    super::stream::subscribe(hub, node, cert, channels, &headers, &q).await
}

async fn subscription_channels(
    hub: &Arc<Hub>,
    node: &str,
    list: &str,
) -> Result<Vec<String>, ApiError> {
    let wanted = channel::parse_channel_list(list)
        .map_err(|e| ApiError::bad("bad-channels", e.to_string()))?;
    let id = node.to_string();
    let row = hub
        .db(move |db| db.node(&id))
        .await?
        .ok_or_else(|| ApiError::forbidden("node-gone", "node not in the registry"))?;
    let allowed = row.attrs.for_node(&row.id).channels();
    if let Some(bad) = wanted.iter().find(|c| !allowed.contains(c)) {
        return Err(ApiError::forbidden(
            "channel-not-assigned",
            format!(
                "channel {bad} is not assigned to this node (its channels: {})",
                allowed.join(",")
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(wanted.len());
    for c in wanted {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}
