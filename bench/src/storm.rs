//! The reconnect storm: N nodes subscribed to the hub, each with its own TLS
//! connection and certificate, reconnecting as the agent does (exponential
//! backoff with full jitter, started over after a connection the hub took,
//! `Retry-After` honoured). The hub is stopped (SIGTERM, then separately
//! SIGKILL), a job is appended to its log while it is down, and it is
//! started again on the same address. Measured from the stop: when the hub
//! listens again, when all N are subscribed again, when all N have the job,
//! the hub's peak CPU and memory during the storm, how many attempts it
//! refused with 503, and the curve of subscribed nodes over time.

use crate::client::{Refused, node_source, subscribe_from};
use crate::pki::{Creds, Network, channels_of};
use crate::procs::usage;
use crate::servers::{Running, start_hub_at};
use anyhow::{Context, Result};
use rustls::ClientConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use vantage_node::backoff::Backoff;

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Subscribed nodes.
    pub nodes: usize,
    /// The `vantage-hub` executable.
    pub hub_bin: PathBuf,
    /// Scratch directory.
    pub dir: PathBuf,
    /// TLS handshakes in flight during the first ramp (not during the storm:
    /// then every node reconnects on its own schedule, as agents do). Each
    /// node connects from its own loopback address ([`node_source`]).
    pub concurrency: usize,
    /// The agent's reconnect backoff (its defaults: 1 s doubling to 300 s).
    pub min_backoff: Duration,
    /// See `min_backoff`.
    pub max_backoff: Duration,
    /// Longest wait for the network to recover.
    pub timeout: Duration,
    /// More `vantage-hub serve` options.
    pub hub_args: Vec<String>,
}

/// How the hub goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, waiting for it to exit (a restart by systemd).
    Restart,
    /// SIGKILL (a crash).
    Kill,
}

/// One storm.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// "restart" or "SIGKILL".
    pub stop: String,
    /// Nodes.
    pub nodes: usize,
    /// From the stop until the new hub listens.
    pub down_secs: f64,
    /// From the stop until all nodes are subscribed again (NaN if never).
    pub back_secs: f64,
    /// Nodes subscribed again within the timeout.
    pub resubscribed: usize,
    /// From the stop until every node has the job appended while down.
    pub caught_up_secs: f64,
    /// Nodes that have that job.
    pub caught_up: usize,
    /// Per node, the time from the stop to its job: median and 99th percentile.
    pub p50_secs: f64,
    /// See `p50_secs`.
    pub p99_secs: f64,
    /// Attempts the hub answered 503 (with `Retry-After`).
    pub busy: u64,
    /// Attempts that failed otherwise (refused connection, handshake, reset).
    pub failed: u64,
    /// The new hub's CPU time until every node had the job, seconds.
    pub cpu_secs: f64,
    /// Its highest CPU use over a 0.5 s sample, percent of one core.
    pub peak_cpu_pct: f64,
    /// Its peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Subscribed nodes at each whole second after the stop.
    pub curve: Vec<usize>,
}

/// What every node task shares.
struct Shared {
    subscribed: AtomicUsize,
    busy: AtomicU64,
    failed: AtomicU64,
    /// Per node, milliseconds after `epoch` when it got the storm job (0: not yet).
    got_ms: Vec<AtomicU64>,
    /// Per node, the `Last-Event-ID` of its last subscription the hub took,
    /// and the ids of the events it got on it (for the report of a miss).
    seen: Vec<std::sync::Mutex<(Option<String>, Vec<String>)>>,
    epoch: Instant,
    changed: Notify,
}

const MARK: &str = "storm-job";

/// Runs the storm once per way of stopping, on one network of `opts.nodes`.
pub async fn run(opts: &Opts) -> Result<Vec<Row>> {
    let net = Arc::new(Network::create(&opts.dir, opts.nodes)?);
    eprintln!("bench: {} node certificates issued", opts.nodes);
    let mut rows = Vec::new();
    for stop in [Stop::Restart, Stop::Kill] {
        rows.push(storm(opts, &net, stop).await?);
        eprintln!("bench: {:?}", rows.last());
    }
    Ok(rows)
}

fn hub_args(opts: &Opts) -> Vec<&str> {
    opts.hub_args.iter().map(String::as_str).collect()
}

async fn storm(opts: &Opts, net: &Arc<Network>, stop: Stop) -> Result<Row> {
    let addr: SocketAddr = format!("127.0.0.1:{}", crate::procs::free_port()?).parse()?;
    let hub = start_hub_at(&opts.hub_bin, net.dd.root(), addr, None, &hub_args(opts))?;
    let shared = Arc::new(Shared {
        subscribed: AtomicUsize::new(0),
        busy: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        got_ms: (0..opts.nodes).map(|_| AtomicU64::new(0)).collect(),
        seen: (0..opts.nodes).map(|_| Default::default()).collect(),
        epoch: Instant::now(),
        changed: Notify::new(),
    });
    let mut tasks = spawn_nodes(opts, net, addr, &shared);
    wait_until(&shared, opts.timeout, |s| {
        s.subscribed.load(Ordering::SeqCst) >= opts.nodes
    })
    .await
    .context("the nodes did not all subscribe before the storm")?;
    eprintln!(
        "bench: {} nodes subscribed; stopping the hub ({stop:?})",
        opts.nodes
    );
    let (row, _hub) = stop_and_recover(opts, net, addr, hub, stop, &shared).await?;
    tasks.shutdown().await;
    Ok(row)
}

/// Stops the hub, appends the job, starts it again and watches the nodes
/// come back; returns the row and the new hub (stopped when dropped).
async fn stop_and_recover(
    opts: &Opts,
    net: &Network,
    addr: SocketAddr,
    hub: Running,
    stop: Stop,
    shared: &Arc<Shared>,
) -> Result<(Row, Running)> {
    let t0 = Instant::now();
    let t0_ms = ms_since(shared.epoch, t0);
    if stop == Stop::Kill {
        hub.server.signal(9)?;
    }
    drop(hub);
    let (_, db) = net.dd.open()?;
    let payload = format!(r#"{{"bench":"{MARK}"}}"#);
    db.append(vantage_hub::datadir::now(), &["all".into()], &payload, None)?;
    drop(db);
    let hub = start_hub_at(&opts.hub_bin, net.dd.root(), addr, None, &hub_args(opts))?;
    let down_secs = t0.elapsed().as_secs_f64();
    let pid = Arc::new(AtomicU32::new(hub.server.pid()));
    let sampler = tokio::spawn(sample(shared.clone(), pid, t0, t0 + opts.timeout));
    let all_back = wait_until(shared, opts.timeout, |s| {
        s.subscribed.load(Ordering::SeqCst) >= opts.nodes
    })
    .await
    .map(|()| t0.elapsed().as_secs_f64());
    if wait_until(shared, opts.timeout, |s| caught(s) >= opts.nodes)
        .await
        .is_err()
    {
        report_misses(shared);
    }
    let caught_up_secs = t0.elapsed().as_secs_f64();
    let samples = sampler.await.unwrap_or_default();
    let end = usage(hub.server.pid())?;
    let mut per_node: Vec<f64> = shared
        .got_ms
        .iter()
        .map(|g| g.load(Ordering::SeqCst))
        .filter(|&g| g > 0)
        .map(|g| g.saturating_sub(t0_ms) as f64 / 1e3)
        .collect();
    per_node.sort_by(f64::total_cmp);
    let row = Row {
        stop: match stop {
            Stop::Restart => "restart (SIGTERM)".into(),
            Stop::Kill => "SIGKILL".into(),
        },
        nodes: opts.nodes,
        down_secs,
        back_secs: all_back.unwrap_or(f64::NAN),
        resubscribed: shared.subscribed.load(Ordering::SeqCst),
        caught_up_secs,
        caught_up: per_node.len(),
        p50_secs: crate::fanout::pct(&per_node, 0.5),
        p99_secs: crate::fanout::pct(&per_node, 0.99),
        busy: shared.busy.swap(0, Ordering::SeqCst),
        failed: shared.failed.swap(0, Ordering::SeqCst),
        cpu_secs: end.cpu_secs,
        peak_cpu_pct: samples.peak_cpu_pct,
        peak_rss_mib: end.hwm_kib as f64 / 1024.0,
        curve: samples.curve,
    };
    Ok((row, hub))
}

/// Says which nodes did not get the job, from which position they last
/// subscribed and what they got there.
fn report_misses(shared: &Shared) {
    for (i, got) in shared.got_ms.iter().enumerate() {
        if got.load(Ordering::SeqCst) == 0 {
            let seen = shared.seen[i].lock().expect("seen");
            eprintln!(
                "bench: node {i} has not got the job: its last subscription resumed from {:?} and got events {:?}",
                seen.0, seen.1
            );
        }
    }
}

fn ms_since(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch).as_millis() as u64
}

fn caught(s: &Shared) -> usize {
    s.got_ms
        .iter()
        .filter(|g| g.load(Ordering::SeqCst) > 0)
        .count()
}

/// Waits until `done` holds, re-checking whenever a node's state changes.
async fn wait_until(
    s: &Arc<Shared>,
    timeout: Duration,
    done: impl Fn(&Shared) -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let changed = s.changed.notified();
        if done(s) {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            anyhow::bail!("not within {timeout:?}");
        }
    }
}

#[derive(Default)]
struct Samples {
    curve: Vec<usize>,
    peak_cpu_pct: f64,
}

/// Samples the subscribed count each second after the stop and the hub's
/// CPU every 0.5 s, until every node has the job or `until`.
async fn sample(shared: Arc<Shared>, pid: Arc<AtomicU32>, t0: Instant, until: Instant) -> Samples {
    let mut out = Samples::default();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last = (Instant::now(), 0.0);
    loop {
        tick.tick().await;
        let now = Instant::now();
        if let Ok(u) = usage(pid.load(Ordering::SeqCst)) {
            let dt = now.duration_since(last.0).as_secs_f64();
            if dt > 0.0 && last.1 > 0.0 {
                out.peak_cpu_pct = out.peak_cpu_pct.max((u.cpu_secs - last.1) / dt * 100.0);
            }
            last = (now, u.cpu_secs);
        }
        let second = now.duration_since(t0).as_secs() as usize;
        if out.curve.len() <= second {
            out.curve
                .resize(second + 1, shared.subscribed.load(Ordering::SeqCst));
        }
        if caught(&shared) >= shared.got_ms.len() || now > until {
            return out;
        }
    }
}

fn spawn_nodes(
    opts: &Opts,
    net: &Arc<Network>,
    addr: SocketAddr,
    shared: &Arc<Shared>,
) -> JoinSet<()> {
    let ramp = Arc::new(Semaphore::new(opts.concurrency));
    let mut tasks = JoinSet::new();
    for (i, creds) in net.nodes.iter().take(opts.nodes).enumerate() {
        let node = NodeLoop {
            i,
            tls: match net.client_tls(creds) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("{}: {e:#}", creds.name);
                    continue;
                }
            },
            path: path_of(creds),
            addr,
            shared: shared.clone(),
            backoff: Backoff::new(opts.min_backoff, opts.max_backoff),
        };
        tasks.spawn(node.run(ramp.clone()));
    }
    tasks
}

fn path_of(creds: &Creds) -> String {
    format!("/v1/sub/{}", channels_of(&creds.name))
}

/// One node: subscribe, read, reconnect, as the agent does.
struct NodeLoop {
    i: usize,
    tls: Arc<ClientConfig>,
    path: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    backoff: Backoff,
}

impl NodeLoop {
    async fn run(mut self, ramp: Arc<Semaphore>) {
        let mut last: Option<String> = None;
        let mut ramping = Some(ramp.acquire_owned().await);
        loop {
            let src = Some(node_source(self.i));
            match subscribe_from(
                src,
                self.tls.clone(),
                self.addr,
                &self.path,
                last.as_deref(),
            )
            .await
            {
                Ok(mut sub) => {
                    drop(ramping.take());
                    *self.seen() = (last.clone(), Vec::new());
                    self.backoff.reset();
                    self.set_subscribed(true);
                    while let Ok(Some(ev)) = sub.next_event().await {
                        self.seen().1.push(ev.id.clone().unwrap_or_default());
                        if ev.data.contains(MARK) {
                            let ms = ms_since(self.shared.epoch, Instant::now()).max(1);
                            self.shared.got_ms[self.i].store(ms, Ordering::SeqCst);
                            self.shared.changed.notify_waiters();
                        }
                    }
                    last = sub.last_id().or(last);
                    self.set_subscribed(false);
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
                Err(e) => {
                    let asked = e.downcast_ref::<Refused>().and_then(|r| r.retry_after);
                    let counter = if asked.is_some() {
                        &self.shared.busy
                    } else {
                        &self.shared.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.backoff.next_delay_after(asked)).await;
                }
            }
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, (Option<String>, Vec<String>)> {
        self.shared.seen[self.i].lock().expect("seen")
    }

    fn set_subscribed(&self, on: bool) {
        if on {
            self.shared.subscribed.fetch_add(1, Ordering::SeqCst);
        } else {
            self.shared.subscribed.fetch_sub(1, Ordering::SeqCst);
        }
        self.shared.changed.notify_waiters();
    }
}

/// The table (Markdown), then each storm's curve.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| stop | nodes | hub back s | all subscribed s | all have the job s | per node p50 / p99 s | have it | 503 answers | other failed attempts | hub CPU s | peak CPU % | peak RSS MiB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {}/{} | {} | {} | {:.1} | {:.0} | {:.1} |\n",
            r.stop,
            r.nodes,
            r.down_secs,
            r.back_secs,
            r.caught_up_secs,
            r.p50_secs,
            r.p99_secs,
            r.caught_up,
            r.nodes,
            r.busy,
            r.failed,
            r.cpu_secs,
            r.peak_cpu_pct,
            r.peak_rss_mib,
        ));
    }
    for r in rows {
        let points: Vec<String> = r
            .curve
            .iter()
            .enumerate()
            .map(|(s, n)| format!("{s}s:{n}"))
            .collect();
        out.push_str(&format!(
            "\nSubscribed nodes after the stop ({}): {}\n",
            r.stop,
            points.join(" ")
        ));
    }
    out
}
