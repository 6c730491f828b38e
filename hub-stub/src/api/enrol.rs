//! Enrolment, renewal and a node's own attribute changes.

use super::{ApiError, ApiResult, Json, MAX_SMALL_BODY, Node, Peer, json};
use crate::datadir::now;
use crate::db::{Attrs, NodeRow, PendingCaps, PendingFull};
use crate::hub::Hub;
use crate::pki::{self, random_hex};
use axum::Extension;
use axum::extract::State;
use http::StatusCode;
use serde_json::json;
use std::sync::Arc;
use vantage_proto::api::ErrorBody;
use vantage_proto::enrol::{
    AttrsChange, AttrsRequest, AttrsResponse, Endpoints, EnrolRequest, EnrolResponse, EnrolStatus,
    RenewRequest,
};

fn issued_response(hub: &Hub, node: &NodeRow) -> EnrolResponse {
    let attrs = node.attrs.for_node(&node.id);
    EnrolResponse {
        status: EnrolStatus::Issued,
        fingerprint: node.key_fingerprint.clone(),
        node_id: Some(node.id.clone()),
        certificate: Some(node.cert_pem.clone()),
        chain: Some(hub.ca.cert_pem().to_string()),
        channels: attrs.channels(),
        attrs: Some(attrs),
        endpoints: Some(Endpoints::for_hub(hub.public_url())),
        message: None,
    }
}

fn issued_answer(hub: &Hub, node: &NodeRow) -> super::Resp {
    json(StatusCode::OK, &issued_response(hub, node))
}

/// Enrol a node: with a token, a certificate at once; without one, a
/// pending entry the hub admin approves (`202`, poll again with the same key).
#[utoipa::path(post, path = "/v1/enrol", tag = "enrolment",
    request_body = EnrolRequest,
    responses(
        (status = 200, description = "certificate issued", body = EnrolResponse),
        (status = 202, description = "waiting for the hub admin's approval", body = EnrolResponse),
        (status = 400, description = "unreadable request, CSR or attributes", body = ErrorBody),
        (status = 403, description = "token unknown or expired, node revoked", body = ErrorBody),
        (status = 409, description = "token used by another key", body = ErrorBody),
        (status = 503, description = "too many enrolments waiting", body = ErrorBody),
    ))]
pub(super) async fn enrol(
    State(hub): State<Arc<Hub>>,
    Extension(Peer(peer)): Extension<Peer>,
    Json(er): Json<EnrolRequest, MAX_SMALL_BODY>,
) -> ApiResult {
    let key = pki::parse_csr(&er.csr)?;
    let addr = peer.ip().to_string();
    match &er.token {
        Some(token) => with_token(&hub, &er, token, key, &addr).await,
        None => without_token(&hub, &er, key, &addr).await,
    }
}

async fn with_token(
    hub: &Arc<Hub>,
    er: &EnrolRequest,
    token: &str,
    key: pki::CsrKey,
    addr: &str,
) -> ApiResult {
    let hash = crate::tokens::hash(token);
    let h = hash.clone();
    let row = hub.db(move |db| db.token(&h)).await?.ok_or_else(|| {
        ApiError::forbidden(
            "token-unknown",
            "unknown enrolment token; ask the hub operator for a new one",
        )
    })?;
    if let Some(fp) = &row.used_fp {
        if *fp != key.fingerprint {
            return Err(token_used());
        }
        // The same key again: a node that lost our first answer.
        let id = row.node_id.clone().unwrap_or_default();
        let node = hub.db(move |db| db.node(&id)).await?.ok_or_else(|| {
            ApiError::forbidden("node-gone", "the node this token enrolled no longer exists")
        })?;
        if node.revoked.is_some() {
            return Err(ApiError::forbidden(
                "node-revoked",
                "the node this token enrolled has been revoked",
            ));
        }
        return Ok(issued_answer(hub, &node));
    }
    if row.expires <= now() {
        return Err(ApiError::forbidden(
            "token-expired",
            "enrolment token expired; ask the hub operator for a new one",
        ));
    }
    let (d, ta) = (&er.declared, &row.attrs);
    let attrs = Attrs {
        country: ta.country.clone(),
        continent: ta.continent.clone().or_else(|| d.continent.clone()),
        asn: ta.asn.or(d.asn),
        tags: if ta.tags.is_empty() {
            d.tags.clone()
        } else {
            ta.tags.clone()
        },
    };
    let node = match issue_node(hub, &key, attrs, "token", addr, Some(hash.clone()), None).await {
        Ok(n) => n,
        Err(e) if e.status == StatusCode::CONFLICT => {
            // A concurrent request bound the token first: the same key gets that node.
            let fp = key.fingerprint.clone();
            let found = hub
                .db(move |db| {
                    let Some(id) = db
                        .token(&hash)?
                        .filter(|r| r.used_fp.as_deref() == Some(fp.as_str()))
                        .and_then(|r| r.node_id)
                    else {
                        return Ok(None);
                    };
                    db.node(&id)
                })
                .await?;
            found.ok_or(e)?
        }
        Err(e) => return Err(e),
    };
    Ok(issued_answer(hub, &node))
}

fn token_used() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "token-used",
        "enrolment token already used by another key; ask the hub operator for a new token",
    )
}

async fn without_token(
    hub: &Arc<Hub>,
    er: &EnrolRequest,
    key: pki::CsrKey,
    addr: &str,
) -> ApiResult {
    let d = &er.declared;
    let attrs = Attrs {
        country: d.country.clone(),
        continent: d.continent.clone(),
        asn: d.asn,
        tags: d.tags.clone(),
    };
    attrs
        .for_node("n-0")
        .validate()
        .map_err(|e| ApiError::bad("bad-attrs", format!("declared attributes: {e}")))?;
    assigned_country(&attrs.country)?;
    let (fp, csr, a2, ad, t) = (
        key.fingerprint.clone(),
        er.csr.clone(),
        attrs.clone(),
        addr.to_string(),
        now(),
    );
    let caps = hub.cfg.pending_caps;
    let row = hub
        .db(move |db| db.upsert_pending_capped(&fp, &csr, &a2, t, Some(&ad), caps))
        .await?
        .map_err(|full| pending_full(full, caps))?;
    if let Some(id) = row.node_id {
        let node = hub.db(move |db| db.node(&id)).await?.ok_or_else(|| {
            ApiError::forbidden("node-gone", "the approved node no longer exists")
        })?;
        if node.revoked.is_some() {
            return Err(ApiError::forbidden(
                "node-revoked",
                "this key's node has been revoked",
            ));
        }
        return Ok(issued_answer(hub, &node));
    }
    if row.approved.is_some() {
        let fp = key.fingerprint.clone();
        let node = issue_node(hub, &key, row.declared, "approved", addr, None, Some(fp)).await?;
        return Ok(issued_answer(hub, &node));
    }
    let r = EnrolResponse {
        status: EnrolStatus::Pending,
        fingerprint: key.fingerprint.clone(),
        node_id: None,
        certificate: None,
        chain: None,
        attrs: None,
        channels: vec![],
        endpoints: None,
        message: Some(format!(
            "waiting for approval; the hub admin runs: vantage-hub nodes approve {}",
            key.fingerprint
        )),
    };
    Ok(json(StatusCode::ACCEPTED, &r))
}

/// The refusal of a new pending enrolment over a cap.
fn pending_full(full: PendingFull, caps: PendingCaps) -> ApiError {
    match full {
        PendingFull::Total => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pending-full",
            "too many enrolments are waiting for approval; ask the hub admin, or enrol with a token",
        ),
        PendingFull::Address => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "pending-per-address",
            format!(
                "{} enrolments from this address already wait for approval; ask the hub admin to approve or remove them, or enrol with a token",
                caps.per_address
            ),
        ),
    }
}

async fn issue_node(
    hub: &Arc<Hub>,
    key: &pki::CsrKey,
    attrs: Attrs,
    via: &str,
    addr: &str,
    token_hash: Option<String>,
    pending_fp: Option<String>,
) -> Result<NodeRow, ApiError> {
    let id = format!("n-{}", random_hex(5)?);
    attrs
        .for_node(&id)
        .validate()
        .map_err(|e| ApiError::bad("bad-attrs", format!("node attributes: {e}")))?;
    let issued = hub.ca.issue_node(&id, key, hub.cfg.node_cert_lifetime)?;
    let node = NodeRow {
        id,
        attrs,
        key_fingerprint: key.fingerprint.clone(),
        cert_pem: issued.cert_pem,
        cert_serial: issued.serial,
        cert_not_after: issued.not_after,
        enrolled: now(),
        enrolled_via: via.to_string(),
        revoked: None,
        last_seen: None,
        agent_version: None,
        address: Some(addr.to_string()),
        caps: None,
        owner: None,
        release: None,
    };
    let n = node.clone();
    let bound = hub
        .db(move |db| {
            let ok = db.insert_node(&n, token_hash.as_deref(), pending_fp.as_deref())?;
            if ok {
                db.audit(
                    n.enrolled,
                    &n.id,
                    "node.enrol",
                    &n.id,
                    &json!({"via": n.enrolled_via, "serial": n.cert_serial, "attrs": n.attrs}),
                )?;
            }
            Ok(ok)
        })
        .await?;
    if !bound && via == "approved" {
        // A concurrent poll of the same node issued it first.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "issued-concurrently",
            "this enrolment was just issued to a concurrent request; poll again",
        ));
    }
    if !bound {
        return Err(token_used());
    }
    hub.metrics.enrolments.inc();
    tracing::info!(node = %node.id, via, "node enrolled");
    Ok(node)
}

/// A new certificate for the calling node, for the key in the CSR.
#[utoipa::path(post, path = "/v1/renew", tag = "enrolment",
    request_body = RenewRequest,
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "certificate issued", body = EnrolResponse),
        (status = 400, description = "unreadable request or CSR", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not a node, or its certificate is revoked", body = ErrorBody),
    ))]
pub(super) async fn renew(
    State(hub): State<Arc<Hub>>,
    Node(node_id): Node,
    Json(rr): Json<RenewRequest, MAX_SMALL_BODY>,
) -> ApiResult {
    let key = pki::parse_csr(&rr.csr)?;
    let issued = hub
        .ca
        .issue_node(&node_id, &key, hub.cfg.node_cert_lifetime)?;
    let id = node_id.clone();
    let node = hub
        .db(move |db| {
            let t = now();
            db.renew_node(
                &id,
                &key.fingerprint,
                &issued.cert_pem,
                &issued.serial,
                issued.not_after,
                t,
            )?;
            db.audit(t, &id, "node.renew", &id, &json!({"serial": issued.serial}))?;
            db.node(&id)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("node-gone", "node not in the registry"))?;
    Ok(issued_answer(&hub, &node))
}

/// A node's settings file says something new: its tags are taken at once; a
/// new country or continent waits for the administrator's approval
/// (`vantage-hub nodes approve <node id>`) and is made at the node's first
/// request after that, so its running agent never holds channels the hub
/// no longer grants.
#[utoipa::path(post, path = "/v1/attrs", tag = "enrolment",
    request_body = AttrsRequest,
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "attributes in force, and what waits for approval", body = AttrsResponse),
        (status = 400, description = "unreadable request or attributes", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not a node", body = ErrorBody),
    ))]
pub(super) async fn update_attrs(
    State(hub): State<Arc<Hub>>,
    Node(node_id): Node,
    Json(req): Json<AttrsRequest, MAX_SMALL_BODY>,
) -> ApiResult {
    let d = req.declared;
    assigned_country(&d.country)?;
    let id = node_id.clone();
    let found = hub
        .db(move |db| {
            let Some(node) = db.node(&id)? else {
                return Ok(None);
            };
            let continent = d.continent.clone().or_else(|| node.attrs.continent.clone());
            let wanted = Attrs {
                country: d.country.clone(),
                continent: continent.clone(),
                asn: node.attrs.asn,
                tags: d.tags.clone(),
            };
            if let Err(e) = wanted.for_node(&id).validate() {
                return Ok(Some(Err(e.to_string())));
            }
            let mut attrs = Attrs {
                tags: d.tags,
                ..node.attrs.clone()
            };
            let mut waiting = None;
            if wanted.country == node.attrs.country && wanted.continent == node.attrs.continent {
                db.drop_attr_change(&id)?;
            } else {
                let row = db.request_attr_change(&id, &d.country, continent.as_deref(), now())?;
                if row.approved.is_some() {
                    attrs.country = row.country;
                    attrs.continent = row.continent;
                    db.drop_attr_change(&id)?;
                } else {
                    waiting = Some(AttrsChange {
                        country: row.country,
                        continent: row.continent,
                    });
                }
            }
            if attrs != node.attrs {
                db.set_node_attrs(&id, &attrs)?;
                db.audit(
                    now(),
                    &id,
                    "node.attrs",
                    &id,
                    &json!({"from": node.attrs, "to": attrs}),
                )?;
            }
            Ok(Some(Ok((attrs, waiting))))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("node-gone", "node not in the registry"))?;
    let (attrs, waiting) =
        found.map_err(|e| ApiError::bad("bad-attrs", format!("declared attributes: {e}")))?;
    let attrs = attrs.for_node(&node_id);
    Ok(json(
        StatusCode::OK,
        &AttrsResponse {
            channels: attrs.channels(),
            attrs,
            waiting,
        },
    ))
}

/// Refuses a declared country that is not an ISO 3166-1 code: a node on
/// `cc.UK` would never get a job for the United Kingdom (`cc.GB`).
fn assigned_country(cc: &str) -> Result<(), ApiError> {
    if vantage_proto::country::is_assigned(cc) {
        return Ok(());
    }
    let hint = vantage_proto::country::hint(cc)
        .map(|h| format!(": {h}"))
        .unwrap_or_default();
    Err(ApiError::bad(
        "bad-country",
        format!("declared country {cc:?} is not an ISO 3166-1 country code{hint}"),
    ))
}
