//! Results as a table: one row per node and run, with the key figures of
//! each probe kind picked from the result's `data`.

use crate::table;
use serde_json::Value;
use std::collections::HashMap;
use vantage_proto::api::NodeEntry;
use vantage_proto::atlas::{DnsData, HttpData, PingData, TcpData, TlsData, TraceData};
use vantage_proto::probe::ProbeKind;
use vantage_proto::result::{ProbeResult, Status};

/// What the registry says about a node, for the table's country and ASN columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Country code.
    pub country: String,
    /// Autonomous system number.
    pub asn: Option<u64>,
}

/// Node id -> registry facts, from `GET /v1/nodes`.
pub fn node_index(nodes: &[NodeEntry]) -> HashMap<String, NodeInfo> {
    nodes
        .iter()
        .filter_map(|n| {
            Some((
                n.id.clone()?,
                NodeInfo {
                    country: n.country.clone(),
                    asn: n.asn.map(u64::from),
                },
            ))
        })
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => a.len().to_string(),
        other => other.to_string(),
    }
}

/// `prefix value suffix` for each of the fields present in `data`.
fn labelled(data: &Value, items: &[(&str, &str, &str)]) -> Vec<String> {
    items
        .iter()
        .filter_map(|(prefix, key, suffix)| {
            data.get(key)
                .filter(|v| !v.is_null())
                .map(|v| format!("{prefix}{}{suffix}", text(v)))
        })
        .collect()
}

/// The key figures of one result's data, by probe kind (field names as the
/// agent's probes report them); compact JSON when none of them are there.
pub fn figures(probe: Option<&str>, data: &Value) -> String {
    if data.is_null() {
        return String::new();
    }
    let parts = match probe {
        Some("dns") => {
            let mut v = labelled(
                data,
                &[("rcode ", "rcode", ""), ("answers ", "answers", "")],
            );
            // The agent reports {"verdict", "reason", "detail"}; older agents a bare string.
            match &data["dnssec"] {
                Value::String(s) => v.push(format!("dnssec {s}")),
                Value::Object(o) => v.push(format!(
                    "dnssec {} ({})",
                    o.get("verdict").and_then(Value::as_str).unwrap_or("?"),
                    o.get("reason").and_then(Value::as_str).unwrap_or("?")
                )),
                _ => {}
            }
            v
        }
        Some("http") => labelled(data, &[("HTTP ", "status", ""), ("", "total_ms", " ms")]),
        Some("tls") => {
            let mut v = labelled(data, &[("", "version", "")]);
            // The agent reports the chain; the leaf's expiry is what operators look at.
            if let Some(t) = data["chain"][0]["not_after"].as_i64() {
                let now = i64::try_from(crate::timespec::now()).unwrap_or(i64::MAX);
                v.push(format!("expires in {} days", (t - now).div_euclid(86_400)));
            }
            if data["valid"] == Value::Bool(false) {
                v.push("invalid".into());
            }
            v
        }
        Some("tcp") => labelled(data, &[("connect ", "connect_ms", " ms")]),
        Some("ping") => labelled(
            data,
            &[("loss ", "loss_pct", "%"), ("avg ", "avg_ms", " ms")],
        ),
        Some("traceroute") => {
            let mut v = labelled(data, &[("hops ", "hops", "")]);
            // Reached when the last hop answered from the target address.
            if let (Some(target), Some(last)) = (
                data["target"].as_str(),
                data["hops"].as_array().and_then(|h| h.last()),
            ) {
                let reached = last["addrs"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(target)));
                v.push(format!("reached {}", if reached { "yes" } else { "no" }));
            }
            v
        }
        _ => Vec::new(),
    };
    if parts.is_empty() {
        let mut s = data.to_string();
        if s.len() > 80 {
            let cut = (0..=77).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
            s.truncate(cut);
            s.push_str("...");
        }
        s
    } else {
        parts.join(", ")
    }
}

/// One table row for one result.
pub fn row(result: &Value, nodes: &HashMap<String, NodeInfo>) -> Vec<String> {
    let s = |k: &str| {
        result
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let node = s("node_id");
    let info = nodes.get(&node).cloned().unwrap_or_default();
    let status = s("status");
    let detail = match status.as_str() {
        "ok" => figures(result.get("probe").and_then(Value::as_str), &result["data"]),
        _ => {
            let reason = s("reason");
            match result.get("code").and_then(Value::as_str) {
                Some(c) => format!("{c}: {reason}"),
                None => reason,
            }
        }
    };
    let mut status_col = status;
    if let Some(seq) = result.get("seq").and_then(Value::as_u64).filter(|s| *s > 0) {
        status_col += &format!(" #{seq}");
    }
    vec![
        node,
        info.country,
        info.asn.map(|a| format!("AS{a}")).unwrap_or_default(),
        status_col,
        result
            .get("duration_ms")
            .and_then(Value::as_u64)
            .map(|d| format!("{d} ms"))
            .unwrap_or_default(),
        detail,
    ]
}

/// Column headers of the results table.
pub const HEADERS: [&str; 6] = ["node", "country", "asn", "status", "duration", "figures"];

/// The whole table.
pub fn render(results: &[Value], nodes: &HashMap<String, NodeInfo>) -> String {
    let rows: Vec<Vec<String>> = results.iter().map(|r| row(r, nodes)).collect();
    table::render(&HEADERS, &rows)
}

/// The CSV header of [`csv`].
pub const CSV_HEADER: &str =
    "job_id,node_id,seq,probe,status,code,started_s,duration_ms,target,ms,figure,reason";

/// One CSV field, quoted when it holds a separator, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The target, the headline time in ms and one key figure of a result,
/// read through the typed probe data; empty when the data has another shape.
fn key_figures(r: &ProbeResult) -> (String, Option<f64>, String) {
    fn typed<T: serde::de::DeserializeOwned + Default>(v: &Value) -> T {
        T::deserialize(v).unwrap_or_default()
    }
    if r.status != Status::Ok {
        return (String::new(), None, String::new());
    }
    match r.probe {
        Some(ProbeKind::Dns) => {
            let d: DnsData = typed(&r.data);
            let verdict = d
                .dnssec
                .map(|v| format!(" {}", v.verdict))
                .unwrap_or_default();
            (
                d.server,
                Some(d.query_ms),
                format!("{} {} answer(s){verdict}", d.rcode, d.answers.len()),
            )
        }
        Some(ProbeKind::Ping) => {
            let d: PingData = typed(&r.data);
            (
                d.target,
                d.avg_ms,
                format!("{}/{} received", d.received, d.sent),
            )
        }
        Some(ProbeKind::Traceroute) => {
            let d: TraceData = typed(&r.data);
            let last = d.hops.last().and_then(|h| h.rtts_ms.last().copied());
            (d.target, last, format!("{} hop(s)", d.hops.len()))
        }
        Some(ProbeKind::Http) => {
            let d: HttpData = typed(&r.data);
            (d.peer, Some(d.total_ms), format!("status {}", d.status))
        }
        Some(ProbeKind::Tls) => {
            let d: TlsData = typed(&r.data);
            (d.peer, Some(d.handshake_ms), d.version.unwrap_or_default())
        }
        Some(ProbeKind::Tcp) => {
            let d: TcpData = typed(&r.data);
            (d.peer, Some(d.connect_ms), String::new())
        }
        None => (String::new(), None, String::new()),
    }
}

/// Results as CSV, [`CSV_HEADER`] first, one row per result: the key figure
/// of each probe kind (`ms` is the query, mean RTT, last hop, whole request,
/// handshake or connect time).
pub fn csv(results: &[ProbeResult]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for r in results {
        let (target, ms, figure) = key_figures(r);
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let probe = r
            .probe
            .and_then(|p| serde_json::to_value(p).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let fields = [
            r.job_id.clone(),
            r.node_id.clone(),
            r.seq.to_string(),
            probe,
            status,
            r.code.clone().unwrap_or_default(),
            (r.started_ms / 1000).to_string(),
            r.duration_ms.to_string(),
            target,
            ms.map(|m| m.to_string()).unwrap_or_default(),
            figure,
            r.reason.clone().unwrap_or_default(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn figures_per_kind() {
        let f = |kind: &str, data: Value| figures(Some(kind), &data);
        assert_eq!(
            f(
                "dns",
                json!({"rcode": "NOERROR", "answers": [{}, {}], "dnssec": "secure"})
            ),
            "rcode NOERROR, answers 2, dnssec secure"
        );
        assert_eq!(
            f(
                "dns",
                json!({"rcode": "NOERROR", "answers": [{}], "dnssec": {"verdict": "bogus", "reason": "signature-expired", "detail": "x"}})
            ),
            "rcode NOERROR, answers 1, dnssec bogus (signature-expired)"
        );
        assert_eq!(
            f("http", json!({"status": 200, "total_ms": 35})),
            "HTTP 200, 35 ms"
        );
        assert_eq!(f("http", json!({"total_ms": 35.5})), "35.5 ms");
        assert_eq!(f("tcp", json!({"connect_ms": 3})), "connect 3 ms");
        assert_eq!(
            f("ping", json!({"loss_pct": 0, "avg_ms": 1.25})),
            "loss 0%, avg 1.2 ms"
        );
        assert_eq!(
            f(
                "traceroute",
                json!({"target": "192.0.2.1", "hops": [{"addrs": ["10.0.0.1"]}, {"addrs": ["192.0.2.1"]}]})
            ),
            "hops 2, reached yes"
        );
        let in_ten_days = crate::timespec::now() + 10 * 86_400 + 3600;
        assert_eq!(
            f(
                "tls",
                json!({"version": "TLS 1.3", "valid": false, "chain": [{"not_after": in_ten_days}]})
            ),
            "TLS 1.3, expires in 10 days, invalid"
        );
        assert_eq!(f("tls", json!({"x": 1})), "{\"x\":1}");
        assert_eq!(f("dns", json!({"x": "y".repeat(100)})).len(), 80);
    }

    #[test]
    fn refused_rows_show_the_code() {
        let idx = node_index(&[serde_json::from_value(
            json!({"id": "n-1", "status": "online", "key_fingerprint": "ff", "country": "DE", "asn": 3320}),
        )
        .unwrap()]);
        let r = row(
            &json!({"node_id": "n-1", "status": "refused", "code": "expired", "reason": "expired at 5", "duration_ms": 0}),
            &idx,
        );
        assert_eq!(
            r,
            [
                "n-1",
                "DE",
                "AS3320",
                "refused",
                "0 ms",
                "expired: expired at 5"
            ]
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::hash_map(
                    prop_oneof![
                        Just("rcode".to_string()),
                        Just("hops".to_string()),
                        Just("status".to_string()),
                        ".{0,8}".prop_map(String::from)
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        // Whatever a node or a hub sends, the table renders without panicking.
        #[test]
        fn any_result_renders(data in arb_json(), probe in prop::option::of("dns|http|tls|tcp|ping|traceroute|x"), extra in arb_json()) {
            let r = json!({"node_id": "n-1", "status": "ok", "probe": probe, "data": data, "seq": extra});
            let out = render(&[r, extra], &HashMap::new());
            prop_assert!(out.lines().count() >= 3);
        }
    }

    #[test]
    fn csv_rows_carry_the_key_figures_and_quote_commas() {
        let r = |probe: &str, status: &str, data: Value, reason: Option<&str>| {
            serde_json::from_value::<ProbeResult>(serde_json::json!({
                "job_id": "j1", "node_id": "n-1", "probe": probe, "started_ms": 1_700_000_000_999u64,
                "duration_ms": 5, "status": status, "reason": reason, "data": data, "seq": 2,
            }))
            .unwrap()
        };
        let out = csv(&[
            r(
                "ping",
                "ok",
                serde_json::json!({"target": "127.0.0.1", "sent": 3, "received": 2, "avg_ms": 0.5}),
                None,
            ),
            r(
                "dns",
                "ok",
                serde_json::json!({"server": "127.0.0.1:53", "rcode": "NOERROR", "query_ms": 1.25,
                "answers": [{"name": "a.", "type": "A", "ttl": 1, "data": "192.0.2.1"}]}),
                None,
            ),
            r(
                "http",
                "error",
                Value::Null,
                Some("connect: refused, \"no\""),
            ),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "j1,n-1,2,ping,ok,,1700000000,5,127.0.0.1,0.5,2/3 received,"
        );
        assert_eq!(
            lines[2],
            "j1,n-1,2,dns,ok,,1700000000,5,127.0.0.1:53,1.25,NOERROR 1 answer(s),"
        );
        assert_eq!(
            lines[3],
            r#"j1,n-1,2,http,error,,1700000000,5,,,,"connect: refused, ""no""""#
        );
        assert_eq!(lines.len(), 4);
    }
}
