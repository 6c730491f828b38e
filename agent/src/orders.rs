//! Orders as they arrive: read the message, verify the signed job against
//! the approval policy and this node's checks (`verify`), record it in the
//! replay set and hand it to `jobs`. A refusal of a quorum-signed job becomes
//! a `refused` result; what anyone could have sent is counted (`tally`).

use serde_json::Value;
use vantage_proto::channel::NodeAttrs;
use vantage_proto::envelope::Envelope;
use vantage_proto::job::{Job, Refusal, SignedJob};
use vantage_proto::owner::OwnerDigest;
use vantage_proto::policy::Policy;

use crate::approvals::Approvals;
use crate::certs::{unix_ms, unix_now};
use crate::config::MessageForm;
use crate::health::Health;
use crate::jobs::Jobs;
use crate::mandate_rate::NodeRate;
use crate::reach::Caps;
use crate::replay::{Record, ReplaySet};
use crate::results::{self, Results};
use crate::tally::Refusals;
use crate::verify::Verifier;

/// What orders are checked against, and where they go.
pub struct Orders {
    /// This node's id (in refusal results).
    pub node_id: String,
    /// This node's attributes (for the job's selection).
    pub attrs: NodeAttrs,
    /// What the node measured it can do (for `cap=` in selections).
    pub caps: Caps,
    /// The owner's policy as reported to the hub (the probe kinds allowed).
    pub owner: OwnerDigest,
    /// Jobs already accepted.
    pub replay: ReplaySet,
    /// Jobs run here under each mandate (its per-node rate).
    pub mandate_rate: NodeRate,
    /// The approval policy.
    pub approvals: Approvals,
    /// Counts refusals of what anyone could have sent.
    pub refusals: Refusals,
    /// Where refusals of signed jobs go.
    pub results: Results,
    /// Runs accepted jobs.
    pub jobs: Jobs,
    /// Where errors go.
    pub health: Health,
}

impl Orders {
    /// Verifies and schedules one order; returns the hub sequence number of
    /// an envelope around a quorum-signed job, which moves the catch-up
    /// position (see `reconcile`).
    pub async fn handle(&self, form: MessageForm, id: &Option<String>, data: &str) -> Option<u64> {
        let signed = match form {
            MessageForm::Envelope => Envelope::from_json(data).map(|e| (Some(e.id), e.payload)),
            MessageForm::SignedJob => SignedJob::from_json(data.as_bytes()).map(|j| (None, j)),
        };
        match signed {
            // Only an envelope around a quorum-signed job moves the position:
            // a made-up one with a huge id would otherwise make the hub
            // answer the next catch-up with a gap and skip real jobs.
            Ok((seq, signed)) => self.accept(signed).await.then_some(seq).flatten(),
            Err(e) => {
                // Keyed by what was wrong (malformed, not-canonical, ...), not just "invalid".
                let code = e.code();
                let reason = Refusal::Invalid(e);
                let first = self.refusals.add(code, unix_ms(), || {
                    format!("unreadable message, event id {id:?}: {reason}: {data:.200}")
                });
                if first {
                    tracing::warn!(
                        "refused an unreadable message {id:?}: {reason} ({code}); more like it are counted and reported with the next heartbeat"
                    );
                } else {
                    tracing::debug!("refused an unreadable message {id:?}: {reason}");
                }
                None
            }
        }
    }

    /// Every check of `signed` under `policy`, now.
    fn verify(&self, signed: &SignedJob, policy: &Policy) -> Result<Job, Refusal> {
        Verifier {
            policy,
            attrs: &self.attrs,
            caps: self.caps.get().as_ref(),
            owner: &self.owner,
            replay: &self.replay,
            revoked: self.approvals.revocations(),
            mandate_rate: &self.mandate_rate,
        }
        .check(signed, unix_now())
    }

    /// Checks and schedules a job; true if a quorum of approvers signed it
    /// (whether or not it runs here).
    async fn accept(&self, signed: SignedJob) -> bool {
        let mut verdict = self.verify(&signed, &self.approvals.current());
        if let Err(reason) = &verdict
            && self.approvals.refresh_may_help(reason)
        {
            tracing::info!("{reason}: asking the hub for a newer approval policy");
            self.approvals.refresh().await;
            verdict = self.verify(&signed, &self.approvals.current());
        }
        match verdict {
            Err(reason) => self.refuse(&signed, &reason),
            Ok(job) => {
                self.admit(&signed, job);
                true
            }
        }
    }

    /// Reports a refused job; true if it was quorum-signed nevertheless.
    fn refuse(&self, signed: &SignedJob, reason: &Refusal) -> bool {
        let job_id = signed.job_id().unwrap_or("-").to_string();
        let kind = Job::from_value(&signed.job).ok().map(|j| j.probe.kind());
        let code = reason.code();
        // Without a quorum's signatures anyone may have made it up, and a
        // replay is a copy of a job already reported: counted, not queued.
        if !reason.is_authentic() || matches!(reason, Refusal::Replayed(_)) {
            if self
                .refusals
                .add(code, unix_ms(), || format!("job {job_id}: {reason}"))
            {
                tracing::warn!(
                    "refused job {job_id}: {reason} ({code}); more like it are counted and reported with the next heartbeat"
                );
            } else {
                tracing::debug!("refused job {job_id}: {reason} ({code})");
            }
        } else {
            tracing::warn!("refused job {job_id}: {reason} ({code})");
            self.results
                .record(results::refused(&self.node_id, &job_id, kind, reason));
        }
        reason.is_authentic()
    }

    /// Records an accepted job in the replay set, then starts it.
    fn admit(&self, signed: &SignedJob, job: Job) {
        let record = Record {
            expires: job.expires,
            signed: serde_json::to_value(signed).unwrap_or(Value::Null),
        };
        if let Err(e) = self.replay.insert(&job.id, &record) {
            // Without a durable replay record the job could run twice: do not run it.
            self.health.set_error(format!(
                "cannot record job {} in the replay set: {e}",
                job.id
            ));
            return;
        }
        tracing::info!("accepted job {}: {}", job.id, job.describe());
        self.jobs.start(job, 0, None);
    }

    /// Resumes repeated jobs accepted before a restart.
    pub fn resume(&self) {
        let now = unix_now();
        let records = match self.replay.prune_and_list(now) {
            Ok(r) => r,
            Err(e) => {
                self.health
                    .set_error(format!("cannot read the replay set: {e}"));
                return;
            }
        };
        for rec in records {
            let Ok(signed) = serde_json::from_value::<SignedJob>(rec.signed) else {
                continue;
            };
            // Re-check the approvals: the policy file may have changed since.
            let Ok(job) = signed.verify(&self.approvals.current(), now) else {
                continue;
            };
            let Some(r) = job.repeat_secs.filter(|r| *r > 0) else {
                continue;
            };
            let next = if now <= job.not_before {
                0
            } else {
                (now - job.not_before).div_ceil(r)
            };
            let at = job.not_before + next * r;
            tracing::info!("resuming repeated job {} at run {next}", job.id);
            self.jobs.start(job, next as u32, Some(at));
        }
    }
}
