//! `vantage nodes`: the hub's node registry, filtered like a job's selection.

use crate::error::{CliError, CliResult};
use clap::Args;
use vantage_human::{Duration, table};
use vantage_proto::api::{NodeEntry, NodeStatus};
use vantage_proto::channel::NodeAttrs;
use vantage_proto::owner::OwnerDigest;
use vantage_proto::probe::ProbeKind;
use vantage_proto::select::Selection;

/// Filters for `vantage nodes`; all given filters must match.
#[derive(Debug, Clone, Default, Args)]
pub struct NodeFilter {
    /// A selection as in propose --from, e.g. "country=DE or asn=3320".
    #[arg(long = "where", value_name = "SELECTION")]
    pub selection: Option<String>,
    /// Country code.
    #[arg(long)]
    pub country: Option<String>,
    /// Continent code (AF AN AS EU NA OC SA).
    #[arg(long)]
    pub continent: Option<String>,
    /// Autonomous system number.
    #[arg(long)]
    pub asn: Option<u32>,
    /// Tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// online, offline, revoked or pending (enrolment waiting for approval).
    #[arg(long, value_parser = parse_status)]
    pub status: Option<NodeStatus>,
}

impl NodeFilter {
    /// The filter as one selection plus the wanted status.
    fn selection(&self) -> CliResult<Selection> {
        let mut terms = Vec::new();
        if let Some(s) = &self.selection {
            terms.push(
                Selection::parse(s).map_err(|e| CliError::usage(format!("--where {s:?}: {e}")))?,
            );
        }
        if let Some(c) = &self.country {
            terms.push(Selection::Country(c.to_ascii_uppercase()));
        }
        if let Some(c) = &self.continent {
            terms.push(Selection::Continent(c.to_ascii_uppercase()));
        }
        if let Some(a) = self.asn {
            terms.push(Selection::Asn(a));
        }
        if let Some(t) = &self.tag {
            terms.push(Selection::Tag(t.clone()));
        }
        let sel = match terms.len() {
            0 => Selection::Everyone,
            1 => terms.remove(0),
            _ => Selection::And(terms),
        };
        sel.validate().map_err(|e| CliError::usage(e.to_string()))?;
        Ok(sel)
    }

    /// The registry entries that pass the filter.
    pub fn apply(&self, nodes: Vec<NodeEntry>) -> CliResult<Vec<NodeEntry>> {
        let sel = self.selection()?;
        Ok(nodes
            .into_iter()
            .filter(|n| sel.matches(&attrs(n), n.caps.as_ref()))
            .filter(|n| self.status.is_none_or(|s| n.status == s))
            .collect())
    }
}

fn parse_status(s: &str) -> Result<NodeStatus, String> {
    NodeStatus::parse(s).ok_or_else(|| format!("{s:?}: use online, offline, revoked or pending"))
}

/// A registry entry's targeting attributes.
pub fn attrs(n: &NodeEntry) -> NodeAttrs {
    NodeAttrs {
        node_id: n.id.clone().unwrap_or_default(),
        country: n.country.clone(),
        continent: n.continent.clone(),
        asn: n.asn,
        tags: n.tags.clone(),
    }
}

/// The registry as a table.
pub fn render(nodes: &[NodeEntry], now: u64) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let a = attrs(n);
            let seen = n
                .last_seen
                .or(n.last_poll)
                .and_then(|t| u64::try_from(t).ok())
                .map(|t| format!("{} ago", Duration::from_secs(now.saturating_sub(t))))
                .unwrap_or_else(|| "never".into());
            // A pending enrolment has no id yet; the admin approves it by fingerprint.
            let fp = &n.key_fingerprint;
            let name = if a.node_id.is_empty() {
                format!("pending {}", fp.get(..16).unwrap_or(fp))
            } else {
                a.node_id
            };
            vec![
                name,
                a.country,
                a.continent.unwrap_or_default(),
                a.asn.map(|x| format!("AS{x}")).unwrap_or_default(),
                a.tags.join(","),
                n.status.as_str().to_string(),
                seen,
                version_cell(n),
                n.failed_release
                    .as_ref()
                    .map(|f| format!("{} ({})", f.version, f.code))
                    .unwrap_or_default(),
                n.caps.map(|c| c.names().join(",")).unwrap_or_default(),
                n.owner.as_ref().map(owner_cell).unwrap_or_default(),
                last_error(n),
            ]
        })
        .collect();
    table::render(
        &[
            "node",
            "country",
            "continent",
            "asn",
            "tags",
            "status",
            "last seen",
            "version",
            "failed release",
            "caps",
            "owner allows",
            "last error",
        ],
        &rows,
    )
}

/// The agent's version, marked `(release)` when it came from a release
/// rather than the image.
fn version_cell(n: &NodeEntry) -> String {
    let v = n.agent_version.clone().unwrap_or_default();
    if n.from_release {
        format!("{v} (release)")
    } else {
        v
    }
}

/// The owner's policy digest in a few words: the probe kinds, the rate cap
/// and whether special addresses may be targeted.
fn owner_cell(o: &OwnerDigest) -> String {
    let kinds = if ProbeKind::ALL.iter().all(|k| o.check_kind(*k).is_ok()) {
        "all kinds".to_string()
    } else if o.allowed.is_empty() {
        "no kind".to_string()
    } else {
        o.allowed.join(",")
    };
    let special = if o.allow_special_addresses {
        ", special addresses"
    } else {
        ""
    };
    format!("{kinds}, {}/min{special}", o.max_probes_per_minute)
}

/// The node's last reported error, shortened for a table cell (`--json` has it whole).
fn last_error(n: &NodeEntry) -> String {
    const MAX: usize = 60;
    let Some(e) = &n.last_error else {
        return String::new();
    };
    let flat = e.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > MAX {
        let mut cut: String = flat.chars().take(MAX - 1).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(v: serde_json::Value) -> NodeEntry {
        let mut v = v;
        if v.get("key_fingerprint").is_none() {
            v["key_fingerprint"] = json!("ff");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn filters_combine() {
        let reg = vec![
            entry(
                json!({"id": "n-a", "country": "DE", "continent": "EU", "asn": 3320, "tags": ["fiber"], "status": "online"}),
            ),
            entry(
                json!({"id": "n-b", "country": "FR", "continent": "EU", "asn": 3215, "tags": [], "status": "offline"}),
            ),
            entry(
                json!({"id": "n-c", "country": "BR", "continent": "SA", "asn": 28573, "tags": ["fiber"], "status": "online"}),
            ),
        ];
        let ids = |f: NodeFilter| -> Vec<String> {
            f.apply(reg.clone())
                .unwrap()
                .into_iter()
                .map(|n| n.id.unwrap())
                .collect()
        };
        assert_eq!(ids(NodeFilter::default()).len(), 3);
        assert_eq!(
            ids(NodeFilter {
                continent: Some("eu".into()),
                ..Default::default()
            }),
            ["n-a", "n-b"]
        );
        assert_eq!(
            ids(NodeFilter {
                selection: Some("country=FR or asn=28573".into()),
                tag: Some("fiber".into()),
                ..Default::default()
            }),
            ["n-c"]
        );
        assert_eq!(
            ids(NodeFilter {
                status: Some(NodeStatus::Offline),
                ..Default::default()
            }),
            ["n-b"]
        );
        assert!(parse_status("gone").is_err());
        assert!(render(&reg[..1], 0).contains("AS3320"));
        let mut failing = reg[0].clone();
        failing.last_error = Some(format!("subscription: HTTP 502\n{}", "x".repeat(100)));
        let t = render(&[failing], 0);
        assert!(t.contains("last error"), "{t}");
        assert!(t.contains("subscription: HTTP 502 xxx"), "{t}");
        assert!(t.contains("x…"), "{t}");
        let mut capable = reg[0].clone();
        capable.caps = Some(vantage_proto::node::Capabilities {
            ipv4: true,
            ipv6: true,
        });
        capable.owner = Some(OwnerDigest {
            allowed: vec!["ping".into(), "dns".into()],
            allow_special_addresses: true,
            max_probes_per_minute: 30,
        });
        let t = render(std::slice::from_ref(&capable), 0);
        assert!(
            t.contains("ipv4,ipv6  ping,dns, 30/min, special addresses"),
            "{t}"
        );
        let with_cap = |nodes: Vec<NodeEntry>| {
            NodeFilter {
                selection: Some("cap=ipv6".into()),
                ..Default::default()
            }
            .apply(nodes)
            .unwrap()
            .len()
        };
        assert_eq!(with_cap(vec![capable, reg[0].clone()]), 1);
        let pending = entry(
            json!({"id": null, "status": "pending", "key_fingerprint": "0123456789abcdef0123", "country": "DE", "last_poll": 5}),
        );
        let t = render(&[pending], 65);
        assert!(t.contains("pending 0123456789abcdef  DE"), "{t}");
        assert!(t.contains("1m ago"), "{t}");
    }
}
