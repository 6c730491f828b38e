//! `vantage mandate`: standing approvals for everyday measurements. Made and
//! signed like a policy (`vantage policy`): one file, proposed, shown in
//! plain words, signed by approvers one after the other, checked against
//! the current policy; revoked by any one approver at the hub.
//!
//! Operators keep the signed mandate in a file (`VANTAGE_MANDATE`): it is
//! not secret, every job ordered under it carries it whole, and a file is
//! what approvers signed, so nobody has to trust a hub to hand it out.

use crate::error::{CliError, CliResult};
use crate::{files, timespec};
use clap::Args;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use vantage_human::Duration;
use vantage_proto::mandate::{MANDATE_VERSION, Mandate, ProbeBounds, SignedMandate};
use vantage_proto::policy::Policy;
use vantage_proto::select::Selection;

/// What `mandate propose` asks.
#[derive(Debug, Clone, Args)]
pub struct ProposeOpts {
    /// The mandate's id ([A-Za-z0-9._-], at most 64), e.g. everyday-2026-12.
    #[arg(long)]
    pub id: String,
    /// An operator who may order under it: NAME=PUBKEYFILE (from vantage keygen; repeatable).
    #[arg(long = "operator", value_name = "NAME=PUBKEYFILE", required = true)]
    pub operators: Vec<String>,
    /// A probe kind allowed, with its bounds: KIND[:BOUND=VALUES]..., e.g.
    /// ping:max_count=5, tcp:ports=80,443, dns:qtypes=A,AAAA,
    /// http:methods=GET,HEAD:ports=443, traceroute:max_hops=20:protocols=icmp
    /// (dns:custom_resolver lets jobs name a resolver). Repeatable.
    #[arg(long = "probe", value_name = "KIND[:BOUND=VALUES]", required = true)]
    pub probes: Vec<String>,
    /// The nodes jobs may run on, in the selection language ("country=DE or continent=SA").
    #[arg(long, value_name = "SELECTION", default_value = "everyone")]
    pub select: String,
    /// Most nodes one job may ask for.
    #[arg(long, default_value_t = 10)]
    pub max_nodes: u32,
    /// Longest validity of one job, e.g. 15m.
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub max_job_validity: String,
    /// Jobs per rolling hour one operator may order (counted by the hub).
    #[arg(long, default_value_t = 60)]
    pub per_operator: u32,
    /// Jobs per rolling hour against one target host (counted by the hub).
    #[arg(long, default_value_t = 10)]
    pub per_target: u32,
    /// Jobs per rolling hour one node runs (counted by each node).
    #[arg(long, default_value_t = 30)]
    pub per_node: u32,
    /// When it starts to be valid: now, +1h, Unix seconds or 2026-12-01T00:00:00Z.
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub not_before: String,
    /// How long it stays valid after --not-before, e.g. 30d. Keep it short:
    /// a stolen operator key and hub together can use it until then.
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub valid_for: String,
    /// Who proposes it (default: $USER).
    #[arg(long)]
    pub proposer: Option<String>,
}

/// Parses `KIND[:BOUND=VALUES]...` into a kind and its bounds (JSON as signed).
fn parse_probe(spec: &str) -> CliResult<(String, Value)> {
    let mut parts = spec.split(':');
    let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let mut bounds = Map::new();
    for part in parts {
        let (key, values) = part.split_once('=').unwrap_or((part, ""));
        let list = || values.split(',').map(str::trim).filter(|v| !v.is_empty());
        let number = |v: &str| {
            v.parse::<u64>().map(Value::from).map_err(|_| {
                CliError::usage(format!("--probe {spec}: {key} wants numbers, not {v:?}"))
            })
        };
        let value = match key {
            "custom_resolver" if values.is_empty() => Value::Bool(true),
            "ports" => list().map(number).collect::<CliResult<Vec<_>>>()?.into(),
            "max_count" | "max_hops" => number(values)?,
            "qtypes" | "methods" => list().map(|v| json!(v.to_ascii_uppercase())).collect(),
            "protocols" => list().map(|v| json!(v.to_ascii_lowercase())).collect(),
            _ => {
                return Err(CliError::usage(format!(
                    "--probe {spec}: unknown bound {key:?} (ports, qtypes, custom_resolver, methods, max_count, max_hops, protocols)"
                )));
            }
        };
        bounds.insert(key.to_string(), value);
    }
    Ok((kind, Value::Object(bounds)))
}

/// Parses `NAME=PUBKEYFILE` of an operator.
fn parse_operator(spec: &str) -> CliResult<Value> {
    let a = crate::policy::parse_approver(spec)?;
    Ok(json!({"name": a.name, "key": a.key}))
}

/// A new mandate, unsigned, validated by the protocol crate.
pub fn propose(
    o: &ProposeOpts,
    now: u64,
    default_proposer: Option<String>,
) -> CliResult<SignedMandate> {
    let select = Selection::parse(&o.select)
        .map_err(|e| CliError::usage(format!("--select {:?}: {e}", o.select)))?;
    let mut probes = Map::new();
    for spec in &o.probes {
        let (kind, bounds) = parse_probe(spec)?;
        probes.insert(kind, bounds);
    }
    let not_before = timespec::parse_time(&o.not_before, now)?;
    let value = json!({
        "v": MANDATE_VERSION, "id": o.id,
        "proposer": o.proposer.clone().or(default_proposer).ok_or_else(|| {
            CliError::usage("who proposes this mandate? give --proposer NAME (or set $USER)")
        })?,
        "operators": o.operators.iter().map(|s| parse_operator(s)).collect::<CliResult<Vec<_>>>()?,
        "probes": probes, "select": select, "max_nodes": o.max_nodes,
        "max_job_validity_secs": timespec::parse_duration(&o.max_job_validity)?,
        "rates": {"per_operator": o.per_operator, "per_target": o.per_target, "per_node": o.per_node},
        "not_before": not_before,
        "expires": not_before.saturating_add(timespec::parse_duration(&o.valid_for)?),
    });
    Mandate::from_value(&value).map_err(|e| CliError::usage(e.to_string()))?;
    Ok(SignedMandate {
        mandate: value,
        signatures: Vec::new(),
    })
}

/// Reads a mandate file.
pub fn load(path: &Path) -> CliResult<(SignedMandate, Mandate)> {
    let text = std::fs::read(path)
        .map_err(|e| CliError::local(format!("cannot read {}: {e}", path.display())))?;
    let signed = SignedMandate::from_json(&text)
        .map_err(|e| CliError::local(format!("{}: not a mandate file: {e}", path.display())))?;
    let m = Mandate::from_value(&signed.mandate)
        .map_err(|e| CliError::local(format!("{}: {e}", path.display())))?;
    Ok((signed, m))
}

fn list<T: std::fmt::Debug>(v: &[T]) -> String {
    v.iter()
        .map(|x| format!("{x:?}").trim_matches('"').to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One probe kind's bounds in plain words.
fn bounds_words(b: &ProbeBounds) -> String {
    let mut w = Vec::new();
    if let Some(p) = &b.ports {
        w.push(format!("ports {}", list(p)));
    }
    if let Some(q) = &b.qtypes {
        w.push(format!("record types {}", list(q)));
    }
    if let Some(m) = &b.methods {
        w.push(format!("methods {}", list(m)));
    }
    if let Some(n) = b.max_count {
        w.push(format!("at most {n} echo requests"));
    }
    if let Some(n) = b.max_hops {
        w.push(format!("at most {n} hops"));
    }
    if let Some(p) = &b.protocols {
        w.push(format!("protocols {}", list(p)));
    }
    if b.custom_resolver {
        w.push("any resolver".into());
    } else if b.qtypes.is_some() {
        w.push("only the node's own resolver".into());
    }
    if w.is_empty() {
        "within the probe catalog's ranges".into()
    } else {
        w.join("; ")
    }
}

/// The mandate in plain words, one bound a line, for approvers and operators.
pub fn describe(m: &Mandate) -> String {
    let mut s = format!(
        "mandate {} proposed by {}\n  operators who may order under it:\n",
        m.id, m.proposer
    );
    for o in &m.operators {
        s += &format!("    {:<16} key id {}\n", o.name, o.key.key_id());
    }
    s += "  probes:\n";
    for (kind, b) in &m.probes {
        s += &format!("    {:<11} {}\n", kind.as_str(), bounds_words(b));
    }
    s += &format!(
        "  nodes: {}, at most {} per job\n  each job valid at most {}, run once (no repeats)\n  \
         rates per rolling hour: {} jobs per operator, {} per target host, {} per node\n  \
         valid from {} to {} ({})",
        match &m.select {
            Selection::Everyone => "every node".to_string(),
            other => format!("those where {other}"),
        },
        m.max_nodes,
        Duration::from_secs(m.max_job_validity_secs),
        m.rates.per_operator,
        m.rates.per_target,
        m.rates.per_node,
        vantage_human::utc(m.not_before),
        vantage_human::utc(m.expires),
        Duration::from_secs(m.expires - m.not_before),
    );
    s
}

/// Whether hub and nodes holding `policy` accept jobs under `signed` at
/// `now`, with a sentence either way.
pub fn check(signed: &SignedMandate, policy: &Policy, now: u64) -> CliResult<String> {
    let (m, names) = signed
        .verify(policy)
        .map_err(|r| CliError::refused(format!("would be refused ({}): {r}", r.code())))?;
    if now < m.not_before || now >= m.expires {
        return Err(CliError::refused(format!(
            "would be refused (mandate-time): valid from {} to {}, it is {}",
            vantage_human::utc(m.not_before),
            vantage_human::utc(m.expires),
            vantage_human::utc(now)
        )));
    }
    Ok(format!(
        "valid: approved by {} ({} of {} needed under policy serial {}); expires in {}",
        names.join(", "),
        names.len(),
        policy.threshold,
        policy.serial,
        Duration::from_secs(m.expires - now)
    ))
}

/// Where `mandate propose` writes when no `--out` is given.
pub fn default_path(id: &str) -> PathBuf {
    PathBuf::from(format!("mandate-{id}.json"))
}

/// Writes `signed` to `path`.
pub fn save(path: &Path, signed: &SignedMandate, force: bool) -> CliResult {
    files::write_file(
        path,
        &files::to_pretty_json(signed),
        files::PUBLIC_MODE,
        force,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_testkit::approvers as test_keys;

    fn opts(probes: &[&str]) -> ProposeOpts {
        ProposeOpts {
            id: "everyday".into(),
            operators: vec![],
            probes: probes.iter().map(|p| p.to_string()).collect(),
            select: "country=DE".into(),
            max_nodes: 5,
            max_job_validity: "15m".into(),
            per_operator: 60,
            per_target: 10,
            per_node: 30,
            not_before: "now".into(),
            valid_for: "1d".into(),
            proposer: None,
        }
    }

    fn with_operator(dir: &Path, o: &mut ProposeOpts) {
        let key = test_keys::approver_keys(1).remove(0);
        let file = dir.join("olga.pub");
        std::fs::write(&file, key.public_key().to_base64()).unwrap();
        o.operators = vec![format!("olga={}", file.display())];
    }

    #[test]
    fn propose_sign_check_against_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(&[
            "ping:max_count=5",
            "tcp:ports=80,443",
            "dns:qtypes=a,aaaa",
            "http:methods=get:ports=443",
        ]);
        with_operator(dir.path(), &mut o);
        let mut signed = propose(&o, 1_000, Some("alice".into())).unwrap();
        let m = Mandate::from_value(&signed.mandate).unwrap();
        let d = describe(&m);
        for words in [
            "olga",
            "at most 5 echo requests",
            "ports 80, 443",
            "record types A, AAAA; only the node's own resolver",
            "ports 443; methods GET",
            "those where country=DE, at most 5 per job",
            "valid at most 15m",
            "60 jobs per operator, 10 per target host, 30 per node",
        ] {
            assert!(d.contains(words), "{words}: {d}");
        }
        let keys = test_keys::approver_keys(3);
        let policy = crate::policy::init(
            "t",
            test_keys::approvers(&keys),
            2,
            vec![],
            &Default::default(),
        )
        .unwrap()
        .parse()
        .unwrap();
        let e = check(&signed, &policy, 1_000).unwrap_err().to_string();
        assert!(e.contains("mandate-too-few-approvals"), "{e}");
        signed.add_signature(&keys[0]).unwrap();
        signed.add_signature(&keys[2]).unwrap();
        assert!(
            check(&signed, &policy, 1_000)
                .unwrap()
                .contains("a0, a2 (2 of 2")
        );
        let e = check(&signed, &policy, 1_000 + 86_400)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mandate-time"), "{e}");
    }

    #[test]
    fn bad_bounds_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        for probes in [
            &["ping:ports=80"][..],
            &["tcp:ports=http"],
            &["tcp:colour=red"],
            &["smtp"],
        ] {
            let mut o = opts(probes);
            with_operator(dir.path(), &mut o);
            assert!(
                matches!(
                    propose(&o, 1_000, Some("a".into())),
                    Err(CliError::Usage(_))
                ),
                "{probes:?}"
            );
        }
    }
}
