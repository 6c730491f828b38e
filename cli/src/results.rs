//! Results as a table: one row per node and run, with the key figures of
//! each probe kind read from the result's typed `data`.

use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use vantage_human::table;
use vantage_proto::api::NodeEntry;
use vantage_proto::data::{Certificate, ProbeData};
use vantage_proto::probe::ProbeKind;
use vantage_proto::result::ProbeResult;

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

/// The key figures of one result's data, read as the data of its probe kind;
/// compact JSON (cut at 80 characters) when it is not that.
pub fn figures(probe: Option<ProbeKind>, data: &Value) -> String {
    if data.is_null() {
        return String::new();
    }
    match probe.and_then(|k| ProbeData::from_value(k, data).ok()) {
        Some(d) => typed_figures(&d).join(", "),
        None => {
            let mut s = data.to_string();
            if s.len() > 80 {
                let cut = (0..=77).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
                s.truncate(cut);
                s.push_str("...");
            }
            s
        }
    }
}

/// Milliseconds to one decimal, as the table shows times.
fn ms(x: f64) -> String {
    format!("{x:.1}")
}

fn typed_figures(data: &ProbeData) -> Vec<String> {
    match data {
        ProbeData::Dns(d) => {
            let mut v = vec![
                format!("rcode {}", d.rcode),
                format!("answers {}", d.answers.len()),
            ];
            // Older agents reported the bare status: no reason to show.
            match &d.dnssec {
                Some(s) if s.reason.is_empty() => v.push(format!("dnssec {}", s.verdict)),
                Some(s) => v.push(format!("dnssec {} ({})", s.verdict, s.reason)),
                None => {}
            }
            v
        }
        ProbeData::Http(d) => vec![
            format!("HTTP {}", d.status),
            format!("{} ms", ms(d.total_ms)),
        ],
        ProbeData::Tls(d) => {
            let mut v: Vec<String> = d.session.version.iter().cloned().collect();
            // The leaf's expiry is what operators look at.
            if let Some(Certificate::Summary(leaf)) = d.session.chain.first() {
                let now = i64::try_from(crate::timespec::now()).unwrap_or(i64::MAX);
                v.push(format!(
                    "expires in {} days",
                    (leaf.not_after - now).div_euclid(86_400)
                ));
            }
            if !d.session.valid {
                v.push("invalid".into());
            }
            v
        }
        ProbeData::Tcp(d) => vec![format!("connect {} ms", ms(d.connect_ms))],
        ProbeData::Ping(d) => {
            let mut v = vec![format!("loss {}%", ms(d.loss_pct))];
            v.extend(d.avg_ms.map(|a| format!("avg {} ms", ms(a))));
            v
        }
        ProbeData::Traceroute(d) => {
            vec![
                format!("hops {}", d.hops.len()),
                format!("reached {}", if reached(d) { "yes" } else { "no" }),
            ]
        }
    }
}

/// Whether a traceroute got there: its last hop answered from the target address.
fn reached(d: &vantage_proto::data::TraceData) -> bool {
    d.hops.last().is_some_and(|h| h.addrs.contains(&d.target))
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
        "ok" => figures(
            result
                .get("probe")
                .and_then(|p| ProbeKind::deserialize(p).ok()),
            &result["data"],
        ),
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

/// Column headers of the `--latency` table.
pub const LATENCY_HEADERS: [&str; 4] = ["node", "country", "asn", "ms"];

/// One `--latency` row: the node and the headline time of its result (the
/// query, mean RTT, last hop, whole request, handshake or connect time), or
/// the status of a result without one.
pub fn latency_row(result: &Value, nodes: &HashMap<String, NodeInfo>) -> Vec<String> {
    let mut cells = row(result, nodes);
    cells.truncate(3);
    let headline = ProbeResult::deserialize(result)
        .ok()
        .and_then(|r| key_figures(&r).1);
    cells.push(match headline {
        Some(x) => ms(x),
        None => result
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    });
    cells
}

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
/// read through its typed probe data; empty when it has none or it does not parse.
pub fn key_figures(r: &ProbeResult) -> (String, Option<f64>, String) {
    let Ok(Some(data)) = r.probe_data() else {
        return (String::new(), None, String::new());
    };
    match data {
        ProbeData::Dns(d) => {
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
        ProbeData::Ping(d) => (
            d.target,
            d.avg_ms,
            format!("{}/{} received", d.received, d.sent),
        ),
        ProbeData::Traceroute(d) => {
            let last = d.hops.last().and_then(|h| h.rtts_ms.last().copied());
            (d.target, last, format!("{} hop(s)", d.hops.len()))
        }
        ProbeData::Http(d) => (d.peer, Some(d.total_ms), format!("status {}", d.status)),
        ProbeData::Tls(d) => (
            d.peer,
            Some(d.handshake_ms),
            d.session.version.unwrap_or_default(),
        ),
        ProbeData::Tcp(d) => (d.peer, Some(d.connect_ms), String::new()),
    }
}

/// The one word or two a map colours a result by: the status of a result
/// that did not run; else the DNSSEC verdict (or rcode), the HTTP status
/// class, TLS validity, ping loss, whether a traceroute reached its target.
pub fn key_class(r: &ProbeResult) -> String {
    let status = serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let Ok(Some(data)) = r.probe_data() else {
        return status;
    };
    match data {
        ProbeData::Dns(d) => d.dnssec.map_or(d.rcode, |v| v.verdict.to_string()),
        ProbeData::Http(d) => format!("HTTP {}xx", d.status / 100),
        ProbeData::Tls(d) if d.session.valid => "valid".into(),
        ProbeData::Tls(_) => "invalid".into(),
        ProbeData::Tcp(_) => "connected".into(),
        ProbeData::Ping(d) if d.received == 0 => "all lost".into(),
        ProbeData::Ping(d) if d.received < d.sent => "some lost".into(),
        ProbeData::Ping(_) => "none lost".into(),
        ProbeData::Traceroute(d) if reached(&d) => "reached".into(),
        ProbeData::Traceroute(_) => "not reached".into(),
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

    /// `data` with the fields every result of `kind` has, as the agent sends them.
    fn full(kind: &str, data: Value) -> Value {
        let base = match kind {
            "dns" => json!({"server": "127.0.0.1:53", "transport": "udp", "qname": "a.test",
                "qtype": "A", "rcode": "NOERROR", "answers": [], "authority": [], "query_ms": 0.5,
                "flags": {"aa": true, "tc": false, "rd": true, "ra": false, "ad": false, "cd": false}}),
            "http" => json!({"url": "http://a.test/", "peer": "127.0.0.1:80", "dns_ms": 0.0,
                "connect_ms": 0.1, "status": 200, "reason": "OK", "headers": {},
                "first_byte_ms": 1.0, "head_bytes": 100, "total_ms": 2.0}),
            "tls" => json!({"version": "TLS 1.3", "cipher": null, "alpn": null, "chain": [],
                "chain_pem": [], "valid": true, "invalid_reason": null, "peer": "127.0.0.1:443",
                "sni": null, "dns_ms": 0.0, "connect_ms": 0.1, "handshake_ms": 1.0, "total_ms": 1.2}),
            "tcp" => json!({"peer": "127.0.0.1:22", "dns_ms": 0.0, "connect_ms": 0.1}),
            "ping" => json!({"target": "127.0.0.1", "dns_ms": 0.0, "sent": 1, "received": 1,
                "loss_pct": 0.0, "packets": [{"seq": 0, "rtt_ms": 1.25}]}),
            "traceroute" => {
                json!({"target": "192.0.2.1", "dns_ms": 0.0, "protocol": "udp", "hops": []})
            }
            _ => unreachable!(),
        };
        let mut out = base.as_object().unwrap().clone();
        out.extend(data.as_object().unwrap().clone());
        Value::Object(out)
    }

    #[test]
    fn figures_per_kind() {
        let f = |kind: &str, data: Value| {
            figures(
                Some(ProbeKind::deserialize(&json!(kind)).unwrap()),
                &full(kind, data),
            )
        };
        let cert = |not_after: u64| {
            json!({"subject": "CN=a", "issuer": "CN=b", "not_before": 0, "not_after": not_after,
                   "serial": "01", "sans": []})
        };
        // Agents before the reason codes reported the bare status.
        assert_eq!(
            f(
                "dns",
                json!({"answers": [{"name": "a.test.", "type": "A", "ttl": 1, "data": "192.0.2.1"}], "dnssec": "secure"})
            ),
            "rcode NOERROR, answers 1, dnssec secure"
        );
        assert_eq!(
            f(
                "dns",
                json!({"rcode": "SERVFAIL", "dnssec": {"verdict": "bogus", "reason": "signature-expired", "detail": "x"}})
            ),
            "rcode SERVFAIL, answers 0, dnssec bogus (signature-expired)"
        );
        assert_eq!(
            f("http", json!({"status": 404, "total_ms": 35.25})),
            "HTTP 404, 35.2 ms"
        );
        assert_eq!(f("tcp", json!({"connect_ms": 3.0})), "connect 3.0 ms");
        assert_eq!(f("ping", json!({"avg_ms": 1.25})), "loss 0.0%, avg 1.2 ms");
        assert_eq!(
            f("ping", json!({"received": 0, "loss_pct": 100.0})),
            "loss 100.0%"
        );
        assert_eq!(
            f(
                "traceroute",
                json!({"hops": [
                    {"ttl": 1, "addrs": ["10.0.0.1"], "rtts_ms": [1.0], "sent": 1, "received": 1},
                    {"ttl": 2, "addrs": ["192.0.2.1"], "rtts_ms": [2.0], "sent": 1, "received": 1}]})
            ),
            "hops 2, reached yes"
        );
        let in_ten_days = crate::timespec::now() + 10 * 86_400 + 3600;
        assert_eq!(
            f(
                "tls",
                json!({"valid": false, "invalid_reason": "UnknownIssuer", "chain": [cert(in_ten_days), {"error": "x"}]})
            ),
            "TLS 1.3, expires in 10 days, invalid"
        );
        assert_eq!(
            f(
                "tls",
                json!({"version": null, "chain": [{"error": "unparsable"}]})
            ),
            ""
        );
        // Data that is not that of its kind shows as JSON.
        let tls = Some(ProbeKind::Tls);
        assert_eq!(figures(tls, &json!({"x": 1})), "{\"x\":1}");
        assert_eq!(
            figures(tls, &json!({"truncated": true, "result_bytes": 70000})),
            "{\"result_bytes\":70000,\"truncated\":true}"
        );
        assert_eq!(
            figures(Some(ProbeKind::Dns), &json!({"x": "y".repeat(100)})).len(),
            80
        );
        // Without a kind, there is no type to read it as.
        assert_eq!(
            figures(None, &full("tcp", json!({}))),
            r#"{"connect_ms":0.1,"dns_ms":0.0,"peer":"127.0.0.1:22"}"#
        );
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
                full(
                    "ping",
                    json!({"sent": 3, "received": 2, "loss_pct": 33.3, "avg_ms": 0.5}),
                ),
                None,
            ),
            r(
                "dns",
                "ok",
                full(
                    "dns",
                    json!({"query_ms": 1.25, "answers": [{"name": "a.", "type": "A", "ttl": 1, "data": "192.0.2.1"}]}),
                ),
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
