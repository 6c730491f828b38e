//! `vantage-bench fanout`: the fan-out benchmark; `vantage-bench hostile`: the
//! flood benchmark; `vantage-bench ingest`: the result-ingest benchmark (see
//! the library).
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use vantage_bench::fanout::{Opts, System, run, table};
use vantage_bench::{hostile, ingest};

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
        } => {
            let tmp = tempfile::tempdir()?;
            let opts = Opts {
                nodes,
                catchup,
                systems: systems
                    .iter()
                    .map(|s| System::parse(s))
                    .collect::<Result<_>>()?,
                hub_bin,
                dir: dir.unwrap_or_else(|| tmp.path().to_path_buf()),
                concurrency,
                timeout: timeout.get(),
            };
            let rt = tokio::runtime::Runtime::new()?;
            let rows = rt.block_on(run(&opts))?;
            println!("{}", table(&rows, catchup));
            Ok(())
        }
        Cmd::Hostile {
            duration,
            addresses,
            per_address,
            operator_every,
            dir,
            hub_bin,
            hub_args,
        } => {
            let tmp = tempfile::tempdir()?;
            let opts = hostile::Opts {
                hub_bin,
                dir: dir.unwrap_or_else(|| tmp.path().to_path_buf()),
                secs: duration.as_secs().max(1),
                addresses,
                per_address,
                operator_every: operator_every.get(),
                warmup: Duration::from_secs(2),
                hub_args,
            };
            let rt = tokio::runtime::Runtime::new()?;
            let rows = rt.block_on(hostile::run(&opts))?;
            println!("{}", hostile::table(&rows, &opts));
            let failed: usize = rows.iter().map(|r| r.failed).sum();
            if failed > 0 {
                anyhow::bail!("{failed} operator requests failed under attack");
            }
            Ok(())
        }
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
    }
}

/// Runs the ingest benchmark in `opts.dir`, or in a temporary directory if empty.
fn ingest_cmd(mut opts: ingest::Opts) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    if opts.dir.as_os_str().is_empty() {
        opts.dir = tmp.path().to_path_buf();
    }
    let rt = tokio::runtime::Runtime::new()?;
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
