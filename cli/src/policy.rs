//! `vantage policy`: the approval policy's first version, its successors,
//! their signatures, and whether a successor would be accepted.

use crate::error::{CliError, CliResult};
use crate::files;
use clap::Args;
use std::path::{Path, PathBuf};
use vantage_human::Duration;
use vantage_proto::policy::{Approver, Limits, Policy, SignedPolicy};
use vantage_proto::probe::ProbeKind;
use vantage_proto::sign::ApproverKey;

/// Limits that `policy init` and `policy propose` may set.
#[derive(Debug, Clone, Default, Args)]
pub struct LimitOpts {
    /// Most nodes one job may ask for.
    #[arg(long)]
    pub max_nodes: Option<u32>,
    /// Longest spread window, e.g. 1h.
    #[arg(long, value_name = "DURATION")]
    pub max_spread: Option<String>,
    /// Longest validity of a job, e.g. 7d.
    #[arg(long, value_name = "DURATION")]
    pub max_validity: Option<String>,
    /// Shortest repeat interval, e.g. 1m.
    #[arg(long, value_name = "DURATION")]
    pub min_repeat: Option<String>,
    /// Most jobs the hub accepts against one target host per hour.
    #[arg(long)]
    pub max_jobs_per_target_per_hour: Option<u32>,
}

impl LimitOpts {
    fn apply(&self, l: &mut Limits) -> CliResult {
        let dur = |d: &Option<String>| {
            d.as_deref()
                .map(crate::timespec::parse_duration)
                .transpose()
        };
        if let Some(n) = self.max_nodes {
            l.max_nodes = n;
        }
        if let Some(s) = dur(&self.max_spread)? {
            l.max_spread_secs = s;
        }
        if let Some(s) = dur(&self.max_validity)? {
            l.max_validity_secs = s;
        }
        if let Some(s) = dur(&self.min_repeat)? {
            l.min_repeat_secs = s;
        }
        if let Some(n) = self.max_jobs_per_target_per_hour {
            l.max_jobs_per_target_per_hour = n;
        }
        Ok(())
    }
}

/// Parses `NAME=PUBKEYFILE` and reads the key.
pub fn parse_approver(spec: &str) -> CliResult<Approver> {
    let (name, file) = spec
        .split_once('=')
        .ok_or_else(|| CliError::usage(format!("--approver {spec:?} must be NAME=PUBKEYFILE")))?;
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(CliError::usage(format!(
            "approver name {name:?} must be 1-64 printable characters"
        )));
    }
    Ok(Approver {
        name: name.to_string(),
        key: files::read_public_key(Path::new(file))?,
    })
}

/// Parses `dns,http,...` (or `all`).
pub fn parse_allow(text: &str) -> CliResult<Vec<ProbeKind>> {
    if text.trim() == "all" {
        return Ok(ProbeKind::ALL.to_vec());
    }
    let mut kinds = text
        .split(',')
        .map(|k| k.trim().parse::<ProbeKind>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::usage(format!("--allow: {e}")))?;
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

fn checked(policy: Policy) -> CliResult<SignedPolicy> {
    policy
        .validate()
        .map_err(|e| CliError::usage(e.to_string()))?;
    Ok(SignedPolicy {
        policy: serde_json::to_value(&policy).expect("policies serialise"),
        signatures: Vec::new(),
    })
}

/// The first policy of a network (serial 1, unsigned: it is trusted because
/// it is shipped in the image and configured on the hub).
pub fn init(
    network: &str,
    approvers: Vec<Approver>,
    threshold: u32,
    allow: Vec<ProbeKind>,
    limits: &LimitOpts,
) -> CliResult<SignedPolicy> {
    let mut l = Limits::default();
    limits.apply(&mut l)?;
    checked(Policy {
        serial: 1,
        network: network.to_string(),
        threshold,
        approvers,
        allowed_probes: allow,
        limits: l,
    })
}

/// Changes for a successor policy.
#[derive(Debug, Clone, Default, Args)]
pub struct Changes {
    /// Add an approver: NAME=PUBKEYFILE (repeatable).
    #[arg(long = "add-approver", value_name = "NAME=PUBKEYFILE")]
    pub add: Vec<String>,
    /// Remove the approver with this name (repeatable).
    #[arg(long = "remove-approver", value_name = "NAME")]
    pub remove: Vec<String>,
    /// New threshold k (approvals needed).
    #[arg(long)]
    pub threshold: Option<u32>,
    /// New probe allowlist: dns,http,tls,tcp,ping,traceroute or all.
    #[arg(long)]
    pub allow: Option<String>,
    /// New limits.
    #[command(flatten)]
    pub limits: LimitOpts,
}

/// The successor of `current` (serial + 1) with `changes`, unsigned.
pub fn propose(current: &Policy, changes: &Changes) -> CliResult<SignedPolicy> {
    let mut next = current.clone();
    next.serial += 1;
    for name in &changes.remove {
        let before = next.approvers.len();
        next.approvers.retain(|a| a.name != *name);
        if next.approvers.len() == before {
            return Err(CliError::usage(format!(
                "--remove-approver {name}: no approver of that name in the current policy"
            )));
        }
    }
    for spec in &changes.add {
        let a = parse_approver(spec)?;
        if next.approvers.iter().any(|x| x.name == a.name) {
            return Err(CliError::usage(format!(
                "--add-approver: {} is already an approver; remove the old entry first",
                a.name
            )));
        }
        next.approvers.push(a);
    }
    if let Some(k) = changes.threshold {
        next.threshold = k;
    }
    if let Some(a) = &changes.allow {
        next.allowed_probes = parse_allow(a)?;
    }
    changes.limits.apply(&mut next.limits)?;
    checked(next)
}

/// Reads a policy file.
pub fn load(path: &Path) -> CliResult<(SignedPolicy, Policy)> {
    let signed: SignedPolicy = files::read_json(path, "policy file")?;
    let policy = signed
        .parse()
        .map_err(|e| CliError::local(format!("{}: {e}", path.display())))?;
    Ok((signed, policy))
}

/// Adds `key`'s signature to `signed` (replacing an earlier one by the same key).
pub fn add_signature(signed: &mut SignedPolicy, key: &ApproverKey) -> CliResult {
    let sig = key
        .sign_policy(&signed.policy)
        .map_err(|e| CliError::local(format!("cannot sign this policy: {e}")))?;
    signed.signatures.retain(|s| s.key_id != sig.key_id);
    signed.signatures.push(sig);
    Ok(())
}

/// Whether `current` accepts `next`, with a sentence either way.
pub fn check(current: &Policy, next: &SignedPolicy) -> CliResult<String> {
    let accepted = current
        .accept_successor(next)
        .map_err(|e| CliError::refused(format!("would be refused: {e}")))?;
    let bytes = vantage_proto::canonical::policy_signing_bytes(&next.policy)
        .map_err(|e| CliError::refused(e.to_string()))?;
    let names = current
        .check_approvals(&bytes, &next.signatures)
        .map_err(|e| CliError::refused(e.to_string()))?;
    Ok(format!(
        "would be accepted: serial {} replaces {}, approved by {} ({} of {} needed)",
        accepted.serial,
        current.serial,
        names.join(", "),
        names.len(),
        current.threshold
    ))
}

/// The policy in plain words.
pub fn describe(p: &Policy) -> String {
    let mut s = format!(
        "approval policy of network {:?}, serial {}\n  jobs need {} of these {} approvers:\n",
        p.network,
        p.serial,
        p.threshold,
        p.approvers.len()
    );
    for a in &p.approvers {
        s += &format!("    {:<16} key id {}\n", a.name, a.key.key_id());
    }
    let kinds: Vec<&str> = p.allowed_probes.iter().map(|k| k.as_str()).collect();
    let l = &p.limits;
    s += &format!(
        "  probes allowed: {}\n  limits: at most {} nodes per job, spread at most {}, valid at most {}, repeat at least every {}, at most {} jobs per target per hour",
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        },
        l.max_nodes,
        Duration::from_secs(l.max_spread_secs),
        Duration::from_secs(l.max_validity_secs),
        Duration::from_secs(l.min_repeat_secs),
        l.max_jobs_per_target_per_hour
    );
    s
}

/// What changes from `old` to `new`, one line per change.
pub fn diff(old: &Policy, new: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    for a in &new.approvers {
        if !old.approvers.contains(a) {
            out.push(format!("+ approver {} (key id {})", a.name, a.key.key_id()));
        }
    }
    for a in &old.approvers {
        if !new.approvers.contains(a) {
            out.push(format!("- approver {} (key id {})", a.name, a.key.key_id()));
        }
    }
    if old.threshold != new.threshold {
        out.push(format!("threshold {} -> {}", old.threshold, new.threshold));
    }
    if old.allowed_probes != new.allowed_probes {
        out.push(format!(
            "probes allowed {:?} -> {:?}",
            old.allowed_probes, new.allowed_probes
        ));
    }
    if old.limits != new.limits {
        out.push(format!("limits {:?} -> {:?}", old.limits, new.limits));
    }
    if old.network != new.network {
        out.push(format!("network {:?} -> {:?}", old.network, new.network));
    }
    out
}

/// Where `policy propose` writes when no `--out` is given.
pub fn default_next_path(serial: u64) -> PathBuf {
    PathBuf::from(format!("policy-{serial}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_testkit::approvers as test_keys;

    fn approvers(n: u8) -> (Vec<ApproverKey>, Vec<Approver>) {
        let keys = test_keys::approver_keys(n);
        let a = test_keys::approvers(&keys);
        (keys, a)
    }

    #[test]
    fn rotation_through_the_cli_functions() {
        let (keys, a) = approvers(3);
        let first = init("demo", a, 2, ProbeKind::ALL.to_vec(), &LimitOpts::default()).unwrap();
        let current = first.parse().unwrap();
        let changes = Changes {
            remove: vec!["a0".into()],
            threshold: Some(1),
            ..Default::default()
        };
        let mut next = propose(&current, &changes).unwrap();
        assert_eq!(next.parse().unwrap().serial, 2);
        assert!(matches!(check(&current, &next), Err(CliError::Refused(_))));
        add_signature(&mut next, &keys[0]).unwrap();
        add_signature(&mut next, &keys[0]).unwrap();
        assert_eq!(next.signatures.len(), 1);
        assert!(
            check(&current, &next)
                .unwrap_err()
                .to_string()
                .contains("1 of the 2")
        );
        add_signature(&mut next, &keys[2]).unwrap();
        assert!(check(&current, &next).unwrap().contains("a0, a2"));
        let d = diff(&current, &next.parse().unwrap());
        assert!(d.iter().any(|l| l.starts_with("- approver a0")), "{d:?}");
    }

    #[test]
    fn bad_inputs() {
        let (_, a) = approvers(2);
        assert!(matches!(
            init("d", a.clone(), 3, vec![], &LimitOpts::default()),
            Err(CliError::Usage(_))
        ));
        assert!(parse_allow("dns,smtp").is_err());
        assert_eq!(
            parse_allow("tcp, dns,dns").unwrap(),
            vec![ProbeKind::Dns, ProbeKind::Tcp]
        );
        let p = init("d", a, 1, vec![], &LimitOpts::default())
            .unwrap()
            .parse()
            .unwrap();
        let c = Changes {
            remove: vec!["nobody".into()],
            ..Default::default()
        };
        assert!(matches!(propose(&p, &c), Err(CliError::Usage(_))));
    }
}
