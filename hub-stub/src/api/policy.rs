//! The approval policy: its chain of successors for anyone known, and
//! rotation by a quorum of the current approvers.

use super::{ApiError, ApiResult, Body, Known, Operator, json};
use crate::datadir::now;
use crate::governance::{MAX_POLICY_BODY, RotateError};
use crate::hub::Hub;
use axum::extract::State;
use http::StatusCode;
use serde_json::json;
use std::sync::Arc;
use vantage_proto::api::{ErrorBody, PolicyAccepted};
use vantage_proto::policy::{ChainDoc, SignedPolicy};

/// The successors of the shipped policy, oldest first.
#[utoipa::path(get, path = "/v1/policy", tag = "policy",
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the chain", body = ChainDoc),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "certificate not usable", body = ErrorBody),
    ))]
pub(super) async fn get(State(hub): State<Arc<Hub>>, _: Known) -> ApiResult {
    Ok(json(
        StatusCode::OK,
        &ChainDoc {
            chain: hub.policy.chain(),
        },
    ))
}

/// A signed successor of the current policy.
#[utoipa::path(post, path = "/v1/policy", tag = "policy",
    request_body(content = SignedPolicy, description = "a successor signed by a quorum of the current approvers"),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "now in force", body = PolicyAccepted),
        (status = 400, description = "not a signed policy", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        (status = 422, description = "not authorised by the current approvers; `code` says why", body = ErrorBody),
        (status = 503, description = "no policy to rotate, or it could not be stored", body = ErrorBody),
    ))]
pub(super) async fn post(
    State(hub): State<Arc<Hub>>,
    Operator(operator): Operator,
    Body(body): Body<MAX_POLICY_BODY>,
) -> ApiResult {
    // Signed text: a duplicate object key anywhere is refused (SignedPolicy::from_json).
    let next = std::str::from_utf8(&body)
        .map_err(|e| vantage_proto::ProtoError::Malformed(e.to_string()))
        .and_then(SignedPolicy::from_json)
        .map_err(|e| {
            ApiError::bad(
                e.code(),
                format!("not a signed policy ({{\"policy\": ..., \"signatures\": [...]}}): {e}"),
            )
        })?;
    let h = hub.clone();
    let outcome = tokio::task::spawn_blocking(move || h.policy.rotate(next))
        .await
        .expect("policy rotation task panicked");
    let p = outcome.map_err(|e| match e {
        RotateError::Refused(e) => {
            tracing::warn!(operator, "policy successor refused: {e}");
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                e.code(),
                format!(
                    "{e}; `vantage policy check --current CURRENT NEW` shows why before submitting"
                ),
            )
        }
        e @ RotateError::NoPolicy => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no-policy", e.to_string())
        }
        e @ RotateError::Store(_) => {
            tracing::error!("{e}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "policy-not-stored",
                "the hub could not store the policy; nothing changed, try again later",
            )
        }
    })?;
    tracing::warn!(
        operator,
        serial = p.serial,
        approvers = p.approvers.len(),
        threshold = p.threshold,
        "approval policy rotated"
    );
    let detail = json!({"serial": p.serial, "threshold": p.threshold,
        "approvers": p.approvers.iter().map(|a| json!({"name": a.name, "key_id": a.key.key_id()})).collect::<Vec<_>>()});
    // Not a possible job id (no ':'), so job audit trails never show it.
    let subject = format!("policy:{}", p.serial);
    let op = operator.clone();
    if let Err(e) = hub
        .db(move |db| db.audit(now(), &op, "policy.rotate", &subject, &detail))
        .await
    {
        tracing::error!("policy serial {} applied but not audited: {e}", p.serial);
    }
    Ok(json(StatusCode::OK, &PolicyAccepted { serial: p.serial }))
}
