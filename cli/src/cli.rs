//! The command line: clap definitions and what each command does.

use crate::error::{CliError, CliResult, EXIT_CODES_HELP};
use crate::hub::{Hub, HubOpts};
use crate::nodes::NodeFilter;
use crate::policy::{Changes, LimitOpts};
use crate::propose::ProbeCmd;
use crate::quick::QuickOpts;
use crate::watch::Output;
use crate::{
    approve, files, mandate, nodes, policy, predict, propose, quick, release, report, results,
    timespec, watch,
};
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::path::{Path, PathBuf};
use vantage_proto::api::{JobAccepted, JobStatus, NodeEntry, PolicyAccepted, RevocationAccepted};
use vantage_proto::sign::ApproverKey;

/// vantage: propose, approve, submit and follow measurements on a vantage network.
#[derive(Debug, Parser)]
#[command(name = "vantage", version, after_help = EXIT_CODES_HELP)]
#[command(about = "Operator and approver command line of a vantage network")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One-line measurements under your mandate: vantage ping example.com from DE --limit 5
    #[command(flatten)]
    Quick(ProbeCmd<QuickOpts>),
    /// Create an approver key pair: NAME.key (private, 0600) and NAME.pub.
    Keygen {
        /// Base name of the two files.
        #[arg(long, value_name = "NAME", default_value = "approver")]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Write a job file for a measurement and show what it will run.
    Propose {
        #[command(subcommand)]
        probe: ProbeCmd,
    },
    /// Show a job file in plain words and add your signature to it.
    Sign(SignArgs),
    /// Check a job file's signatures and limits against a policy, as hub and
    /// nodes will; with a hub, also predict how many selected nodes will refuse and why.
    Check {
        #[command(flatten)]
        args: CheckArgs,
        #[command(flatten)]
        hub: HubOpts,
    },
    /// Send a signed job file to the hub.
    Submit {
        /// The job file.
        file: PathBuf,
        /// Print the hub's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubOpts,
    },
    /// A job's status at the hub: what it runs, where it went, its audit trail.
    Status {
        /// Job id.
        job: String,
        /// Print the hub's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubOpts,
    },
    /// A job's results as a table (--format json|csv|atlas for machines).
    Results {
        /// Job id.
        job: String,
        /// Print the results as a JSON array (the same as --format json).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// Output: table, json (native results), csv (one row per result
        /// with its key figures) or atlas (RIPE Atlas result format).
        #[arg(long, value_enum, default_value_t = ResultsFormat::Table)]
        format: ResultsFormat,
        #[command(flatten)]
        hub: HubOpts,
    },
    /// Follow a job's results live until every node answered or it expired.
    Watch {
        /// Job id.
        job: String,
        /// Print each result as one JSON line.
        #[arg(long, conflicts_with = "latency")]
        json: bool,
        /// Show only each node's headline time in ms.
        #[arg(long)]
        latency: bool,
        /// Stop after N results (exit 0), even before every node answered.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        stop_after: Option<u64>,
        #[command(flatten)]
        hub: HubOpts,
    },
    /// A job's results summed up per country or AS: nodes, ok, failed,
    /// refused, latency p50/min/max.
    Report {
        /// Job id (with --from-file, only its results in the file count; optional).
        job: Option<String>,
        /// Group by country or asn.
        #[arg(long, value_enum)]
        aggregate_by: report::Key,
        /// Read the results from a file (`vantage watch --json` lines, or the
        /// array of `vantage results --json`) instead of the hub.
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// The node registry from a file (`vantage nodes --json`) instead of the hub.
        #[arg(long, value_name = "FILE")]
        nodes: Option<PathBuf>,
        #[command(flatten)]
        hub: HubOpts,
    },
    /// The hub's nodes, filtered.
    Nodes {
        #[command(flatten)]
        filter: NodeFilter,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubOpts,
    },
    /// The approval policy: create, change, sign, check, submit.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Mandates, standing approvals for everyday jobs: propose, sign, check, show, revoke.
    #[command(subcommand)]
    Mandate(MandateCmd),
    /// Agent releases, signed by a quorum of approvers: propose, sign, check, show, submit, status.
    #[command(subcommand)]
    Release(ReleaseCmd),
    /// The web console on 127.0.0.1: nodes on a map, jobs, live results, submitting.
    Console {
        #[command(flatten)]
        opts: crate::console::ConsoleOpts,
        #[command(flatten)]
        hub: HubOpts,
    },
}

/// `sign` of a job, mandate or release file.
#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The job, mandate or release file.
    file: PathBuf,
    /// Your approver key (from vantage keygen).
    #[arg(long, env = "VANTAGE_APPROVER_KEY", value_name = "FILE")]
    key: PathBuf,
    /// The current approval policy: names the signers and the threshold, and
    /// refuses to sign with a key it does not list.
    #[arg(long, env = "VANTAGE_POLICY", value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Sign without asking.
    #[arg(long, short)]
    yes: bool,
}

/// `check` of a job, mandate or release file.
#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The job, mandate or release file.
    file: PathBuf,
    /// The current approval policy.
    #[arg(long, env = "VANTAGE_POLICY", value_name = "FILE")]
    policy: PathBuf,
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
    /// Write the network's first policy (serial 1, shipped in the image and read by the hub).
    Init {
        /// An approver: NAME=PUBKEYFILE (repeatable).
        #[arg(long = "approver", value_name = "NAME=PUBKEYFILE", required = true)]
        approvers: Vec<String>,
        /// Approvals a job needs (k of n).
        #[arg(long)]
        threshold: u32,
        /// Probe kinds the network runs: dns,http,tls,tcp,ping,traceroute or all.
        #[arg(long, default_value = "all")]
        allow: String,
        /// The network's name.
        #[arg(long, default_value = "vantage")]
        network: String,
        #[command(flatten)]
        limits: LimitOpts,
        /// Where to write it.
        #[arg(long, default_value = "policy.json")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Write the successor of the current policy (serial + 1), unsigned.
    Propose {
        /// The current policy.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        #[command(flatten)]
        changes: Changes,
        /// Where to write it (default: policy-<serial>.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show a policy file in plain words and add your signature to it.
    Sign {
        /// The proposed policy.
        file: PathBuf,
        /// Your approver key.
        #[arg(long, env = "VANTAGE_APPROVER_KEY", value_name = "FILE")]
        key: PathBuf,
        /// The current policy, to show what changes.
        #[arg(long, value_name = "FILE")]
        current: Option<PathBuf>,
        /// Sign without asking.
        #[arg(long, short)]
        yes: bool,
    },
    /// Exit 0 if the current policy would accept the new one, else 1 and the reason.
    Check {
        /// The current policy.
        #[arg(long, value_name = "FILE")]
        current: PathBuf,
        /// The proposed policy.
        file: PathBuf,
    },
    /// Show a policy file in plain words.
    Show {
        /// The policy file.
        file: PathBuf,
    },
    /// Send a signed successor policy to the hub (POST /v1/policy).
    Submit {
        /// The signed policy.
        file: PathBuf,
        /// Print the hub's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubOpts,
    },
}

#[derive(Debug, Subcommand)]
enum ReleaseCmd {
    /// Write a new release of the binaries `make agent` built, unsigned, and show it in plain words.
    Propose {
        #[command(flatten)]
        opts: release::ProposeOpts,
        /// Where to write it (default: release-<version>.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show a release file in plain words and add your signature to it
    /// (rebuild the tagged source and run `release check --bins` first).
    Sign(SignArgs),
    /// Exit 0 if nodes holding this policy accept the release now, else 1 and the code;
    /// with --bins, also that your own build has exactly the release's hashes.
    Check {
        #[command(flatten)]
        args: CheckArgs,
        /// Your own build of the tagged source (`make agent` writes out/bin).
        #[arg(long, value_name = "DIR")]
        bins: Option<PathBuf>,
    },
    /// Show a release file in plain words.
    Show {
        /// The release file.
        file: PathBuf,
    },
    /// Send a signed release to the hub, then upload its binaries.
    Submit {
        /// The signed release.
        file: PathBuf,
        /// Where the binaries are: <DIR>/<target>/<binary>.
        #[arg(long, value_name = "DIR", default_value = "out/bin")]
        bins: PathBuf,
        /// Print the hub's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubOpts,
    },
    /// The hub's releases and their rollout: waves, nodes updated, failed and pending, a stop and why.
    Status {
        /// One release (default: all, newest first).
        version: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubOpts,
    },
}

#[derive(Debug, Subcommand)]
enum MandateCmd {
    /// Write a new mandate, unsigned, and show it in plain words.
    Propose {
        #[command(flatten)]
        opts: mandate::ProposeOpts,
        /// Where to write it (default: mandate-<id>.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show a mandate file in plain words and add your signature to it.
    Sign(SignArgs),
    /// Exit 0 if hub and nodes holding this policy accept jobs under the mandate now, else 1 and the code.
    Check(CheckArgs),
    /// Show a mandate file in plain words.
    Show {
        /// The mandate file.
        file: PathBuf,
    },
    /// Revoke a mandate with your approver key alone, at the hub (nodes fetch it from there).
    Revoke {
        /// The mandate file (or give --id).
        #[arg(required_unless_present = "id")]
        file: Option<PathBuf>,
        /// The mandate's id.
        #[arg(long, conflicts_with = "file")]
        id: Option<String>,
        /// Your approver key (--key is the hub credentials' TLS key here).
        #[arg(long, env = "VANTAGE_APPROVER_KEY", value_name = "FILE")]
        approver_key: PathBuf,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
        /// Revoke without asking.
        #[arg(long, short)]
        yes: bool,
        /// Print the hub's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubOpts,
    },
}

fn say(text: impl std::fmt::Display) {
    println!("{text}");
}

fn print_json(v: &impl serde::Serialize) {
    say(serde_json::to_string_pretty(v).expect("answers serialise"));
}

fn job_path(id: &str) -> CliResult<String> {
    vantage_proto::job::validate_job_id(id).map_err(|e| CliError::usage(e.to_string()))?;
    Ok(format!("/v1/jobs/{id}"))
}

fn ask(yes: bool, question: &str) -> CliResult {
    if yes
        || approve::confirm(
            question,
            &mut std::io::stdin().lock(),
            &mut std::io::stderr().lock(),
        )?
    {
        Ok(())
    } else {
        Err(CliError::refused("not signed"))
    }
}

fn keygen(out: &Path, force: bool) -> CliResult {
    let (key, pem) = ApproverKey::generate().map_err(|e| CliError::local(e.to_string()))?;
    let base = out.to_string_lossy();
    let (priv_path, pub_path) = (
        PathBuf::from(format!("{base}.key")),
        PathBuf::from(format!("{base}.pub")),
    );
    if !force && pub_path.exists() {
        return Err(CliError::local(format!(
            "{} already exists; choose another --out or use --force",
            pub_path.display()
        )));
    }
    files::write_file(&priv_path, pem.as_bytes(), files::PRIVATE_MODE, force)?;
    let public = key.public_key();
    files::write_file(
        &pub_path,
        format!("{}\n", public.to_base64()).as_bytes(),
        files::PUBLIC_MODE,
        true,
    )?;
    say(format!(
        "wrote {} (private, mode 0600; keep it secret) and {}\npublic key {}\nkey id {}\n\
         give {} to whoever writes the policy: vantage policy init --approver NAME={} ...",
        priv_path.display(),
        pub_path.display(),
        public.to_base64(),
        public.key_id(),
        pub_path.display(),
        pub_path.display()
    ));
    Ok(())
}

/// Who runs this command, as proposer.
fn user() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
}

fn propose_job(probe: &ProbeCmd) -> CliResult {
    let job = probe.build(timespec::now(), user())?;
    let opts = probe.job_opts();
    let loaded = opts.policy.as_deref().map(policy::load).transpose()?;
    if let Some((_, p)) = &loaded {
        job.check_limits(p)
            .map_err(|r| CliError::refused(format!("the policy would refuse this job: {r}")))?;
    }
    let signed = propose::unsigned(&job);
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.job.json", job.id)));
    files::write_file(
        &out,
        &files::to_pretty_json(&signed),
        files::PUBLIC_MODE,
        opts.force,
    )?;
    say(approve::show(
        &signed,
        &job,
        loaded.as_ref().map(|(_, p)| p),
    ));
    say(format!(
        "wrote {}\nnext: approvers run  vantage sign {} --key THEIR.key",
        out.display(),
        out.display()
    ));
    Ok(())
}

fn sign_job(a: &SignArgs) -> CliResult {
    let (mut signed, job) = approve::load(&a.file)?;
    let key = files::load_approver_key(&a.key)?;
    let loaded = a.policy.as_deref().map(policy::load).transpose()?;
    let pol = loaded.as_ref().map(|(_, p)| p);
    say(approve::show(&signed, &job, pol));
    if let Some(p) = pol {
        say_signer(p, &key)?;
        if let Err(r) = job.check_limits(p) {
            say(format!("warning: the policy will refuse this job: {r}"));
        }
    }
    if job.expires <= timespec::now() {
        say("warning: this job has already expired; the hub will refuse it");
    }
    ask(a.yes, "Sign this job?")?;
    signed
        .add_signature(&key)
        .map_err(|e| CliError::local(format!("cannot sign: {e}")))?;
    save_signed(&a.file, &signed, &key, signed.signatures.len())?;
    Ok(())
}

/// Says as whom `key` signs under policy `p`, or refuses a key it does not list.
fn say_signer(p: &vantage_proto::policy::Policy, key: &ApproverKey) -> CliResult {
    match p.approver(&key.public_key().key_id()) {
        Some(a) => {
            say(format!("you sign as {}", a.name));
            Ok(())
        }
        None => Err(CliError::refused(format!(
            "your key {} is not an approver of policy serial {}; your signature would not count",
            key.public_key().key_id(),
            p.serial
        ))),
    }
}

fn submit(file: &Path, json: bool, opts: &HubOpts) -> CliResult {
    let (signed, job) = approve::load(file)?;
    let hub = Hub::connect(opts, false)?;
    let answer: JobAccepted = hub.post("/v1/jobs", &signed)?;
    if json {
        print_json(&answer);
        return Ok(());
    }
    say(format!(
        "accepted: job {} (log seq {})\n  published on: {}\n  {} node(s): {}\nfollow it: vantage watch {}",
        job.id,
        answer.seq,
        answer.channels.join(", "),
        answer.nodes.len(),
        answer.nodes.join(", "),
        job.id
    ));
    Ok(())
}

fn status(id: &str, json: bool, opts: &HubOpts) -> CliResult {
    let hub = Hub::connect(opts, false)?;
    let v: JobStatus = hub.get(&job_path(id)?)?;
    if json {
        print_json(&v);
        return Ok(());
    }
    let rec = &v.job;
    let describe = vantage_proto::job::Job::from_value(&rec.signed_job.job)
        .map(|j| j.describe())
        .unwrap_or_else(|e| format!("job {id} (cannot read it: {e})"));
    let mut s = format!(
        "{describe}\n  status: {}\n  results: {} from {} targeted node(s)\n  submitted {} by {}, approved by key(s) {}\n  published on: {}",
        v.status.as_str(),
        v.results,
        rec.nodes.len(),
        vantage_human::utc(rec.submitted),
        rec.submitter,
        rec.signers.join(", "),
        rec.channels.join(", "),
    );
    for a in &v.audit {
        s += &format!(
            "\n  {} {} {} {}",
            vantage_human::utc(a.time),
            a.actor,
            a.action,
            a.detail
        );
    }
    say(s);
    Ok(())
}

/// How `vantage results` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultsFormat {
    /// A table for people.
    Table,
    /// The native results, as the hub stores them.
    Json,
    /// One CSV row per result with its key figures.
    Csv,
    /// The hub's RIPE Atlas export (ARCHITECTURE.md).
    Atlas,
}

fn show_results(id: &str, format: ResultsFormat, opts: &HubOpts) -> CliResult {
    let hub = Hub::connect(opts, false)?;
    let path = job_path(id)?;
    if format == ResultsFormat::Atlas {
        print_json(&hub.get::<Value>(&format!("{path}/results?format=atlas"))?);
        return Ok(());
    }
    let list: Value = hub.get(&format!("{path}/results"))?;
    match format {
        ResultsFormat::Json => {
            print_json(&list);
            return Ok(());
        }
        ResultsFormat::Csv => {
            let typed: Vec<vantage_proto::result::ProbeResult> = serde_json::from_value(list)
                .map_err(|e| CliError::refused(format!("the hub's results do not parse: {e}")))?;
            print!("{}", results::csv(&typed));
            return Ok(());
        }
        ResultsFormat::Table | ResultsFormat::Atlas => {}
    }
    let items = list.as_array().cloned().unwrap_or_default();
    let index = results::node_index(&hub.get::<Vec<NodeEntry>>("/v1/nodes")?);
    let targeted = watch::Target::from_status(&hub.get(&path)?).nodes;
    let answered = items
        .iter()
        .filter_map(|r| r.get("node_id").and_then(Value::as_str))
        .filter(|n| targeted.contains(*n))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    print!("{}", results::render(&items, &index));
    say(format!(
        "{} result(s); {} of {} nodes answered",
        items.len(),
        answered,
        targeted.len()
    ));
    Ok(())
}

fn show_nodes(filter: &NodeFilter, json: bool, opts: &HubOpts) -> CliResult {
    let hub = Hub::connect(opts, false)?;
    let list = filter.apply(hub.get("/v1/nodes")?)?;
    if json {
        print_json(&list);
    } else {
        print!("{}", nodes::render(&list, timespec::now()));
        say(format!("{} node(s)", list.len()));
    }
    Ok(())
}

fn policy_cmd(cmd: &PolicyCmd) -> CliResult {
    match cmd {
        PolicyCmd::Init {
            approvers,
            threshold,
            allow,
            network,
            limits,
            out,
            force,
        } => {
            let approvers = approvers
                .iter()
                .map(|a| policy::parse_approver(a))
                .collect::<CliResult<Vec<_>>>()?;
            let allow = policy::parse_allow(allow)?;
            let signed = policy::init(network, approvers, *threshold, allow, limits)?;
            policy_init_written(&signed, out, *force)?;
        }
        PolicyCmd::Propose {
            from,
            changes,
            out,
            force,
        } => policy_propose(from, changes, out.as_deref(), *force)?,
        PolicyCmd::Sign {
            file,
            key,
            current,
            yes,
        } => policy_sign(file, key, current.as_deref(), *yes)?,
        PolicyCmd::Check { current, file } => {
            let (_, cur) = policy::load(current)?;
            let next: vantage_proto::policy::SignedPolicy = files::read_json(file, "policy file")?;
            say(policy::check(&cur, &next)?);
        }
        PolicyCmd::Show { file } => {
            let (signed, p) = policy::load(file)?;
            say(policy::describe(&p));
            say(format!("  signatures: {}", signed.signatures.len()));
        }
        PolicyCmd::Submit { file, json, hub } => {
            let (signed, p) = policy::load(file)?;
            let hub = Hub::connect(hub, false)?;
            let answer: PolicyAccepted = hub.post("/v1/policy", &signed)?;
            if *json {
                print_json(&answer);
            } else {
                say(format!(
                    "accepted: the hub now uses policy serial {}",
                    p.serial
                ));
            }
        }
    }
    Ok(())
}

/// Writes the network's first policy to `out` and says what it is.
fn policy_init_written(
    signed: &vantage_proto::policy::SignedPolicy,
    out: &Path,
    force: bool,
) -> CliResult {
    files::write_file(
        out,
        &files::to_pretty_json(signed),
        files::PUBLIC_MODE,
        force,
    )?;
    say(policy::describe(&signed.parse().expect("just validated")));
    say(format!(
        "wrote {}: ship it in the image as /etc/vantage/policy.json and start the hub with it",
        out.display()
    ));
    Ok(())
}

fn policy_propose(from: &Path, changes: &Changes, out: Option<&Path>, force: bool) -> CliResult {
    let (_, current) = policy::load(from)?;
    let next = policy::propose(&current, changes)?;
    let parsed = next.parse().expect("just validated");
    let out = out.map_or_else(
        || policy::default_next_path(parsed.serial),
        Path::to_path_buf,
    );
    files::write_file(
        &out,
        &files::to_pretty_json(&next),
        files::PUBLIC_MODE,
        force,
    )?;
    say(policy::describe(&parsed));
    let diff = policy::diff(&current, &parsed);
    say(format!(
        "changes: {}",
        if diff.is_empty() {
            "none".to_string()
        } else {
            format!("\n  {}", diff.join("\n  "))
        }
    ));
    say(format!(
        "wrote {}\nnext: {} of the current approvers run  vantage policy sign {} --key THEIR.key",
        out.display(),
        current.threshold,
        out.display()
    ));
    Ok(())
}

fn policy_sign(file: &Path, key: &Path, current: Option<&Path>, yes: bool) -> CliResult {
    let (mut signed, next) = policy::load(file)?;
    let key = files::load_approver_key(key)?;
    say(policy::describe(&next));
    if let Some(c) = current {
        let (_, cur) = policy::load(c)?;
        say(format!("changes from serial {}:", cur.serial));
        for line in policy::diff(&cur, &next) {
            say(format!("  {line}"));
        }
        if cur.approver(&key.public_key().key_id()).is_none() {
            return Err(CliError::refused(format!(
                "your key {} is not an approver of the current policy; your signature would not count",
                key.public_key().key_id()
            )));
        }
    }
    ask(yes, "Sign this policy?")?;
    policy::add_signature(&mut signed, &key)?;
    save_signed(file, &signed, &key, signed.signatures.len())
}

fn mandate_cmd(cmd: &MandateCmd) -> CliResult {
    match cmd {
        MandateCmd::Propose { opts, out, force } => {
            let signed = mandate::propose(opts, timespec::now(), user())?;
            let out = out
                .clone()
                .unwrap_or_else(|| mandate::default_path(&opts.id));
            mandate::save(&out, &signed, *force)?;
            say(mandate::describe(&mandate::load(&out)?.1));
            say(format!(
                "wrote {}\nnext: approvers run  vantage mandate sign {} --key THEIR.key",
                out.display(),
                out.display()
            ));
        }
        MandateCmd::Sign(a) => sign_mandate(a)?,
        MandateCmd::Check(CheckArgs { file, policy }) => {
            let (signed, m) = mandate::load(file)?;
            let (_, p) = policy::load(policy)?;
            say(mandate::describe(&m));
            say(mandate::check(&signed, &p, timespec::now())?);
        }
        MandateCmd::Show { file } => {
            let (signed, m) = mandate::load(file)?;
            say(mandate::describe(&m));
            say(format!("  signatures: {}", signed.signatures.len()));
        }
        MandateCmd::Revoke {
            file,
            id,
            approver_key,
            reason,
            yes,
            json,
            hub,
        } => revoke(
            file.as_deref(),
            id.as_deref(),
            approver_key,
            reason,
            *yes,
            *json,
            hub,
        )?,
    }
    Ok(())
}

fn sign_mandate(a: &SignArgs) -> CliResult {
    let (mut signed, m) = mandate::load(&a.file)?;
    sign_after_asking(a, "mandate", mandate::describe(&m), |key| {
        signed
            .add_signature(key)
            .map_err(|e| CliError::local(format!("cannot sign: {e}")))?;
        mandate::save(&a.file, &signed, true)?;
        Ok(signed.signatures.len())
    })
}

fn sign_release(a: &SignArgs) -> CliResult {
    let (mut signed, r) = release::load(&a.file)?;
    if r.expires <= timespec::now() {
        say("warning: this release has already expired; the hub will refuse it");
    }
    sign_after_asking(a, "release", release::describe(&r), |key| {
        signed
            .add_signature(key)
            .map_err(|e| CliError::local(format!("cannot sign: {e}")))?;
        release::save(&a.file, &signed, true)?;
        Ok(signed.signatures.len())
    })
}

/// Shows `description`, checks the key against `--policy`, asks, then lets
/// `sign` add the signature and save the file (it returns how many it has).
fn sign_after_asking(
    a: &SignArgs,
    what: &str,
    description: String,
    sign: impl FnOnce(&ApproverKey) -> CliResult<usize>,
) -> CliResult {
    let key = files::load_approver_key(&a.key)?;
    say(description);
    if let Some(p) = &a.policy {
        say_signer(&policy::load(p)?.1, &key)?;
    }
    ask(a.yes, &format!("Sign this {what}?"))?;
    let n = sign(&key)?;
    say(format!(
        "signed {} as key {}; it now has {n} signature(s)",
        a.file.display(),
        key.public_key().key_id()
    ));
    Ok(())
}

fn release_cmd(cmd: &ReleaseCmd) -> CliResult {
    match cmd {
        ReleaseCmd::Propose { opts, out, force } => {
            let signed = release::propose(opts, timespec::now(), user())?;
            let out = out
                .clone()
                .unwrap_or_else(|| release::default_path(&opts.version));
            release::save(&out, &signed, *force)?;
            say(release::describe(&release::load(&out)?.1));
            say(format!(
                "wrote {}\nnext: approvers rebuild the tagged source, compare (vantage release check {} --policy POLICY --bins out/bin) and sign (vantage release sign {} --key THEIR.key)",
                out.display(),
                out.display(),
                out.display()
            ));
        }
        ReleaseCmd::Sign(a) => sign_release(a)?,
        ReleaseCmd::Check {
            args: CheckArgs { file, policy },
            bins,
        } => {
            let (signed, r) = release::load(file)?;
            let (_, p) = policy::load(policy)?;
            say(release::describe(&r));
            if let Some(dir) = bins {
                release::binaries(&r, dir)?;
                say(format!(
                    "{} holds exactly the binaries the release names",
                    dir.display()
                ));
            }
            say(release::check(&signed, &p, timespec::now())?);
        }
        ReleaseCmd::Show { file } => {
            let (signed, r) = release::load(file)?;
            say(release::describe(&r));
            say(format!("  signatures: {}", signed.signatures.len()));
        }
        ReleaseCmd::Submit {
            file,
            bins,
            json,
            hub,
        } => {
            let (signed, r) = release::load(file)?;
            let hub = Hub::connect(hub, false)?;
            let answer = release::submit(&hub, &signed, &r, bins, &|line| {
                if !*json {
                    say(line);
                }
            })?;
            if *json {
                print_json(&answer);
            }
        }
        ReleaseCmd::Status { version, json, hub } => {
            release_status(version.as_deref(), *json, hub)?
        }
    }
    Ok(())
}

fn release_status(version: Option<&str>, json: bool, opts: &HubOpts) -> CliResult {
    let hub = Hub::connect(opts, false)?;
    let list: vantage_proto::api::ReleaseList = hub.get("/v1/releases")?;
    let shown: Vec<_> = list
        .releases
        .into_iter()
        .filter(|r| version.is_none_or(|v| r.version == v))
        .collect();
    if let (Some(v), true) = (version, shown.is_empty()) {
        return Err(CliError::refused(format!("the hub holds no release {v}")));
    }
    if json {
        print_json(&shown);
    } else if shown.is_empty() {
        say("the hub holds no release");
    }
    for r in shown.iter().filter(|_| !json) {
        say(release::render_status(r));
    }
    Ok(())
}

fn revoke(
    file: Option<&Path>,
    id: Option<&str>,
    key: &Path,
    reason: &str,
    yes: bool,
    json: bool,
    opts: &HubOpts,
) -> CliResult {
    let id = match (file, id) {
        (Some(f), _) => mandate::load(f)?.1.id,
        (None, Some(id)) => id.to_string(),
        (None, None) => return Err(CliError::usage("which mandate? give its FILE or --id")),
    };
    let key = files::load_approver_key(key)?;
    let r = vantage_proto::mandate::Revocation {
        v: vantage_proto::mandate::REVOCATION_VERSION,
        mandate: id.clone(),
        at: timespec::now(),
        reason: reason.to_string(),
    };
    let signed = vantage_proto::mandate::SignedRevocation::sign(&r, &key)
        .map_err(|e| CliError::usage(format!("cannot revoke {id:?}: {e}")))?;
    ask(
        yes,
        &format!("Revoke mandate {id}? Hub and nodes then refuse every job under it, for good."),
    )?;
    let hub = Hub::connect(opts, false)?;
    let answer: RevocationAccepted = hub.post("/v1/mandates/revocations", &signed)?;
    if json {
        print_json(&answer);
    } else if answer.new {
        say(format!(
            "revoked: the hub refuses jobs under mandate {id} from now on; nodes refuse them once they fetched the revocation (at their next heartbeat)"
        ));
    } else {
        say(format!("mandate {id} was revoked already"));
    }
    Ok(())
}

/// Runs one command line.
pub fn run(cli: Cli) -> CliResult {
    match &cli.command {
        Command::Keygen { out, force } => keygen(out, *force),
        Command::Propose { probe } => propose_job(probe),
        Command::Sign(a) => sign_job(a),
        Command::Check {
            args: CheckArgs { file, policy },
            hub,
        } => {
            let (signed, _) = approve::load(file)?;
            let (_, p) = policy::load(policy)?;
            say(approve::check(&signed, &p, timespec::now())?);
            if hub.hub.is_some() {
                say(predict::for_signed(&signed, &p, hub)?);
            }
            Ok(())
        }
        Command::Submit { file, json, hub } => submit(file, *json, hub),
        Command::Status { job, json, hub } => status(job, *json, hub),
        Command::Results {
            job,
            json,
            format,
            hub,
        } => show_results(job, if *json { ResultsFormat::Json } else { *format }, hub),
        Command::Watch {
            job,
            json,
            latency,
            stop_after,
            hub,
        } => {
            job_path(job)?;
            let stop_after = stop_after.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            watch::run(hub, job, Output::from_flags(*json, *latency), stop_after)
        }
        Command::Report {
            job,
            aggregate_by,
            from_file,
            nodes,
            hub,
        } => {
            let source = report::Source {
                job: job.as_deref(),
                results: from_file.as_deref(),
                nodes: nodes.as_deref(),
            };
            say(report::run(&source, *aggregate_by, hub)?);
            Ok(())
        }
        Command::Nodes { filter, json, hub } => show_nodes(filter, *json, hub),
        Command::Policy(cmd) => policy_cmd(cmd),
        Command::Mandate(cmd) => mandate_cmd(cmd),
        Command::Release(cmd) => release_cmd(cmd),
        Command::Quick(probe) => quick::run(probe),
        Command::Console { opts, hub } => crate::console::run(opts, hub),
    }
}

/// Writes a job or policy file after a signature was added, and says so.
fn save_signed(
    file: &std::path::Path,
    signed: &impl serde::Serialize,
    key: &vantage_proto::sign::ApproverKey,
    signatures: usize,
) -> Result<(), CliError> {
    files::write_file(
        file,
        &files::to_pretty_json(signed),
        files::PUBLIC_MODE,
        true,
    )?;
    say(format!(
        "signed {} as key {}; it now has {signatures} signature(s)",
        file.display(),
        key.public_key().key_id(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command's flags are unique (clap checks them only when that
    /// command runs, so a clash would surface as a panic in the field).
    #[test]
    fn the_command_line_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
