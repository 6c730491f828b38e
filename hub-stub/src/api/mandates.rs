//! Mandates at the hub: the revocations approvers send and nodes fetch, and
//! the checks of a mandated job at submission that only the hub can make
//! (revocation, the hourly rates per operator and per target host). The
//! rates are counted from the mandated jobs the hub stored
//! (`db::MandateCount`), so they hold across restarts.

use super::jobs::refused;
use super::{ApiError, ApiResult, Body, Known, MAX_SMALL_BODY, Operator, json};
use crate::datadir::now;
use crate::db::MandateCount;
use crate::hub::Hub;
use axum::extract::State;
use http::StatusCode;
use serde_json::json;
use std::sync::Arc;
use vantage_proto::api::{ErrorBody, RevocationAccepted};
use vantage_proto::job::{Job, Refusal};
use vantage_proto::mandate::{
    MAX_REVOCATIONS, Mandate, RateScope, RevocationError, RevocationList, SignedRevocation,
    over_rate,
};

/// The mandate revocations the hub was sent, oldest first. Each is signed by
/// one approver; nodes verify every one against their own policy.
#[utoipa::path(get, path = "/v1/mandates/revocations", tag = "policy",
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the revocations", body = RevocationList),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "certificate not usable", body = ErrorBody),
    ))]
pub(super) async fn revocations(State(hub): State<Arc<Hub>>, _: Known) -> ApiResult {
    let stored = hub.db(|db| db.revocations()).await?;
    // Stored only after they verified and parsed; one that does not parse
    // (an edited database) is left out rather than failing the whole list.
    let revocations = stored
        .iter()
        .filter_map(|text| serde_json::from_str::<SignedRevocation>(text).ok())
        .collect();
    Ok(json(StatusCode::OK, &RevocationList { revocations }))
}

/// A revocation of a mandate, signed by one approver of the current policy.
#[utoipa::path(post, path = "/v1/mandates/revocations", tag = "policy",
    request_body(content = SignedRevocation, description = "a revocation signed by one approver"),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the mandate was revoked already", body = RevocationAccepted),
        (status = 201, description = "revoked: the hub refuses jobs under it, nodes fetch it", body = RevocationAccepted),
        (status = 400, description = "not a signed revocation", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        (status = 409, description = "the hub holds as many revocations as it keeps (`revocations-full`)", body = ErrorBody),
        (status = 422, description = "not signed by an approver of the current policy; `code` says why", body = ErrorBody),
        (status = 503, description = "the hub has no approval policy", body = ErrorBody),
    ))]
pub(super) async fn revoke(
    State(hub): State<Arc<Hub>>,
    Operator(operator): Operator,
    Body(body): Body<MAX_SMALL_BODY>,
) -> ApiResult {
    let policy = hub.policy.current().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-policy",
            "the hub has no approval policy; start it with --policy FILE",
        )
    })?;
    vantage_proto::canonical::check_no_duplicate_keys(&body)
        .map_err(|e| ApiError::bad(e.code(), format!("not a signed revocation: {e}")))?;
    let signed: SignedRevocation = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            "malformed",
            format!("not a signed revocation ({{\"revocation\": ..., \"signature\": ...}}): {e}"),
        )
    })?;
    let r = signed
        .verify(&policy)
        .map_err(|e| refusal(RevocationError::Refused(e)))?;
    let text = serde_json::to_string(&signed).expect("serialises");
    let (id, op) = (r.mandate.clone(), operator.clone());
    let new = hub
        .db(move |db| db.insert_revocation(&id, &text, now(), &op, MAX_REVOCATIONS))
        .await?
        .ok_or_else(|| refusal(RevocationError::Full))?;
    if new {
        tracing::warn!(
            operator,
            mandate = r.mandate,
            key_id = signed.signature.key_id,
            reason = r.reason,
            "mandate revoked"
        );
        let detail = json!({"key_id": signed.signature.key_id, "reason": r.reason, "at": r.at});
        // Not a possible job id (no ':'), so job audit trails never show it.
        let subject = format!("mandate:{}", r.mandate);
        hub.db(move |db| db.audit(now(), &operator, "mandate.revoke", &subject, &detail))
            .await?;
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(
        status,
        &RevocationAccepted {
            mandate: r.mandate,
            new,
        },
    ))
}

fn refusal(e: RevocationError) -> ApiError {
    let status = match e {
        RevocationError::Full => StatusCode::CONFLICT,
        RevocationError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// What only the hub can check of a job under `mandate`: that no approver
/// revoked it, and its hourly rates for the ordering operator and the
/// target host. Called with the submission lock held, so concurrent
/// submissions cannot both pass the last free place.
pub(super) async fn check(
    hub: &Arc<Hub>,
    mandate: &Mandate,
    job: &Job,
    target: &str,
) -> Result<(), ApiError> {
    let (id, operator, tg) = (mandate.id.clone(), job.proposer.clone(), target.to_string());
    let since = now() - 3600;
    let (revoked, by_operator, by_target) = hub
        .db(move |db| {
            Ok((
                db.is_revoked(&id)?,
                db.mandate_jobs(&id, MandateCount::Operator(&operator), since)?,
                db.mandate_jobs(&id, MandateCount::Target(&tg), since)?,
            ))
        })
        .await?;
    if revoked {
        return Err(refused(Refusal::MandateRevoked(mandate.id.clone())));
    }
    for (scope, have) in [
        (RateScope::Operator, by_operator),
        (RateScope::Target, by_target),
    ] {
        if let Some(r) = over_rate(mandate, scope, have) {
            let wait = slot_frees_in(hub, mandate, job, target, scope, since).await?;
            return Err(refused(r).retry_after(wait));
        }
    }
    Ok(())
}

/// Seconds until the rolling hour of `scope` frees a slot: when the job
/// that makes the count one too many leaves the window (1 to 3600).
async fn slot_frees_in(
    hub: &Arc<Hub>,
    mandate: &Mandate,
    job: &Job,
    target: &str,
    scope: RateScope,
    since: i64,
) -> Result<u64, ApiError> {
    let (id, operator, tg) = (mandate.id.clone(), job.proposer.clone(), target.to_string());
    let max = mandate.rates.per(scope);
    let oldest = hub
        .db(move |db| {
            let by = match scope {
                RateScope::Target => MandateCount::Target(&tg),
                // Per-node rates are counted by nodes, never here.
                RateScope::Operator | RateScope::Node => MandateCount::Operator(&operator),
            };
            db.mandate_slot_frees(&id, by, since, max)
        })
        .await?;
    let frees_at = oldest.map_or(now(), |t| t + 3600);
    Ok(u64::try_from(frees_at - now()).unwrap_or(0).clamp(1, 3600))
}
