//! Accepted jobs on the node's own schedule: each job is a task that waits
//! for its time (after `not_before`, plus a random delay inside its spread
//! window), runs its probe under the owner's rate cap and the concurrency
//! limit, records the result, and repeats every `repeat_secs` until it
//! expires.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;
use vantage_proto::data::ProbeData;
use vantage_proto::job::{Job, Refusal};
use vantage_proto::result::{ProbeResult, Status};

use crate::certs::{unix_ms, unix_now};
use crate::owner::RateCap;
use crate::probe::{self, ProbeError};
use crate::results::{self, Results};

/// A handle that starts jobs; all of them share its limits.
#[derive(Clone)]
pub struct Jobs(Arc<Inner>);

struct Inner {
    node_id: String,
    probes: probe::Context,
    /// Hard limit on one probe's time.
    max_time: Duration,
    rate: Mutex<RateCap>,
    slots: Semaphore,
    results: Results,
}

/// A result's status, reason, code and data for a probe's outcome.
type Outcome = (Status, Option<String>, Option<String>, Value);

impl Jobs {
    /// Jobs of the node `node_id`, running at most `concurrency` probes at
    /// once, each for at most `max_time`, started at most as often as `rate` allows.
    pub fn new(
        node_id: String,
        probes: probe::Context,
        max_time: Duration,
        rate: RateCap,
        concurrency: usize,
        results: Results,
    ) -> Jobs {
        Jobs(Arc::new(Inner {
            node_id,
            probes,
            max_time,
            rate: Mutex::new(rate),
            slots: Semaphore::new(concurrency),
            results,
        }))
    }

    /// Starts `job` as its own task, from run `first_seq` at `first_at`
    /// (Unix seconds; default: its `not_before`).
    pub fn start(&self, job: Job, first_seq: u32, first_at: Option<u64>) {
        let me = self.clone();
        tokio::spawn(async move { me.schedule(job, first_seq, first_at).await });
    }

    /// Runs a job at its time, and again every `repeat_secs` until it expires.
    async fn schedule(self, job: Job, first_seq: u32, first_at: Option<u64>) {
        let spread_ms = job.spread_secs.saturating_mul(1000);
        let delay_ms = if spread_ms > 0 {
            fastrand::u64(..spread_ms)
        } else {
            0
        };
        let mut at_ms = first_at
            .unwrap_or(job.not_before)
            .saturating_mul(1000)
            .max(unix_ms())
            + delay_ms;
        let mut seq = first_seq;
        loop {
            let now = unix_ms();
            if at_ms > now {
                tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
            }
            if unix_now() >= job.expires {
                tracing::info!("job {} expired", job.id);
                return;
            }
            self.run_once(&job, seq).await;
            match job.repeat_secs {
                Some(r) if r > 0 => {
                    seq += 1;
                    at_ms += r * 1000;
                }
                _ => return,
            }
        }
    }

    async fn run_once(&self, job: &Job, seq: u32) {
        let me = &self.0;
        let Ok(_slot) = me.slots.acquire().await else {
            return;
        };
        let kind = job.probe.kind();
        if let Err(d) = me
            .rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(Instant::now())
        {
            let reason = Refusal::RateLimited(d.to_string());
            tracing::warn!("refused job {} run {seq}: {reason}", job.id);
            let mut r = results::refused(&me.node_id, &job.id, Some(kind), &reason);
            r.seq = seq;
            me.results.record(r);
            return;
        }
        let started_ms = unix_ms();
        let t = Instant::now();
        let outcome = probe::run(&job.probe, &me.probes, me.max_time).await;
        let duration_ms = t.elapsed().as_millis() as u64;
        let (status, reason, code, data) = outcome_fields(outcome);
        tracing::info!(
            "job {} run {seq}: {:?}{}",
            job.id,
            status,
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        me.results.record(ProbeResult {
            job_id: job.id.clone(),
            node_id: me.node_id.clone(),
            probe: Some(kind),
            started_ms,
            duration_ms,
            status,
            reason,
            code,
            data,
            seq,
        });
    }
}

fn outcome_fields(outcome: Result<ProbeData, ProbeError>) -> Outcome {
    match outcome {
        Ok(data) => (Status::Ok, None, None, data.to_value()),
        Err(ProbeError::Refused(why)) => {
            let r = Refusal::OwnerPolicy(why);
            (
                Status::Refused,
                Some(r.to_string()),
                Some(r.code().to_string()),
                Value::Null,
            )
        }
        Err(ProbeError::Timeout(why)) => (Status::Timeout, Some(why), None, Value::Null),
        Err(ProbeError::Failed(why)) => (Status::Error, Some(why), None, Value::Null),
        Err(ProbeError::Net(e)) => (
            if e.is_timeout() {
                Status::Timeout
            } else {
                Status::Error
            },
            Some(e.to_string()),
            Some(e.code().to_string()),
            Value::Null,
        ),
    }
}
