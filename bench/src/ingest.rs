//! The ingest benchmark: `nodes` nodes, each on its own mTLS connection, post
//! `per_node` results as fast as the hub acknowledges them (one in flight per
//! node, as an agent sends). Measured against the same rows inserted by a plain
//! batched SQLite insert (same schema, WAL, `synchronous=FULL`, same disk) in the
//! same run: the storage limit. Then the same load again with the hub killed
//! (SIGKILL) in the middle: every result it acknowledged must be stored.

use crate::client::Poster;
use crate::pki::{Network, client_tls};
use crate::servers::{Running, start_hub};
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;
use vantage_hub::datadir::now;
use vantage_proto::api::JobRecord;
use vantage_proto::job::SignedJob;

/// What to run.
pub struct Opts {
    /// Nodes posting at once.
    pub nodes: usize,
    /// Results each node posts (at most 500: the runs of its job due by now).
    pub per_node: u32,
    /// Scratch directory.
    pub dir: PathBuf,
    /// The hub binary.
    pub hub_bin: PathBuf,
}

/// Rows per transaction of the plain insert (the hub's largest batch).
pub const PLAIN_BATCH: usize = vantage_hub::ingest::MAX_BATCH;

/// TLS handshakes in flight while the nodes connect (below the hub's
/// default of 64 per source address).
const HANDSHAKES: usize = 16;

/// What one load run saw.
struct Load {
    acked: Vec<(String, u32)>,
    latencies: Vec<Duration>,
    secs: f64,
    failed: usize,
    /// The first failure.
    why: Option<String>,
}

/// The benchmark's figures.
pub struct Report {
    /// Results acknowledged in the measured run.
    pub results: usize,
    /// Results per second through the hub.
    pub hub_rate: f64,
    /// Time to acknowledgement: p50, p99, max (ms).
    pub ack_ms: [f64; 3],
    /// Transactions the hub committed for them.
    pub commits: u64,
    /// Rows per second of the plain batched insert.
    pub plain_rate: f64,
    /// Results acknowledged before the kill, and how many of those are missing.
    pub killed: (usize, usize),
}

impl Report {
    /// The Markdown table, with the ratio against the plain insert.
    pub fn table(&self, opts: &Opts) -> String {
        let [p50, p99, max] = self.ack_ms;
        let mut t = format!(
            "{} nodes x {} results, one in flight per node; {} CPUs\n\n\
             | | results/s | ack p50 ms | ack p99 ms | ack max ms | vs plain insert |\n\
             |---|---:|---:|---:|---:|---:|\n",
            opts.nodes,
            opts.per_node,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        t += &format!(
            "| hub, group commit (mTLS, HTTP, checks) | {:.0} | {p50:.1} | {p99:.1} | {max:.1} | {:.2} |\n",
            self.hub_rate,
            self.hub_rate / self.plain_rate
        );
        t += &format!(
            "| plain SQLite insert, {PLAIN_BATCH} rows per transaction | {:.0} | | | | 1.00 |\n\n",
            self.plain_rate
        );
        t += &format!(
            "{} results in {} commits (mean batch {:.1}). Killed with SIGKILL mid-run: \
             {} results acknowledged before the kill, {} of them lost.",
            self.results,
            self.commits,
            self.results as f64 / self.commits.max(1) as f64,
            self.killed.0,
            self.killed.1
        );
        t
    }
}

/// Runs the benchmark.
pub async fn run(opts: &Opts) -> Result<Report> {
    if opts.per_node == 0 || opts.per_node > 500 {
        bail!("--per-node must be 1 to 500 (the runs of the benchmark's job due by now)");
    }
    let net = Arc::new(Network::create(&opts.dir, opts.nodes)?);
    store_job(&net, "ingest-1")?;
    store_job(&net, "ingest-2")?;
    let plain_rate = plain_insert(&opts.dir.join("plain.db"), &net, opts.per_node)?;
    let mut hub = start(opts, &net)?;
    let load = post_all(&net, hub.addr, "ingest-1", opts.per_node, None).await?;
    if load.failed > 0 {
        bail!(
            "{} nodes failed to post, the first: {} (see {})",
            load.failed,
            load.why.unwrap_or_default(),
            hub.log.display()
        );
    }
    let commits = commits(&net, hub.addr).await?;
    let killed = kill_mid_run(opts, &net, &mut hub).await?;
    let mut sorted: Vec<f64> = load
        .latencies
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    sorted.sort_by(f64::total_cmp);
    let ms = |q: f64| crate::fanout::pct(&sorted, q);
    Ok(Report {
        results: load.acked.len(),
        hub_rate: load.acked.len() as f64 / load.secs,
        ack_ms: [ms(0.5), ms(0.99), ms(1.0)],
        commits,
        plain_rate,
        killed,
    })
}

fn start(opts: &Opts, net: &Network) -> Result<Running> {
    start_hub(&opts.hub_bin, net.dd.root(), None, &[])
}

/// A job repeated every minute for the last eight hours (so 500 runs are
/// due) that selects every bench node, written
/// straight into the registry as the hub stores an accepted one (the
/// benchmark measures results, not approvals).
fn store_job(net: &Network, id: &str) -> Result<()> {
    let t = now();
    let job = serde_json::json!({"v": 1, "id": id, "probe": {"cmd": "dns", "args": {"name": "example.com"}},
        "select": {"country": "DE"}, "not_before": t - 30_000, "expires": t + 3600,
        "repeat_secs": 60, "proposer": "bench"});
    let record = JobRecord {
        id: id.into(),
        seq: 0,
        signed_job: SignedJob {
            job: job.clone(),
            signatures: Vec::new(),
            mandated: None,
        },
        submitted: t,
        submitter: "bench".into(),
        proposer: Some("bench".into()),
        signers: Vec::new(),
        channels: vec!["all".into()],
        nodes: Vec::new(),
        target: "example.com".into(),
    };
    let (_, db) = net.dd.open()?;
    db.append(t, &record.channels, &job.to_string(), Some(&record))?;
    Ok(())
}

/// The result of run `seq` of `job` from `node`, as an agent sends it.
fn result(job: &str, node: &str, seq: u32) -> String {
    serde_json::json!({"job_id": job, "node_id": node, "probe": "dns",
        "started_ms": now() * 1000, "duration_ms": 12, "status": "ok",
        "data": {"rcode": "NOERROR", "answers": ["192.0.2.1"]}, "seq": seq})
    .to_string()
}

/// Every node connects, then all post at once, each its runs 0..per_node in
/// order; a node stops at its first failure (the hub went away).
async fn post_all(
    net: &Arc<Network>,
    addr: SocketAddr,
    job: &str,
    per_node: u32,
    acked_so_far: Option<Arc<std::sync::atomic::AtomicUsize>>,
) -> Result<Load> {
    let start = Arc::new(Barrier::new(net.nodes.len() + 1));
    // Handshakes in flight are bounded, as the hub bounds them per address.
    let slots = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
    let mut tasks = Vec::new();
    for who in &net.nodes {
        let tls = client_tls(&net.ca_file(), who)?;
        let (who, job, start) = (who.name.clone(), job.to_string(), start.clone());
        let (counter, slots) = (acked_so_far.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let slot = slots.acquire_owned().await;
            let mut poster = Poster::connect(tls, addr).await;
            drop(slot);
            start.wait().await;
            let mut out = (Vec::new(), Vec::new(), None);
            let p = match poster.as_mut() {
                Ok(p) => p,
                Err(e) => {
                    out.2 = Some(format!("{who}: connect: {e:#}"));
                    return out;
                }
            };
            for seq in 0..per_node {
                let sent = Instant::now();
                if let Err(e) = p.post("/v1/results", result(&job, &who, seq)).await {
                    out.2 = Some(format!("{who}: run {seq}: {e:#}"));
                    break;
                }
                out.1.push(sent.elapsed());
                out.0.push((who.clone(), seq));
                if let Some(c) = &counter {
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            out
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut load = Load {
        acked: Vec::new(),
        latencies: Vec::new(),
        secs: 0.0,
        failed: 0,
        why: None,
    };
    for t in tasks {
        let (acked, latencies, failed) = t.await?;
        load.acked.extend(acked);
        load.latencies.extend(latencies);
        if let Some(why) = failed {
            load.failed += 1;
            load.why.get_or_insert(why);
        }
    }
    load.secs = began.elapsed().as_secs_f64();
    Ok(load)
}

/// The hub's `result_commits` counter, from `/metrics`.
async fn commits(net: &Network, addr: SocketAddr) -> Result<u64> {
    let mut op = Poster::connect(net.client_tls(&net.operator)?, addr).await?;
    let text = op.get("/metrics").await?;
    text.lines()
        .find_map(|l| l.strip_prefix("vantage_hub_result_commits_total "))
        .context("no vantage_hub_result_commits_total in /metrics")?
        .trim()
        .parse()
        .context("result_commits")
}

/// The load again on a second job, with SIGKILL once a tenth of it was
/// acknowledged; returns (acknowledged, acknowledged but not stored).
async fn kill_mid_run(
    opts: &Opts,
    net: &Arc<Network>,
    hub: &mut Running,
) -> Result<(usize, usize)> {
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = tokio::spawn({
        let (net, addr, counter) = (net.clone(), hub.addr, counter.clone());
        let per_node = opts.per_node;
        async move { post_all(&net, addr, "ingest-2", per_node, Some(counter)).await }
    });
    let tenth = net.nodes.len() * opts.per_node as usize / 10;
    while counter.load(std::sync::atomic::Ordering::Relaxed) < tenth.max(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    hub.server.signal(9)?;
    let load = load.await??;
    // SQLite recovers the write-ahead log on open, as the restarted hub would.
    let db = rusqlite::Connection::open(net.dd.db_path())?;
    let mut st = db.prepare("SELECT node_id, seq FROM results WHERE job_id='ingest-2'")?;
    let stored: std::collections::HashSet<(String, u32)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let lost = load.acked.iter().filter(|a| !stored.contains(a)).count();
    Ok((load.acked.len(), lost))
}

/// The same rows as the hub's measured run, inserted straight into a fresh
/// database with the hub's results schema and durability settings, in
/// transactions of [`PLAIN_BATCH`] rows. Returns rows per second.
fn plain_insert(path: &Path, net: &Network, per_node: u32) -> Result<f64> {
    let mut c = rusqlite::Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute_batch(
        "CREATE TABLE results(id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, node_id TEXT NOT NULL,
           seq INTEGER NOT NULL, received INTEGER NOT NULL, body TEXT NOT NULL,
           UNIQUE(job_id,node_id,seq))",
    )?;
    let rows: Vec<(String, u32, String)> = (0..per_node)
        .flat_map(|seq| net.nodes.iter().map(move |n| (n.name.clone(), seq)))
        .map(|(n, seq)| {
            let body = result("ingest-1", &n, seq);
            (n, seq, body)
        })
        .collect();
    let began = Instant::now();
    for chunk in rows.chunks(PLAIN_BATCH) {
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO results(job_id,node_id,seq,received,body) VALUES('ingest-1',?1,?2,?3,?4)",
            )?;
            for (n, seq, body) in chunk {
                st.execute(rusqlite::params![n, seq, now(), body])?;
            }
        }
        tx.commit()?;
    }
    Ok(rows.len() as f64 / began.elapsed().as_secs_f64())
}
