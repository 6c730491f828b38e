//! The hub's HTTP API (see docs/hub.md and `docs/openapi.json`): the router,
//! the caller's identity as extractors, refusals with stable codes, and the
//! handlers by resource (enrolment, subscriptions, results, jobs, mandates,
//! nodes, policy, administration).

mod admin;
mod enrol;
mod jobs;
mod mandates;
mod nodes;
mod openapi;
mod policy;
mod releases;
mod results;
mod stream;
mod subscribe;

pub use admin::issue_operator;
pub use nodes::{node_status, pending_entry, registry_entry};
pub use openapi::ApiDoc;

use crate::datadir::now;
use crate::db::{DbError, NodeRow};
use crate::hub::{Caller, Hub};
use crate::pki;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use http::request::Parts;
use http::{StatusCode, header};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vantage_proto::api::ErrorBody;
use vantage_proto::identity::Role;

/// The response type of every handler.
pub type Resp = axum::response::Response;

/// Bodies of enrolment, heartbeat and the like.
pub const MAX_SMALL_BODY: usize = 16 * 1024;
/// Bodies of signed jobs and raw publishes.
pub const MAX_JOB_BODY: usize = 256 * 1024;

/// A refusal: status, a stable machine code and a message that says what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a 429's `Retry-After` (default 1: the request rates).
    retry_after: Option<u64>,
}

impl ApiError {
    /// A refusal with its status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// The same refusal, telling clients to retry after `secs` seconds.
    pub fn retry_after(self, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..self
        }
    }
    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Resp {
        let mut r = json(
            self.status,
            &ErrorBody {
                error: self.message,
                code: self.code.to_string(),
            },
        );
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                http::HeaderValue::from(self.retry_after.unwrap_or(1)),
            );
        }
        r
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::error!("database: {e}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database",
            "the hub's database failed; try again later",
        )
    }
}

impl From<crate::ingest::IngestError> for ApiError {
    fn from(e: crate::ingest::IngestError) -> Self {
        match e {
            crate::ingest::IngestError::Db(e) => e.into(),
            crate::ingest::IngestError::Stopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                e.to_string(),
            ),
        }
    }
}

impl From<pki::PkiError> for ApiError {
    fn from(e: pki::PkiError) -> Self {
        match e {
            pki::PkiError::BadCsr(_) | pki::PkiError::KeyType => {
                Self::bad("bad-csr", e.to_string())
            }
            other => {
                tracing::error!("pki: {other}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "issue-failed",
                    "the hub could not issue a certificate",
                )
            }
        }
    }
}

type ApiResult = Result<Resp, ApiError>;

/// A full body.
pub fn full(b: impl Into<Bytes>) -> axum::body::Body {
    axum::body::Body::from(b.into())
}

/// A JSON response.
pub fn json(status: StatusCode, v: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(v).expect("responses always serialise");
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        full(body),
    )
        .into_response()
}

// ---- the router ----

/// The source address of a connection, put in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Set on requests of a connection beyond `--max-conns-per-identity`.
#[derive(Debug, Clone, Copy)]
pub struct OverLimit;

/// Every endpoint, with the limits every request passes first.
pub fn router(hub: Arc<Hub>) -> Router {
    let mut r = Router::new()
        .route("/v1/ca", get(admin::ca))
        .route("/v1/crl", get(admin::crl))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/enrol", post(enrol::enrol))
        .route("/v1/renew", post(enrol::renew))
        .route("/v1/attrs", post(enrol::update_attrs))
        .route("/v1/sub/{channels}", get(subscribe::subscribe))
        .route("/v1/heartbeat", post(nodes::heartbeat))
        .route("/v1/gap", post(nodes::gap))
        .route("/v1/results", post(results::post))
        .route("/v1/policy", get(policy::get).post(policy::post))
        .route(
            "/v1/mandates/revocations",
            get(mandates::revocations).post(mandates::revoke),
        )
        .route("/v1/releases", get(releases::list).post(releases::submit))
        .route("/v1/releases/{version}", get(releases::one))
        .route(
            "/v1/releases/{version}/{target}/{binary}",
            get(releases::download).put(releases::upload),
        )
        .route("/v1/jobs", get(jobs::list).post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::status))
        .route("/v1/jobs/{id}/results", get(results::of_job))
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/nodes/{id}", get(nodes::one))
        .route("/v1/channels", get(admin::channels))
        .route("/v1/stats", get(admin::stats))
        .route("/metrics", get(admin::metrics));
    if hub.cfg.unsafe_raw_publish {
        r = r.route("/v1/publish/{channel}", post(jobs::raw_publish));
    }
    r.fallback(no_endpoint)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(hub.clone(), limits))
        .with_state(hub)
}

/// Per-identity connection and request-rate limits, and the request count
/// and latency per route, before any handler runs.
async fn limits(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Resp {
    hub.metrics.requests.inc();
    if req.extensions().get::<OverLimit>().is_some() {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-connections",
            format!(
                "too many connections for this identity (at most {}); reuse one connection",
                hub.cfg.max_conns_per_identity
            ),
        )
        .into_response();
    }
    let key = match (
        req.extensions().get::<Caller>(),
        req.extensions().get::<Peer>(),
    ) {
        (Some(c), Some(Peer(p))) => c.limit_key(p),
        _ => String::new(),
    };
    if !hub.rates.allow(&key, Instant::now()) {
        hub.metrics.rate_limited.inc();
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "request rate over the limit; slow down and retry",
        )
        .into_response();
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |m| m.as_str())
        .to_string();
    let method = req.method().to_string();
    let t0 = Instant::now();
    let r = next.run(req).await;
    hub.metrics
        .observe_request(&route, &method, r.status().as_u16(), t0.elapsed());
    r
}

async fn no_endpoint(req: Request) -> ApiError {
    ApiError::not_found(
        "no-endpoint",
        format!(
            "no endpoint {} {}; see docs/openapi.json for the hub's API",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!(
            "{} does not take {}; see docs/openapi.json for the hub's API",
            req.uri().path(),
            req.method()
        ),
    )
}

// ---- who is calling ----

/// A caller with a valid, unrevoked certificate of this hub, whatever its role.
pub struct Known(pub Role);

/// A node calling with its own certificate: its id.
pub struct Node(pub String);

/// An operator calling with its own certificate: its name.
pub struct Operator(pub String);

/// The connection's source address and certificate, as the server put them.
fn identity(parts: &Parts) -> (Caller, SocketAddr) {
    let caller = parts
        .extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Anonymous);
    let peer = parts
        .extensions
        .get::<Peer>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0);
    (caller, peer)
}

impl FromRequestParts<Arc<Hub>> for Known {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        let (caller, _) = identity(parts);
        require_known(hub, &caller).await.map(Known)
    }
}

impl FromRequestParts<Arc<Hub>> for Node {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        match Known::from_request_parts(parts, hub).await?.0 {
            Role::Node(id) => Ok(Node(id)),
            Role::Operator(_) => Err(ApiError::forbidden(
                "wrong-role",
                "this endpoint is for nodes; operator certificates cannot use it",
            )),
        }
    }
}

impl FromRequestParts<Arc<Hub>> for Operator {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        match Known::from_request_parts(parts, hub).await?.0 {
            Role::Operator(name) => Ok(Operator(name)),
            Role::Node(_) => Err(ApiError::forbidden(
                "wrong-role",
                "this endpoint is for operators; node certificates cannot use it",
            )),
        }
    }
}

async fn require_known(hub: &Arc<Hub>, caller: &Caller) -> Result<Role, ApiError> {
    let (role, serial, not_after) = match caller {
        Caller::Anonymous => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no-certificate",
                "no client certificate: this endpoint needs a node or operator certificate issued by this hub",
            ));
        }
        Caller::Unusable(why) => {
            return Err(ApiError::forbidden(
                "certificate-unusable",
                format!("client certificate not usable: {why}"),
            ));
        }
        Caller::Known {
            role,
            serial,
            not_after,
        } => (role, serial, *not_after),
    };
    if not_after <= now() {
        return Err(ApiError::forbidden(
            "certificate-expired",
            "client certificate expired; renew it or enrol again",
        ));
    }
    let s = serial.clone();
    let Some(row) = hub.db(move |db| db.cert(&s)).await? else {
        return Err(ApiError::forbidden(
            "certificate-unknown",
            "client certificate unknown to this hub; enrol again",
        ));
    };
    if row.revoked.is_some() {
        return Err(ApiError::forbidden(
            "certificate-revoked",
            "client certificate revoked",
        ));
    }
    let (want_role, want_subject) = match role {
        Role::Node(id) => ("node", id),
        Role::Operator(n) => ("operator", n),
    };
    if row.role != want_role || row.subject != *want_subject {
        return Err(ApiError::forbidden(
            "certificate-mismatch",
            "client certificate does not match the hub's records",
        ));
    }
    Ok(role.clone())
}

/// Notes that a node was seen (batched: written with the next registry flush).
fn touch(hub: &Arc<Hub>, node: &str, peer: SocketAddr) {
    crate::sync::lock(&hub.seen).insert(node.to_string(), peer.ip().to_string());
}

// ---- request bodies ----

/// The request body, at most `MAX` bytes, within the header timeout: a body
/// sent a byte every few seconds keeps the idle check happy, so without a
/// deadline of its own it could hold a connection (and a slot) for ever.
pub struct Body<const MAX: usize>(pub Bytes);

/// How much of a too-large body is read and thrown away before answering 413.
/// A client that sends its whole body before reading (most do) would
/// otherwise see the connection reset under its upload instead of the answer.
const DRAIN: usize = 8 << 20;

impl<const MAX: usize> FromRequest<Arc<Hub>> for Body<MAX> {
    type Rejection = ApiError;
    async fn from_request(req: Request, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        read_body(req, MAX, hub.cfg.header_timeout).await.map(Body)
    }
}

/// The request body, at most `max` bytes, within `deadline`.
async fn read_body(req: Request, max: usize, deadline: Duration) -> Result<Bytes, ApiError> {
    let read = tokio::time::timeout(deadline, read_at_most(req.into_body(), max, DRAIN))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                format!(
                    "the request body did not arrive within {} s; send it at once",
                    deadline.as_secs()
                ),
            )
        })?;
    match read {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("request body over the {max}-byte limit"),
        )),
        Err(e) => Err(ApiError::bad(
            "body-unreadable",
            format!("cannot read the request body: {e}"),
        )),
    }
}

/// The body if it has at most `max` bytes; `None` if it has more, after
/// reading (and dropping) up to `drain` bytes beyond `max` so the connection
/// can carry the answer.
async fn read_at_most(
    mut body: axum::body::Body,
    max: usize,
    drain: usize,
) -> Result<Option<Bytes>, axum::Error> {
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= max {
            kept.extend_from_slice(&data);
        } else if seen > max.saturating_add(drain) {
            break;
        }
    }
    Ok((seen <= max).then(|| kept.freeze()))
}

/// A JSON request body of type `T`, at most `MAX` bytes.
pub struct Json<T, const MAX: usize>(pub T);

impl<T: serde::de::DeserializeOwned, const MAX: usize> FromRequest<Arc<Hub>> for Json<T, MAX> {
    type Rejection = ApiError;
    async fn from_request(req: Request, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        let Body(b) = Body::<MAX>::from_request(req, hub).await?;
        serde_json::from_slice(&b)
            .map(Json)
            .map_err(|e| ApiError::bad("invalid-json", format!("invalid JSON body: {e}")))
    }
}

/// The query string's parameters (the last of a repeated name wins).
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Params(
            parts
                .uri
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }
}

/// One path segment (a job or node id, a channel list), percent-decoded.
pub struct Seg(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Seg {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, s)
            .await
            .map(|p| Seg(p.0))
            .map_err(|e| ApiError::bad("bad-path", e.body_text()))
    }
}

// ---- shared by the resources ----

fn online(hub: &Hub, n: &NodeRow) -> bool {
    hub.is_present(&n.id)
        || n.last_seen
            .is_some_and(|t| now() - t <= hub.cfg.online_window.as_secs() as i64)
}
