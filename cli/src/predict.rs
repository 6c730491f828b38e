//! `vantage check --hub URL`: how many of the nodes a job selects will
//! refuse it, and why, from what each node reported of its owner's policy.
//! The predicate is the nodes' own (`OwnerDigest::admits`), the one the hub
//! uses to skip them when it picks `limit` nodes.

use std::collections::BTreeMap;

use crate::error::{CliError, CliResult};
use crate::hub::{Hub, HubOpts};
use crate::nodes::attrs;
use vantage_proto::api::{NodeEntry, NodeStatus};
use vantage_proto::job::{Job, SignedJob};
use vantage_proto::policy::Policy;
use vantage_proto::select::Selection;

/// What the registry says the selected nodes will do with a job.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prediction {
    /// Nodes the selection (and the mandate's) matches, revoked ones aside.
    pub matching: usize,
    /// Of those, online now.
    pub online: usize,
    /// Refusal code -> the nodes that would refuse with it.
    pub refusals: BTreeMap<&'static str, Vec<String>>,
    /// Matching nodes that never reported their owner's policy (older agents).
    pub unknown: usize,
}

/// Predicts each matching node's answer to `job`, where `mandate` is the
/// selection of the mandate it is ordered under, if any.
pub fn predict(job: &Job, mandate: Option<&Selection>, nodes: &[NodeEntry]) -> Prediction {
    let mut p = Prediction::default();
    for n in nodes {
        let (a, caps) = (attrs(n), n.caps.as_ref());
        let selected = job.select.matches(&a, caps) && mandate.is_none_or(|m| m.matches(&a, caps));
        if n.id.is_none() || n.status == NodeStatus::Revoked || !selected {
            continue;
        }
        p.matching += 1;
        p.online += usize::from(n.status == NodeStatus::Online);
        match n.owner.as_ref().map(|o| o.admits(job, 0)) {
            None => p.unknown += 1,
            Some(Ok(())) => {}
            Some(Err(r)) => p.refusals.entry(r.code()).or_default().push(a.node_id),
        }
    }
    p
}

impl Prediction {
    /// Nodes that would refuse.
    pub fn refusing(&self) -> usize {
        self.refusals.values().map(Vec::len).sum()
    }

    /// In words, with the job's `limit` if it has one.
    pub fn text(&self, limit: Option<u32>) -> String {
        let mut out = format!(
            "{} node(s) match the selection ({} online); {} would refuse",
            self.matching,
            self.online,
            self.refusing()
        );
        for (code, nodes) in &self.refusals {
            let shown: Vec<&str> = nodes.iter().take(5).map(String::as_str).collect();
            let more = nodes.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            out += &format!("\n  {code}: {} ({}{more})", nodes.len(), shown.join(", "));
        }
        if self.unknown > 0 {
            out += &format!(
                "\n  {} did not report their owner's policy (older agents): not predicted",
                self.unknown
            );
        }
        if let Some(l) = limit {
            out += &format!(
                "\nwith limit {l}, the hub picks only online nodes whose owner admits the job"
            );
        }
        out
    }
}

/// Fetches the hub's registry and predicts for a job that `policy`
/// accepts (checked before); the text to print.
pub fn for_signed(signed: &SignedJob, policy: &Policy, opts: &HubOpts) -> CliResult<String> {
    let (job, mandate) = signed
        .verify_with_mandate(policy, crate::timespec::now())
        .map_err(|r| CliError::refused(format!("would be refused ({}): {r}", r.code())))?;
    let hub = Hub::connect(opts, false)?;
    let nodes: Vec<NodeEntry> = hub.get("/v1/nodes")?;
    let mandate = mandate.map(|m| m.select);
    Ok(predict(&job, mandate.as_ref(), &nodes).text(job.limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn node(id: &str, country: &str, status: &str, owner: Value, caps: Value) -> NodeEntry {
        let mut v = json!({"id": id, "country": country, "status": status,
            "key_fingerprint": "ff", "caps": caps, "owner": owner});
        if v["owner"].is_null() {
            v.as_object_mut().unwrap().remove("owner");
        }
        serde_json::from_value(v).unwrap()
    }

    fn job(select: Value, host: &str, limit: Option<u32>) -> Job {
        Job::from_value(&json!({"v": 1, "id": "j", "select": select, "limit": limit,
            "probe": {"cmd": "ping", "args": {"host": host}}, "not_before": 0,
            "expires": 600, "spread_secs": 0, "repeat_secs": null, "proposer": "alice"}))
        .unwrap()
    }

    #[test]
    fn refusals_are_predicted_per_code() {
        let all = json!({"allowed": ["ping", "dns"], "max_probes_per_minute": 10});
        let special = json!({"allowed": ["ping"], "allow_special_addresses": true,
            "max_probes_per_minute": 10});
        let dns_only = json!({"allowed": ["dns"], "max_probes_per_minute": 10});
        let v4 = json!({"ipv4": true});
        let nodes = vec![
            node("n-a", "DE", "online", all.clone(), v4.clone()),
            node(
                "n-b",
                "DE",
                "online",
                special,
                json!({"ipv4": true, "ipv6": true}),
            ),
            node("n-c", "DE", "offline", dns_only, v4.clone()),
            node("n-d", "DE", "online", Value::Null, v4.clone()),
            node("n-e", "FR", "online", all.clone(), v4.clone()),
            node("n-f", "DE", "revoked", all, v4),
        ];
        let de = json!({"country": "DE"});
        let table = [
            // (selection, target, matching, online, refusals, unknown)
            (
                de.clone(),
                "8.8.8.8",
                4,
                3,
                vec![("kind-not-allowed", 1)],
                1,
            ),
            (
                de.clone(),
                "127.0.0.1",
                4,
                3,
                vec![("kind-not-allowed", 1), ("owner-policy", 1)],
                1,
            ),
            (json!({"cap": "ipv6"}), "127.0.0.1", 1, 1, vec![], 0),
            (
                json!("everyone"),
                "example.com",
                5,
                4,
                vec![("kind-not-allowed", 1)],
                1,
            ),
        ];
        for (select, host, matching, online, refusals, unknown) in table {
            let p = predict(&job(select.clone(), host, None), None, &nodes);
            let got: Vec<(&str, usize)> = p.refusals.iter().map(|(c, n)| (*c, n.len())).collect();
            assert_eq!(
                (p.matching, p.online, got, p.unknown),
                (matching, online, refusals, unknown),
                "{select} {host}"
            );
        }
        let mandate = Selection::Country("FR".into());
        assert_eq!(
            predict(
                &job(json!("everyone"), "8.8.8.8", None),
                Some(&mandate),
                &nodes
            )
            .matching,
            1
        );
        let text = predict(&job(de, "127.0.0.1", Some(2)), None, &nodes).text(Some(2));
        for words in [
            "4 node(s) match the selection (3 online); 2 would refuse",
            "kind-not-allowed: 1 (n-c)",
            "owner-policy: 1 (n-a)",
            "1 did not report their owner's policy",
            "with limit 2, the hub picks only online nodes",
        ] {
            assert!(text.contains(words), "{words}: {text}");
        }
    }
}
