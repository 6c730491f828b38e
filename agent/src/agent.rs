//! The running agent: wires the subscription, verification, probes, outbox,
//! heartbeats, certificate renewal and systemd notifications together.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore, mpsc};
use vantage_node::backoff::Backoff;
use vantage_node::client::{self, ClientIdentity, PinnedCa, Timeouts};
use vantage_node::policy_chain::load_policy;
use vantage_node::revocation::{self, Evidence, Marker};
use vantage_node::state::{DataDir, FORMAT, NodeState};
use vantage_proto::data::TruncatedData;
use vantage_proto::envelope::Envelope;
use vantage_proto::job::{Job, Refusal, SignedJob};
use vantage_proto::node::{GapEvent, GapReport, Heartbeat};
use vantage_proto::policy::Policy;
use vantage_proto::result::{MAX_RESULT_BYTES, ProbeResult, Status};

use crate::certs::{self, unix_ms, unix_now};
use crate::cli::Cli;
use crate::config::{Config, MessageForm};
use crate::outbox::Outbox;
use crate::owner::{OwnerPolicy, RateCap};
use crate::probe::{self, ProbeError};
use crate::reconcile::HubSeq;
use crate::replay::{Record, ReplaySet};
use crate::subscribe::{SubEvent, Subscription};
use crate::tally::Tally;
use crate::verify::Verifier;

/// The agent's exit code when the hub revoked the node's certificate. The
/// unit does not restart on it (`RestartPreventExitStatus=`): nothing the
/// node does can help, only a new enrolment.
pub const EXIT_REVOKED: u8 = 77;

/// Everything the agent's tasks share.
pub struct Agent {
    cfg: Config,
    data: DataDir,
    node: NodeState,
    ca: PinnedCa,
    identity: RwLock<ClientIdentity>,
    http: Mutex<Option<ureq::Agent>>,
    policy: Arc<crate::policy_update::PolicyChain>,
    outbox: Mutex<Outbox>,
    replay: ReplaySet,
    mandate_rate: crate::mandate_rate::NodeRate,
    hub_seq: HubSeq,
    probes: probe::Context,
    rate: Mutex<RateCap>,
    slots: Semaphore,
    outbox_changed: Notify,
    tally: Mutex<Tally>,
    state: Mutex<RunState>,
    started: Instant,
    /// Set once the hub has refused the node's certificate as revoked.
    revoked: std::sync::atomic::AtomicBool,
    /// Wakes the main task to stop with [`EXIT_REVOKED`].
    stop_revoked: Notify,
}

#[derive(Debug, Default, Clone)]
struct RunState {
    connected: bool,
    last_error: Option<String>,
    cert_problem: Option<String>,
}

impl Agent {
    /// Loads configuration-dependent state: node identity, policy, outbox, replay set.
    pub fn load(cfg: Config) -> anyhow::Result<Agent> {
        let data = DataDir::new(&cfg.data_dir);
        // Before anything else reads the directory: an older layout is read
        // only upgraded, a newer one (a release went back) not at all.
        let found = data.upgrade().map_err(|e| anyhow!("{e}"))?;
        if found < FORMAT {
            tracing::info!(
                "data directory {} upgraded from format {found} to {FORMAT}",
                cfg.data_dir.display()
            );
        }
        let node = data
            .read_node()
            .map_err(|e| anyhow!("{e}"))?
            .ok_or_else(|| {
                anyhow!(
                    "this node is not enrolled yet: {} is missing; vantage-provision enrols it",
                    data.node_path().display()
                )
            })?;
        let ca = PinnedCa::load(&cfg.ca).map_err(|e| anyhow!("{e}"))?;
        let identity = ClientIdentity::load(&data).map_err(|e| anyhow!("{e}"))?;
        let policy = load_policy(&cfg.policy)?;
        let policy = Arc::new(crate::policy_update::PolicyChain::open(
            policy,
            &cfg.data_dir,
        ));
        let outbox = Outbox::open(&cfg.data_dir.join("outbox"), cfg.outbox.max_results)
            .with_context(|| format!("cannot open the outbox in {}", cfg.data_dir.display()))?;
        let replay = ReplaySet::open(&cfg.data_dir.join("replay"))
            .with_context(|| format!("cannot open the replay set in {}", cfg.data_dir.display()))?;
        let probes =
            probe::Context::new(OwnerPolicy::new(&cfg.owner), cfg.trust_anchor.as_deref())?;
        Ok(Agent {
            rate: Mutex::new(RateCap::new(cfg.owner.max_probes_per_minute)),
            slots: Semaphore::new(cfg.probes.concurrency),
            data,
            node,
            ca,
            identity: RwLock::new(identity),
            http: Mutex::new(None),
            policy,
            outbox: Mutex::new(outbox),
            replay,
            mandate_rate: crate::mandate_rate::NodeRate::open(&cfg.data_dir),
            hub_seq: HubSeq::open(cfg.data_dir.join("hub-seq")),
            probes,
            outbox_changed: Notify::new(),
            tally: Mutex::new(Tally::default()),
            state: Mutex::new(RunState::default()),
            started: Instant::now(),
            revoked: std::sync::atomic::AtomicBool::new(false),
            stop_revoked: Notify::new(),
            cfg,
        })
    }

    fn last_id_path(&self) -> PathBuf {
        self.cfg.data_dir.join("last-event-id")
    }

    /// An HTTPS agent with the node's certificate for short calls to the hub.
    fn hub(&self) -> ureq::Agent {
        let mut cached = self.http.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .get_or_insert_with(|| {
                let id = self.identity.read().unwrap_or_else(|p| p.into_inner());
                client::agent(&self.ca, Some(&id), Timeouts::default())
            })
            .clone()
    }

    fn set_error(&self, e: impl Into<String>) {
        let e = e.into();
        tracing::warn!("{e}");
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error = Some(e);
    }

    fn subscribe_url(&self) -> String {
        let template = self
            .cfg
            .subscribe
            .url
            .clone()
            .unwrap_or_else(|| self.node.endpoints.subscribe.clone());
        vantage_proto::enrol::Endpoints::subscribe_url(&template, &self.node.channels)
    }

    /// POSTs JSON to the hub on a blocking thread; returns the status and
    /// body. An answer that shows the node revoked stops the agent.
    async fn post(self: &Arc<Self>, url: String, body: Vec<u8>) -> Result<(u16, String), String> {
        let agent = self.hub();
        let target = url.clone();
        let (result, evidence) = tokio::task::spawn_blocking(move || {
            let mut resp = match agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(&body[..])
            {
                Ok(r) => r,
                Err(e) => return (Err(format!("POST {url}: {e}")), revocation::from_error(&e)),
            };
            let status = resp.status().as_u16();
            let text = resp
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default();
            let evidence = revocation::from_answer(status, &text);
            (Ok((status, text)), evidence)
        })
        .await
        .map_err(|e| format!("POST thread: {e}"))?;
        if let Some(evidence) = evidence {
            let detail = match &result {
                Ok((status, text)) => format!("HTTP {status}: {}", crate::logging::one_line(text)),
                Err(e) => e.clone(),
            };
            self.revoked(evidence, &target, &detail);
        }
        result
    }

    /// The hub refused the node's certificate as revoked: say so once,
    /// leave the marker for `vantage-provision` (which tells the volunteer;
    /// the agent may not write the boot partition) and stop for good.
    /// Retrying could never help, and would only keep the node saying
    /// ENROLLED while it does nothing.
    fn revoked(&self, evidence: Evidence, url: &str, detail: &str) {
        if self.revoked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        tracing::error!(
            "this node ({}) has been revoked: {} ({url}: {detail}); stopping for good with exit \
             code {EXIT_REVOKED}; only a new enrolment (vantage-reset and a new token) brings \
             it back",
            self.node.node_id,
            evidence.describe()
        );
        let marker = Marker::new(&self.node.node_id, evidence, url, detail);
        if let Err(e) = marker.write(&self.data) {
            tracing::error!(
                "cannot write {}: {e}; the status file will not say REVOKED",
                Marker::path(&self.data).display()
            );
        }
        let _ = sd_notify::notify(
            false,
            &[sd_notify::NotifyState::Status(&format!(
                "revoked by the hub: {}",
                evidence.describe()
            ))],
        );
        self.stop_revoked.notify_one();
    }

    fn status_text(&self) -> String {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let depth = self
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .depth();
        if let Some(c) = st.cert_problem {
            return c;
        }
        format!(
            "{}; outbox {depth}{}",
            if st.connected {
                "subscribed to the hub"
            } else {
                "not connected to the hub"
            },
            st.last_error
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        )
    }

    // ---- orders -------------------------------------------------------

    async fn handle_message(self: &Arc<Self>, id: Option<String>, data: String) {
        self.handle_order(self.cfg.subscribe.message, &id, &data)
            .await;
        if let Some(id) = id
            && let Err(e) = crate::durable::write(&self.last_id_path(), id.as_bytes())
        {
            self.set_error(format!("cannot persist the last event id: {e}"));
        }
    }

    /// Verifies and schedules one order; an envelope's hub sequence number is
    /// remembered once it is handled (see `reconcile`).
    async fn handle_order(self: &Arc<Self>, form: MessageForm, id: &Option<String>, data: &str) {
        let signed = match form {
            MessageForm::Envelope => Envelope::from_json(data).map(|e| (Some(e.id), e.payload)),
            MessageForm::SignedJob => SignedJob::from_json(data.as_bytes()).map(|j| (None, j)),
        };
        match signed {
            Ok((seq, signed)) => {
                // Only an envelope around a quorum-signed job moves the position:
                // a made-up one with a huge id would otherwise make the hub
                // answer the next catch-up with a gap and skip real jobs.
                if self.accept(signed).await
                    && let Some(seq) = seq
                    && let Err(e) = self.hub_seq.advance(seq)
                {
                    self.set_error(format!("cannot persist the hub sequence number: {e}"));
                }
            }
            Err(e) => {
                // Keyed by what was wrong (malformed, not-canonical, ...), not just "invalid".
                let code = e.code();
                let reason = Refusal::Invalid(e);
                let first = self.tally(code, || {
                    format!("unreadable message, event id {id:?}: {reason}: {data:.200}")
                });
                if first {
                    tracing::warn!(
                        "refused an unreadable message {id:?}: {reason} ({code}); more like it are counted and reported with the next heartbeat"
                    );
                } else {
                    tracing::debug!("refused an unreadable message {id:?}: {reason}");
                }
            }
        }
    }

    /// Checks and schedules a job; true if a quorum of approvers signed it
    /// (whether or not it runs here).
    async fn accept(self: &Arc<Self>, signed: SignedJob) -> bool {
        let check = |policy: &Policy| {
            Verifier {
                policy,
                attrs: &self.node.attrs,
                allowed: &self.cfg.probes.allowed,
                replay: &self.replay,
                revoked: self.policy.revocations(),
                mandate_rate: &self.mandate_rate,
            }
            .check(&signed, unix_now())
        };
        let mut verdict = check(&self.policy.current());
        if let Err(reason) = &verdict
            && self.policy.refresh_may_help(reason)
        {
            tracing::info!("{reason}: asking the hub for a newer approval policy");
            self.refresh_policy().await;
            verdict = check(&self.policy.current());
        }
        match verdict {
            Err(reason) => {
                let job_id = signed.job_id().unwrap_or("-").to_string();
                let kind = Job::from_value(&signed.job).ok().map(|j| j.probe.kind());
                let code = reason.code();
                // Without a quorum's signatures anyone may have made it up, and a
                // replay is a copy of a job already reported: counted, not queued.
                if !reason.is_authentic() || matches!(reason, Refusal::Replayed(_)) {
                    if self.tally(code, || format!("job {job_id}: {reason}")) {
                        tracing::warn!(
                            "refused job {job_id}: {reason} ({code}); more like it are counted and reported with the next heartbeat"
                        );
                    } else {
                        tracing::debug!("refused job {job_id}: {reason} ({code})");
                    }
                } else {
                    tracing::warn!("refused job {job_id}: {reason} ({code})");
                    self.record(refused_result(&self.node.node_id, &job_id, kind, &reason));
                }
                reason.is_authentic()
            }
            Ok(job) => {
                let record = Record {
                    expires: job.expires,
                    signed: serde_json::to_value(&signed).unwrap_or(Value::Null),
                };
                if let Err(e) = self.replay.insert(&job.id, &record) {
                    // Without a durable replay record the job could run twice: do not run it.
                    self.set_error(format!(
                        "cannot record job {} in the replay set: {e}",
                        job.id
                    ));
                    return true;
                }
                tracing::info!("accepted job {}: {}", job.id, job.describe());
                let me = self.clone();
                tokio::spawn(async move { me.schedule(job, 0, None).await });
                true
            }
        }
    }

    /// Runs a job at its time (after `not_before`, plus a random delay inside
    /// its spread window), and again every `repeat_secs` until it expires.
    async fn schedule(self: Arc<Self>, job: Job, first_seq: u32, first_at: Option<u64>) {
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

    async fn run_once(self: &Arc<Self>, job: &Job, seq: u32) {
        let Ok(_slot) = self.slots.acquire().await else {
            return;
        };
        let kind = job.probe.kind();
        if let Err(d) = self
            .rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(Instant::now())
        {
            let reason = Refusal::RateLimited(d.to_string());
            tracing::warn!("refused job {} run {seq}: {reason}", job.id);
            let mut r = refused_result(&self.node.node_id, &job.id, Some(kind), &reason);
            r.seq = seq;
            self.record(r);
            return;
        }
        let started_ms = unix_ms();
        let t = Instant::now();
        let outcome = probe::run(&job.probe, &self.probes, self.cfg.probes.max_time.get()).await;
        let duration_ms = t.elapsed().as_millis() as u64;
        let (status, reason, code, data) = match outcome {
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
        };
        tracing::info!(
            "job {} run {seq}: {:?}{}",
            job.id,
            status,
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        self.record(ProbeResult {
            job_id: job.id.clone(),
            node_id: self.node.node_id.clone(),
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

    /// Counts a refusal of stream data; true if it is the first of its code
    /// in this reporting interval.
    fn tally(&self, code: &str, describe: impl FnOnce() -> String) -> bool {
        self.tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(code, unix_ms(), describe)
    }

    /// Writes a result durably to the outbox and wakes the sender.
    fn record(&self, mut result: ProbeResult) {
        let cap = self.cfg.probes.max_result_bytes.min(MAX_RESULT_BYTES);
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
            let mut o = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
            let before = o.dropped();
            let pushed = o.push(&bytes);
            (pushed, o.dropped() - before, o.dropped())
        };
        if dropped > 0 {
            tracing::warn!(
                "the outbox is full ({} results): dropped the oldest {dropped} undelivered result(s) ({total} dropped in all)",
                self.cfg.outbox.max_results
            );
        }
        match pushed {
            Ok(_) => self.outbox_changed.notify_one(),
            Err(e) => self.set_error(format!(
                "cannot write a result of job {} to the outbox: {e}",
                result.job_id
            )),
        }
    }

    /// Resumes repeated jobs accepted before a restart.
    fn resume(self: &Arc<Self>) {
        let now = unix_now();
        let records = match self.replay.prune_and_list(now) {
            Ok(r) => r,
            Err(e) => {
                self.set_error(format!("cannot read the replay set: {e}"));
                return;
            }
        };
        for rec in records {
            let Ok(signed) = serde_json::from_value::<SignedJob>(rec.signed) else {
                continue;
            };
            // Re-check the approvals: the policy file may have changed since.
            let Ok(job) = signed.verify(&self.policy.current(), now) else {
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
            let me = self.clone();
            tokio::spawn(async move { me.schedule(job, next as u32, Some(at)).await });
        }
    }

    // ---- delivery -----------------------------------------------------

    async fn sender(self: Arc<Self>) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        loop {
            let batch = self
                .outbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .peek(32)
                .unwrap_or_default();
            if batch.is_empty() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(60), self.outbox_changed.notified())
                        .await;
                continue;
            }
            let mut failed = false;
            for entry in batch {
                match self
                    .post(self.node.endpoints.results.clone(), entry.body.clone())
                    .await
                {
                    Ok((200..=299, _)) => {
                        backoff.reset();
                        if let Err(e) = self
                            .outbox
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .ack(entry.seq)
                        {
                            self.set_error(format!("cannot delete a delivered result: {e}"));
                        }
                    }
                    Ok((status, body))
                        if (400..500).contains(&status) && status != 408 && status != 429 =>
                    {
                        // The hub will never take this result; keeping it would block the rest.
                        self.set_error(format!(
                            "the hub rejected a result (HTTP {status}: {}); dropped it",
                            crate::logging::one_line(&body)
                        ));
                        let _ = self
                            .outbox
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .reject(entry.seq);
                    }
                    Ok((status, body)) => {
                        self.set_error(format!(
                            "the hub could not store a result (HTTP {status}: {}); will retry",
                            crate::logging::one_line(&body)
                        ));
                        failed = true;
                        break;
                    }
                    Err(e) => {
                        self.set_error(format!("cannot deliver results: {e}; will retry"));
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                let d = backoff.next_delay();
                let _ = tokio::time::timeout(d, self.outbox_changed.notified()).await;
            }
        }
    }

    /// Takes what verifies of the hub's policy chain (see `policy_update`).
    async fn refresh_policy(self: &Arc<Self>) {
        let (chain, http, hub) = (
            self.policy.clone(),
            self.hub(),
            self.node.endpoints.hub.clone(),
        );
        if let Err(e) = crate::policy_update::refresh(chain, http, hub).await {
            self.set_error(e);
        }
    }

    async fn heartbeat(self: Arc<Self>) {
        loop {
            self.refresh_policy().await;
            let (depth, dropped) = {
                let o = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
                (o.depth() as u64, o.dropped())
            };
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let refused = self
                .tally
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .summary(unix_ms());
            let hb = Heartbeat {
                version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_secs: self.started.elapsed().as_secs(),
                outbox_depth: depth,
                outbox_dropped: dropped,
                last_error: st.cert_problem.or(st.last_error),
                policy_serial: Some(self.policy.serial()),
                refused: refused.clone(),
            };
            let body = serde_json::to_vec(&hb).unwrap_or_default();
            match self.post(self.node.endpoints.heartbeat.clone(), body).await {
                Ok((200..=299, _)) => {
                    if let Some(r) = refused {
                        tracing::info!(
                            "reported {} refused stream message(s) to the hub: {:?}",
                            r.total(),
                            r.counts
                        );
                        self.tally
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .reported(&r);
                    }
                }
                Ok((s, b)) => {
                    tracing::warn!("heartbeat: HTTP {s}: {}", crate::logging::one_line(&b))
                }
                Err(e) => tracing::warn!("heartbeat: {e}"),
            }
            tokio::time::sleep(self.cfg.heartbeat.get()).await;
        }
    }

    async fn report_gap(self: &Arc<Self>, report: GapReport) {
        let body = serde_json::to_vec(&report).unwrap_or_default();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..5 {
            match self
                .post(self.node.endpoints.gap.clone(), body.clone())
                .await
            {
                Ok((200..=299, _)) => return,
                Ok((s, b)) => {
                    tracing::warn!("gap report: HTTP {s}: {}", crate::logging::one_line(&b))
                }
                Err(e) => tracing::warn!("gap report: {e}"),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        self.set_error(format!("could not report a gap after {}", report.requested));
    }

    // ---- certificate --------------------------------------------------

    async fn renewal(self: Arc<Self>) {
        let mut backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(3600));
        loop {
            let cert = self.data.read_cert().ok().flatten().unwrap_or_default();
            let validity = match certs::validity(&cert) {
                Ok(v) => v,
                Err(e) => {
                    self.set_error(format!("cannot read the node certificate: {e}"));
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    continue;
                }
            };
            let now = unix_now();
            if validity.expired(now) {
                let msg = format!(
                    "the node certificate expired at {} (Unix time) while the node was offline; \
                     the hub refuses it and renewal needs a valid one: re-enrol the node \
                     (vantage-provision) to get a new certificate",
                    validity.not_after
                );
                tracing::error!("{msg}");
                self.state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .cert_problem = Some("certificate expired: re-enrol the node".into());
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&msg)]);
                // Pick up a certificate written by a new enrolment.
                tokio::time::sleep(Duration::from_secs(60)).await;
                self.reload_identity();
                continue;
            }
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .cert_problem = None;
            let at = validity.renew_at(fastrand::f64());
            if at > now {
                tokio::time::sleep(Duration::from_secs((at - now).min(3600))).await;
                continue;
            }
            match self.renew().await {
                Ok(()) => {
                    backoff.reset();
                    tracing::info!("renewed the node certificate");
                }
                Err(e) => {
                    self.set_error(format!("certificate renewal failed: {e}; will retry"));
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Renews through the node library's one renewal path, which refuses a
    /// certificate for another key than the node's and keeps the current one.
    async fn renew(self: &Arc<Self>) -> anyhow::Result<()> {
        let (data, ca) = (self.data.clone(), self.ca.clone());
        tokio::task::spawn_blocking(move || {
            vantage_node::enrol::renew_stored(&data, &ca, Timeouts::default())
        })
        .await??;
        self.reload_identity();
        Ok(())
    }

    fn reload_identity(&self) {
        if let Ok(id) = ClientIdentity::load(&self.data) {
            *self.identity.write().unwrap_or_else(|p| p.into_inner()) = id;
            *self.http.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    // ---- subscription -------------------------------------------------

    fn start_subscription(self: &Arc<Self>) -> mpsc::Receiver<SubEvent> {
        let (tx, rx) = mpsc::channel(64);
        let last_id = crate::subscribe::read_last_id(&self.last_id_path());
        let me = self.clone();
        let sub = Subscription {
            url: self.subscribe_url(),
            cfg: self.cfg.subscribe.clone(),
            last_id,
            connected: false,
            hub_stream: self.cfg.subscribe.url.is_none(),
            agent: Box::new(move |read_timeout| {
                let id = me
                    .identity
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                Ok(ureq::Agent::config_builder()
                    .tls_config(client::tls_config(&me.ca, Some(&id)))
                    .https_only(true)
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .user_agent(concat!("vantage-agent/", env!("CARGO_PKG_VERSION")))
                    .timeout_connect(Some(Duration::from_secs(15)))
                    .timeout_per_read(Some(read_timeout))
                    .build()
                    .new_agent())
            }),
        };
        std::thread::Builder::new()
            .name("subscribe".into())
            .spawn(move || sub.run(tx))
            .expect("spawning the subscription thread");
        rx
    }

    async fn dispatch(self: Arc<Self>, mut rx: mpsc::Receiver<SubEvent>) {
        while let Some(ev) = rx.recv().await {
            match ev {
                SubEvent::Connected(url) => {
                    // Long-poll reconnects after every answer: act on changes only.
                    let fresh = {
                        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                        !std::mem::replace(&mut st.connected, true)
                    };
                    if fresh {
                        tracing::info!("subscribed: {url}");
                        let me = self.clone();
                        tokio::spawn(async move { me.refresh_policy().await });
                        // Not the hub's own stream: ask the hub what that one cannot tell.
                        if self.cfg.subscribe.url.is_some() {
                            self.reconcile().await;
                        }
                    }
                }
                SubEvent::Lost(why) => {
                    self.state
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .connected = false;
                    self.set_error(format!("subscription: {why}"));
                }
                SubEvent::Message { id, data } => self.handle_message(id, data).await,
                SubEvent::Revoked {
                    evidence,
                    url,
                    detail,
                } => self.revoked(evidence, &url, &detail),
                SubEvent::Position(id) => {
                    if let Err(e) = crate::durable::write(&self.last_id_path(), id.as_bytes()) {
                        self.set_error(format!("cannot persist the last event id: {e}"));
                    }
                }
                SubEvent::Gap { id, gap } => {
                    self.gap(gap);
                    if let Some(id) = id {
                        let _ = crate::durable::write(&self.last_id_path(), id.as_bytes());
                    }
                }
            }
        }
    }

    /// Logs a gap the server reported and reports it to the hub in the background.
    fn gap(self: &Arc<Self>, gap: GapEvent) {
        tracing::warn!(
            "the hub lost messages after {} (oldest held: {})",
            gap.requested,
            gap.oldest
        );
        let me = self.clone();
        let report = GapReport {
            requested: gap.requested,
            oldest: Some(gap.oldest),
            detail: None,
        };
        tokio::spawn(async move { me.report_gap(report).await });
    }

    /// Asks the hub, by long-poll from the highest hub sequence number handled,
    /// for what the stream from elsewhere (Nchan) may have skipped: jobs go
    /// through the normal checks (the replay set drops duplicates), a gap is
    /// reported. Batch by batch until the hub has nothing more.
    async fn reconcile(self: &Arc<Self>) {
        let url = crate::reconcile::poll_url(&vantage_proto::enrol::Endpoints::subscribe_url(
            &self.node.endpoints.subscribe,
            &self.node.channels,
        ));
        loop {
            let (agent, url2, after) = (self.hub(), url.clone(), self.hub_seq.get());
            let fetched =
                tokio::task::spawn_blocking(move || crate::reconcile::fetch(&agent, &url2, after))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
            let events = match fetched {
                Ok(ev) => ev,
                Err(e) => {
                    self.set_error(format!(
                        "catching up from the hub: {e}; will retry on the next reconnect"
                    ));
                    return;
                }
            };
            let mut jobs = 0usize;
            for ev in events {
                match ev {
                    SubEvent::Message { id, data } => {
                        jobs += 1;
                        self.handle_order(MessageForm::Envelope, &id, &data).await;
                        // Also past an unreadable envelope, so the next batch moves on.
                        if let Some(seq) = id.and_then(|i| i.parse().ok())
                            && let Err(e) = self.hub_seq.advance(seq)
                        {
                            self.set_error(format!("cannot persist the hub sequence number: {e}"));
                        }
                    }
                    SubEvent::Gap { id, gap } => {
                        self.gap(gap);
                        if let Some(seq) = id.and_then(|i| i.parse().ok())
                            && let Err(e) = self.hub_seq.set(seq)
                        {
                            self.set_error(format!("cannot persist the hub sequence number: {e}"));
                        }
                    }
                    SubEvent::Position(p) => {
                        if let Ok(seq) = p.parse()
                            && let Err(e) = self.hub_seq.advance(seq)
                        {
                            self.set_error(format!("cannot persist the hub sequence number: {e}"));
                        }
                    }
                    SubEvent::Connected(_) | SubEvent::Lost(_) | SubEvent::Revoked { .. } => {}
                }
            }
            if jobs == 0 || self.hub_seq.get() == after {
                return;
            }
            tracing::info!("caught up {jobs} message(s) from the hub");
        }
    }

    /// Watchdog pings and status text for systemd; nothing (and no wake-ups)
    /// when not started by systemd.
    async fn systemd(self: Arc<Self>) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
        let mut usec = 0u64;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
        let period = if watchdog {
            Duration::from_micros(usec / 2).min(Duration::from_secs(30))
        } else {
            Duration::from_secs(30)
        };
        let mut last = String::new();
        loop {
            let mut states = Vec::new();
            if watchdog {
                states.push(sd_notify::NotifyState::Watchdog);
            }
            let text = self.status_text();
            if text != last {
                states.push(sd_notify::NotifyState::Status(&text));
            }
            if !states.is_empty() {
                let _ = sd_notify::notify(false, &states);
            }
            last = text;
            tokio::time::sleep(period).await;
        }
    }
}

fn refused_result(
    node_id: &str,
    job_id: &str,
    kind: Option<vantage_proto::probe::ProbeKind>,
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

/// `vantage-agent run`.
pub fn main(cli: &Cli) -> ExitCode {
    crate::logging::init();
    let result = (|| -> anyhow::Result<Stopped> {
        let cfg = cli.load_config()?;
        let agent = Arc::new(Agent::load(cfg)?);
        // One thread is plenty for a node's probes; it keeps the idle footprint small.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(8)
            .build()?;
        rt.block_on(run(agent))
    })();
    match result {
        Ok(Stopped::Signal) => ExitCode::SUCCESS,
        Ok(Stopped::Revoked) => ExitCode::from(EXIT_REVOKED),
        Err(e) => {
            tracing::error!("{e:#}");
            let _ = sd_notify::notify(
                false,
                &[sd_notify::NotifyState::Status(&format!("failed: {e:#}"))],
            );
            eprintln!("vantage-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Why a running agent stopped.
enum Stopped {
    /// SIGTERM or Ctrl-C.
    Signal,
    /// The hub revoked the node's certificate.
    Revoked,
}

async fn run(agent: Arc<Agent>) -> anyhow::Result<Stopped> {
    tracing::info!(
        "vantage-agent {} starting as node {} (channels {})",
        env!("CARGO_PKG_VERSION"),
        agent.node.node_id,
        agent.node.channels.join(",")
    );
    agent.resume();
    let rx = agent.start_subscription();
    tokio::spawn(agent.clone().dispatch(rx));
    tokio::spawn(agent.clone().sender());
    tokio::spawn(agent.clone().heartbeat());
    tokio::spawn(agent.clone().renewal());
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tokio::spawn(agent.clone().systemd());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stopped = tokio::select! {
        _ = term.recv() => Stopped::Signal,
        _ = tokio::signal::ctrl_c() => Stopped::Signal,
        () = agent.stop_revoked.notified() => Stopped::Revoked,
    };
    tracing::info!("stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    Ok(stopped)
}
