//! The results queue in front of the outbox: orders and job runs record
//! results (written durably before `record` returns), the sender takes them
//! out once the hub acknowledged them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use vantage_proto::data::TruncatedData;
use vantage_proto::job::Refusal;
use vantage_proto::probe::ProbeKind;
use vantage_proto::result::{MAX_RESULT_BYTES, ProbeResult, Status};

use crate::certs::unix_ms;
use crate::health::Health;
use crate::outbox::{Entry, Outbox};

/// A handle on the outbox, shared by the tasks that record and deliver.
#[derive(Clone)]
pub struct Results(Arc<Inner>);

struct Inner {
    outbox: Mutex<Outbox>,
    /// Wakes the sender when a result was recorded.
    changed: Notify,
    /// The node's cap on one result's size.
    max_bytes: usize,
    /// The outbox's capacity (for the log line when it is full).
    max_results: usize,
    health: Health,
}

impl Results {
    /// Results go to `outbox` (holding at most `max_results`), each cut to `max_bytes`.
    pub fn new(outbox: Outbox, max_bytes: usize, max_results: usize, health: Health) -> Results {
        Results(Arc::new(Inner {
            outbox: Mutex::new(outbox),
            changed: Notify::new(),
            max_bytes: max_bytes.min(MAX_RESULT_BYTES),
            max_results,
            health,
        }))
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.0.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a result durably to the outbox and wakes the sender.
    pub fn record(&self, mut result: ProbeResult) {
        let cap = self.0.max_bytes;
        let mut bytes = serde_json::to_vec(&result).unwrap_or_default();
        if bytes.len() > cap {
            let size = bytes.len();
            result.data = serde_json::to_value(TruncatedData {
                truncated: true,
                result_bytes: size as u64,
            })
            .unwrap_or_default();
            result.reason = Some(format!(
                "result of {size} bytes exceeds the node's cap of {cap} bytes; data dropped"
            ));
            bytes = serde_json::to_vec(&result).unwrap_or_default();
        }
        let (pushed, dropped, total) = {
            let mut o = self.outbox();
            let before = o.dropped();
            let pushed = o.push(&bytes);
            (pushed, o.dropped() - before, o.dropped())
        };
        if dropped > 0 {
            tracing::warn!(
                "the outbox is full ({} results): dropped the oldest {dropped} undelivered result(s) ({total} dropped in all)",
                self.0.max_results
            );
        }
        match pushed {
            Ok(_) => self.0.changed.notify_one(),
            Err(e) => self.0.health.set_error(format!(
                "cannot write a result of job {} to the outbox: {e}",
                result.job_id
            )),
        }
    }

    /// Up to `n` of the oldest undelivered results.
    pub fn peek(&self, n: usize) -> Vec<Entry> {
        self.outbox().peek(n).unwrap_or_default()
    }

    /// The hub took the result `seq`: delete it.
    pub fn ack(&self, seq: u64) -> std::io::Result<()> {
        self.outbox().ack(seq)
    }

    /// The hub will never take the result `seq`: drop it (counted).
    pub fn reject(&self, seq: u64) {
        let _ = self.outbox().reject(seq);
    }

    /// Results waiting for delivery.
    pub fn depth(&self) -> usize {
        self.outbox().depth()
    }

    /// Results waiting, and results dropped in all (outbox full or refused).
    pub fn counts(&self) -> (u64, u64) {
        let o = self.outbox();
        (o.depth() as u64, o.dropped())
    }

    /// Waits until a result is recorded, or `at_most`.
    pub async fn changed(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.0.changed.notified()).await;
    }
}

/// The result of a job refused here (without running it).
pub fn refused(
    node_id: &str,
    job_id: &str,
    kind: Option<ProbeKind>,
    reason: &Refusal,
) -> ProbeResult {
    ProbeResult {
        job_id: job_id.to_string(),
        node_id: node_id.to_string(),
        probe: kind,
        started_ms: unix_ms(),
        duration_ms: 0,
        status: Status::Refused,
        reason: Some(reason.to_string()),
        code: Some(reason.code().to_string()),
        data: Value::Null,
        seq: 0,
    }
}
