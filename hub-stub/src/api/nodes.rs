//! The node registry: what nodes report of themselves (heartbeats, gaps) and
//! what operators see of them.

use super::online;
use super::{ApiError, ApiResult, Json, MAX_SMALL_BODY, Node, Operator, Peer, Seg, json};
use crate::datadir::now;
use crate::db::{NodeRelease, NodeRow, PendingRow};
use crate::hub::Hub;
use crate::hub::one_line;
use crate::sync::lock;
use axum::Extension;
use axum::extract::State;
use http::StatusCode;
use std::sync::Arc;
use vantage_proto::api::{Ack, ErrorBody, HeartbeatAnswer, NodeEntry, NodeStatus};
use vantage_proto::node::{GapReport, Heartbeat};
use vantage_proto::release::FailedRelease;

/// A node's health (version, outbox, last error, policy serial, refusals)
/// and what it can do (capabilities, owner's policy digest).
#[utoipa::path(post, path = "/v1/heartbeat", tag = "nodes",
    request_body = Heartbeat,
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "taken; `release` names the agent release offered to this node", body = HeartbeatAnswer),
        (status = 400, description = "unreadable heartbeat", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not a node", body = ErrorBody),
    ))]
pub(super) async fn heartbeat(
    State(hub): State<Arc<Hub>>,
    Node(node): Node,
    Extension(Peer(peer)): Extension<Peer>,
    Json(hb): Json<Heartbeat, MAX_SMALL_BODY>,
) -> ApiResult {
    hub.policy.note_reported(&node, hb.policy_serial);
    let h = {
        let mut health = lock(&hub.health);
        let h = crate::hub::NodeHealth::from_heartbeat(&hb, now(), health.get(&node));
        health.insert(node.clone(), h.clone());
        h
    };
    if let Some(r) = hb.refused.as_ref().and(h.refused.as_ref()) {
        // One line per heartbeat, however much junk the node's stream carried.
        tracing::warn!(node = %node, total = r.total(), counts = ?r.counts,
            sample = r.sample.as_deref().unwrap_or(""), "node refused stream data");
    }
    if hb.caps.is_some() || hb.owner.is_some() {
        let (id, caps, owner) = (node.clone(), hb.caps, hb.owner.clone());
        hub.db(move |db| db.set_node_caps(&id, caps.as_ref(), owner.as_ref(), now()))
            .await?;
    }
    let report = release_report(&hb, now());
    let release = super::releases::heartbeat(&hub, &node, peer, hb.version, report).await?;
    Ok(json(StatusCode::OK, &HeartbeatAnswer { ok: true, release }))
}

/// What a heartbeat says of releases, with the node's words made one
/// bounded line and a target that is not a plain triple left out.
fn release_report(hb: &Heartbeat, now: i64) -> NodeRelease {
    let target = hb.target.as_deref().filter(|t| {
        (1..=64).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    let failed = hb.release.as_ref().and_then(|r| r.failed.as_ref());
    NodeRelease {
        target: target.map(str::to_string),
        failed: failed.map(|f| FailedRelease {
            version: one_line(&f.version),
            code: one_line(&f.code),
            detail: one_line(&f.detail),
        }),
        from_release: hb.release.as_ref().is_some_and(|r| r.from_release),
        heartbeat: now,
    }
}

/// A node says it missed job-log entries it cannot get any more.
#[utoipa::path(post, path = "/v1/gap", tag = "nodes",
    request_body = GapReport,
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "recorded", body = Ack),
        (status = 400, description = "unreadable report", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not a node", body = ErrorBody),
    ))]
pub(super) async fn gap(
    State(hub): State<Arc<Hub>>,
    Node(node): Node,
    Json(gap): Json<GapReport, MAX_SMALL_BODY>,
) -> ApiResult {
    tracing::warn!(node = %node, requested = %gap.requested, oldest = ?gap.oldest, "node reports a gap");
    let text = serde_json::to_string(&gap).expect("serialises");
    hub.db(move |db| db.insert_gap(&node, now(), &text)).await?;
    Ok(json(StatusCode::OK, &Ack::OK))
}

/// Every node and every pending enrolment.
#[utoipa::path(get, path = "/v1/nodes", tag = "operators",
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the registry", body = Vec<NodeEntry>),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
    ))]
pub(super) async fn list(State(hub): State<Arc<Hub>>, _: Operator) -> ApiResult {
    let (nodes, pending) = hub.db(|db| Ok((db.nodes()?, db.pending_open()?))).await?;
    let mut list: Vec<NodeEntry> = nodes.iter().map(|n| node_entry(&hub, n)).collect();
    list.extend(pending.iter().map(pending_entry));
    Ok(json(StatusCode::OK, &list))
}

/// One node.
#[utoipa::path(get, path = "/v1/nodes/{id}", tag = "operators",
    params(("id" = String, Path, description = "node id")),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the node", body = NodeEntry),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        (status = 404, description = "no such node", body = ErrorBody),
    ))]
pub(super) async fn one(State(hub): State<Arc<Hub>>, _: Operator, Seg(id): Seg) -> ApiResult {
    let n = hub
        .db(move |db| db.node(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("no-such-node", "no such node"))?;
    Ok(json(StatusCode::OK, &node_entry(&hub, &n)))
}

/// Status of a node for the registry.
pub fn node_status(revoked: bool, online: bool) -> NodeStatus {
    match (revoked, online) {
        (true, _) => NodeStatus::Revoked,
        (false, true) => NodeStatus::Online,
        (false, false) => NodeStatus::Offline,
    }
}

/// A node as an operator sees it: the registry row, its channels and what
/// its last heartbeat said.
pub(crate) fn node_entry(hub: &Hub, n: &NodeRow) -> NodeEntry {
    let health = lock(&hub.health).get(&n.id).cloned();
    let mut e = registry_entry(n, node_status(n.revoked.is_some(), online(hub, n)));
    e.policy_serial = hub.policy.reported(&n.id);
    if let Some(h) = health {
        e.last_error = h.last_error;
        e.outbox_depth = Some(h.outbox_depth);
        e.outbox_dropped = Some(h.outbox_dropped);
        e.heartbeat = Some(h.reported);
        e.refused = h.refused;
        e.refused_totals = Some(h.refused_totals);
    }
    e
}

/// A node's registry row as an entry, without what only a running hub knows
/// (`vantage-hub nodes list` reads the database alone).
pub fn registry_entry(n: &NodeRow, status: NodeStatus) -> NodeEntry {
    NodeEntry {
        id: Some(n.id.clone()),
        status,
        country: n.attrs.country.clone(),
        continent: n.attrs.continent.clone(),
        asn: n.attrs.asn,
        tags: n.attrs.tags.clone(),
        key_fingerprint: n.key_fingerprint.clone(),
        address: n.address.clone(),
        cert_serial: Some(n.cert_serial.clone()),
        cert_not_after: Some(n.cert_not_after),
        enrolled: Some(n.enrolled),
        enrolled_via: Some(n.enrolled_via.clone()),
        revoked: n.revoked,
        last_seen: n.last_seen,
        agent_version: n.agent_version.clone(),
        target: n.release.as_ref().and_then(|r| r.target.clone()),
        from_release: n.release.as_ref().is_some_and(|r| r.from_release),
        failed_release: n.release.as_ref().and_then(|r| r.failed.clone()),
        channels: n.attrs.for_node(&n.id).channels(),
        policy_serial: None,
        last_error: None,
        outbox_depth: None,
        outbox_dropped: None,
        heartbeat: None,
        refused: None,
        refused_totals: None,
        caps: n.caps,
        owner: n.owner.clone(),
        requested: None,
        last_poll: None,
        approved: None,
    }
}

/// A pending enrolment as a registry entry (status `pending`, no id yet).
pub fn pending_entry(p: &PendingRow) -> NodeEntry {
    NodeEntry {
        id: None,
        status: NodeStatus::Pending,
        country: p.declared.country.clone(),
        continent: p.declared.continent.clone(),
        asn: p.declared.asn,
        tags: p.declared.tags.clone(),
        key_fingerprint: p.fingerprint.clone(),
        address: p.address.clone(),
        cert_serial: None,
        cert_not_after: None,
        enrolled: None,
        enrolled_via: None,
        revoked: None,
        last_seen: None,
        agent_version: None,
        target: None,
        from_release: false,
        failed_release: None,
        channels: Vec::new(),
        policy_serial: None,
        last_error: None,
        outbox_depth: None,
        outbox_dropped: None,
        heartbeat: None,
        refused: None,
        refused_totals: None,
        caps: None,
        owner: None,
        requested: Some(p.created),
        last_poll: Some(p.last_poll),
        approved: p.approved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_status_words() {
        assert_eq!(node_status(true, true), NodeStatus::Revoked);
        assert_eq!(node_status(false, true), NodeStatus::Online);
        assert_eq!(node_status(false, false), NodeStatus::Offline);
    }

    #[test]
    fn what_a_heartbeat_says_of_releases_is_bounded() {
        let mut hb: Heartbeat = serde_json::from_value(serde_json::json!({
            "version": "0.2.0", "uptime_secs": 1, "outbox_depth": 0,
            "target": "../../etc",
            "release": {"from_release": true, "failed": {"version": "0.3.0",
                "code": "release-rolled-back", "detail": format!("a\nb{}", "x".repeat(900))}}
        }))
        .unwrap();
        let r = release_report(&hb, 9);
        assert_eq!((r.target, r.from_release, r.heartbeat), (None, true, 9));
        let f = r.failed.unwrap();
        assert!(f.detail.starts_with("a bxx"), "{}", f.detail);
        assert_eq!(f.detail.chars().count(), crate::hub::MAX_LAST_ERROR);
        hb.target = Some("aarch64-unknown-linux-musl".into());
        assert_eq!(
            release_report(&hb, 9).target.as_deref(),
            Some("aarch64-unknown-linux-musl")
        );
    }

    #[test]
    fn heartbeat_errors_are_one_bounded_line() {
        let mut hb = Heartbeat {
            last_error: Some(format!(
                "HTTP 502: <html>\n<body>{}</body>",
                "x".repeat(2000)
            )),
            outbox_depth: 3,
            ..Heartbeat::default()
        };
        hb.refused = Some(vantage_proto::node::RefusalSummary {
            sample: Some("unreadable message: a\nb\r\u{1b}[2J".into()),
            ..Default::default()
        });
        let h = crate::hub::NodeHealth::from_heartbeat(&hb, 7, None);
        assert_eq!(
            h.refused.unwrap().sample.unwrap(),
            "unreadable message: a b [2J"
        );
        let e = h.last_error.unwrap();
        assert!(e.starts_with("HTTP 502: <html> <body>xx"), "{e}");
        assert_eq!(e.chars().count(), crate::hub::MAX_LAST_ERROR);
        assert_eq!((h.outbox_depth, h.reported), (3, 7));
    }
}
