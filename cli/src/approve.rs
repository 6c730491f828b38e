//! Showing a job file to an approver, signing it, and checking its
//! signatures against a policy the way the hub and the nodes will.

use crate::error::{CliError, CliResult};
use crate::files;
use std::io::{BufRead, Write};
use std::path::Path;
use vantage_human::{Duration, utc};
use vantage_proto::job::{Job, SignedJob};
use vantage_proto::policy::Policy;

/// Reads a job file and parses its job.
pub fn load(path: &Path) -> CliResult<(SignedJob, Job)> {
    let signed: SignedJob = files::read_json(path, "job file")?;
    let job = Job::from_value(&signed.job)
        .map_err(|e| CliError::local(format!("{}: {e}", path.display())))?;
    Ok((signed, job))
}

/// The job in plain words, with its exact probe arguments and the signatures so far
/// (named when a policy is given).
pub fn show(signed: &SignedJob, job: &Job, policy: Option<&Policy>) -> String {
    let mut s = job.describe();
    s += &format!(
        "\n  valid from {} to {} (UTC, {})",
        utc(job.not_before),
        utc(job.expires),
        Duration::from_secs(job.expires - job.not_before)
    );
    s += &format!(
        "\n  exact probe: {}",
        vantage_proto::canonical::to_canonical_string(&signed.job["probe"])
            .unwrap_or_else(|e| e.to_string())
    );
    s += &format!("\n  selection as signed: {}", signed.job["select"]);
    let names: Vec<String> = signed
        .signatures
        .iter()
        .map(|sig| match policy.and_then(|p| p.approver(&sig.key_id)) {
            Some(a) => format!("{} ({})", a.name, sig.key_id),
            None if policy.is_some() => format!("{} (not an approver of this policy)", sig.key_id),
            None => sig.key_id.clone(),
        })
        .collect();
    s += &format!(
        "\n  signatures: {}{}",
        signed.signatures.len(),
        if names.is_empty() {
            String::new()
        } else {
            format!(" - {}", names.join(", "))
        }
    );
    if let Some(p) = policy {
        s += &format!(" ({} needed)", p.threshold);
    }
    s
}

/// Asks `question` on stderr and reads the answer from `input`; only y/yes agrees.
pub fn confirm(question: &str, input: &mut impl BufRead, err: &mut impl Write) -> CliResult<bool> {
    write!(err, "{question} [y/N] ")
        .and_then(|()| err.flush())
        .ok();
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| CliError::local(format!("cannot read the answer: {e}")))?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Whether the hub and nodes would accept this signed job under `policy` now.
pub fn check(signed: &SignedJob, policy: &Policy, now: u64) -> CliResult<String> {
    let job = signed
        .verify(policy, now)
        .map_err(|r| CliError::refused(format!("would be refused ({}): {r}", r.code())))?;
    let bytes = vantage_proto::canonical::job_signing_bytes(&signed.job)
        .map_err(|e| CliError::refused(e.to_string()))?;
    let names = policy
        .check_approvals(&bytes, &signed.signatures)
        .map_err(|e| CliError::refused(e.to_string()))?;
    Ok(format!(
        "job {} would be accepted: approved by {} ({} of {} needed)",
        job.id,
        names.join(", "),
        names.len(),
        policy.threshold
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_proto::policy::{Approver, Limits};
    use vantage_proto::probe::ProbeKind;

    #[test]
    fn check_counts_named_approvers() {
        let keys = vantage_testkit::approvers::approver_keys(4);
        let policy = Policy {
            serial: 1,
            network: "t".into(),
            threshold: 2,
            approvers: keys[..3]
                .iter()
                .zip(["alice", "bob", "carol"])
                .map(|(k, n)| Approver {
                    name: n.into(),
                    key: k.public_key(),
                })
                .collect(),
            allowed_probes: ProbeKind::ALL.to_vec(),
            limits: Limits::default(),
        };
        let job = serde_json::json!({"v": 1, "id": "j1", "probe": {"cmd": "dnslookup", "args": "example.com"},
            "select": "everyone", "not_before": 100, "expires": 200, "proposer": "p"});
        let mut signed = SignedJob {
            job,
            signatures: vec![],
            mandated: None,
        };
        signed.add_signature(&keys[3]).unwrap();
        signed.add_signature(&keys[0]).unwrap();
        let e = check(&signed, &policy, 150).unwrap_err();
        assert!(e.to_string().contains("unknown-approver"), "{e}");
        signed.add_signature(&keys[2]).unwrap();
        assert!(
            check(&signed, &policy, 150)
                .unwrap()
                .contains("alice, carol (2 of 2")
        );
        let parsed = Job::from_value(&signed.job).unwrap();
        let text = show(&signed, &parsed, Some(&policy));
        assert!(text.contains("not an approver"), "{text}");
        assert!(text.contains("carol"), "{text}");
        let mut no = std::io::Cursor::new(b"\n".to_vec());
        assert!(!confirm("sign?", &mut no, &mut Vec::new()).unwrap());
        let mut yes = std::io::Cursor::new(b"Yes\n".to_vec());
        assert!(confirm("sign?", &mut yes, &mut Vec::new()).unwrap());
    }
}
