//! Results: nodes post them, operators read them (JSON, RIPE Atlas format, or live).

use super::{ApiError, ApiResult, Body, Node, Operator, Params, Peer, Seg, json, touch};
use crate::datadir::now;
use crate::db::NewResult;
use crate::hub::{Hub, ResultEvent};
use axum::Extension;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use std::sync::Arc;
use vantage_proto::api::{ErrorBody, ResultStored};
use vantage_proto::atlas;
use vantage_proto::job::Job;
use vantage_proto::result::{MAX_RESULT_BYTES, ProbeResult};

/// A node's result for a job that selected it.
#[utoipa::path(post, path = "/v1/results", tag = "nodes",
    request_body = ProbeResult,
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "stored, or already stored", body = ResultStored),
        (status = 400, description = "not a result", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not this node's result, or the job did not select it", body = ErrorBody),
        (status = 422, description = "no such job or run; `code` says which", body = ErrorBody),
    ))]
pub(super) async fn post(
    State(hub): State<Arc<Hub>>,
    Node(node): Node,
    Extension(Peer(peer)): Extension<Peer>,
    Body(body): Body<MAX_RESULT_BYTES>,
) -> ApiResult {
    touch(&hub, &node, peer);
    let r = ProbeResult::from_json(&body)
        .map_err(|e| ApiError::bad(e.code(), format!("not a result: {e}")))?;
    if r.node_id != node {
        return Err(ApiError::forbidden(
            "not-your-node",
            format!(
                "result names node {} but your certificate is node {node}",
                r.node_id
            ),
        ));
    }
    if let Err(e) = admit(&hub, &node, &r).await {
        hub.metrics.results_refused.inc();
        return Err(e);
    }
    let text = serde_json::to_string(&r).expect("serialises");
    let row = NewResult {
        job_id: r.job_id.clone(),
        node_id: node.clone(),
        seq: u64::from(r.seq),
        received: now(),
        body: text.clone(),
    };
    let stored = hub.ingest.store(row).await?;
    let Some(id) = stored else {
        hub.metrics.results_duplicate.inc();
        let dup = ResultStored {
            stored: false,
            duplicate: true,
        };
        return Ok(json(StatusCode::OK, &dup));
    };
    hub.metrics.results_stored.inc();
    let _ = hub.results_tx.send(Arc::new(ResultEvent {
        job_id: r.job_id,
        id,
        body: text,
    }));
    let stored = ResultStored {
        stored: true,
        duplicate: false,
    };
    Ok(json(StatusCode::OK, &stored))
}

/// Slack for the nodes' clocks when judging whether a run can have happened yet.
const RUN_CLOCK_SLACK_SECS: u64 = 600;

/// A result is stored only for a job this hub accepted, from a node that job
/// selected, for a run its schedule allows. Otherwise a node (or a stream
/// that fed it junk) could fill the operators' result lists and the database
/// with results nobody asked for. Results of jobs published around the hub
/// (straight to Nchan) are refused too: the hub cannot tell them from made-up ones.
async fn admit(hub: &Arc<Hub>, node: &str, r: &ProbeResult) -> Result<(), ApiError> {
    let (j, n) = (r.job_id.clone(), node.to_string());
    let (job, row) = hub.db(move |db| Ok((db.job(&j)?, db.node(&n)?))).await?;
    let unknown =
        |message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown-job", message);
    let Some(job) = job else {
        return Err(unknown(format!(
            "no job {:?} was accepted by this hub; results are taken only for jobs submitted through it",
            r.job_id
        )));
    };
    let parsed = Job::from_value(&job.signed_job.job).map_err(|e| {
        tracing::error!(job = %job.id, "stored job does not parse: {e}");
        unknown(format!("job {} cannot be read back: {e}", job.id))
    })?;
    // Nodes that joined a selected channel after acceptance also receive a
    // job without a limit; a limited job went to the listed nodes only.
    let selected = job.nodes.iter().any(|n| n == node)
        || (parsed.limit.is_none()
            && row.is_some_and(|row| {
                parsed
                    .select
                    .matches(&row.attrs.for_node(&row.id), row.caps.as_ref())
            }));
    if !selected {
        return Err(ApiError::forbidden(
            "not-selected",
            format!("job {} did not select node {node}", job.id),
        ));
    }
    run_allowed(&parsed, r.seq, now() as u64).map_err(|why| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "run-not-scheduled",
            format!("job {} has no run {}: {why}", job.id, r.seq),
        )
    })?;
    hub.result_volume
        .take_result(node, r, now())
        .map_err(|why| ApiError::new(StatusCode::TOO_MANY_REQUESTS, "result-volume", why))
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

/// A job's results: all stored ones as JSON, in RIPE Atlas format with
/// `?format=atlas`, or stored and then arriving ones as Server-Sent Events
/// with `?follow=1`.
#[utoipa::path(get, path = "/v1/jobs/{id}/results", tag = "operators",
    params(
        ("id" = String, Path, description = "job id"),
        ("format" = Option<String>, Query, description = "`json` (default) or `atlas`"),
        ("follow" = Option<String>, Query, description = "`1` for a live event stream"),
    ),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the results (ProbeResult objects; Atlas results with `format=atlas`)", body = Vec<ProbeResult>),
        (status = 400, description = "unknown format", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        (status = 404, description = "no such job (Atlas format)", body = ErrorBody),
    ))]
pub(super) async fn of_job(
    State(hub): State<Arc<Hub>>,
    _: Operator,
    Seg(id): Seg,
    Params(q): Params,
    headers: HeaderMap,
) -> ApiResult {
    match q.get("format").map(String::as_str) {
        None | Some("json") => super::stream::job_results(hub, id, &headers, &q).await,
        Some("atlas") => atlas_results(&hub, &id).await,
        Some(other) => Err(ApiError::bad(
            "unknown-format",
            format!("unknown results format {other:?}; use json or atlas"),
        )),
    }
}

/// The job's stored results in the RIPE Atlas format (ARCHITECTURE.md,
/// "Results in RIPE Atlas format"). Results without an Atlas form (refusals,
/// `tcp`) are left out; the native format has them all.
async fn atlas_results(hub: &Arc<Hub>, id: &str) -> ApiResult {
    let j = id.to_string();
    let (job, nodes) = hub.db(move |db| Ok((db.job(&j)?, db.nodes()?))).await?;
    let job = job.ok_or_else(|| ApiError::not_found("no-such-job", "no such job"))?;
    let probe: vantage_proto::probe::Probe =
        serde_json::from_value(job.signed_job.job["probe"].clone()).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "job-unreadable",
                format!("the stored job's probe does not parse: {e}"),
            )
        })?;
    let addresses: std::collections::HashMap<String, Option<String>> =
        nodes.into_iter().map(|n| (n.id, n.address)).collect();
    let mut out = Vec::new();
    for row in super::stream::stored_results(hub, id).await? {
        let Ok(r) = serde_json::from_str::<ProbeResult>(&row.body) else {
            continue;
        };
        let from = addresses.get(&r.node_id).cloned().flatten();
        match atlas::to_atlas(&r, &probe, from.as_deref()) {
            Ok(a) => out.push(a),
            Err(e) => tracing::debug!(job = %id, "result {} not exported: {e}", row.id),
        }
    }
    Ok(json(StatusCode::OK, &out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
