//! Agent releases: operators submit a quorum-signed release and upload its
//! binaries; nodes and operators fetch both; the heartbeat answer offers a
//! node the release it should install (see `crate::releases` for the waves).

use super::{ApiError, ApiResult, Body, Known, Operator, full, json, read_body};
use crate::datadir::now;
use crate::db::{NodeRelease, ReleaseRow, ReleaseStored};
use crate::hub::Hub;
use crate::releases::{Entry, binary_path};
use axum::extract::{Path, Request, State, rejection::PathRejection};
use axum::response::IntoResponse;
use http::{StatusCode, header};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use vantage_proto::api::{BinaryStored, ErrorBody, ReleaseAccepted, ReleaseList};
use vantage_proto::release::{
    MAX_BINARY_BYTES, MAX_RELEASE_BYTES, Release, ReleaseError, SignedRelease, sha256_hex,
};

const MAX_RELEASE_BODY: usize = MAX_RELEASE_BYTES as usize;
/// Time allowed for a binary's upload (the header timeout is for small bodies).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

type ReleasePath = Result<Path<(String, String, String)>, PathRejection>;

/// A release signed by a quorum of the current approvers.
#[utoipa::path(post, path = "/v1/releases", tag = "releases",
    request_body(content = SignedRelease, description = "a release signed by a quorum of the current approvers"),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the hub held this release: its signatures were replaced", body = ReleaseAccepted),
        (status = 201, description = "accepted: upload its binaries next", body = ReleaseAccepted),
        (status = 400, description = "not a valid signed release (`release-invalid`)", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        (status = 409, description = "another release has this version (`release-exists`)", body = ErrorBody),
        (status = 422, description = "not authorised by the current approvers, or expired; `code` says why", body = ErrorBody),
        (status = 503, description = "the hub has no approval policy", body = ErrorBody),
    ))]
pub(super) async fn submit(
    State(hub): State<Arc<Hub>>,
    Operator(operator): Operator,
    Body(body): Body<MAX_RELEASE_BODY>,
) -> ApiResult {
    let (signed, release, signers) = verified(&hub, &body)?;
    let bytes = vantage_proto::canonical::release_signing_bytes(&signed.release)
        .map_err(|e| refused(&ReleaseError::Invalid(e), "not a signed release"))?;
    let row = ReleaseRow {
        version: release.version.clone(),
        signed: serde_json::to_string(&signed).expect("serialises"),
        submitted: now(),
        submitter: operator.clone(),
        signers: signers.clone(),
        wave: 0,
        stopped: None,
    };
    let h = hub.clone();
    let stored = hub
        .db(move |db| {
            let stored = db.insert_release(&row, &sha256_hex(&bytes))?;
            if stored != ReleaseStored::Conflict {
                let action = match stored {
                    ReleaseStored::New => "release.accept",
                    _ => "release.signatures",
                };
                let subject = format!("release:{}", row.version);
                db.audit(
                    now(),
                    &operator,
                    action,
                    &subject,
                    &json!({"signers": row.signers}),
                )?;
                h.releases.refresh(db, &row.version)?;
            }
            Ok(stored)
        })
        .await?;
    let (status, new) = match stored {
        ReleaseStored::New => (StatusCode::CREATED, true),
        ReleaseStored::Replaced => (StatusCode::OK, false),
        ReleaseStored::Conflict => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "release-exists",
                format!(
                    "the hub holds another release {}; a release never changes: propose a new version",
                    release.version
                ),
            ));
        }
    };
    tracing::warn!(
        version = release.version,
        ?signers,
        new,
        "agent release accepted"
    );
    Ok(json(
        status,
        &ReleaseAccepted {
            version: release.version,
            signers,
            new,
        },
    ))
}

/// The signed release in `body`, if the current policy's approvers
/// authorised it and it has not expired.
fn verified(hub: &Hub, body: &[u8]) -> Result<(SignedRelease, Release, Vec<String>), ApiError> {
    let signed = SignedRelease::from_json(body).map_err(|e| {
        refused(
            &ReleaseError::Invalid(e),
            "not a signed release ({\"release\": ..., \"signatures\": [...]})",
        )
    })?;
    let policy = hub.policy.current().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-policy",
            "the hub has no approval policy; start it with --policy FILE",
        )
    })?;
    let (release, signers) = signed.verify(&policy).map_err(|e| {
        refused(
            &e,
            "`vantage release check FILE` shows why before submitting",
        )
    })?;
    if now() >= release.expires as i64 {
        let e = ReleaseError::Expired {
            expires: release.expires,
            now: now() as u64,
        };
        return Err(refused(&e, "propose a new release"));
    }
    Ok((signed, release, signers))
}

/// A refusal of a release: 400 when it does not parse, else 422.
fn refused(e: &ReleaseError, hint: &str) -> ApiError {
    let status = match e {
        ReleaseError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), format!("{e}; {hint}"))
}

/// Every release the hub holds and its rollout.
#[utoipa::path(get, path = "/v1/releases", tag = "releases",
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the releases, newest version first, each with its audit trail", body = ReleaseList),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
    ))]
pub(super) async fn list(State(hub): State<Arc<Hub>>, _: Operator) -> ApiResult {
    let mut releases = hub.evaluate_releases().await?;
    let subjects: Vec<String> = releases
        .iter()
        .map(|r| format!("release:{}", r.version))
        .collect();
    let trails = hub
        .db(move |db| {
            subjects
                .iter()
                .map(|s| db.audit_of(s))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    for (r, audit) in releases.iter_mut().zip(trails) {
        r.audit = audit;
    }
    Ok(json(StatusCode::OK, &ReleaseList { releases }))
}

/// One release as signed.
#[utoipa::path(get, path = "/v1/releases/{version}", tag = "releases",
    params(("version" = String, Path, description = "the release's version")),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the signed release as submitted", body = SignedRelease),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 404, description = "no such release (`no-such-release`)", body = ErrorBody),
    ))]
pub(super) async fn one(
    State(hub): State<Arc<Hub>>,
    _: Known,
    super::Seg(version): super::Seg,
) -> ApiResult {
    let e = entry(&hub, &version)?;
    Ok(json(StatusCode::OK, &e.signed))
}

fn entry(hub: &Hub, version: &str) -> Result<Arc<Entry>, ApiError> {
    hub.releases.get(version).ok_or_else(|| {
        ApiError::not_found(
            "no-such-release",
            format!("the hub holds no release {version}; `vantage release status` lists them"),
        )
    })
}

/// The release, and the artifact it names for `target`/`binary`.
fn artifact_of(
    hub: &Hub,
    path: ReleasePath,
) -> Result<(Arc<Entry>, String, String, vantage_proto::release::Artifact), ApiError> {
    let Path((version, target, binary)) =
        path.map_err(|e| ApiError::bad("bad-path", e.body_text()))?;
    let e = entry(hub, &version)?;
    let a = e
        .release
        .artifact(&target, &binary)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(
                "release-no-target",
                format!("release {version} names no {binary} for target {target}"),
            )
        })?;
    Ok((e, target, binary, a))
}

/// A binary of a release, checked against the release's size and SHA-256.
#[utoipa::path(put, path = "/v1/releases/{version}/{target}/{binary}", tag = "releases",
    params(
        ("version" = String, Path, description = "the release's version"),
        ("target" = String, Path, description = "target triple"),
        ("binary" = String, Path, description = "`vantage-agent` or `vantage-provision`"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("client_certificate" = [])),
    responses(
        (status = 201, description = "stored", body = BinaryStored),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        (status = 404, description = "no such release (`no-such-release`) or binary in it (`release-no-target`)", body = ErrorBody),
        (status = 413, description = "larger than any binary may be", body = ErrorBody),
        (status = 422, description = "not the bytes the release names (`release-size-mismatch`, `release-hash-mismatch`)", body = ErrorBody),
    ))]
pub(super) async fn upload(
    State(hub): State<Arc<Hub>>,
    Operator(operator): Operator,
    path: ReleasePath,
    req: Request,
) -> ApiResult {
    let (e, target, binary, artifact) = artifact_of(&hub, path)?;
    let bytes = read_body(req, MAX_BINARY_BYTES as usize, UPLOAD_TIMEOUT).await?;
    artifact
        .check(&bytes)
        .map_err(|err| refused(&err, "upload the file the release was built from"))?;
    let version = e.release.version.clone();
    let file = binary_path(hub.dd.root(), &version, &target, &binary);
    let subject = format!("release:{version}");
    let detail = json!({"target": target, "binary": binary, "size": artifact.size});
    hub.db(move |db| {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        vantage_node::durable::atomic_write(&file, &bytes, 0o644)?;
        db.audit(now(), &operator, "release.binary", &subject, &detail)
    })
    .await?;
    // A complete release may open its first (or an empty) wave at once.
    hub.evaluate_releases().await?;
    Ok(json(
        StatusCode::CREATED,
        &BinaryStored {
            version,
            target,
            binary,
            size: artifact.size,
            sha256: artifact.sha256,
        },
    ))
}

/// A binary of a release, as uploaded.
#[utoipa::path(get, path = "/v1/releases/{version}/{target}/{binary}", tag = "releases",
    params(
        ("version" = String, Path, description = "the release's version"),
        ("target" = String, Path, description = "target triple"),
        ("binary" = String, Path, description = "`vantage-agent` or `vantage-provision`"),
    ),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the bytes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 404, description = "no such release or binary, or not uploaded yet (`release-binary-missing`)", body = ErrorBody),
    ))]
pub(super) async fn download(
    State(hub): State<Arc<Hub>>,
    _: Known,
    path: ReleasePath,
) -> ApiResult {
    let (e, target, binary, _) = artifact_of(&hub, path)?;
    let file = binary_path(hub.dd.root(), &e.release.version, &target, &binary);
    let bytes = tokio::fs::read(&file).await.map_err(|_| {
        ApiError::not_found(
            "release-binary-missing",
            format!(
                "{binary} for {target} of release {} is not uploaded yet",
                e.release.version
            ),
        )
    })?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        full(bytes),
    )
        .into_response())
}

/// After a node's heartbeat: records it, moves rollouts on when the node's
/// version or failed release changed, and returns the release offered to it.
pub(super) async fn heartbeat(
    hub: &Arc<Hub>,
    node: &str,
    peer: SocketAddr,
    version: String,
    report: NodeRelease,
) -> Result<Option<String>, ApiError> {
    let (h, id, addr) = (hub.clone(), node.to_string(), peer.ip().to_string());
    let (offer, statuses) = hub
        .db(move |db| {
            let changed = db.record_heartbeat(&id, &addr, &version, &report)?;
            let (root, t) = (h.dd.root(), now());
            let statuses = if changed && !h.releases.is_empty() {
                Some(h.releases.evaluate(db, root, t, h.cfg.release_window)?)
            } else {
                None
            };
            let offer = match db.node(&id)? {
                Some(row) => h.releases.offer(root, &row, &version, t),
                None => None,
            };
            Ok((offer, statuses))
        })
        .await?;
    if let Some(s) = statuses {
        hub.metrics.set_release_nodes(&s);
    }
    Ok(offer)
}
