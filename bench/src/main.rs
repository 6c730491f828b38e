//! `vantage-bench fanout`: the fan-out benchmark; `vantage-bench hostile`: the
//! flood benchmark; `vantage-bench ingest`: the result-ingest benchmark;
//! `vantage-bench storm`: the reconnect storm (see the library).
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use vantage_bench::fanout::{Opts, System, run, table};
use vantage_bench::{hostile, ingest, storm};

#[derive(Parser)]
#[command(version, about = "vantage fan-out benchmark (loopback only)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the fan-out benchmark and print its table (Markdown).
    Fanout {
        /// Subscribed nodes, each its own TLS connection and certificate.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Jobs one node misses and catches up after reconnecting.
        #[arg(long, default_value_t = 1000)]
        catchup: usize,
        /// Systems to run, comma-separated: hub, nchan, mosquitto.
        #[arg(long, default_value = "hub,nchan,mosquitto", value_delimiter = ',')]
        systems: Vec<String>,
        /// Scratch directory (default: a new temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// TLS handshakes in flight while connecting.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Longest wait for one phase.
        #[arg(long, default_value = "2m")]
        timeout: vantage_human::Duration,
        /// The hub binary (build it with `cargo build --release -p vantage-hub`).
        #[arg(long, default_value = "target/release/vantage-hub")]
        hub_bin: PathBuf,
    },
    /// Flood the hub with one attack at a time from many loopback addresses
    /// and print the operator's latency under each (Markdown).
    Hostile {
        /// How long the operator is measured under each attack (and the baseline), whole seconds.
        #[arg(long, default_value = "8s")]
        duration: vantage_human::Duration,
        /// Attacker source addresses (127.0.0.2 and up).
        #[arg(long, default_value_t = 40)]
        addresses: u8,
        /// Attack connections per source address.
        #[arg(long, default_value_t = 50)]
        per_address: usize,
        /// Time between two operator requests.
        #[arg(long, default_value = "200ms")]
        operator_every: vantage_human::Duration,
        /// Scratch directory (default: a new temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The hub binary (build it with `cargo build --release -p vantage-hub`).
        #[arg(long, default_value = "target/release/vantage-hub")]
        hub_bin: PathBuf,
        /// More `vantage-hub serve` options (its limits), e.g. `--hub-arg=--max-connections=500`.
        #[arg(long = "hub-arg", allow_hyphen_values = true)]
        hub_args: Vec<String>,
    },
    /// Many nodes post results at once; against a plain batched SQLite insert
    /// of the same rows, then again with the hub killed mid-run (Markdown).
    Ingest {
        /// Nodes posting at once, each its own TLS connection and certificate.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Results each node posts, one in flight at a time (1 to 500).
        #[arg(long, default_value_t = 50)]
        per_node: u32,
        /// Scratch directory (default: a new temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The hub binary (build it with `cargo build --release -p vantage-hub`).
        #[arg(long, default_value = "target/release/vantage-hub")]
        hub_bin: PathBuf,
    },
    /// N nodes subscribed; the hub restarted, then killed; every node must
    /// come back and catch up a job appended while it was down (Markdown).
    Storm {
        /// Subscribed nodes, each its own TLS connection and certificate.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Scratch directory (default: a new temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// TLS handshakes in flight during the first ramp only.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// The agent's first reconnect delay (its default).
        #[arg(long, default_value = "1s")]
        min_backoff: vantage_human::Duration,
        /// The agent's longest reconnect delay (its default).
        #[arg(long, default_value = "300s")]
        max_backoff: vantage_human::Duration,
        /// Longest wait for the nodes to come back.
        #[arg(long, default_value = "5m")]
        timeout: vantage_human::Duration,
        /// The hub binary (build it with `cargo build --release -p vantage-hub`).
        #[arg(long, default_value = "target/release/vantage-hub")]
        hub_bin: PathBuf,
        /// More `vantage-hub serve` options, e.g. `--hub-arg=--max-subscribe-rate=500`.
        #[arg(long = "hub-arg", allow_hyphen_values = true)]
        hub_args: Vec<String>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Fanout {
            nodes,
            catchup,
            systems,
            dir,
            concurrency,
            timeout,
            hub_bin,
        } => fanout_cmd(Opts {
            nodes,
            catchup,
            systems: systems
                .iter()
                .map(|s| System::parse(s))
                .collect::<Result<_>>()?,
            hub_bin,
            dir: dir.unwrap_or_default(),
            concurrency,
            timeout: timeout.get(),
        }),
        Cmd::Hostile {
            duration,
            addresses,
            per_address,
            operator_every,
            dir,
            hub_bin,
            hub_args,
        } => hostile_cmd(hostile::Opts {
            hub_bin,
            dir: dir.unwrap_or_default(),
            secs: duration.as_secs().max(1),
            addresses,
            per_address,
            operator_every: operator_every.get(),
            warmup: Duration::from_secs(2),
            hub_args,
        }),
        Cmd::Ingest {
            nodes,
            per_node,
            dir,
            hub_bin,
        } => ingest_cmd(ingest::Opts {
            nodes,
            per_node,
            dir: dir.unwrap_or_default(),
            hub_bin,
        }),
        Cmd::Storm {
            nodes,
            dir,
            concurrency,
            min_backoff,
            max_backoff,
            timeout,
            hub_bin,
            hub_args,
        } => storm_cmd(storm::Opts {
            nodes,
            hub_bin,
            dir: dir.unwrap_or_default(),
            concurrency,
            min_backoff: min_backoff.get(),
            max_backoff: max_backoff.get(),
            timeout: timeout.get(),
            hub_args,
        }),
    }
}

/// Runs the fan-out benchmark in `opts.dir`, or in a temporary directory if empty.
fn fanout_cmd(mut opts: Opts) -> Result<()> {
    let (_tmp, rt) = scratch(&mut opts.dir)?;
    let rows = rt.block_on(run(&opts))?;
    println!("{}", table(&rows, opts.catchup));
    Ok(())
}

/// Runs the flood benchmark in `opts.dir`, or in a temporary directory if
/// empty; fails if any operator request failed under attack.
fn hostile_cmd(mut opts: hostile::Opts) -> Result<()> {
    let (_tmp, rt) = scratch(&mut opts.dir)?;
    let rows = rt.block_on(hostile::run(&opts))?;
    println!("{}", hostile::table(&rows, &opts));
    let failed: usize = rows.iter().map(|r| r.failed).sum();
    if failed > 0 {
        anyhow::bail!("{failed} operator requests failed under attack");
    }
    Ok(())
}

/// Runs the storm in `opts.dir`, or in a temporary directory if empty; fails
/// if any node did not come back with the job.
fn storm_cmd(mut opts: storm::Opts) -> Result<()> {
    let (_tmp, rt) = scratch(&mut opts.dir)?;
    let rows = rt.block_on(storm::run(&opts))?;
    println!("{}", storm::table(&rows));
    let lost: usize = rows.iter().map(|r| r.nodes - r.caught_up).sum();
    if lost > 0 {
        anyhow::bail!("{lost} node(s) did not get the job appended while the hub was down");
    }
    Ok(())
}

/// Runs the ingest benchmark in `opts.dir`, or in a temporary directory if empty.
fn ingest_cmd(mut opts: ingest::Opts) -> Result<()> {
    let (_tmp, rt) = scratch(&mut opts.dir)?;
    let report = rt.block_on(ingest::run(&opts))?;
    println!("{}", report.table(&opts));
    if report.killed.1 > 0 {
        anyhow::bail!(
            "{} acknowledged results lost after the kill",
            report.killed.1
        );
    }
    Ok(())
}

/// A temporary directory standing in for `dir` if it is empty (removed when
/// dropped), and the runtime a benchmark runs on.
fn scratch(dir: &mut PathBuf) -> Result<(tempfile::TempDir, tokio::runtime::Runtime)> {
    let tmp = tempfile::tempdir()?;
    if dir.as_os_str().is_empty() {
        *dir = tmp.path().to_path_buf();
    }
    Ok((tmp, tokio::runtime::Runtime::new()?))
}
