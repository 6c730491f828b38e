//! Results in the RIPE Atlas result format, so tools written for Atlas
//! (`ripe.atlas.sagan`, ripe-atlas-tools) read vantage results unchanged.
//!
//! The probe data is read through its types ([`crate::data`]).
//! The mapping is documented in ARCHITECTURE.md ("Results in RIPE Atlas format").

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::data::{DnsData, DnssecVerdict, PingData, ProbeData, TraceHop};
use crate::probe::{DnsArgs, HttpArgs, PingArgs, Probe, ProbeKind, TlsArgs, TracerouteArgs};
use crate::result::{ProbeResult, Status};

/// Firmware version we claim: sagan reads field names of firmware ≥ 4460 in
/// their current form, and 5000+ is today's probe firmware line.
pub const ATLAS_FW: u32 = 5080;

/// Lowest `msm_id` we hand out: Atlas reserves low ids for its built-in measurements.
pub const MSM_ID_BASE: u64 = 1_000_000;

/// Largest DNS answer (wire bytes) an agent keeps for `abuf`.
pub const MAX_ABUF_BYTES: usize = 16 * 1024;

/// Largest number of certificates a `tls` result keeps as PEM.
pub const MAX_CHAIN_PEM: usize = 4;

// ---- the Atlas side ----

/// What Atlas has no field for; tools that know Atlas ignore unknown keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VantageExtra {
    /// The vantage job id.
    pub job_id: String,
    /// The vantage node id.
    pub node_id: String,
    /// Run number of a repeated job.
    pub seq: u32,
    /// The native status (`ok`, `error`, `timeout`).
    pub status: Status,
    /// Why, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure's stable code, when the agent gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// DNSSEC verdict of a validating `dns` probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<DnssecVerdict>,
    /// TCP connect time of `http` and `tls` probes, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<f64>,
}

/// One Atlas ping reply: a round trip or a lost packet (`{"x": "*"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PingReply {
    /// A reply.
    Rtt {
        /// Round trip, ms.
        rtt: f64,
    },
    /// No reply.
    Lost {
        /// Always `*`.
        x: String,
    },
}

/// One Atlas traceroute reply within a hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HopReply {
    /// An answer.
    Reply {
        /// Who answered.
        from: String,
        /// Round trip, ms.
        rtt: f64,
    },
    /// No answer.
    Lost {
        /// Always `*`.
        x: String,
    },
}

/// One Atlas traceroute hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtlasHop {
    /// The TTL.
    pub hop: u8,
    /// Its answers.
    pub result: Vec<HopReply>,
}

/// The `result` object of an Atlas `dns` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct AtlasDnsAnswer {
    /// Response time, ms.
    pub rt: f64,
    /// Answer size, bytes.
    pub size: usize,
    /// Base64 of the answer's wire form.
    pub abuf: String,
    /// The message id.
    pub ID: u16,
    /// Question count.
    pub QDCOUNT: u16,
    /// Answer count.
    pub ANCOUNT: u16,
    /// Authority count.
    pub NSCOUNT: u16,
    /// Additional count.
    pub ARCOUNT: u16,
}

/// An Atlas `dns` failure: `{"timeout": ms}` or `{"socket": text}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtlasError {
    /// The query's time limit, ms, when it timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// What failed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

/// One Atlas `http` response (or its error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtlasHttpResponse {
    /// `GET` or `HEAD`.
    pub method: String,
    /// 4 or 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub af: Option<u8>,
    /// Server address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_addr: Option<String>,
    /// Status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub res: Option<u16>,
    /// Time to the last byte, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt: Option<f64>,
    /// Head size, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsize: Option<u64>,
    /// Body size, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsize: Option<u64>,
    /// HTTP version of the request.
    pub ver: String,
    /// Why there is no response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
}

/// The type-specific part of an Atlas result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AtlasBody {
    /// `ping`.
    Ping {
        /// `ICMP`.
        proto: String,
        /// Requests sent.
        sent: u32,
        /// Replies received.
        rcvd: u32,
        /// Duplicates (never counted by vantage).
        dup: u32,
        /// Fastest, ms (−1 when all were lost).
        min: f64,
        /// Mean, ms (−1 when all were lost).
        avg: f64,
        /// Slowest, ms (−1 when all were lost).
        max: f64,
        /// Payload bytes.
        size: u32,
        /// Each request.
        result: Vec<PingReply>,
    },
    /// `traceroute`.
    Traceroute {
        /// `UDP`, `ICMP`, `TCP`.
        proto: String,
        /// Paris id (vantage does not vary it).
        paris_id: u32,
        /// End, Unix seconds.
        endtime: u64,
        /// Hops.
        result: Vec<AtlasHop>,
    },
    /// `dns`.
    Dns {
        /// `UDP` or `TCP` (DoT and DoH as `TCP`).
        proto: String,
        /// The answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<AtlasDnsAnswer>,
        /// Or the failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<AtlasError>,
    },
    /// `http`.
    Http {
        /// The URL.
        uri: String,
        /// One response.
        result: Vec<AtlasHttpResponse>,
    },
    /// `sslcert` (the vantage `tls` probe).
    Sslcert {
        /// `TLS`.
        method: String,
        /// Port, as a string as Atlas has it.
        dst_port: String,
        /// Negotiated version (`1.3`), absent on failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ver: Option<String>,
        /// DNS to end of handshake, ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rt: Option<f64>,
        /// Connect time, ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttc: Option<f64>,
        /// The chain, PEM.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cert: Vec<String>,
        /// Why there is no chain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        err: Option<String>,
    },
}

/// One result in the RIPE Atlas format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtlasResult {
    /// Firmware version ([`ATLAS_FW`]).
    pub fw: u32,
    /// From the job id ([`msm_id`]).
    pub msm_id: u64,
    /// From the node id ([`prb_id`]).
    pub prb_id: u64,
    /// Start, Unix seconds.
    pub timestamp: u64,
    /// The node's public address, when the hub knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// 4 or 6, when the destination address is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub af: Option<u8>,
    /// Destination address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_addr: Option<String>,
    /// Destination as the job names it.
    pub dst_name: String,
    /// The type-specific fields, `type` among them.
    #[serde(flatten)]
    pub body: AtlasBody,
    /// Vantage-only data.
    pub vantage: VantageExtra,
}

/// Why a result has no Atlas form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotExported {
    /// Refused results: nothing ran, and Atlas has no such outcome.
    #[error("refused results have no Atlas form")]
    Refused,
    /// `tcp` has no Atlas result type.
    #[error("{0:?} has no Atlas result type")]
    Kind(ProbeKind),
    /// The stored data does not have the shape of its probe kind.
    #[error("result data of a {kind:?} probe does not parse: {why}")]
    Data {
        /// The probe kind.
        kind: ProbeKind,
        /// The parse error.
        why: String,
    },
}

/// A stable number of `id`: the first four bytes of its SHA-256, big-endian,
/// below 2^30. The same id gives the same number on every hub and after
/// restarts; distinct ids collide with probability about n²/2^31.
fn id_number(id: &str) -> u64 {
    let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let b = d.as_ref();
    u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) >> 2)
}

/// The Atlas `msm_id` of a vantage job: [`MSM_ID_BASE`] plus the id's number.
pub fn msm_id(job_id: &str) -> u64 {
    MSM_ID_BASE + id_number(job_id)
}

/// The Atlas `prb_id` of a vantage node: the id's number plus one (Atlas has no probe 0).
pub fn prb_id(node_id: &str) -> u64 {
    id_number(node_id) + 1
}

fn af_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 6,
    }
}

/// An address from `ip` or `ip:port` text.
fn addr_of(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The typed data of `r`, a result of `probe`: `None` when the probe did not
/// produce any (a failure, or data the node dropped as too large).
fn data_of(r: &ProbeResult, probe: &Probe) -> Result<Option<ProbeData>, NotExported> {
    let kind = probe.kind();
    let data = r.probe_data().map_err(|e| NotExported::Data {
        kind,
        why: e.to_string(),
    })?;
    match data {
        Some(d) if d.kind() != kind => Err(NotExported::Data {
            kind,
            why: format!("the result is of a {} probe", d.kind()),
        }),
        d => Ok(d),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The message id and section counts of a DNS wire message's header.
fn dns_header(wire: &[u8]) -> Option<[u16; 5]> {
    let h = wire.get(..12)?;
    let w = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    Some([w(0), w(4), w(6), w(8), w(10)])
}

fn lost() -> PingReply {
    PingReply::Lost { x: "*".into() }
}

/// Converts a stored result of `probe` to the Atlas format. `from` is the
/// node's public address if the hub knows it. An `ok` result whose data the
/// node dropped as too large is exported as a failure with its reason.
pub fn to_atlas(
    r: &ProbeResult,
    probe: &Probe,
    from: Option<&str>,
) -> Result<AtlasResult, NotExported> {
    if r.status == Status::Refused {
        return Err(NotExported::Refused);
    }
    let mut extra = VantageExtra {
        job_id: r.job_id.clone(),
        node_id: r.node_id.clone(),
        seq: r.seq,
        status: r.status,
        reason: r.reason.clone(),
        code: r.code.clone(),
        dnssec: None,
        connect_ms: None,
    };
    let failure = r.reason.clone().unwrap_or_else(|| "failed".into());
    let data = || data_of(r, probe);
    let c = match probe {
        // `tcp` has no Atlas form whatever its data.
        Probe::Tcp(_) => return Err(NotExported::Kind(ProbeKind::Tcp)),
        Probe::Ping(a) => ping(a, data()?),
        Probe::Traceroute(a) => traceroute(a, r, data()?),
        Probe::Dns(a) => dns(a, r, data()?, failure, &mut extra),
        Probe::Http(a) => http(a, data()?, failure, &mut extra),
        Probe::Tls(a) => tls(a, data()?, failure, &mut extra),
    };
    Ok(AtlasResult {
        fw: ATLAS_FW,
        msm_id: msm_id(&r.job_id),
        prb_id: prb_id(&r.node_id),
        timestamp: r.started_ms / 1000,
        from: from.and_then(addr_of).map(|a| a.to_string()),
        af: c.dst_addr.as_ref().map(af_of),
        dst_addr: c.dst_addr.map(|a| a.to_string()),
        dst_name: c.dst_name,
        body: c.body,
        vantage: extra,
    })
}

/// What one probe kind's result becomes: the target as asked for and as
/// reached, and the kind's own fields.
struct Converted {
    dst_name: String,
    dst_addr: Option<IpAddr>,
    body: AtlasBody,
}

fn ping(a: &PingArgs, data: Option<ProbeData>) -> Converted {
    let d = match data {
        Some(ProbeData::Ping(d)) => Some(d),
        _ => None,
    };
    let dst_addr = d
        .as_ref()
        .and_then(|d| addr_of(&d.target))
        .or_else(|| addr_of(&a.host));
    // A ping that failed as a whole lost every packet it meant to send.
    let sent = d.as_ref().map_or(u32::from(a.count), |d| d.sent);
    let rcvd = d.as_ref().map_or(0, |d| d.received);
    let mut result: Vec<PingReply> = d
        .iter()
        .flat_map(|d| &d.packets)
        .map(|p| p.rtt_ms.map_or_else(lost, |rtt| PingReply::Rtt { rtt }))
        .collect();
    if result.is_empty() {
        result = (0..sent).map(|_| lost()).collect();
    }
    // Atlas says -1 for figures of a ping without any reply.
    let stat = |f: fn(&PingData) -> Option<f64>| {
        d.as_ref()
            .filter(|d| d.received > 0)
            .and_then(f)
            .unwrap_or(-1.0)
    };
    Converted {
        dst_name: a.host.clone(),
        dst_addr,
        body: AtlasBody::Ping {
            proto: "ICMP".into(),
            sent,
            rcvd,
            dup: 0,
            min: stat(|d| d.min_ms),
            avg: stat(|d| d.avg_ms),
            max: stat(|d| d.max_ms),
            size: 64,
            result,
        },
    }
}

fn traceroute(a: &TracerouteArgs, r: &ProbeResult, data: Option<ProbeData>) -> Converted {
    let (dst_addr, hops) = match data {
        Some(ProbeData::Traceroute(d)) => (addr_of(&d.target).or_else(|| addr_of(&a.host)), d.hops),
        _ => (addr_of(&a.host), Vec::new()),
    };
    Converted {
        dst_name: a.host.clone(),
        dst_addr,
        body: AtlasBody::Traceroute {
            proto: format!("{:?}", a.protocol).to_uppercase(),
            paris_id: 0,
            endtime: (r.started_ms + r.duration_ms) / 1000,
            result: hops.iter().map(atlas_hop).collect(),
        },
    }
}

fn atlas_hop(h: &TraceHop) -> AtlasHop {
    let mut replies: Vec<HopReply> = h
        .rtts_ms
        .iter()
        .enumerate()
        .filter_map(|(i, rtt)| {
            // trippy keeps the answering addresses apart from
            // the samples; with one round there is one of each.
            let from = h.addrs.get(i).or(h.addrs.last())?;
            Some(HopReply::Reply {
                from: from.clone(),
                rtt: *rtt,
            })
        })
        .collect();
    let lost = h
        .sent
        .saturating_sub(replies.len() as u32)
        .max(u32::from(replies.is_empty()));
    replies.extend((0..lost).map(|_| HopReply::Lost { x: "*".into() }));
    AtlasHop {
        hop: h.ttl,
        result: replies,
    }
}

fn dns(
    a: &DnsArgs,
    r: &ProbeResult,
    data: Option<ProbeData>,
    failure: String,
    extra: &mut VantageExtra,
) -> Converted {
    let proto = match a.transport {
        crate::probe::DnsTransport::Udp => "UDP",
        _ => "TCP",
    };
    let (dst_addr, result, error) = if let Some(ProbeData::Dns(d)) = data {
        extra.dnssec = d.dnssec.clone();
        let (result, error) = match dns_answer(&d) {
            Some(answer) => (Some(answer), None),
            None => (
                None,
                Some(AtlasError {
                    timeout: None,
                    socket: Some("the answer's wire form was not kept".into()),
                }),
            ),
        };
        (addr_of(&d.server), result, error)
    } else {
        let error = if r.status == Status::Timeout {
            AtlasError {
                timeout: Some(a.timeout_ms),
                socket: None,
            }
        } else {
            AtlasError {
                timeout: None,
                socket: Some(failure),
            }
        };
        (a.resolver.as_deref().and_then(addr_of), None, Some(error))
    };
    Converted {
        dst_name: a.name.clone(),
        dst_addr,
        body: AtlasBody::Dns {
            proto: proto.into(),
            result,
            error,
        },
    }
}

/// The answer as Atlas shows it, if its wire form was kept.
fn dns_answer(d: &DnsData) -> Option<AtlasDnsAnswer> {
    use base64::Engine;
    let wire = base64::engine::general_purpose::STANDARD
        .decode(d.abuf.as_deref()?)
        .ok()?;
    let [id, qd, an, ns, ar] = dns_header(&wire)?;
    Some(AtlasDnsAnswer {
        rt: round3(d.query_ms),
        size: wire.len(),
        abuf: d.abuf.clone().unwrap_or_default(),
        ID: id,
        QDCOUNT: qd,
        ANCOUNT: an,
        NSCOUNT: ns,
        ARCOUNT: ar,
    })
}

fn http(
    a: &HttpArgs,
    data: Option<ProbeData>,
    failure: String,
    extra: &mut VantageExtra,
) -> Converted {
    let host = url::Url::parse(&a.url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .unwrap_or_default();
    let mut response = AtlasHttpResponse {
        method: format!("{:?}", a.method),
        af: None,
        dst_addr: None,
        res: None,
        rt: None,
        hsize: None,
        bsize: None,
        ver: "1.0".into(),
        err: None,
    };
    let dst_addr = if let Some(ProbeData::Http(d)) = data {
        extra.connect_ms = Some(d.connect_ms);
        response.res = Some(d.status);
        response.rt = Some(d.total_ms);
        response.hsize = d.head_bytes;
        response.bsize = d.body_bytes;
        addr_of(&d.peer)
    } else {
        response.err = Some(failure);
        addr_of(&host)
    };
    response.af = dst_addr.as_ref().map(af_of);
    response.dst_addr = dst_addr.map(|a| a.to_string());
    Converted {
        dst_name: host,
        dst_addr,
        body: AtlasBody::Http {
            uri: a.url.clone(),
            result: vec![response],
        },
    }
}

fn tls(
    a: &TlsArgs,
    data: Option<ProbeData>,
    failure: String,
    extra: &mut VantageExtra,
) -> Converted {
    let (dst_addr, body) = if let Some(ProbeData::Tls(d)) = data {
        extra.connect_ms = Some(d.connect_ms);
        let body = AtlasBody::Sslcert {
            method: "TLS".into(),
            dst_port: a.port.to_string(),
            ver: d
                .session
                .version
                .as_deref()
                .map(|v| v.trim_start_matches("TLS ").to_string()),
            rt: Some(d.total_ms),
            ttc: Some(d.connect_ms),
            cert: d.session.chain_pem,
            err: None,
        };
        (addr_of(&d.peer), body)
    } else {
        let body = AtlasBody::Sslcert {
            method: "TLS".into(),
            dst_port: a.port.to_string(),
            ver: None,
            rt: None,
            ttc: None,
            cert: Vec::new(),
            err: Some(failure),
        };
        (addr_of(&a.host), body)
    };
    Converted {
        dst_name: a.host.clone(),
        dst_addr,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(probe: ProbeKind, status: Status, data: serde_json::Value) -> ProbeResult {
        ProbeResult {
            job_id: "j1".into(),
            node_id: "n-1".into(),
            probe: Some(probe),
            started_ms: 1_700_000_000_123,
            duration_ms: 2000,
            status,
            reason: (status != Status::Ok).then(|| "why".into()),
            code: None,
            data,
            seq: 0,
        }
    }

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn older_agents_bare_verdict_still_exports() {
        let p = probe(
            json!({"cmd": "dns", "args": {"name": "a.test", "resolver": "127.0.0.1", "dnssec": true}}),
        );
        // A result of the first agents: no abuf, the bare DNSSEC status.
        let r = result(
            ProbeKind::Dns,
            Status::Ok,
            json!({"server": "127.0.0.1:53", "transport": "udp", "qname": "a.test", "qtype": "A",
                   "rcode": "NOERROR", "flags": {"aa": true, "tc": false, "rd": true, "ra": false, "ad": false, "cd": false},
                   "answers": [], "authority": [], "query_ms": 1.5, "dnssec": "secure"}),
        );
        let a = serde_json::to_value(to_atlas(&r, &p, None).unwrap()).unwrap();
        assert_eq!(a["vantage"]["dnssec"]["verdict"], "secure");
        assert_eq!(a["error"]["socket"], "the answer's wire form was not kept");
        assert_eq!(a["dst_addr"], "127.0.0.1");
    }

    #[test]
    fn dropped_or_foreign_data() {
        let p = probe(json!({"cmd": "tls", "args": {"host": "127.0.0.1", "port": 443}}));
        // Data the node dropped for size: exported as the failure its reason says.
        let mut r = result(
            ProbeKind::Tls,
            Status::Ok,
            json!({"truncated": true, "result_bytes": 70000}),
        );
        r.reason = Some("result of 70000 bytes exceeds the node's cap".into());
        let a = serde_json::to_value(to_atlas(&r, &p, None).unwrap()).unwrap();
        assert_eq!(a["type"], "sslcert");
        assert_eq!(a["err"], "result of 70000 bytes exceeds the node's cap");
        // Data of another kind than the job's probe.
        let r = result(
            ProbeKind::Tcp,
            Status::Ok,
            json!({"peer": "127.0.0.1:443", "dns_ms": 0.0, "connect_ms": 0.1}),
        );
        assert!(matches!(
            to_atlas(&r, &p, None),
            Err(NotExported::Data {
                kind: ProbeKind::Tls,
                ..
            })
        ));
    }

    #[test]
    fn ids_are_stable_and_in_range() {
        // Pinned: a change of mapping would renumber every exported measurement.
        assert_eq!(msm_id("j1"), msm_id("j1"));
        assert!(msm_id("x") >= MSM_ID_BASE && msm_id("x") < MSM_ID_BASE + (1 << 30));
        assert_ne!(msm_id("j1"), msm_id("j2"));
        assert!(prb_id("n-1") >= 1);
        let d = ring::digest::digest(&ring::digest::SHA256, b"j1");
        let b = d.as_ref();
        let n = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) >> 2);
        assert_eq!(msm_id("j1"), 1_000_000 + n);
    }

    #[test]
    fn ping_all_lost_has_minus_one_and_stars() {
        let p = probe(json!({"cmd": "ping", "args": {"host": "127.0.0.1", "count": 2}}));
        let r = result(
            ProbeKind::Ping,
            Status::Ok,
            json!({"target": "127.0.0.1", "dns_ms": 0.0, "sent": 2, "received": 0, "loss_pct": 100.0,
                   "packets": [{"seq": 0, "rtt_ms": null}, {"seq": 1, "rtt_ms": null}]}),
        );
        let a = serde_json::to_value(to_atlas(&r, &p, None).unwrap()).unwrap();
        assert_eq!(a["type"], "ping");
        assert_eq!(a["avg"], -1.0);
        assert_eq!(a["result"], json!([{"x": "*"}, {"x": "*"}]));
        assert_eq!(a["timestamp"], 1_700_000_000);
        assert_eq!(a["af"], 4);
    }

    #[test]
    fn refused_and_tcp_are_not_exported() {
        let p = probe(json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": 1}}));
        let r = result(
            ProbeKind::Tcp,
            Status::Ok,
            json!({"peer": "127.0.0.1:1", "dns_ms": 0.0, "connect_ms": 0.1}),
        );
        assert_eq!(
            to_atlas(&r, &p, None).unwrap_err(),
            NotExported::Kind(ProbeKind::Tcp)
        );
        let r = result(ProbeKind::Tcp, Status::Refused, json!(null));
        assert_eq!(to_atlas(&r, &p, None).unwrap_err(), NotExported::Refused);
    }

    #[test]
    fn dns_timeout_is_an_atlas_timeout_error() {
        let p = probe(
            json!({"cmd": "dns", "args": {"name": "a.test", "resolver": "127.0.0.1", "timeout_ms": 700}}),
        );
        let r = result(ProbeKind::Dns, Status::Timeout, json!(null));
        let a = serde_json::to_value(to_atlas(&r, &p, None).unwrap()).unwrap();
        assert_eq!(a["error"], json!({"timeout": 700}));
        assert_eq!(a["dst_addr"], "127.0.0.1");
        assert!(a.get("result").is_none());
    }
}
