//! One-line measurements: `vantage ping example.com from DE --limit 5`.
//!
//! The job is made from the flags, ordered under the operator's mandate
//! with the operator's own key (no approver is asked), sent to the hub and
//! followed live until every node picked answered or the job expired. The
//! mandate's bounds are checked here first with the protocol crate's own
//! check, so a job outside them is refused at once with the code the hub
//! and nodes would give.

use crate::error::{CliError, CliResult};
use crate::hub::{Hub, HubOpts};
use crate::locations::{self, Known};
use crate::propose::{JobFrame, ProbeCmd};
use crate::watch::{self, Output};
use crate::{files, mandate, results, timespec};
use clap::Args;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use vantage_proto::api::{JobAccepted, NodeEntry};
use vantage_proto::job::{Job, SignedJob};
use vantage_proto::mandate::Mandate;
use vantage_proto::select::Selection;

/// How long a one-line job stays valid unless `--expires` says otherwise
/// (and the mandate allows less): long enough for every node to answer.
const DEFAULT_VALIDITY_SECS: u64 = 300;

/// What the one-line measurements share.
#[derive(Debug, Clone, Args)]
pub struct QuickOpts {
    /// `from LOCATIONS`: comma = or, + = and; each a country code or name
    /// (DE, Germany), a continent code or name (EU, Europe), AS3320, a tag,
    /// a node id, or world. Default: world.
    #[arg(value_name = "from LOCATIONS", num_args = 0..)]
    pub from: Vec<String>,
    /// At most this many nodes (default 1, or every node of --reuse).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Run on the nodes that answered this earlier job.
    #[arg(long, value_name = "JOB")]
    pub reuse: Option<String>,
    /// How long the job stays valid, e.g. 2m (default 5m, or less if the mandate says so).
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// Print each result as one JSON line.
    #[arg(long, conflicts_with = "latency")]
    pub json: bool,
    /// Show only each node's headline time in ms.
    #[arg(long)]
    pub latency: bool,
    /// Show the selection the locations compile to, and the job.
    #[arg(long, short)]
    pub verbose: bool,
    /// Your operator key (from vantage keygen), named by the mandate.
    #[arg(long, env = "VANTAGE_OPERATOR_KEY", value_name = "FILE")]
    pub operator_key: PathBuf,
    /// The signed mandate to order under (from vantage mandate sign).
    #[arg(long, env = "VANTAGE_MANDATE", value_name = "FILE")]
    pub mandate: PathBuf,
    /// Where the hub is and your credentials.
    #[command(flatten)]
    pub hub: HubOpts,
}

impl QuickOpts {
    /// The words after `from`, joined; `None` when no `from` was given.
    fn locations(&self) -> CliResult<Option<String>> {
        match self.from.split_first() {
            None => Ok(None),
            Some((first, rest)) if first.eq_ignore_ascii_case("from") && !rest.is_empty() => {
                Ok(Some(rest.join(" ")))
            }
            Some((first, _)) if first.eq_ignore_ascii_case("from") => Err(CliError::usage(
                "from what? e.g. from DE, from Europe+AS3320, from world",
            )),
            Some((first, _)) => Err(CliError::usage(format!(
                "unexpected {first:?} after the target; write: TARGET from LOCATIONS"
            ))),
        }
    }
}

/// The nodes that answered `job`, from the hub's results.
fn answered(hub: &Hub, job: &str) -> CliResult<BTreeSet<String>> {
    vantage_proto::job::validate_job_id(job).map_err(|e| CliError::usage(e.to_string()))?;
    let list: Vec<Value> = hub.get(&format!("/v1/jobs/{job}/results"))?;
    let nodes: BTreeSet<String> = list
        .iter()
        .filter_map(|r| r.get("node_id")?.as_str().map(str::to_string))
        .collect();
    if nodes.is_empty() {
        return Err(CliError::refused(format!(
            "--reuse {job}: no node answered that job"
        )));
    }
    Ok(nodes)
}

/// The selection and node limit of `opts`.
fn selection(opts: &QuickOpts, hub: &Hub, nodes: &[NodeEntry]) -> CliResult<(Selection, u32)> {
    let from = match opts.locations()? {
        Some(text) => Some(locations::compile(&text, &Known::from_nodes(nodes))?),
        None => None,
    };
    let reused = opts
        .reuse
        .as_deref()
        .map(|j| answered(hub, j))
        .transpose()?;
    let limit = opts
        .limit
        .or(reused
            .as_ref()
            .map(|r| u32::try_from(r.len()).unwrap_or(u32::MAX)))
        .unwrap_or(1);
    let reused = reused.map(|r| Selection::Or(r.into_iter().map(Selection::Node).collect()));
    let select = match (from, reused) {
        (Some(f), Some(r)) => Selection::And(vec![f, r]),
        (f, r) => f.or(r).unwrap_or(Selection::Everyone),
    };
    select
        .validate()
        .map_err(|e| CliError::usage(format!("this selection: {e}")))?;
    Ok((select, limit))
}

/// The job's validity: `--expires`, else the default, never more than the
/// mandate allows by default (a longer `--expires` is refused by the check).
fn expires(opts: &QuickOpts, m: &Mandate, now: u64) -> CliResult<u64> {
    Ok(match &opts.expires {
        Some(d) => now.saturating_add(timespec::parse_duration(d)?),
        None => now
            .saturating_add(DEFAULT_VALIDITY_SECS.min(m.max_job_validity_secs))
            .min(m.expires),
    })
}

/// Orders `probe` under the operator's mandate, submits it and follows it.
pub fn run(probe: &ProbeCmd<QuickOpts>) -> CliResult {
    let opts = probe.job_opts();
    let key = files::load_approver_key(&opts.operator_key)?;
    let (signed_mandate, m) = mandate::load(&opts.mandate)?;
    let key_id = key.public_key().key_id();
    let operator = m.operator(&key_id).ok_or_else(|| {
        CliError::refused(format!(
            "unknown-operator: your key {key_id} ({}) is not named by mandate {}; it names {}",
            opts.operator_key.display(),
            m.id,
            m.operators
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let hub = Hub::connect(&opts.hub, false)?;
    let nodes: Vec<NodeEntry> = hub.get("/v1/nodes")?;
    let (select, limit) = selection(opts, &hub, &nodes)?;
    let now = timespec::now();
    let frame = JobFrame {
        id: None,
        select,
        limit: Some(limit),
        not_before: now,
        expires: expires(opts, &m, now)?,
        spread: None,
        repeat: None,
        proposer: operator.name.clone(),
        mandate: Some(m.id.clone()),
    };
    let job = probe.job(frame, now)?;
    if opts.verbose {
        eprintln!("selection: {}\n{}", job.select, job.describe());
    }
    m.check_job(&job, now)
        .map_err(|r| CliError::refused(format!("{}: {r}", r.code())))?;
    let signed = SignedJob::sign_under_mandate(&job, signed_mandate, &key)
        .map_err(|e| CliError::local(format!("cannot sign: {e}")))?;
    submit_and_follow(&hub, opts, &job, &signed, &nodes)
}

fn submit_and_follow(
    hub: &Hub,
    opts: &QuickOpts,
    job: &Job,
    signed: &SignedJob,
    nodes: &[NodeEntry],
) -> CliResult {
    let accepted: JobAccepted = hub.post("/v1/jobs", signed)?;
    eprintln!(
        "job {} on {} node(s) under mandate {}",
        accepted.job_id,
        accepted.nodes.len(),
        job.mandate.as_deref().unwrap_or_default()
    );
    watch::follow(
        hub,
        &opts.hub,
        &job.id,
        results::node_index(nodes),
        Output::from_flags(opts.json, opts.latency),
        None,
    )
}
