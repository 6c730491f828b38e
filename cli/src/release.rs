//! `vantage release`: quorum-signed agent releases. Proposed from the
//! binaries `make agent` built (`out/bin/<target>/`), shown in plain words,
//! signed by approvers one after the other (each first rebuilds the tagged
//! source and compares the hashes: see docs/releases.md), checked against
//! the current policy, then submitted with the binaries; the hub paces the
//! rollout in waves (`vantage release status`).

use crate::error::{CliError, CliResult};
use crate::hub::Hub;
use crate::{files, timespec};
use clap::Args;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vantage_human::Duration;
use vantage_proto::api::{BinaryStored, ReleaseAccepted, ReleaseStatus};
use vantage_proto::policy::Policy;
use vantage_proto::release::{Artifact, BINARIES, RELEASE_FORMAT, Release, SignedRelease};
use vantage_proto::select::Selection;

/// What `release propose` asks.
#[derive(Debug, Clone, Args)]
pub struct ProposeOpts {
    /// The directory `make agent` wrote: one subdirectory per target triple
    /// holding vantage-agent (and vantage-provision).
    #[arg(long, value_name = "DIR", default_value = "out/bin")]
    pub bins: PathBuf,
    /// The version the new agent reports (SemVer), e.g. 0.2.0.
    #[arg(long)]
    pub version: String,
    /// The nodes it is for, in the selection language ("country=DE or continent=SA").
    #[arg(long, value_name = "SELECTION", default_value = "everyone")]
    pub select: String,
    /// Cumulative percentages of the matching nodes, one per wave.
    #[arg(long, value_name = "PERCENTS", default_value = "5,25,100")]
    pub waves: String,
    /// Stop the rollout when more than this percentage of a wave's nodes that tried rolled back.
    #[arg(long, value_name = "PERCENT", default_value_t = 20)]
    pub max_rollback: u8,
    /// A node rolls back unless the hub accepts a heartbeat of the new agent within this time.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub confirm: String,
    /// When it starts to be valid: now, +1h, Unix seconds or 2026-12-01T00:00:00Z.
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub not_before: String,
    /// How long it stays valid after --not-before.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub valid: String,
    /// Let nodes running a newer version install it.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Another place to fetch the binaries from (https://.../, the file is
    /// <mirror><version>/<target>/<binary>); repeatable.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// What changed, in words, for approvers and volunteers.
    #[arg(long, default_value = "")]
    pub notes: String,
    /// Who proposes it (default: $USER).
    #[arg(long)]
    pub proposer: Option<String>,
}

/// The binaries under `dir`: per target triple (subdirectory), each of
/// [`BINARIES`] found there, with its bytes' artifact.
pub fn artifacts(dir: &Path) -> CliResult<BTreeMap<String, BTreeMap<String, Artifact>>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::local(format!("cannot read {}: {e}", dir.display())))?;
    let mut targets = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.join(BINARIES[0]).is_file() {
            continue;
        }
        let mut bins = BTreeMap::new();
        for b in BINARIES {
            let file = path.join(b);
            if file.is_file() {
                bins.insert(b.to_string(), Artifact::of(&read(&file)?));
            }
        }
        targets.insert(entry.file_name().to_string_lossy().into_owned(), bins);
    }
    if targets.is_empty() {
        return Err(CliError::local(format!(
            "{} holds no <target>/vantage-agent; build them with `make agent`",
            dir.display()
        )));
    }
    Ok(targets)
}

fn read(file: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(file).map_err(|e| CliError::local(format!("cannot read {}: {e}", file.display())))
}

/// A new release of the binaries under `o.bins`, unsigned, validated by the protocol crate.
pub fn propose(
    o: &ProposeOpts,
    now: u64,
    default_proposer: Option<String>,
) -> CliResult<SignedRelease> {
    let select = Selection::parse(&o.select)
        .map_err(|e| CliError::usage(format!("--select {:?}: {e}", o.select)))?;
    let waves = o
        .waves
        .split(',')
        .map(|w| w.trim().trim_end_matches('%').parse::<u8>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            CliError::usage(format!(
                "--waves {:?}: expected percentages like 5,25,100",
                o.waves
            ))
        })?;
    let not_before = timespec::parse_time(&o.not_before, now)?;
    let proposer = o.proposer.clone().or(default_proposer).ok_or_else(|| {
        CliError::usage("who proposes this release? give --proposer NAME (or set $USER)")
    })?;
    let mut value = json!({
        "v": RELEASE_FORMAT, "version": o.version, "targets": artifacts(&o.bins)?,
        "rollout": {"select": select, "waves": waves, "max_rollback_percent": o.max_rollback,
            "confirm_secs": timespec::parse_duration(&o.confirm)?},
        "not_before": not_before,
        "expires": not_before.saturating_add(timespec::parse_duration(&o.valid)?),
        "proposer": proposer,
    });
    if !o.mirrors.is_empty() {
        value["mirrors"] = json!(o.mirrors);
    }
    if o.allow_downgrade {
        value["allow_downgrade"] = json!(true);
    }
    if !o.notes.is_empty() {
        value["notes"] = json!(o.notes);
    }
    Release::from_value(&value).map_err(|e| CliError::usage(e.to_string()))?;
    Ok(SignedRelease {
        release: value,
        signatures: Vec::new(),
    })
}

/// Reads a release file.
pub fn load(path: &Path) -> CliResult<(SignedRelease, Release)> {
    let text = read(path)?;
    let signed = SignedRelease::from_json(&text)
        .map_err(|e| CliError::local(format!("{}: not a release file: {e}", path.display())))?;
    let r = Release::from_value(&signed.release)
        .map_err(|e| CliError::local(format!("{}: {e}", path.display())))?;
    Ok((signed, r))
}

/// Writes `signed` to `path`.
pub fn save(path: &Path, signed: &SignedRelease, force: bool) -> CliResult {
    files::write_file(
        path,
        &files::to_pretty_json(signed),
        files::PUBLIC_MODE,
        force,
    )
}

/// Where `release propose` writes when no `--out` is given.
pub fn default_path(version: &str) -> PathBuf {
    PathBuf::from(format!("release-{version}.json"))
}

/// The release in plain words, with its window in UTC.
pub fn describe(r: &Release) -> String {
    format!(
        "{}  valid from {} to {} ({})",
        r.describe(),
        vantage_human::utc(r.not_before),
        vantage_human::utc(r.expires),
        Duration::from_secs(r.expires.saturating_sub(r.not_before))
    )
}

/// Whether nodes holding `policy` install `signed` at `now` (as far as the
/// release alone decides), with a sentence either way.
pub fn check(signed: &SignedRelease, policy: &Policy, now: u64) -> CliResult<String> {
    let (r, names) = signed
        .verify(policy)
        .map_err(|e| CliError::refused(format!("would be refused ({}): {e}", e.code())))?;
    if now >= r.expires {
        return Err(CliError::refused(format!(
            "would be refused (release-expired): it expired {}",
            vantage_human::utc(r.expires)
        )));
    }
    Ok(format!(
        "valid: approved by {} ({} of {} needed under policy serial {}); expires in {}",
        names.join(", "),
        names.len(),
        policy.threshold,
        policy.serial,
        Duration::from_secs(r.expires - now)
    ))
}

/// The bytes of every binary `r` names, from `dir/<target>/<binary>`, each
/// checked against the release: refused, naming the file, if one differs.
pub fn binaries(r: &Release, dir: &Path) -> CliResult<Vec<(String, String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (target, names) in &r.targets {
        for (name, artifact) in names {
            let file = dir.join(target).join(name);
            let bytes = read(&file)?;
            artifact.check(&bytes).map_err(|e| {
                CliError::refused(format!(
                    "{} is not what the release names ({}): {e}",
                    file.display(),
                    e.code()
                ))
            })?;
            out.push((target.clone(), name.clone(), bytes));
        }
    }
    Ok(out)
}

/// Submits the release, then uploads each binary from `bins/<target>/<binary>`
/// (checked against the release first), saying how far it got.
pub fn submit(
    hub: &Hub,
    signed: &SignedRelease,
    r: &Release,
    bins: &Path,
    say: &dyn Fn(String),
) -> CliResult<ReleaseAccepted> {
    let files = binaries(r, bins)?;
    let accepted: ReleaseAccepted = hub.post("/v1/releases", signed)?;
    let how = if accepted.new {
        "accepted"
    } else {
        "already held; its signatures replaced"
    };
    say(format!(
        "release {} {how} by the hub (signed by {})",
        accepted.version,
        accepted.signers.join(", ")
    ));
    for (i, (target, name, bytes)) in files.iter().enumerate() {
        let path = format!("/v1/releases/{}/{target}/{name}", r.version);
        let stored: BinaryStored = hub.put_bytes(&path, bytes)?;
        say(format!(
            "[{}/{}] uploaded {target}/{name}: {} bytes, sha256 {}",
            i + 1,
            files.len(),
            stored.size,
            stored.sha256
        ));
    }
    Ok(accepted)
}

/// An audit entry's details in a few words.
fn audit_words(d: &serde_json::Value) -> String {
    if let (Some(from), Some(to)) = (d["from"].as_u64(), d["to"].as_u64()) {
        return format!(": wave {} opened (was {})", to + 1, from + 1);
    }
    if let (Some(t), Some(b)) = (d["target"].as_str(), d["binary"].as_str()) {
        return format!(": {t}/{b}");
    }
    if let Some(r) = d["reason"].as_str() {
        return format!(": {r}");
    }
    d["signers"]
        .as_array()
        .map(|s| {
            let names: Vec<&str> = s.iter().filter_map(|n| n.as_str()).collect();
            format!(": signed by {}", names.join(", "))
        })
        .unwrap_or_default()
}

/// A release's rollout in a few lines.
pub fn render_status(s: &ReleaseStatus) -> String {
    let mut out = format!(
        "release {}: {}\n  submitted {} by {}, signed by {}\n  valid {} .. {}\n",
        s.version,
        s.state.as_str(),
        vantage_human::utc(u64::try_from(s.submitted).unwrap_or(0)),
        s.submitter,
        s.signers.join(", "),
        vantage_human::utc(s.not_before),
        vantage_human::utc(s.expires)
    );
    if !s.missing.is_empty() {
        out += &format!("  binaries not uploaded yet: {}\n", s.missing.join(", "));
    }
    if let Some(stop) = &s.stopped {
        out += &format!(
            "  STOPPED {}: {}\n",
            vantage_human::utc(u64::try_from(stop.at).unwrap_or(0)),
            stop.reason
        );
    }
    for a in &s.audit {
        out += &format!(
            "  {} {} by {}{}\n",
            vantage_human::utc(u64::try_from(a.time).unwrap_or(0)),
            a.action,
            a.actor,
            audit_words(&a.detail)
        );
    }
    let rows: Vec<Vec<String>> = s
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| {
            vec![
                (i + 1).to_string(),
                format!("{}%", w.percent),
                if w.open { "open" } else { "closed" }.to_string(),
                w.nodes.to_string(),
                w.updated.to_string(),
                w.failed.to_string(),
                w.pending.to_string(),
            ]
        })
        .collect();
    out += &vantage_human::table::render(
        &[
            "wave", "up to", "offered", "nodes", "updated", "failed", "pending",
        ],
        &rows,
    );
    out
}
