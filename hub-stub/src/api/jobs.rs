//! Jobs: submission of signed jobs, their status, and the test networks' raw publish.

use super::{ApiError, ApiResult, Body, MAX_JOB_BODY, Operator, Params, Seg, json, online};
use crate::datadir::now;
use crate::db::NodeRow;
use crate::hub::Hub;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use vantage_proto::api::{
    ErrorBody, JobAccepted, JobList, JobPhase, JobRecord, JobStatus, JobSummary, Published,
};
use vantage_proto::channel;
use vantage_proto::job::{Job, Refusal, SignedJob};
use vantage_proto::policy::Policy;
use vantage_proto::select::Selection;

/// A signed job: checked against the approval policy and the hub's limits,
/// then published on the channels its selection names.
#[utoipa::path(post, path = "/v1/jobs", tag = "operators",
    request_body(content = SignedJob, description = "a job with its approvers' signatures, as `vantage sign` writes it, or ordered under a mandate with the operator's signature"),
    security(("client_certificate" = [])),
    responses(
        (status = 201, description = "accepted and published", body = JobAccepted),
        (status = 400, description = "not a signed job", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        (status = 409, description = "job id already used", body = ErrorBody),
        (status = 422, description = "refused by the policy, the job's mandate (`mandate-revoked`, `mandate-*`) or the hub's limits; `code` says why", body = ErrorBody),
        (status = 429, description = "an hourly rate of the job's mandate is used up: `mandate-rate-operator` or `mandate-rate-target`", body = ErrorBody),
        (status = 503, description = "the hub has no approval policy", body = ErrorBody),
    ))]
pub(super) async fn submit(
    State(hub): State<Arc<Hub>>,
    Operator(operator): Operator,
    Body(body): Body<MAX_JOB_BODY>,
) -> ApiResult {
    match accept(&hub, &operator, &body).await {
        Ok(a) => {
            hub.metrics.jobs_accepted.inc();
            Ok(json(StatusCode::CREATED, &a))
        }
        Err(e) => {
            hub.metrics.jobs_refused.inc();
            Err(e)
        }
    }
}

async fn accept(hub: &Arc<Hub>, operator: &str, body: &[u8]) -> Result<JobAccepted, ApiError> {
    let Some(policy) = hub.policy.current() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-policy",
            "the hub has no approval policy; start it with --policy FILE",
        ));
    };
    let signed = SignedJob::from_json(body)
        .map_err(|e| ApiError::bad(e.code(), format!("not a signed job: {e}")))?;
    let (job, mandate) = signed
        .verify_with_mandate(&policy, now() as u64)
        .map_err(refused)?;
    let target = job.probe.target();
    let _counted = hub.policy.submissions.lock().await;
    check_new(hub, &policy, &job, &target).await?;
    let select = match &mandate {
        Some(m) => {
            super::mandates::check(hub, m, &job, &target).await?;
            // Nodes outside the mandate's own selection would only refuse.
            Selection::And(vec![job.select.clone(), m.select.clone()])
        }
        None => job.select.clone(),
    };
    let (channels, nodes) = resolve(hub, &select, &job).await?;
    if channels.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no-nodes",
            "no online node matches the selection; try later or without a limit",
        ));
    }
    let signers: Vec<String> = signed
        .signatures
        .iter()
        .filter(|s| policy.approver(&s.key_id).is_some())
        .map(|s| s.key_id.clone())
        .collect();
    let payload = serde_json::to_string(&signed).expect("serialises");
    let record = JobRecord {
        id: job.id.clone(),
        seq: 0,
        signed_job: signed,
        submitted: now(),
        submitter: operator.to_string(),
        proposer: Some(job.proposer.clone()),
        signers,
        channels: channels.clone(),
        nodes: nodes.clone(),
        target,
    };
    let seq = hub.publish(channels.clone(), payload, Some(record)).await?;
    tracing::info!(job = %job.id, seq, operator, ?channels, nodes = nodes.len(), "job accepted");
    Ok(JobAccepted {
        job_id: job.id,
        seq,
        channels,
        nodes,
    })
}

/// A job's refusal: 429 for a rate used up, else 422, with the refusal's code.
pub(super) fn refused(r: Refusal) -> ApiError {
    let status = match r {
        Refusal::MandateRate { .. } => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, r.code(), format!("job refused: {r}"))
}

/// The job id is new and its target has not had too many jobs this hour.
async fn check_new(
    hub: &Arc<Hub>,
    policy: &Policy,
    job: &Job,
    target: &str,
) -> Result<(), ApiError> {
    let (jid, tg) = (job.id.clone(), target.to_string());
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
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "target-rate",
            format!(
                "target rate: {target} already had {recent} accepted job(s) in the last hour and this hub allows {per_hour} per target and hour; wait, or measure another target"
            ),
        ));
    }
    if exists {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job-id-used",
            format!("job id {} already used; give the job a new id", job.id),
        ));
    }
    Ok(())
}

/// Channels to publish on and the nodes the selection covers now. With a
/// `limit`, only online nodes whose owner's policy admits the job (as their
/// heartbeats reported it; a node that did not report one may) are picked.
async fn resolve(
    hub: &Arc<Hub>,
    sel: &Selection,
    job: &Job,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let (since, limited) = (now() - 60, job.limit.is_some());
    let (all, recent) = hub
        .db(move |db| {
            // Only a job with a limit picks nodes by their owners' rate caps.
            let recent = match limited {
                true => db.recent_jobs_per_node(since)?,
                false => Default::default(),
            };
            Ok((db.nodes()?, recent))
        })
        .await?;
    let mut matching: Vec<&NodeRow> = all
        .iter()
        .filter(|n| n.revoked.is_none() && sel.matches(&n.attrs.for_node(&n.id), n.caps.as_ref()))
        .collect();
    match job.limit {
        Some(limit) => {
            matching.retain(|n| {
                let started = recent.get(&n.id).copied().unwrap_or(0);
                online(hub, n)
                    && n.owner
                        .as_ref()
                        .is_none_or(|o| o.admits(job, started).is_ok())
            });
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

/// A job as the hub holds it, where it is in its life, its result count and audit trail.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "operators",
    params(("id" = String, Path, description = "job id")),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "the job", body = JobStatus),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        (status = 404, description = "no such job", body = ErrorBody),
    ))]
pub(super) async fn status(State(hub): State<Arc<Hub>>, _: Operator, Seg(id): Seg) -> ApiResult {
    let (job, audit, results) = hub
        .db(move |db| Ok((db.job(&id)?, db.audit_of(&id)?, db.result_count(&id)?)))
        .await?;
    let job = job.ok_or_else(|| ApiError::not_found("no-such-job", "no such job"))?;
    let (not_before, expires) = validity(&job);
    let status = JobPhase::at(now() as u64, not_before, expires);
    Ok(json(
        StatusCode::OK,
        &JobStatus {
            job,
            status,
            results,
            audit,
        },
    ))
}

/// Jobs per page of `GET /v1/jobs` unless `limit` says otherwise.
const JOBS_PAGE: u64 = 50;
/// The largest `limit` of `GET /v1/jobs`.
const MAX_JOBS_PAGE: u64 = 500;

/// The accepted jobs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/jobs", tag = "operators",
    params(
        ("limit" = Option<u64>, Query, description = "jobs per page, 1 to 500 (default 50)"),
        ("before" = Option<u64>, Query, description = "only jobs with a log sequence number below this: the `next_before` of the previous page"),
    ),
    security(("client_certificate" = [])),
    responses(
        (status = 200, description = "one page, newest first", body = JobList),
        (status = 400, description = "`limit` or `before` is not a number in range; `code` is `bad-limit` or `bad-before`", body = ErrorBody),
        (status = 401, description = "no client certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
    ))]
pub(super) async fn list(State(hub): State<Arc<Hub>>, _: Operator, Params(q): Params) -> ApiResult {
    let number = |name: &str, code: &'static str, range: std::ops::RangeInclusive<u64>| {
        q.get(name)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        ApiError::bad(
                            code,
                            format!(
                                "{name}={v:?} is not a whole number from {} to {}",
                                range.start(),
                                range.end()
                            ),
                        )
                    })
            })
            .transpose()
    };
    let limit = number("limit", "bad-limit", 1..=MAX_JOBS_PAGE)?.unwrap_or(JOBS_PAGE);
    let before = number("before", "bad-before", 1..=i64::MAX as u64)?.unwrap_or(i64::MAX as u64);
    // One more than asked tells whether an older page exists.
    let mut rows = hub
        .db(move |db| db.jobs_page(before, limit as usize + 1))
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let jobs: Vec<JobSummary> = rows
        .into_iter()
        .map(|(job, results, answered)| summary(job, results, answered))
        .collect();
    let next_before = more.then(|| jobs.last().map(|j| j.seq)).flatten();
    Ok(json(StatusCode::OK, &JobList { jobs, next_before }))
}

/// When a stored job is valid: its signed `not_before` and `expires`.
fn validity(job: &JobRecord) -> (u64, u64) {
    let field = |k: &str| job.signed_job.job[k].as_u64().unwrap_or(0);
    (field("not_before"), field("expires"))
}

fn summary(job: JobRecord, results: u64, answered: u64) -> JobSummary {
    let (not_before, expires) = validity(&job);
    let probe = job.signed_job.job["probe"]["cmd"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    JobSummary {
        status: JobPhase::at(now() as u64, not_before, expires),
        not_before,
        expires,
        probe,
        selected: job.nodes.len() as u64,
        answered,
        results,
        id: job.id,
        seq: job.seq,
        submitted: job.submitted,
        submitter: job.submitter,
        proposer: job.proposer,
        target: job.target,
        signers: job.signers,
    }
}

/// Test networks only (`--unsafe-raw-publish`): any JSON on any channel, unsigned.
#[utoipa::path(post, path = "/v1/publish/{channel}", tag = "operators",
    params(("channel" = String, Path, description = "channel name")),
    request_body(content = Object, description = "any JSON payload"),
    security(("client_certificate" = [])),
    responses(
        (status = 201, description = "published", body = Published),
        (status = 400, description = "bad channel or unreadable JSON", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
    ))]
pub(super) async fn raw_publish(
    State(hub): State<Arc<Hub>>,
    Operator(operator): Operator,
    Seg(ch): Seg,
    Body(body): Body<MAX_JOB_BODY>,
) -> ApiResult {
    channel::validate_channel(&ch).map_err(|e| ApiError::bad("bad-channel", e.to_string()))?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("invalid-json", format!("invalid JSON body: {e}")))?;
    let payload = serde_json::to_string(&v).expect("serialises");
    let seq = hub.publish(vec![ch.clone()], payload, None).await?;
    tracing::warn!(
        operator,
        channel = ch,
        seq,
        "UNSAFE raw publish (no signature check)"
    );
    let (op, c) = (operator, ch.clone());
    hub.db(move |db| db.audit(now(), &op, "raw.publish", &c, &json!({"seq": seq})))
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &Published {
            seq,
            channels: vec![ch],
        },
    ))
}
