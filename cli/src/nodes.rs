//! `vantage nodes`: the hub's node registry, filtered like a job's selection.

use crate::error::{CliError, CliResult};
use crate::table;
use crate::timespec;
use clap::Args;
use serde_json::Value;
use vantage_proto::channel::NodeAttrs;
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
    #[arg(long)]
    pub status: Option<String>,
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
        if let Some(s) = &self.status
            && !["online", "offline", "revoked", "pending"].contains(&s.as_str())
        {
            return Err(CliError::usage(format!(
                "--status {s:?}: use online, offline, revoked or pending"
            )));
        }
        Ok(sel)
    }

    /// The registry entries that pass the filter.
    pub fn apply(&self, nodes: &Value) -> CliResult<Vec<Value>> {
        let sel = self.selection()?;
        Ok(nodes
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| sel.matches(&attrs(n)))
            .filter(|n| {
                self.status
                    .as_deref()
                    .is_none_or(|s| n.get("status").and_then(Value::as_str) == Some(s))
            })
            .cloned()
            .collect())
    }
}

/// A registry entry's targeting attributes.
pub fn attrs(n: &Value) -> NodeAttrs {
    let s = |k: &str| n.get(k).and_then(Value::as_str).map(str::to_string);
    NodeAttrs {
        node_id: s("id").unwrap_or_default(),
        country: s("country").unwrap_or_default(),
        continent: s("continent"),
        asn: n
            .get("asn")
            .and_then(Value::as_u64)
            .and_then(|a| u32::try_from(a).ok()),
        tags: n
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
    }
}

/// The registry as a table.
pub fn render(nodes: &[Value], now: u64) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let a = attrs(n);
            let seen = n
                .get("last_seen")
                .or_else(|| n.get("last_poll"))
                .and_then(Value::as_u64)
                .map(|t| format!("{} ago", timespec::format_duration(now.saturating_sub(t))))
                .unwrap_or_else(|| "never".into());
            // A pending enrolment has no id yet; the admin approves it by fingerprint.
            let name = match n.get("key_fingerprint").and_then(Value::as_str) {
                Some(fp) if a.node_id.is_empty() => {
                    format!("pending {}", fp.get(..16).unwrap_or(fp))
                }
                _ => a.node_id,
            };
            vec![
                name,
                a.country,
                a.continent.unwrap_or_default(),
                a.asn.map(|x| format!("AS{x}")).unwrap_or_default(),
                a.tags.join(","),
                n.get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                seen,
                n.get("agent_version")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
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
            "last error",
        ],
        &rows,
    )
}

/// The node's last reported error, shortened for a table cell (`--json` has it whole).
fn last_error(n: &Value) -> String {
    const MAX: usize = 60;
    let Some(e) = n.get("last_error").and_then(Value::as_str) else {
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

    #[test]
    fn filters_combine() {
        let reg = json!([
            {"id": "n-a", "country": "DE", "continent": "EU", "asn": 3320, "tags": ["fiber"], "status": "online"},
            {"id": "n-b", "country": "FR", "continent": "EU", "asn": 3215, "tags": [], "status": "offline"},
            {"id": "n-c", "country": "BR", "continent": "SA", "asn": 28573, "tags": ["fiber"], "status": "online"},
        ]);
        let ids = |f: NodeFilter| -> Vec<String> {
            f.apply(&reg)
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_string())
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
                status: Some("offline".into()),
                ..Default::default()
            }),
            ["n-b"]
        );
        assert!(
            NodeFilter {
                status: Some("gone".into()),
                ..Default::default()
            }
            .apply(&reg)
            .is_err()
        );
        assert!(render(&[reg[0].clone()], 0).contains("AS3320"));
        let mut failing = reg[0].clone();
        failing["last_error"] = json!(format!("subscription: HTTP 502\n{}", "x".repeat(100)));
        let t = render(&[failing], 0);
        assert!(t.contains("last error"), "{t}");
        assert!(t.contains("subscription: HTTP 502 xxx"), "{t}");
        assert!(t.contains("x…"), "{t}");
        let pending = json!({"id": null, "status": "pending", "key_fingerprint": "0123456789abcdef0123", "country": "DE", "last_poll": 5});
        let t = render(&[pending], 65);
        assert!(t.contains("pending 0123456789abcdef  DE"), "{t}");
        assert!(t.contains("1m ago"), "{t}");
    }
}
