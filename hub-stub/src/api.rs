//! The hub's HTTP API (see ARCHITECTURE.md): routing, authorisation from the
//! verified certificate, and the request handlers.

use crate::datadir::now;
use crate::db::{Attrs, CertRole, DbError, JobRecord, NodeRow};
use crate::pki::{self, random_hex};
use crate::server::{Caller, Hub, ResultEvent, lock};
use crate::stream;
use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use vantage_proto::atlas;
use vantage_proto::channel::{self, NodeAttrs};
use vantage_proto::enrol::{
    AttrsChange, AttrsRequest, AttrsResponse, Endpoints, EnrolRequest, EnrolResponse, EnrolStatus,
    RenewRequest,
};
use vantage_proto::identity::Role;
use vantage_proto::job::{Job, SignedJob};
use vantage_proto::node::{GapReport, Heartbeat};
use vantage_proto::result::{MAX_RESULT_BYTES, ProbeResult};
use vantage_proto::select::Selection;
use vantage_proto::sse::Event;

/// The response type of every handler.
pub type Resp = Response<BoxBody<Bytes, Infallible>>;

const MAX_SMALL_BODY: usize = 16 * 1024;
const MAX_JOB_BODY: usize = 256 * 1024;

/// A refusal: status and a message that says what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::error!("database: {e}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub's database failed; try again later",
        )
    }
}

impl From<pki::PkiError> for ApiError {
    fn from(e: pki::PkiError) -> Self {
        match e {
            pki::PkiError::BadCsr(_) | pki::PkiError::KeyType => Self::bad(e.to_string()),
            other => {
                tracing::error!("pki: {other}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the hub could not issue a certificate",
                )
            }
        }
    }
}

type ApiResult = Result<Resp, ApiError>;

/// A full body.
pub fn full(b: impl Into<Bytes>) -> BoxBody<Bytes, Infallible> {
    Full::new(b.into()).boxed()
}

/// A JSON response.
pub fn json_resp(status: StatusCode, v: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(v).expect("responses always serialise");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .expect("static response parts")
}

/// The JSON body of a refusal: `{"error", "code"}`.
pub fn error_resp(e: ApiError) -> Resp {
    let mut v = json!({"error": e.message});
    if let Some(c) = e.code {
        v["code"] = json!(c);
    }
    json_resp(e.status, &v)
}

/// An SSE frame carrying one envelope: `{"id","channel","time","payload"}`.
pub fn event_frame(seq: u64, channel: &str, time: i64, payload: &str) -> Bytes {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.max(0) as u64);
    let data = format!(
        "{{\"id\":{seq},\"channel\":{},\"time\":{},\"payload\":{payload}}}",
        Value::from(channel),
        Value::from(httpdate::fmt_http_date(at)),
    );
    Bytes::from(Event::message(seq.to_string(), data).encode())
}

/// Dispatches one request.
pub async fn handle(
    hub: Arc<Hub>,
    caller: Caller,
    peer: SocketAddr,
    over_limit: bool,
    req: http::Request<Incoming>,
) -> Resp {
    hub.metrics.requests.fetch_add(1, Ordering::Relaxed);
    if over_limit {
        return error_resp(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many connections for this identity (at most {}); reuse one connection",
                hub.cfg.max_conns_per_identity
            ),
        ));
    }
    if !hub.rates.allow(&caller.limit_key(&peer), Instant::now()) {
        hub.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut r = error_resp(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "request rate over the limit; slow down and retry",
        ));
        r.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        return r;
    }
    match route(&hub, &caller, peer, req).await {
        Ok(r) => r,
        Err(e) => error_resp(e),
    }
}

async fn route(
    hub: &Arc<Hub>,
    caller: &Caller,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> ApiResult {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = req.method().clone();
    match (&m, segs.as_slice()) {
        (&Method::GET, ["v1", "ca"]) => Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/x-pem-file")
            .body(full(hub.ca.cert_pem().to_string()))
            .expect("static")),
        (&Method::GET, ["v1", "crl"]) => crl(hub, &req),
        (&Method::POST, ["v1", "enrol"]) => enrol(hub, peer, req).await,
        (&Method::POST, ["v1", "renew"]) => {
            let node = require_node(hub, caller).await?;
            renew(hub, &node, req).await
        }
        (&Method::POST, ["v1", "attrs"]) => {
            let node = require_node(hub, caller).await?;
            update_attrs(hub, &node, req).await
        }
        (&Method::GET, ["v1", "sub", list]) => {
            let node = require_node(hub, caller).await?;
            let channels = subscription_channels(hub, &node, list).await?;
            touch(hub, &node, peer, None).await;
            stream::subscribe(hub.clone(), node, caller_cert(caller), channels, &req).await
        }
        (&Method::POST, ["v1", "results"]) => {
            let node = require_node(hub, caller).await?;
            touch(hub, &node, peer, None).await;
            results(hub, &node, req).await
        }
        (&Method::POST, ["v1", "heartbeat"]) => {
            let node = require_node(hub, caller).await?;
            let hb: Heartbeat = parse_json(&read_body(hub, req, MAX_SMALL_BODY).await?)?;
            hub.policy.note_reported(&node, hb.policy_serial);
            let h = {
                let mut health = lock(&hub.health);
                let h = crate::server::NodeHealth::from_heartbeat(&hb, now(), health.get(&node));
                health.insert(node.clone(), h.clone());
                h
            };
            if let Some(r) = hb.refused.as_ref().and(h.refused.as_ref()) {
                // One line per heartbeat, however much junk the node's stream carried.
                tracing::warn!(node = %node, total = r.total(), counts = ?r.counts,
                    sample = r.sample.as_deref().unwrap_or(""), "node refused stream data");
            }
            touch(hub, &node, peer, Some(hb.version)).await;
            Ok(json_resp(StatusCode::OK, &json!({"ok": true})))
        }
        (&Method::POST, ["v1", "gap"]) => {
            let node = require_node(hub, caller).await?;
            let body = read_body(hub, req, MAX_SMALL_BODY).await?;
            let gap: GapReport = parse_json(&body)?;
            tracing::warn!(node = %node, requested = %gap.requested, oldest = ?gap.oldest, "node reports a gap");
            let text = serde_json::to_string(&gap).expect("serialises");
            hub.db(move |db| db.insert_gap(&node, now(), &text)).await?;
            Ok(json_resp(StatusCode::OK, &json!({"ok": true})))
        }
        (&Method::GET, ["v1", "policy"]) => {
            require_known(hub, caller).await?;
            Ok(crate::governance::get_policy(hub))
        }
        (&Method::POST, ["v1", "policy"]) => {
            let op = require_operator(hub, caller).await?;
            Ok(crate::governance::post_policy(hub, &op, req).await)
        }
        (&Method::POST, ["v1", "jobs"]) => {
            let op = require_operator(hub, caller).await?;
            submit_job(hub, &op, req).await
        }
        (&Method::GET, ["v1", "jobs", id]) => {
            require_operator(hub, caller).await?;
            job_status(hub, id).await
        }
        (&Method::GET, ["v1", "jobs", id, "results"]) => {
            require_operator(hub, caller).await?;
            match stream::query(&req).get("format").map(String::as_str) {
                None | Some("json") => stream::job_results(hub.clone(), id.to_string(), &req).await,
                Some("atlas") => atlas_results(hub, id).await,
                Some(other) => Err(ApiError {
                    code: Some("unknown-format"),
                    ..ApiError::bad(format!(
                        "unknown results format {other:?}; use json or atlas"
                    ))
                }),
            }
        }
        (&Method::GET, ["v1", "nodes"]) => {
            require_operator(hub, caller).await?;
            let (nodes, pending) = hub.db(|db| Ok((db.nodes()?, db.pending_open()?))).await?;
            let mut list: Vec<Value> = nodes.iter().map(|n| node_json(hub, n)).collect();
            list.extend(pending.iter().map(pending_json));
            Ok(json_resp(StatusCode::OK, &list))
        }
        (&Method::GET, ["v1", "nodes", id]) => {
            require_operator(hub, caller).await?;
            let id = id.to_string();
            let n = hub
                .db(move |db| db.node(&id))
                .await?
                .ok_or_else(|| ApiError::not_found("no such node"))?;
            Ok(json_resp(StatusCode::OK, &node_json(hub, &n)))
        }
        (&Method::GET, ["v1", "channels"]) => {
            require_operator(hub, caller).await?;
            channels(hub).await
        }
        (&Method::GET, ["v1", "stats"]) => {
            require_operator(hub, caller).await?;
            Ok(json_resp(StatusCode::OK, &stats(hub).await?))
        }
        (&Method::GET, ["metrics"]) => {
            require_operator(hub, caller).await?;
            metrics(hub).await
        }
        (&Method::POST, ["v1", "publish", ch]) if hub.cfg.unsafe_raw_publish => {
            let op = require_operator(hub, caller).await?;
            raw_publish(hub, &op, ch, req).await
        }
        (_, ["v1", ..] | ["metrics"]) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no endpoint {m} {path}; see ARCHITECTURE.md for the hub's API"),
        )),
        _ => Err(ApiError::not_found(format!("no endpoint {m} {path}"))),
    }
}

fn caller_cert(c: &Caller) -> (String, i64) {
    match c {
        Caller::Known {
            serial, not_after, ..
        } => (serial.clone(), *not_after),
        _ => (String::new(), 0),
    }
}

async fn require_known(hub: &Arc<Hub>, caller: &Caller) -> Result<Role, ApiError> {
    let (role, serial, not_after) = match caller {
        Caller::Anonymous => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no client certificate: this endpoint needs a node or operator certificate issued by this hub",
            ));
        }
        Caller::Unusable(why) => {
            return Err(ApiError::forbidden(format!(
                "client certificate not usable: {why}"
            )));
        }
        Caller::Known {
            role,
            serial,
            not_after,
        } => (role, serial, *not_after),
    };
    if not_after <= now() {
        return Err(ApiError::forbidden(
            "client certificate expired; renew it or enrol again",
        ));
    }
    let s = serial.clone();
    let row = hub.db(move |db| db.cert(&s)).await?;
    let Some(row) = row else {
        return Err(ApiError::forbidden(
            "client certificate unknown to this hub; enrol again",
        ));
    };
    if row.revoked.is_some() {
        return Err(ApiError::forbidden("client certificate revoked"));
    }
    let (want_role, want_subject) = match role {
        Role::Node(id) => ("node", id),
        Role::Operator(n) => ("operator", n),
    };
    if row.role != want_role || row.subject != *want_subject {
        return Err(ApiError::forbidden(
            "client certificate does not match the hub's records",
        ));
    }
    Ok(role.clone())
}

async fn require_node(hub: &Arc<Hub>, caller: &Caller) -> Result<String, ApiError> {
    match require_known(hub, caller).await? {
        Role::Node(id) => Ok(id),
        Role::Operator(_) => Err(ApiError::forbidden(
            "this endpoint is for nodes; operator certificates cannot use it",
        )),
    }
}

async fn require_operator(hub: &Arc<Hub>, caller: &Caller) -> Result<String, ApiError> {
    match require_known(hub, caller).await? {
        Role::Operator(name) => Ok(name),
        Role::Node(_) => Err(ApiError::forbidden(
            "this endpoint is for operators; node certificates cannot use it",
        )),
    }
}

async fn touch(hub: &Arc<Hub>, node: &str, peer: SocketAddr, version: Option<String>) {
    let (node, addr) = (node.to_string(), peer.ip().to_string());
    if version.is_none() {
        lock(&hub.seen).insert(node, addr);
        return;
    }
    if let Err(e) = hub
        .db(move |db| db.touch_node(&node, now(), Some(&addr), version.as_deref()))
        .await
    {
        tracing::warn!("registry update: {e}");
    }
}

/// The request body, at most `max` bytes, within the header timeout: a body
/// sent a byte every few seconds keeps the idle check happy, so without a
/// deadline of its own it could hold a connection (and a slot) for ever.
pub async fn read_body(
    hub: &Arc<Hub>,
    req: http::Request<Incoming>,
    max: usize,
) -> Result<Bytes, ApiError> {
    let deadline = hub.cfg.header_timeout;
    let collected = tokio::time::timeout(deadline, Limited::new(req.into_body(), max).collect())
        .await
        .map_err(|_| ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "the request body did not arrive within {} s; send it at once",
                deadline.as_secs()
            ),
            code: Some("request-timeout"),
        })?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over the {max}-byte limit"),
        )),
        Err(e) => Err(ApiError::bad(format!("cannot read the request body: {e}"))),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

fn crl(hub: &Arc<Hub>, req: &http::Request<Incoming>) -> ApiResult {
    let der = hub.crl.load_full();
    let pem = req.uri().query().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "format" && v == "pem")
    });
    if pem {
        let text = ::pem::encode(&::pem::Pem::new("X509 CRL", der.as_slice()));
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/x-pem-file")
            .body(full(text))
            .expect("static"));
    }
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/pkix-crl")
        .body(full(der.to_vec()))
        .expect("static"))
}

// ---- enrolment ----

fn node_attrs(id: &str, a: &Attrs) -> NodeAttrs {
    NodeAttrs {
        node_id: id.to_string(),
        country: a.country.clone(),
        continent: a.continent.clone(),
        asn: a.asn,
        tags: a.tags.clone(),
    }
}

fn issued_response(hub: &Hub, node: &NodeRow) -> EnrolResponse {
    let attrs = node_attrs(&node.id, &node.attrs);
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

fn new_node_id() -> Result<String, ApiError> {
    Ok(format!("n-{}", random_hex(5)?))
}

async fn enrol(hub: &Arc<Hub>, peer: SocketAddr, req: http::Request<Incoming>) -> ApiResult {
    let body = read_body(hub, req, MAX_SMALL_BODY).await?;
    let er: EnrolRequest = parse_json(&body)?;
    let key = pki::parse_csr(&er.csr)?;
    let addr = peer.ip().to_string();
    let t = now();
    let resp = match &er.token {
        Some(token) => {
            let hash = crate::tokens::hash(token);
            let h = hash.clone();
            let row = hub.db(move |db| db.token(&h)).await?.ok_or_else(|| {
                ApiError::forbidden("unknown enrolment token; ask the hub operator for a new one")
            })?;
            if let Some(fp) = &row.used_fp {
                if *fp != key.fingerprint {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "enrolment token already used by another key; ask the hub operator for a new token",
                    ));
                }
                // The same key again: a node that lost our first answer.
                let id = row.node_id.clone().unwrap_or_default();
                let node = hub.db(move |db| db.node(&id)).await?.ok_or_else(|| {
                    ApiError::forbidden("the node this token enrolled no longer exists")
                })?;
                if node.revoked.is_some() {
                    return Err(ApiError::forbidden(
                        "the node this token enrolled has been revoked",
                    ));
                }
                return Ok(json_resp(StatusCode::OK, &issued_response(hub, &node)));
            }
            if row.expires <= t {
                return Err(ApiError::forbidden(
                    "enrolment token expired; ask the hub operator for a new one",
                ));
            }
            let d = &er.declared;
            let ta = &row.attrs;
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
            let node = match issue_node(hub, &key, attrs, "token", &addr, Some(hash.clone()), None)
                .await
            {
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
            json_resp(StatusCode::OK, &issued_response(hub, &node))
        }
        None => {
            let d = &er.declared;
            let attrs = Attrs {
                country: d.country.clone(),
                continent: d.continent.clone(),
                asn: d.asn,
                tags: d.tags.clone(),
            };
            node_attrs("n-0", &attrs)
                .validate()
                .map_err(|e| ApiError::bad(format!("declared attributes: {e}")))?;
            assigned_country(&attrs.country)?;
            let (fp, csr, a2, ad) = (
                key.fingerprint.clone(),
                er.csr.clone(),
                attrs.clone(),
                addr.clone(),
            );
            let caps = hub.cfg.pending_caps;
            let row = hub
                .db(move |db| db.upsert_pending_capped(&fp, &csr, &a2, t, Some(&ad), caps))
                .await?
                .map_err(|full| pending_full(full, caps))?;
            if let Some(id) = row.node_id {
                let node = hub
                    .db(move |db| db.node(&id))
                    .await?
                    .ok_or_else(|| ApiError::forbidden("the approved node no longer exists"))?;
                if node.revoked.is_some() {
                    return Err(ApiError::forbidden("this key's node has been revoked"));
                }
                json_resp(StatusCode::OK, &issued_response(hub, &node))
            } else if row.approved.is_some() {
                let fp = key.fingerprint.clone();
                let node =
                    issue_node(hub, &key, row.declared, "approved", &addr, None, Some(fp)).await?;
                json_resp(StatusCode::OK, &issued_response(hub, &node))
            } else {
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
                json_resp(StatusCode::ACCEPTED, &r)
            }
        }
    };
    Ok(resp)
}

/// The refusal of a new pending enrolment over a cap.
fn pending_full(full: crate::db::PendingFull, caps: crate::db::PendingCaps) -> ApiError {
    let (status, code, message) = match full {
        crate::db::PendingFull::Total => (
            StatusCode::SERVICE_UNAVAILABLE,
            "pending-full",
            "too many enrolments are waiting for approval; ask the hub admin, or enrol with a token"
                .to_string(),
        ),
        crate::db::PendingFull::Address => (
            StatusCode::TOO_MANY_REQUESTS,
            "pending-per-address",
            format!(
                "{} enrolments from this address already wait for approval; ask the hub admin to approve or remove them, or enrol with a token",
                caps.per_address
            ),
        ),
    };
    ApiError {
        status,
        message,
        code: Some(code),
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
    let id = new_node_id()?;
    node_attrs(&id, &attrs)
        .validate()
        .map_err(|e| ApiError::bad(format!("node attributes: {e}")))?;
    let issued = hub.ca.issue_node(&id, key, hub.cfg.node_cert_days)?;
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
            "this enrolment was just issued to a concurrent request; poll again",
        ));
    }
    if !bound {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "enrolment token already used by another key; ask the hub operator for a new token",
        ));
    }
    hub.metrics.enrolments.fetch_add(1, Ordering::Relaxed);
    tracing::info!(node = %node.id, via, "node enrolled");
    Ok(node)
}

async fn renew(hub: &Arc<Hub>, node_id: &str, req: http::Request<Incoming>) -> ApiResult {
    let body = read_body(hub, req, MAX_SMALL_BODY).await?;
    let rr: RenewRequest = parse_json(&body)?;
    let key = pki::parse_csr(&rr.csr)?;
    let issued = hub.ca.issue_node(node_id, &key, hub.cfg.node_cert_days)?;
    let id = node_id.to_string();
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
        .ok_or_else(|| ApiError::not_found("node not in the registry"))?;
    Ok(json_resp(StatusCode::OK, &issued_response(hub, &node)))
}

/// A node's settings file says something new: its tags are taken at once; a
/// new country or continent waits for the administrator's approval
/// (`vantage-hub nodes approve <node id>`) and is made at the node's first
/// request after that, so its running agent never holds channels the hub
/// no longer grants.
async fn update_attrs(hub: &Arc<Hub>, node_id: &str, req: http::Request<Incoming>) -> ApiResult {
    let body = read_body(hub, req, MAX_SMALL_BODY).await?;
    let d = parse_json::<AttrsRequest>(&body)?.declared;
    assigned_country(&d.country)?;
    let id = node_id.to_string();
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
            if let Err(e) = node_attrs(&id, &wanted).validate() {
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
        .ok_or_else(|| ApiError::not_found("node not in the registry"))?;
    let (attrs, waiting) = found.map_err(|e| ApiError::bad(format!("declared attributes: {e}")))?;
    let attrs = node_attrs(node_id, &attrs);
    Ok(json_resp(
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
    Err(ApiError::bad(format!(
        "declared country {cc:?} is not an ISO 3166-1 country code{hint}"
    )))
}

// ---- subscriptions ----

async fn subscription_channels(
    hub: &Arc<Hub>,
    node: &str,
    list: &str,
) -> Result<Vec<String>, ApiError> {
    let list = list.replace("%2C", ",").replace("%2c", ",");
    let wanted = channel::parse_channel_list(&list).map_err(|e| ApiError::bad(e.to_string()))?;
    let id = node.to_string();
    let row = hub
        .db(move |db| db.node(&id))
        .await?
        .ok_or_else(|| ApiError::forbidden("node not in the registry"))?;
    let allowed = node_attrs(&row.id, &row.attrs).channels();
    if let Some(bad) = wanted.iter().find(|c| !allowed.contains(c)) {
        return Err(ApiError::forbidden(format!(
            "channel {bad} is not assigned to this node (its channels: {})",
            allowed.join(",")
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(wanted.len());
    for c in wanted {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

// ---- jobs ----

async fn submit_job(hub: &Arc<Hub>, operator: &str, req: http::Request<Incoming>) -> ApiResult {
    let body = read_body(hub, req, MAX_JOB_BODY).await?;
    let refuse = |hub: &Arc<Hub>, e: ApiError| {
        hub.metrics.jobs_refused.fetch_add(1, Ordering::Relaxed);
        Err(e)
    };
    let Some(policy) = hub.policy.current() else {
        return refuse(
            hub,
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub has no approval policy; start it with --policy FILE",
            ),
        );
    };
    let signed = match SignedJob::from_json(&body) {
        Ok(s) => s,
        Err(e) => {
            return refuse(
                hub,
                ApiError {
                    code: Some(e.code()),
                    ..ApiError::bad(format!("not a signed job: {e}"))
                },
            );
        }
    };
    let job = match signed.verify(&policy, now() as u64) {
        Ok(j) => j,
        Err(r) => {
            return refuse(
                hub,
                ApiError {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    message: format!("job refused: {r}"),
                    code: Some(r.code()),
                },
            );
        }
    };
    let target = job.probe.target();
    let _counted = hub.policy.submissions.lock().await;
    let (jid, tg) = (job.id.clone(), target.clone());
    let (exists, recent) = hub
        .db(move |db| {
            Ok((
                db.job(&jid)?.is_some(),
                db.jobs_for_target(&tg, now() - 3600)?,
            ))
        })
        .await?;
    let policy_rate = policy.limits.max_jobs_per_target_per_hour;
    let per_hour = u64::from(
        hub.cfg
            .max_target_rate
            .map_or(policy_rate, |r| r.min(policy_rate)),
    );
    if recent >= per_hour {
        return refuse(
            hub,
            ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: format!(
                    "target rate: {target} already had {recent} accepted job(s) in the last hour and this hub allows {per_hour} per target and hour; wait, or measure another target"
                ),
                code: Some("target-rate"),
            },
        );
    }
    if exists {
        return refuse(
            hub,
            ApiError::new(
                StatusCode::CONFLICT,
                format!("job id {} already used; give the job a new id", job.id),
            ),
        );
    }
    let (channels, nodes) = resolve(hub, &job.select, job.limit).await?;
    if channels.is_empty() {
        return refuse(
            hub,
            ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: "no online node matches the selection; try later or without a limit"
                    .into(),
                code: Some("no-nodes"),
            },
        );
    }
    let signers: Vec<String> = signed
        .signatures
        .iter()
        .filter(|s| policy.approver(&s.key_id).is_some())
        .map(|s| s.key_id.clone())
        .collect();
    let record = JobRecord {
        id: job.id.clone(),
        seq: 0,
        signed_job: serde_json::to_value(&signed).expect("serialises"),
        submitted: now(),
        submitter: operator.to_string(),
        proposer: Some(job.proposer.clone()),
        signers,
        channels: channels.clone(),
        nodes: nodes.clone(),
        target,
    };
    let payload = serde_json::to_string(&signed).expect("serialises");
    let seq = hub.publish(channels.clone(), payload, Some(record)).await?;
    hub.metrics.jobs_accepted.fetch_add(1, Ordering::Relaxed);
    tracing::info!(job = %job.id, seq, operator, ?channels, nodes = nodes.len(), "job accepted");
    Ok(json_resp(
        StatusCode::CREATED,
        &json!({"job_id": job.id, "seq": seq, "channels": channels, "nodes": nodes}),
    ))
}

/// Channels to publish on and the nodes the selection covers now.
async fn resolve(
    hub: &Arc<Hub>,
    sel: &Selection,
    limit: Option<u32>,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let all = hub.db(|db| db.nodes()).await?;
    let mut matching: Vec<&NodeRow> = all
        .iter()
        .filter(|n| n.revoked.is_none() && sel.matches(&node_attrs(&n.id, &n.attrs)))
        .collect();
    match limit {
        Some(limit) => {
            matching.retain(|n| online(hub, n));
            let matching = crate::spread::pick(matching, limit as usize);
            let nodes: Vec<String> = matching.iter().map(|n| n.id.clone()).collect();
            Ok((nodes.iter().map(|id| format!("node.{id}")).collect(), nodes))
        }
        None => Ok((
            sel.channels(),
            matching.iter().map(|n| n.id.clone()).collect(),
        )),
    }
}

fn online(hub: &Hub, n: &NodeRow) -> bool {
    hub.is_present(&n.id)
        || n.last_seen
            .is_some_and(|t| now() - t <= hub.cfg.online_window.as_secs() as i64)
}

/// A pending enrolment as a registry entry (status `pending`, no id yet).
pub fn pending_json(p: &crate::db::PendingRow) -> Value {
    json!({"id": null, "status": "pending", "key_fingerprint": p.fingerprint,
           "country": p.declared.country, "continent": p.declared.continent,
           "asn": p.declared.asn, "tags": p.declared.tags, "address": p.address,
           "requested": p.created, "last_poll": p.last_poll, "approved": p.approved})
}

/// Status word of a node for the registry.
pub fn node_status(revoked: bool, online: bool) -> &'static str {
    match (revoked, online) {
        (true, _) => "revoked",
        (false, true) => "online",
        (false, false) => "offline",
    }
}

fn node_json(hub: &Hub, n: &NodeRow) -> Value {
    let mut v = serde_json::to_value(n).expect("serialises");
    v["status"] = json!(node_status(n.revoked.is_some(), online(hub, n)));
    v["channels"] = json!(node_attrs(&n.id, &n.attrs).channels());
    v["policy_serial"] = json!(hub.policy.reported(&n.id));
    let health = lock(&hub.health).get(&n.id).cloned();
    v["last_error"] = json!(health.as_ref().and_then(|h| h.last_error.clone()));
    v["outbox_depth"] = json!(health.as_ref().map(|h| h.outbox_depth));
    v["outbox_dropped"] = json!(health.as_ref().map(|h| h.outbox_dropped));
    v["heartbeat"] = json!(health.as_ref().map(|h| h.reported));
    v["refused"] = json!(health.as_ref().and_then(|h| h.refused.clone()));
    v["refused_totals"] = json!(health.as_ref().map(|h| h.refused_totals.clone()));
    v
}

async fn job_status(hub: &Arc<Hub>, id: &str) -> ApiResult {
    let id = id.to_string();
    let (job, audit, results) = hub
        .db(move |db| Ok((db.job(&id)?, db.audit_of(&id)?, db.result_count(&id)?)))
        .await?;
    let job = job.ok_or_else(|| ApiError::not_found("no such job"))?;
    let t = now() as u64;
    let field = |k: &str| job.signed_job["job"][k].as_u64().unwrap_or(0);
    let status = if t < field("not_before") {
        "scheduled"
    } else if t < field("expires") {
        "active"
    } else {
        "expired"
    };
    Ok(json_resp(
        StatusCode::OK,
        &json!({"job": job, "status": status, "results": results, "audit": audit}),
    ))
}

async fn raw_publish(
    hub: &Arc<Hub>,
    operator: &str,
    ch: &str,
    req: http::Request<Incoming>,
) -> ApiResult {
    channel::validate_channel(ch).map_err(|e| ApiError::bad(e.to_string()))?;
    let body = read_body(hub, req, MAX_JOB_BODY).await?;
    let v: Value = parse_json(&body)?;
    let payload = serde_json::to_string(&v).expect("serialises");
    let seq = hub.publish(vec![ch.to_string()], payload, None).await?;
    tracing::warn!(
        operator,
        channel = ch,
        seq,
        "UNSAFE raw publish (no signature check)"
    );
    let (op, c) = (operator.to_string(), ch.to_string());
    hub.db(move |db| db.audit(now(), &op, "raw.publish", &c, &json!({"seq": seq})))
        .await?;
    Ok(json_resp(
        StatusCode::CREATED,
        &json!({"seq": seq, "channels": [ch]}),
    ))
}

// ---- results ----

/// The job's stored results in the RIPE Atlas format (ARCHITECTURE.md,
/// "Results in RIPE Atlas format"). Results without an Atlas form (refusals,
/// `tcp`) are left out; the native format has them all.
async fn atlas_results(hub: &Arc<Hub>, id: &str) -> ApiResult {
    let j = id.to_string();
    let (job, nodes) = hub.db(move |db| Ok((db.job(&j)?, db.nodes()?))).await?;
    let job = job.ok_or_else(|| ApiError::not_found("no such job"))?;
    let probe: vantage_proto::probe::Probe =
        serde_json::from_value(job.signed_job["job"]["probe"].clone()).map_err(|e| ApiError {
            code: Some("job-unreadable"),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the stored job's probe does not parse: {e}"),
            )
        })?;
    let addresses: std::collections::HashMap<String, Option<String>> =
        nodes.into_iter().map(|n| (n.id, n.address)).collect();
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let j = id.to_string();
        let rows = hub.db(move |db| db.results_of(&j, after, 1000)).await?;
        let n = rows.len();
        for row in rows {
            after = row.id;
            let Ok(r) = serde_json::from_str::<ProbeResult>(&row.body) else {
                continue;
            };
            let from = addresses.get(&r.node_id).cloned().flatten();
            match atlas::to_atlas(&r, &probe, from.as_deref()) {
                Ok(a) => out.push(a),
                Err(e) => tracing::debug!(job = %id, "result {} not exported: {e}", row.id),
            }
        }
        if n < 1000 {
            break;
        }
    }
    Ok(json_resp(StatusCode::OK, &out))
}

async fn results(hub: &Arc<Hub>, node: &str, req: http::Request<Incoming>) -> ApiResult {
    let body = read_body(hub, req, MAX_RESULT_BYTES).await?;
    let r =
        ProbeResult::from_json(&body).map_err(|e| ApiError::bad(format!("not a result: {e}")))?;
    if r.node_id != node {
        return Err(ApiError::forbidden(format!(
            "result names node {} but your certificate is node {node}",
            r.node_id
        )));
    }
    admit_result(hub, node, &r).await?;
    let text = serde_json::to_string(&r).expect("serialises");
    let (j, n, s, t) = (
        r.job_id.clone(),
        node.to_string(),
        u64::from(r.seq),
        text.clone(),
    );
    let stored = hub
        .db(move |db| db.insert_result(&j, &n, s, now(), &t))
        .await?;
    match stored {
        Some(id) => {
            hub.metrics.results_stored.fetch_add(1, Ordering::Relaxed);
            let _ = hub.results_tx.send(Arc::new(ResultEvent {
                job_id: r.job_id,
                id,
                body: text,
            }));
            Ok(json_resp(StatusCode::OK, &json!({"stored": true})))
        }
        None => {
            hub.metrics
                .results_duplicate
                .fetch_add(1, Ordering::Relaxed);
            Ok(json_resp(
                StatusCode::OK,
                &json!({"stored": false, "duplicate": true}),
            ))
        }
    }
}

/// Slack for the nodes' clocks when judging whether a run can have happened yet.
const RUN_CLOCK_SLACK_SECS: u64 = 600;

/// A result is stored only for a job this hub accepted, from a node that job
/// selected, for a run its schedule allows. Otherwise a node (or a stream
/// that fed it junk) could fill the operators' result lists and the database
/// with results nobody asked for. Results of jobs published around the hub
/// (straight to Nchan) are refused too: the hub cannot tell them from made-up ones.
async fn admit_result(hub: &Arc<Hub>, node: &str, r: &ProbeResult) -> Result<(), ApiError> {
    let (j, n) = (r.job_id.clone(), node.to_string());
    let (job, row) = hub.db(move |db| Ok((db.job(&j)?, db.node(&n)?))).await?;
    let refuse = |status, code, message: String| {
        hub.metrics.results_refused.fetch_add(1, Ordering::Relaxed);
        Err(ApiError {
            status,
            message,
            code: Some(code),
        })
    };
    let Some(job) = job else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-job",
            format!(
                "no job {:?} was accepted by this hub; results are taken only for jobs submitted through it",
                r.job_id
            ),
        );
    };
    let parsed = match Job::from_value(&job.signed_job["job"]) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(job = %job.id, "stored job does not parse: {e}");
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-job",
                format!("job {} cannot be read back: {e}", job.id),
            );
        }
    };
    // Nodes that joined a selected channel after acceptance also receive a
    // job without a limit; a limited job went to the listed nodes only.
    let selected = job.nodes.iter().any(|n| n == node)
        || (parsed.limit.is_none()
            && row.is_some_and(|row| parsed.select.matches(&node_attrs(&row.id, &row.attrs))));
    if !selected {
        return refuse(
            StatusCode::FORBIDDEN,
            "not-selected",
            format!("job {} did not select node {node}", job.id),
        );
    }
    if let Err(why) = run_allowed(&parsed, r.seq, now() as u64) {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "run-not-scheduled",
            format!("job {} has no run {}: {why}", job.id, r.seq),
        );
    }
    if let Err(why) = hub.result_volume.take_result(node, r, now()) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "result-volume", why);
    }
    Ok(())
}

/// Whether run `seq` of `job` can have happened by `now`: run 0 always (it may
/// be a refusal); later runs only for a repeated job, before it expires and
/// not long before their time.
fn run_allowed(job: &Job, seq: u32, now: u64) -> Result<(), String> {
    if seq == 0 {
        return Ok(());
    }
    let Some(every) = job.repeat_secs.filter(|r| *r > 0) else {
        return Err("the job runs once".into());
    };
    let at = job
        .not_before
        .saturating_add(u64::from(seq).saturating_mul(every));
    if at >= job.expires {
        return Err(format!("run {seq} would start after the job expires"));
    }
    if at > now.saturating_add(RUN_CLOCK_SLACK_SECS) {
        return Err(format!("run {seq} is not due until {at} (Unix time)"));
    }
    Ok(())
}

// ---- registry and statistics ----

async fn channels(hub: &Arc<Hub>) -> ApiResult {
    let held = hub.db(|db| db.channel_counts()).await?;
    let subs = lock(&hub.channel_subs).clone();
    let mut names: Vec<&String> = held.keys().chain(subs.keys()).collect();
    names.sort();
    names.dedup();
    let list: Vec<Value> = names
        .into_iter()
        .map(|c| {
            let (messages, last) = held.get(c).copied().unwrap_or((0, 0));
            json!({"channel": c, "subscribers": subs.get(c).copied().unwrap_or(0),
                   "messages": messages, "last_seq": last})
        })
        .collect();
    Ok(json_resp(StatusCode::OK, &list))
}

async fn stats(hub: &Arc<Hub>) -> Result<Value, ApiError> {
    let (nodes, pending, log_len) = hub
        .db(|db| Ok((db.nodes()?, db.pending_open()?, db.log_len()?)))
        .await?;
    let on = nodes
        .iter()
        .filter(|n| n.revoked.is_none() && online(hub, n))
        .count();
    let revoked = nodes.iter().filter(|n| n.revoked.is_some()).count();
    let m = &hub.metrics;
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Ok(json!({
        "connections": hub.conns.total(),
        "subscriptions": lock(&hub.subscribed).values().sum::<usize>(),
        "subscribed_nodes": lock(&hub.subscribed).len(),
        "nodes": nodes.len(), "nodes_online": on, "nodes_revoked": revoked,
        "pending": pending.len(),
        "log_entries": log_len, "last_seq": hub.last_seq.load(Ordering::SeqCst),
        "pruned_through": hub.pruned_through.load(Ordering::SeqCst),
        "requests": g(&m.requests), "rate_limited": g(&m.rate_limited),
        "connections_refused": g(&m.conn_refused),
        "handshakes_evicted": g(&m.handshakes_evicted),
        "jobs_accepted": g(&m.jobs_accepted), "jobs_refused": g(&m.jobs_refused),
        "events_sent": g(&m.events_sent), "results_stored": g(&m.results_stored),
        "results_duplicate": g(&m.results_duplicate), "results_refused": g(&m.results_refused),
        "results_over_volume": g(&hub.result_volume.refused),
        "enrolments": g(&m.enrolments),
        "uptime_secs": hub.started.elapsed().as_secs(),
    }))
}

async fn metrics(hub: &Arc<Hub>) -> ApiResult {
    let s = stats(hub).await?;
    let mut out = String::new();
    let Value::Object(map) = &s else {
        unreachable!("stats is an object")
    };
    // Totals since start are counters; the rest describe the present.
    const COUNTERS: [&str; 13] = [
        "requests",
        "rate_limited",
        "connections_refused",
        "handshakes_evicted",
        "jobs_accepted",
        "jobs_refused",
        "events_sent",
        "results_stored",
        "results_duplicate",
        "results_refused",
        "results_over_volume",
        "enrolments",
        "uptime_secs",
    ];
    for (k, v) in map {
        if let Some(n) = v.as_u64() {
            if COUNTERS.contains(&k.as_str()) {
                out.push_str(&format!(
                    "# TYPE vantage_hub_{k}_total counter\nvantage_hub_{k}_total {n}\n"
                ));
            } else {
                out.push_str(&format!(
                    "# TYPE vantage_hub_{k} gauge\nvantage_hub_{k} {n}\n"
                ));
            }
        }
    }
    out.push_str("# TYPE vantage_hub_channel_subscribers gauge\n");
    let mut subs: Vec<(String, usize)> = lock(&hub.channel_subs)
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    subs.sort();
    for (c, n) in subs {
        out.push_str(&format!(
            "vantage_hub_channel_subscribers{{channel=\"{c}\"}} {n}\n"
        ));
    }
    if let Some(n) = hub.nchan.get() {
        out.push_str(&n.metrics_text());
    }
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(full(out))
        .expect("static"))
}

/// Issues an operator certificate (used by the CLI).
pub fn issue_operator(
    ca: &pki::Ca,
    db: &crate::db::Db,
    name: &str,
    days: i64,
) -> anyhow::Result<(pki::Issued, String)> {
    vantage_proto::identity::validate_operator_name(name)?;
    let (issued, key) = ca.issue_operator(name, days)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_proto::envelope::Envelope;
    use vantage_proto::sse::{Decoder, Frame};

    #[test]
    fn event_frames_carry_protocol_envelopes() {
        let job =
            json!({"job": {"v": 1, "id": "j1"}, "signatures": [{"key_id": "00", "sig": "AA=="}]});
        let frame = event_frame(42, "cc.DE", 1_343_000_000, &job.to_string());
        let mut dec = Decoder::new(1 << 16, 1 << 20);
        let frames = dec.feed(&frame);
        let [Ok(Frame::Event(ev))] = frames.as_slice() else {
            panic!("one event expected: {frames:?}")
        };
        assert_eq!(ev.id.as_deref(), Some("42"));
        let env = Envelope::from_json(&ev.data).unwrap();
        assert_eq!((env.id, env.channel.as_str()), (42, "cc.DE"));
        assert_eq!(env.time, "Sun, 22 Jul 2012 23:33:20 GMT");
        assert_eq!(serde_json::to_value(&env.payload).unwrap(), job);
    }

    #[test]
    fn heartbeat_errors_are_one_bounded_line() {
        let hb = Heartbeat {
            last_error: Some(format!(
                "HTTP 502: <html>\n<body>{}</body>",
                "x".repeat(2000)
            )),
            outbox_depth: 3,
            ..Heartbeat::default()
        };
        let mut hb = hb;
        hb.refused = Some(vantage_proto::node::RefusalSummary {
            sample: Some("unreadable message: a\nb\r\u{1b}[2J".into()),
            ..Default::default()
        });
        let h = crate::server::NodeHealth::from_heartbeat(&hb, 7, None);
        assert_eq!(
            h.refused.unwrap().sample.unwrap(),
            "unreadable message: a b [2J"
        );
        let e = h.last_error.unwrap();
        assert!(e.starts_with("HTTP 502: <html> <body>xx"), "{e}");
        assert_eq!(e.chars().count(), crate::server::MAX_LAST_ERROR);
        assert_eq!((h.outbox_depth, h.reported), (3, 7));
    }

    #[test]
    fn runs_follow_the_schedule() {
        let job = |repeat: Option<u64>| {
            Job::from_value(&json!({"v": 1, "id": "j", "probe": {"cmd": "dns", "args": {"name": "example.com"}},
                "select": "everyone", "not_before": 1000, "expires": 2000, "repeat_secs": repeat, "proposer": "p"}))
            .unwrap()
        };
        let once = job(None);
        assert!(run_allowed(&once, 0, 0).is_ok());
        assert!(run_allowed(&once, 1, 1500).is_err());
        let every = job(Some(100));
        assert!(run_allowed(&every, 9, 1900).is_ok());
        assert!(run_allowed(&every, 10, 5000).is_err(), "starts at expiry");
        assert!(run_allowed(&every, 5, 1500 - RUN_CLOCK_SLACK_SECS).is_ok());
        assert!(run_allowed(&every, 5, 1499 - RUN_CLOCK_SLACK_SECS).is_err());
        assert!(run_allowed(&every, u32::MAX, u64::MAX).is_err());
    }

    #[test]
    fn node_status_words() {
        assert_eq!(node_status(true, true), "revoked");
        assert_eq!(node_status(false, true), "online");
        assert_eq!(node_status(false, false), "offline");
    }
}
