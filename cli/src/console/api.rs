//! The console's `/api/...`: the hub's operator API passed on with the
//! operator's credential (its answers and error codes unchanged), plus what
//! only the CLI knows: a job file shown and checked as `vantage sign` and
//! `vantage check` do, results as CSV as `vantage results --format csv`
//! writes them, and live results with each one's key figures.

use super::Console;
use super::guard::Refusal;
use crate::error::CliError;
use crate::{approve, policy, results, timespec};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::io::Read as _;
use std::sync::Arc;
use vantage_proto::job::{Job, SignedJob};
use vantage_proto::policy::{ChainDoc, Policy};
use vantage_proto::result::ProbeResult;
use vantage_proto::sse::{Decoder, Event, Frame};

type ApiResult = Result<Response, Refusal>;

/// The `/api` routes.
pub(super) fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/api/nodes", get(nodes))
        .route("/api/jobs", get(jobs).post(submit))
        .route("/api/check", post(check))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/results.json", get(results_json))
        .route("/api/jobs/{id}/results.csv", get(results_csv))
        .route("/api/jobs/{id}/stream", get(stream))
        .with_state(console)
}

impl From<CliError> for Refusal {
    fn from(e: CliError) -> Self {
        let (status, code) = match e {
            CliError::Unreachable(_) => (StatusCode::BAD_GATEWAY, "hub-unreachable"),
            CliError::Usage(_) | CliError::Local(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            CliError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "refused"),
        };
        Refusal::new(status, code, e.to_string())
    }
}

/// The hub's answer to `GET path` (or `POST` with `body`): status and bytes.
async fn call(
    c: &Arc<Console>,
    path: String,
    body: Option<Vec<u8>>,
) -> Result<(u16, Vec<u8>), Refusal> {
    let c = c.clone();
    tokio::task::spawn_blocking(move || c.hub.raw(&path, body.as_deref()))
        .await
        .map_err(|e| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "console-failed",
                e.to_string(),
            )
        })?
        .map_err(Refusal::from)
}

/// The hub's JSON answer, status and body as they are.
async fn pass(c: &Arc<Console>, path: String, body: Option<Vec<u8>>) -> ApiResult {
    let (status, bytes) = call(c, path, body).await?;
    Ok(answer(status, "application/json", bytes, None))
}

fn answer(status: u16, kind: &str, body: Vec<u8>, download: Option<String>) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [(header::CONTENT_TYPE, kind.to_string())],
        body,
    )
        .into_response();
    if let Some(name) = download.filter(|_| status < 400) {
        let v = format!("attachment; filename=\"{name}\"");
        r.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            v.parse().expect("ASCII job id"),
        );
    }
    r
}

fn job_id(id: &str) -> Result<&str, Refusal> {
    vantage_proto::job::validate_job_id(id)
        .map(|()| id)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "bad-job-id", e.to_string()))
}

async fn nodes(State(c): State<Arc<Console>>) -> ApiResult {
    pass(&c, "/v1/nodes".into(), None).await
}

/// Paging of the jobs list, passed on to the hub (which checks the ranges).
#[derive(Deserialize)]
struct Page {
    limit: Option<u64>,
    before: Option<u64>,
}

async fn jobs(State(c): State<Arc<Console>>, Query(p): Query<Page>) -> ApiResult {
    let mut q: Vec<String> = Vec::new();
    q.extend(p.limit.map(|l| format!("limit={l}")));
    q.extend(p.before.map(|b| format!("before={b}")));
    pass(&c, format!("/v1/jobs?{}", q.join("&")), None).await
}

async fn job(State(c): State<Arc<Console>>, Path(id): Path<String>) -> ApiResult {
    pass(&c, format!("/v1/jobs/{}", job_id(&id)?), None).await
}

async fn submit(State(c): State<Arc<Console>>, body: Bytes) -> ApiResult {
    pass(&c, "/v1/jobs".into(), Some(body.to_vec())).await
}

async fn results_json(State(c): State<Arc<Console>>, Path(id): Path<String>) -> ApiResult {
    let (status, bytes) = call(&c, format!("/v1/jobs/{}/results", job_id(&id)?), None).await?;
    Ok(answer(
        status,
        "application/json",
        bytes,
        Some(format!("{id}.results.json")),
    ))
}

async fn results_csv(State(c): State<Arc<Console>>, Path(id): Path<String>) -> ApiResult {
    let (status, bytes) = call(&c, format!("/v1/jobs/{}/results", job_id(&id)?), None).await?;
    if status >= 400 {
        return Ok(answer(status, "application/json", bytes, None));
    }
    let list: Vec<ProbeResult> = serde_json::from_slice(&bytes).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            "hub-answer-unreadable",
            format!("the hub's results do not parse: {e}"),
        )
    })?;
    let csv = results::csv(&list).into_bytes();
    Ok(answer(
        200,
        "text/csv; charset=utf-8",
        csv,
        Some(format!("{id}.results.csv")),
    ))
}

/// What the Submit page shows about a dropped job file.
#[derive(Serialize)]
struct Checked {
    /// The job in plain words, as `vantage sign` shows it.
    shown: String,
    /// Whether the hub and the nodes would accept it now.
    accepted: bool,
    /// `vantage check`'s verdict.
    verdict: String,
    /// The refusal's stable code (the one the hub would answer with).
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

async fn check(State(c): State<Arc<Console>>, body: Bytes) -> ApiResult {
    let signed = SignedJob::from_json(&body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad-job-file",
            format!("not a signed job file: {e}"),
        )
    })?;
    let job = Job::from_value(&signed.job).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad-job-file",
            format!("not a job: {e}"),
        )
    })?;
    let policy = current_policy(&c).await?;
    let now = timespec::now();
    let out = match &policy {
        None => Checked {
            shown: approve::show(&signed, &job, None),
            accepted: false,
            verdict: "cannot check the signatures: the hub has accepted no successor policy; start the console with --policy FILE".into(),
            code: None,
        },
        Some(p) => {
            let verdict = approve::check(&signed, p, now);
            Checked {
                shown: approve::show(&signed, &job, Some(p)),
                accepted: verdict.is_ok(),
                code: signed.verify(p, now).err().map(|r| r.code().to_string()),
                verdict: verdict.unwrap_or_else(|e| e.to_string()),
            }
        }
    };
    let json = serde_json::to_vec(&out).expect("serialises");
    Ok(answer(200, "application/json", json, None))
}

/// `--policy`, else the newest policy the hub accepted (none: the hub runs
/// its shipped policy, which it does not hand out).
async fn current_policy(c: &Arc<Console>) -> Result<Option<Policy>, Refusal> {
    if let Some(path) = c.policy.clone() {
        return Ok(Some(policy::load(&path)?.1));
    }
    let (status, bytes) = call(c, "/v1/policy".into(), None).await?;
    if status >= 400 {
        return Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            "hub-refused",
            String::from_utf8_lossy(&bytes),
        ));
    }
    let doc: ChainDoc = serde_json::from_slice(&bytes).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            "hub-answer-unreadable",
            e.to_string(),
        )
    })?;
    doc.chain
        .last()
        .map(|p| p.parse())
        .transpose()
        .map_err(|e| {
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                "hub-answer-unreadable",
                e.to_string(),
            )
        })
}

/// Where a browser's stream resumes: `Last-Event-ID`, as EventSource sends it.
#[derive(Deserialize)]
struct Resume {
    last_event_id: Option<u64>,
}

/// The hub's live results of a job, each as `{"result", "row"}` where `row`
/// has the key figures the CLI's table and CSV show.
async fn stream(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    Query(q): Query<Resume>,
    headers: HeaderMap,
) -> ApiResult {
    let mut path = format!("/v1/jobs/{}/results?follow=1", job_id(&id)?);
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or(q.last_event_id);
    if let Some(last) = last {
        path += &format!("&last_event_id={last}");
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let c2 = c.clone();
    tokio::task::spawn_blocking(move || relay(&c2, &path, &tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Reads the hub's stream and sends the browser's, until either side ends.
fn relay(c: &Console, path: &str, tx: &tokio::sync::mpsc::Sender<Bytes>) {
    let send = |s: String| tx.blocking_send(Bytes::from(s)).is_ok();
    let mut body = match c.stream_hub.stream(path) {
        Ok(b) => b,
        Err(e) => {
            let e = Refusal::from(e);
            send(
                Event {
                    id: None,
                    event: Some("refused".into()),
                    data: e.body_json(),
                    retry: None,
                }
                .encode(),
            );
            return;
        }
    };
    let mut decoder = Decoder::default();
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = body.read(&mut buf) {
        if n == 0 {
            return;
        }
        let mut out = String::new();
        for frame in decoder.feed(&buf[..n]) {
            if let Ok(Frame::Event(ev)) = frame
                && ev.event.is_none()
            {
                out += &with_row(&ev).encode();
            }
        }
        // Keep-alives too: a closed browser tab shows up as a failed send.
        if out.is_empty() {
            out = vantage_proto::sse::encode_comment("");
        }
        if !send(out) {
            return;
        }
    }
}

/// One result event of the hub with the result's key figures added.
fn with_row(ev: &Event) -> Event {
    let raw: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or_default();
    let typed = serde_json::from_value::<ProbeResult>(raw.clone()).ok();
    let (target, ms, _) = typed.as_ref().map(results::key_figures).unwrap_or_default();
    let detail = results::row(&raw, &Default::default())
        .pop()
        .unwrap_or_default();
    let row = serde_json::json!({
        "target": target,
        "ms": ms,
        "figure": detail,
        "key": typed.as_ref().map(results::key_class).unwrap_or_default(),
    });
    Event {
        id: ev.id.clone(),
        event: None,
        data: serde_json::json!({"result": raw, "row": row}).to_string(),
        retry: None,
    }
}
