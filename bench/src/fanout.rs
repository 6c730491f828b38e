//! The fan-out benchmark: N nodes, each a real TLS connection with its own client
//! certificate, subscribed to `all`; one job published; publish-to-receipt latency
//! at every node, the server's CPU time and memory, connection ramp time, and
//! catch-up of missed jobs after a reconnect. For the hub alone, nginx + Nchan fed
//! by the hub, and Mosquitto (MQTT over TLS, `require_certificate`).

use crate::client::{Poster, Subscription, node_source, subscribe_from};
use crate::mqtt::Mqtt;
use crate::pki::{Creds, Network, channels_of};
use crate::procs::{Usage, usage};
use crate::servers::{Nginx, Running, start_hub, start_mosquitto};
use anyhow::{Context, Result, bail};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// The hub alone: nodes subscribe at `/v1/sub/…`.
    Hub,
    /// The hub publishes to nginx + Nchan; nodes subscribe at nginx.
    Nchan,
    /// Mosquitto, MQTT 3.1.1 over TLS with client certificates.
    Mosquitto,
}

impl System {
    /// Name in the table.
    pub fn label(self) -> &'static str {
        match self {
            System::Hub => "hub alone",
            System::Nchan => "nginx + Nchan",
            System::Mosquitto => "Mosquitto",
        }
    }

    /// Parses `hub`, `nchan` or `mosquitto`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "hub" => System::Hub,
            "nchan" => System::Nchan,
            "mosquitto" => System::Mosquitto,
            _ => bail!("unknown system {s}; use hub, nchan, mosquitto"),
        })
    }
}

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Subscribed nodes.
    pub nodes: usize,
    /// Jobs missed by one node while disconnected.
    pub catchup: usize,
    /// Systems, in order.
    pub systems: Vec<System>,
    /// The `vantage-hub` executable.
    pub hub_bin: PathBuf,
    /// Scratch directory.
    pub dir: PathBuf,
    /// TLS handshakes in flight while ramping up.
    pub concurrency: usize,
    /// Longest wait for any one phase.
    pub timeout: Duration,
}

/// One row of the table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// System.
    pub system: String,
    /// Nodes asked for.
    pub nodes: usize,
    /// Nodes that got subscribed.
    pub connected: usize,
    /// Time to connect and subscribe them all, seconds.
    pub ramp_secs: f64,
    /// Nodes that received the job.
    pub received: usize,
    /// Publish-to-receipt latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Server CPU time (user + system) over ramp and publish, seconds.
    pub cpu_secs: f64,
    /// Server CPU time for the one publish (fan-out to every node), seconds.
    pub cpu_publish_secs: f64,
    /// Server peak resident memory, KiB.
    pub peak_kib: u64,
    /// Server resident memory per idle subscribed connection, KiB.
    pub idle_kib_per_conn: f64,
    /// Time for a reconnecting node to receive every missed job, seconds.
    pub catchup_secs: f64,
    /// Missed jobs it received.
    pub catchup_got: usize,
}

/// Where nodes subscribe and how jobs get published, per system.
enum Target {
    Sse {
        addr: SocketAddr,
        prefix: &'static str,
        hub: SocketAddr,
    },
    Mqtt {
        addr: SocketAddr,
    },
}

/// Runs every system in turn and returns the rows.
pub async fn run(opts: &Opts) -> Result<Vec<Row>> {
    std::fs::create_dir_all(&opts.dir)?;
    let t = Instant::now();
    // Two extra nodes: one that misses jobs and catches up, one that witnesses them.
    let net = Arc::new(Network::create(&opts.dir, opts.nodes + 2)?);
    eprintln!(
        "bench: {} node certificates issued in {:.1} s",
        opts.nodes + 2,
        t.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    for &sys in &opts.systems {
        eprintln!("bench: {} with {} nodes", sys.label(), opts.nodes);
        let row = run_one(opts, &net, sys)
            .await
            .with_context(|| format!("benchmark of {}", sys.label()))?;
        eprintln!("bench: {row:?}");
        rows.push(row);
    }
    Ok(rows)
}

async fn run_one(opts: &Opts, net: &Arc<Network>, sys: System) -> Result<Row> {
    let server = Server::start(opts, net, sys)?;
    let before = usage(server.measured)?;
    let mut row = Row {
        system: sys.label().into(),
        nodes: opts.nodes,
        ..Row::default()
    };

    // Ramp: connect and subscribe every node.
    let start = Instant::now();
    let mut subs = Subscribers::spawn(opts, net, &server.target);
    row.connected = subs.ready(opts.nodes, opts.timeout).await;
    row.ramp_secs = start.elapsed().as_secs_f64();
    eprintln!(
        "bench: {} of {} nodes subscribed in {:.1} s",
        row.connected, opts.nodes, row.ramp_secs
    );
    // Let the server settle, then read its memory with every node idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = usage(server.measured)?;
    row.idle_kib_per_conn =
        idle.rss_kib.saturating_sub(before.rss_kib) as f64 / row.connected.max(1) as f64;

    // One job to everybody. The operator connects now: an idle connection would
    // have been closed by the hub during a long ramp.
    let mut publisher = Publisher::connect(net, &server.target).await?;
    let t0 = Instant::now();
    publisher.publish(r#"{"bench":"fan-out"}"#).await?;
    let mut lat = subs.received(t0, row.connected, opts.timeout).await;
    let after: Usage = usage(server.measured)?;
    row.received = lat.len();
    lat.sort_by(f64::total_cmp);
    row.p50_ms = pct(&lat, 0.50);
    row.p99_ms = pct(&lat, 0.99);
    row.max_ms = lat.last().copied().unwrap_or(f64::NAN);
    row.cpu_secs = after.cpu_secs - before.cpu_secs;
    row.cpu_publish_secs = after.cpu_secs - idle.cpu_secs;
    row.peak_kib = after.hwm_kib;
    subs.stop().await;

    let (got, secs) = catch_up(opts, net, &server.target, &mut publisher).await?;
    row.catchup_got = got;
    row.catchup_secs = secs;
    drop(server);
    Ok(row)
}

/// The system under test, running until dropped.
struct Server {
    /// Where nodes subscribe and the operator publishes.
    target: Target,
    /// The process whose CPU time and memory are measured.
    measured: u32,
    /// Every process of the system (the hub behind Nginx too), stopped
    /// after Nginx (fields drop in order).
    _nginx: Option<Nginx>,
    _running: Vec<Running>,
}

impl Server {
    fn start(opts: &Opts, net: &Network, sys: System) -> Result<Server> {
        let raw = ["--unsafe-raw-publish"];
        Ok(match sys {
            System::Hub => {
                let hub = start_hub(&opts.hub_bin, net.dd.root(), None, &raw)?;
                Server {
                    target: Target::Sse {
                        addr: hub.addr,
                        prefix: "/v1/sub/",
                        hub: hub.addr,
                    },
                    measured: hub.server.pid(),
                    _nginx: None,
                    _running: vec![hub],
                }
            }
            System::Nchan => {
                let n = Nginx::start(&net.dd, &opts.dir.join("nginx"), None, opts.nodes + 16)?;
                let hub = start_hub(&opts.hub_bin, net.dd.root(), Some(&n.publish_url), &raw)?;
                Server {
                    target: Target::Sse {
                        addr: n.run.addr,
                        prefix: "/sub/",
                        hub: hub.addr,
                    },
                    measured: n.run.server.pid(),
                    _nginx: Some(n),
                    _running: vec![hub],
                }
            }
            System::Mosquitto => {
                let m = start_mosquitto(net, &opts.dir)?;
                Server {
                    target: Target::Mqtt { addr: m.addr },
                    measured: m.server.pid(),
                    _nginx: None,
                    _running: vec![m],
                }
            }
        })
    }
}

/// One task per node: subscribes, says so, waits for one event.
struct Subscribers {
    stop: watch::Sender<bool>,
    ready: mpsc::UnboundedReceiver<()>,
    got: mpsc::UnboundedReceiver<Instant>,
    tasks: JoinSet<()>,
}

impl Subscribers {
    fn spawn(opts: &Opts, net: &Arc<Network>, target: &Target) -> Subscribers {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = mpsc::unbounded_channel::<()>();
        let (got_tx, got_rx) = mpsc::unbounded_channel::<Instant>();
        let slots = Arc::new(Semaphore::new(opts.concurrency));
        let mut tasks = JoinSet::new();
        for (i, creds) in net.nodes.iter().take(opts.nodes).cloned().enumerate() {
            let (net, slots, ready, got, mut stop) = (
                net.clone(),
                slots.clone(),
                ready_tx.clone(),
                got_tx.clone(),
                stop_rx.clone(),
            );
            let tgt = target.clone_ref();
            tasks.spawn(async move {
                let permit = slots.acquire_owned().await;
                let mut sub =
                    match NodeSub::open(&net, (&creds, Some(node_source(i))), &tgt, None, false)
                        .await
                    {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(node = creds.name, "subscribe: {e:#}");
                            return;
                        }
                    };
                drop(permit);
                let _ = ready.send(());
                tokio::select! {
                    r = sub.next() => if r.is_ok() { let _ = got.send(Instant::now()); },
                    _ = stop.changed() => return,
                }
                let _ = stop.changed().await;
            });
        }
        Subscribers {
            stop: stop_tx,
            ready: ready_rx,
            got: got_rx,
            tasks,
        }
    }

    /// How many of `nodes` subscribed within `timeout`.
    async fn ready(&mut self, nodes: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut n = 0;
        while n < nodes {
            match tokio::time::timeout_at(deadline, self.ready.recv()).await {
                Ok(Some(())) => n += 1,
                Ok(None) | Err(_) => break,
            }
        }
        n
    }

    /// Milliseconds from `t0` to each receipt, for up to `expected` nodes
    /// within `timeout`.
    async fn received(&mut self, t0: Instant, expected: usize, timeout: Duration) -> Vec<f64> {
        let mut lat = Vec::with_capacity(expected);
        let deadline = tokio::time::Instant::now() + timeout;
        while lat.len() < expected {
            match tokio::time::timeout_at(deadline, self.got.recv()).await {
                Ok(Some(at)) => lat.push(at.saturating_duration_since(t0).as_secs_f64() * 1e3),
                Ok(None) | Err(_) => break,
            }
        }
        lat
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.tasks.shutdown().await;
    }
}

/// The `q` quantile (nearest rank) of `sorted`; NaN if empty.
pub(crate) fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

impl Target {
    fn clone_ref(&self) -> Target {
        match *self {
            Target::Sse { addr, prefix, hub } => Target::Sse { addr, prefix, hub },
            Target::Mqtt { addr } => Target::Mqtt { addr },
        }
    }
}

/// One node's subscription, SSE or MQTT.
pub enum NodeSub {
    /// Event stream.
    Sse(Subscription),
    /// MQTT session.
    Mqtt(Box<Mqtt>),
}

const TOPIC: &str = "vantage/all";

impl NodeSub {
    /// Opens a node's subscription, from its own loopback address if given.
    async fn open(
        net: &Network,
        (creds, src): (&Creds, Option<Ipv4Addr>),
        tgt: &Target,
        last_id: Option<&str>,
        persistent: bool,
    ) -> Result<Self> {
        let tls = net.client_tls(creds)?;
        match tgt {
            Target::Sse { addr, prefix, .. } => {
                let path = format!("{prefix}{}", channels_of(&creds.name));
                Ok(NodeSub::Sse(
                    subscribe_from(src, tls, *addr, &path, last_id).await?,
                ))
            }
            Target::Mqtt { addr } => {
                // A persistent session (clean = false) is what lets MQTT queue missed
                // jobs; only the catch-up node has one, or the broker would queue every
                // job for every node that ever connected.
                let mut m = Mqtt::connect(tls, (src, *addr), &creds.name, !persistent).await?;
                m.subscribe(TOPIC).await?;
                Ok(NodeSub::Mqtt(Box::new(m)))
            }
        }
    }

    async fn next(&mut self) -> Result<()> {
        match self {
            NodeSub::Sse(s) => match s.next_event().await? {
                Some(_) => Ok(()),
                None => bail!("event stream ended"),
            },
            NodeSub::Mqtt(m) => m.next_message().await.map(|_| ()),
        }
    }

    fn last_id(&self) -> Option<String> {
        match self {
            NodeSub::Sse(s) => s.last_id(),
            NodeSub::Mqtt(_) => None,
        }
    }

    async fn close(self) -> Result<()> {
        match self {
            NodeSub::Sse(s) => drop(s),
            NodeSub::Mqtt(m) => m.disconnect().await?,
        }
        Ok(())
    }
}

/// Publishes jobs: through the hub (its unsafe raw-publish endpoint, so no
/// signing is measured) or to Mosquitto.
enum Publisher {
    Hub(Poster),
    Mqtt(Box<Mqtt>),
}

impl Publisher {
    async fn connect(net: &Network, tgt: &Target) -> Result<Self> {
        let tls = net.client_tls(&net.operator)?;
        Ok(match tgt {
            Target::Sse { hub, .. } => Publisher::Hub(Poster::connect(tls, *hub).await?),
            Target::Mqtt { addr } => Publisher::Mqtt(Box::new(
                Mqtt::connect(tls, (None, *addr), "bench-publisher", true).await?,
            )),
        })
    }

    async fn publish(&mut self, payload: &str) -> Result<()> {
        match self {
            Publisher::Hub(p) => p
                .post("/v1/publish/all", payload.to_string())
                .await
                .map(drop),
            Publisher::Mqtt(m) => m.publish(TOPIC, payload.as_bytes()).await,
        }
    }
}

/// One node disconnects, `opts.catchup` jobs are published (a witness node sees
/// them all arrive), the node reconnects and resumes; returns how many it got and
/// how long from reconnect to the last.
async fn catch_up(
    opts: &Opts,
    net: &Arc<Network>,
    tgt: &Target,
    publisher: &mut Publisher,
) -> Result<(usize, f64)> {
    let late = &net.nodes[opts.nodes];
    let witness = &net.nodes[opts.nodes + 1];
    let mut sub = NodeSub::open(net, (late, None), tgt, None, true).await?;
    let mut wit = NodeSub::open(net, (witness, None), tgt, None, false).await?;
    publisher.publish(r#"{"bench":"before"}"#).await?;
    tokio::time::timeout(opts.timeout, sub.next())
        .await
        .context("the catch-up node got no first job")??;
    tokio::time::timeout(opts.timeout, wit.next())
        .await
        .context("the witness got no first job")??;
    let last = sub.last_id();
    sub.close().await?;
    for i in 0..opts.catchup {
        publisher
            .publish(&format!(r#"{{"bench":"missed","n":{i}}}"#))
            .await?;
    }
    for _ in 0..opts.catchup {
        tokio::time::timeout(opts.timeout, wit.next())
            .await
            .context("the witness did not see every missed job")??;
    }
    let t = Instant::now();
    let mut sub = NodeSub::open(net, (late, None), tgt, last.as_deref(), true).await?;
    let mut got = 0;
    while got < opts.catchup {
        match tokio::time::timeout(opts.timeout, sub.next()).await {
            Ok(Ok(())) => got += 1,
            _ => break,
        }
    }
    Ok((got, t.elapsed().as_secs_f64()))
}

/// The table, Markdown, with ratios against the first row (the hub alone).
pub fn table(rows: &[Row], catchup: usize) -> String {
    let mut out = format!(
        "| system | nodes | subscribed | ramp s | received | p50 ms | p99 ms | max ms | server CPU s | of which publish | peak RSS MiB | KiB/idle conn | catch-up {catchup} s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let base = rows.first();
    let r = |v: f64, b: Option<f64>| match b {
        Some(b) if b > 0.0 && v.is_finite() => format!(" (×{:.2})", v / b),
        _ => String::new(),
    };
    for (i, row) in rows.iter().enumerate() {
        let b = if i == 0 { None } else { base };
        out.push_str(&format!(
            "| {} | {} | {} | {:.2}{} | {} | {:.1}{} | {:.1}{} | {:.1}{} | {:.2}{} | {:.2}{} | {:.1}{} | {:.1}{} | {:.2}{} ({}/{}) |\n",
            row.system,
            row.nodes,
            row.connected,
            row.ramp_secs,
            r(row.ramp_secs, b.map(|b| b.ramp_secs)),
            row.received,
            row.p50_ms,
            r(row.p50_ms, b.map(|b| b.p50_ms)),
            row.p99_ms,
            r(row.p99_ms, b.map(|b| b.p99_ms)),
            row.max_ms,
            r(row.max_ms, b.map(|b| b.max_ms)),
            row.cpu_secs,
            r(row.cpu_secs, b.map(|b| b.cpu_secs)),
            row.cpu_publish_secs,
            r(row.cpu_publish_secs, b.map(|b| b.cpu_publish_secs)),
            row.peak_kib as f64 / 1024.0,
            r(row.peak_kib as f64, b.map(|b| b.peak_kib as f64)),
            row.idle_kib_per_conn,
            r(row.idle_kib_per_conn, b.map(|b| b.idle_kib_per_conn)),
            row.catchup_secs,
            r(row.catchup_secs, b.map(|b| b.catchup_secs)),
            row.catchup_got,
            catchup,
        ));
    }
    out
}
