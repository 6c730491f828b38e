//! `vantage report JOB --aggregate-by country|asn`: a job's results summed
//! up per country or AS, from the hub or from a results file: how many
//! nodes answered, how many results were ok, failed (error or timeout) or
//! refused, and the headline latency (the figure `--latency` shows) as
//! p50, min and max.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use vantage_human::table;
use vantage_proto::api::NodeEntry;
use vantage_proto::result::{ProbeResult, Status};

use crate::error::{CliError, CliResult};
use crate::hub::{Hub, HubOpts};
use crate::results::{NodeInfo, key_figures, node_index};

/// What results are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Key {
    /// The node's country.
    Country,
    /// The node's autonomous system.
    Asn,
}

/// Where the results and the node registry come from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The job (required without a results file; else it filters the file).
    pub job: Option<&'a str>,
    /// A results file instead of the hub.
    pub results: Option<&'a Path>,
    /// A node registry file (`vantage nodes --json`) instead of the hub.
    pub nodes: Option<&'a Path>,
}

/// The report as a table, with the hub only for what no file gives.
pub fn run(src: &Source<'_>, key: Key, opts: &HubOpts) -> CliResult<String> {
    if let Some(j) = src.job {
        vantage_proto::job::validate_job_id(j).map_err(|e| CliError::usage(e.to_string()))?;
    }
    let hub = if src.results.is_none() || src.nodes.is_none() {
        Some(Hub::connect(opts, false)?)
    } else {
        None
    };
    let results: Vec<Value> = match (src.results, src.job, &hub) {
        (Some(p), _, _) => parse_results(&read(p)?)
            .map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?,
        (None, Some(j), Some(h)) => h.get(&format!("/v1/jobs/{j}/results"))?,
        _ => {
            return Err(CliError::usage(
                "which job? give its id, or --from-file FILE",
            ));
        }
    };
    let nodes: Vec<NodeEntry> = match (src.nodes, &hub) {
        (Some(p), _) => serde_json::from_str(&read(p)?)
            .map_err(|e| CliError::usage(format!("{}: not a node list: {e}", p.display())))?,
        (None, Some(h)) => h.get("/v1/nodes")?,
        (None, None) => Vec::new(),
    };
    let results: Vec<Value> = results
        .into_iter()
        .filter(|r| {
            src.job
                .is_none_or(|j| r.get("job_id").and_then(Value::as_str) == Some(j))
        })
        .collect();
    Ok(aggregate(&results, &node_index(&nodes), key))
}

fn read(path: &Path) -> CliResult<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::local(format!("cannot read {}: {e}", path.display())))
}

/// Results as `vantage results --json` (one array) or `vantage watch
/// --json` (one result a line) wrote them.
pub fn parse_results(text: &str) -> Result<Vec<Value>, String> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(|e| format!("not a results array: {e}"));
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// One group's counts.
#[derive(Debug, Default)]
struct Group {
    nodes: BTreeSet<String>,
    ok: u64,
    failed: u64,
    refused: u64,
    ms: Vec<f64>,
}

/// The table: one row per country or AS (`?` where the registry does not
/// know the node), sorted, with the figures of its results.
pub fn aggregate(results: &[Value], nodes: &HashMap<String, NodeInfo>, key: Key) -> String {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for r in results
        .iter()
        .filter_map(|r| ProbeResult::deserialize(r).ok())
    {
        let info = nodes.get(&r.node_id);
        let name = match key {
            Key::Country => info.map(|i| i.country.clone()).filter(|c| !c.is_empty()),
            Key::Asn => info.and_then(|i| i.asn).map(|a| format!("AS{a}")),
        };
        let g = groups
            .entry(name.unwrap_or_else(|| "?".into()))
            .or_default();
        g.nodes.insert(r.node_id.clone());
        match r.status {
            Status::Ok => {
                g.ok += 1;
                g.ms.extend(key_figures(&r).1);
            }
            Status::Refused => g.refused += 1,
            Status::Error | Status::Timeout => g.failed += 1,
        }
    }
    let rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|(name, mut g)| {
            g.ms.sort_by(f64::total_cmp);
            let at = |i: usize| g.ms.get(i).map(|x| format!("{x:.1}")).unwrap_or_default();
            // The nearest-rank median: a figure some node measured.
            let p50 = if g.ms.is_empty() {
                String::new()
            } else {
                at(g.ms.len().div_ceil(2) - 1)
            };
            vec![
                name,
                g.nodes.len().to_string(),
                g.ok.to_string(),
                g.failed.to_string(),
                g.refused.to_string(),
                p50,
                at(0),
                g.ms.len().checked_sub(1).map(at).unwrap_or_default(),
            ]
        })
        .collect();
    let first = match key {
        Key::Country => "country",
        Key::Asn => "asn",
    };
    table::render(
        &[
            first, "nodes", "ok", "failed", "refused", "p50 ms", "min ms", "max ms",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tcp(node: &str, status: &str, connect_ms: Option<f64>) -> Value {
        let data = connect_ms.map_or(
            Value::Null,
            |ms| json!({"peer": "192.0.2.1:443", "dns_ms": 0.0, "connect_ms": ms}),
        );
        json!({"job_id": "j1", "node_id": node, "probe": "tcp", "started_ms": 1,
               "duration_ms": 5, "status": status, "data": data, "seq": 0})
    }

    fn index() -> HashMap<String, NodeInfo> {
        [
            ("n-a", "DE", 3320),
            ("n-b", "DE", 3209),
            ("n-c", "FR", 3215),
        ]
        .into_iter()
        .map(|(n, c, a)| {
            (
                n.to_string(),
                NodeInfo {
                    country: c.into(),
                    asn: Some(a),
                },
            )
        })
        .collect()
    }

    #[test]
    fn results_are_summed_up_per_country_and_asn() {
        let results = [
            tcp("n-a", "ok", Some(10.0)),
            tcp("n-a", "ok", Some(30.0)),
            tcp("n-b", "ok", Some(20.0)),
            tcp("n-b", "timeout", None),
            tcp("n-c", "refused", None),
            tcp("n-c", "error", None),
            tcp("n-x", "ok", Some(7.0)),
        ];
        for (key, rows) in [
            (
                Key::Country,
                &[
                    "country nodes ok failed refused p50 ms min ms max ms",
                    "? 1 1 0 0 7.0 7.0 7.0",
                    "DE 2 3 1 0 20.0 10.0 30.0",
                    "FR 1 0 1 1",
                ][..],
            ),
            (
                Key::Asn,
                &[
                    "asn nodes ok failed refused p50 ms min ms max ms",
                    "? 1 1 0 0 7.0 7.0 7.0",
                    "AS3209 1 1 1 0 20.0 20.0 20.0",
                    "AS3215 1 0 1 1",
                    "AS3320 1 2 0 0 10.0 10.0 30.0",
                ],
            ),
        ] {
            let t = aggregate(&results, &index(), key);
            let got: Vec<String> = t
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            assert_eq!(got, rows, "{key:?}:\n{t}");
        }
    }

    #[test]
    fn both_results_files_parse() {
        let lines = format!(
            "{}\n\n{}\n",
            tcp("n-a", "ok", Some(1.0)),
            tcp("n-b", "ok", None)
        );
        assert_eq!(parse_results(&lines).unwrap().len(), 2);
        let array = json!([tcp("n-a", "ok", Some(1.0))]).to_string();
        assert_eq!(parse_results(&array).unwrap().len(), 1);
        assert!(
            parse_results("{}\nnot json")
                .unwrap_err()
                .starts_with("line 2")
        );
        assert!(parse_results("[1,").is_err());
    }
}
