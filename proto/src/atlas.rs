//! Results in the RIPE Atlas result format, so tools written for Atlas
//! (`ripe.atlas.sagan`, ripe-atlas-tools) read vantage results unchanged.
//!
//! The typed probe data here is what the agent stores in a result's `data`,
//! read with serde defaults so that results of older agents still convert.
//! The mapping is documented in ARCHITECTURE.md ("Results in RIPE Atlas format").

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::probe::{Probe, ProbeKind};
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

// ---- typed probe data, as the agent stores it ----

/// One DNS record as the agent reports it (presentation form).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsRecord {
    /// Owner name.
    pub name: String,
    /// Record type mnemonic.
    #[serde(rename = "type")]
    pub rtype: String,
    /// TTL, seconds.
    pub ttl: u32,
    /// RDATA in presentation form.
    pub data: String,
}

/// A DNSSEC verdict of a validating `dns` probe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnssecVerdict {
    /// `secure`, `insecure`, `bogus` or `indeterminate`.
    pub verdict: String,
    /// Stable reason code.
    pub reason: String,
    /// One line for people.
    pub detail: String,
}

/// Data of an ok `dns` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsData {
    /// Resolver `ip:port`.
    pub server: String,
    /// `udp`, `tcp`, `tls`, `https`.
    pub transport: String,
    /// Query name.
    pub qname: String,
    /// Query type.
    pub qtype: String,
    /// Response code mnemonic (`NOERROR`, `NXDOMAIN`, ...).
    pub rcode: String,
    /// Answer section.
    pub answers: Vec<DnsRecord>,
    /// Authority section.
    pub authority: Vec<DnsRecord>,
    /// Query time, ms.
    pub query_ms: f64,
    /// The answer as received, base64 of its wire form; absent over [`MAX_ABUF_BYTES`].
    pub abuf: Option<String>,
    /// DNSSEC verdict when the job asked for validation.
    #[serde(deserialize_with = "verdict_either")]
    pub dnssec: Option<DnssecVerdict>,
}

/// The verdict as agents report it now, or as a bare word as older agents did.
#[derive(Deserialize)]
#[serde(untagged)]
enum VerdictForm {
    Full(DnssecVerdict),
    Bare(String),
}

fn verdict_either<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<DnssecVerdict>, D::Error> {
    Ok(Option::<VerdictForm>::deserialize(d)?.map(|v| match v {
        VerdictForm::Full(v) => v,
        VerdictForm::Bare(verdict) => DnssecVerdict {
            verdict,
            ..DnssecVerdict::default()
        },
    }))
}

/// One echo request of a `ping` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PingPacket {
    /// Sequence number.
    pub seq: u32,
    /// Round trip, ms; `None` when lost.
    pub rtt_ms: Option<f64>,
    /// Why it was lost, other than a timeout.
    pub error: Option<String>,
}

/// Data of an ok `ping` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PingData {
    /// Address pinged.
    pub target: String,
    /// Requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// Each request.
    pub packets: Vec<PingPacket>,
    /// Fastest reply, ms (absent when all were lost).
    pub min_ms: Option<f64>,
    /// Mean reply, ms.
    pub avg_ms: Option<f64>,
    /// Slowest reply, ms.
    pub max_ms: Option<f64>,
}

/// One TTL of a `traceroute` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceHop {
    /// The TTL probed.
    pub ttl: u8,
    /// Addresses that answered.
    pub addrs: Vec<String>,
    /// Round trips of the answers, ms.
    pub rtts_ms: Vec<f64>,
    /// Probes sent.
    pub sent: u32,
    /// Answers received.
    pub received: u32,
}

/// Data of an ok `traceroute` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceData {
    /// Address traced.
    pub target: String,
    /// `udp`, `icmp`, `tcp`.
    pub protocol: String,
    /// Hops by TTL.
    pub hops: Vec<TraceHop>,
}

/// Data of an ok `http` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpData {
    /// The URL fetched.
    pub url: String,
    /// Server `ip:port`.
    pub peer: String,
    /// Connect time, ms.
    pub connect_ms: f64,
    /// Status code.
    pub status: u16,
    /// Whole exchange (DNS to last byte), ms.
    pub total_ms: f64,
    /// Response head size, bytes.
    pub head_bytes: Option<u64>,
    /// Body bytes read.
    pub body_bytes: Option<u64>,
}

/// A certificate as the `tls` probe summarises it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Not-after, Unix seconds.
    pub not_after: i64,
}

/// Data of an ok `tls` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsData {
    /// Server `ip:port`.
    pub peer: String,
    /// Negotiated version (`TLS 1.3`).
    pub version: Option<String>,
    /// The chain as presented, summarised.
    pub chain: Vec<CertSummary>,
    /// The first [`MAX_CHAIN_PEM`] certificates of the chain, PEM.
    pub chain_pem: Vec<String>,
    /// Whether the chain verified against the web PKI.
    pub valid: bool,
    /// Connect time, ms.
    pub connect_ms: f64,
    /// Handshake time, ms.
    pub handshake_ms: f64,
    /// DNS to end of handshake, ms.
    pub total_ms: f64,
}

/// Data of an ok `tcp` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TcpData {
    /// Server `ip:port`.
    pub peer: String,
    /// Connect time, ms.
    pub connect_ms: f64,
}

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

fn parse<T: serde::de::DeserializeOwned>(
    kind: ProbeKind,
    data: &serde_json::Value,
) -> Result<T, NotExported> {
    T::deserialize(data).map_err(|e| NotExported::Data {
        kind,
        why: e.to_string(),
    })
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

/// Converts a stored result of `probe` to the Atlas format. `from` is the
/// node's public address if the hub knows it.
pub fn to_atlas(
    r: &ProbeResult,
    probe: &Probe,
    from: Option<&str>,
) -> Result<AtlasResult, NotExported> {
    if r.status == Status::Refused {
        return Err(NotExported::Refused);
    }
    let ok = r.status == Status::Ok;
    let failure = r.reason.clone().unwrap_or_else(|| "failed".into());
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
    let timestamp = r.started_ms / 1000;
    let dst_addr: Option<IpAddr>;
    let (dst_name, body) = match probe {
        Probe::Ping(a) => {
            let d: PingData = if ok {
                parse(ProbeKind::Ping, &r.data)?
            } else {
                PingData {
                    sent: a.count.into(),
                    ..PingData::default()
                }
            };
            dst_addr = addr_of(&d.target).or_else(|| addr_of(&a.host));
            let mut result: Vec<PingReply> = d
                .packets
                .iter()
                .map(|p| match p.rtt_ms {
                    Some(rtt) => PingReply::Rtt { rtt },
                    None => PingReply::Lost { x: "*".into() },
                })
                .collect();
            if result.is_empty() {
                // A ping that failed as a whole lost every packet it meant to send.
                result = (0..d.sent)
                    .map(|_| PingReply::Lost { x: "*".into() })
                    .collect();
            }
            let lost = d.received == 0;
            (
                a.host.clone(),
                AtlasBody::Ping {
                    proto: "ICMP".into(),
                    sent: d.sent,
                    rcvd: d.received,
                    dup: 0,
                    min: if lost { -1.0 } else { d.min_ms.unwrap_or(-1.0) },
                    avg: if lost { -1.0 } else { d.avg_ms.unwrap_or(-1.0) },
                    max: if lost { -1.0 } else { d.max_ms.unwrap_or(-1.0) },
                    size: 64,
                    result,
                },
            )
        }
        Probe::Traceroute(a) => {
            let d: TraceData = if ok {
                parse(ProbeKind::Traceroute, &r.data)?
            } else {
                TraceData::default()
            };
            dst_addr = addr_of(&d.target).or_else(|| addr_of(&a.host));
            let result = d
                .hops
                .iter()
                .map(|h| {
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
                })
                .collect();
            (
                a.host.clone(),
                AtlasBody::Traceroute {
                    proto: format!("{:?}", a.protocol).to_uppercase(),
                    paris_id: 0,
                    endtime: (r.started_ms + r.duration_ms) / 1000,
                    result,
                },
            )
        }
        Probe::Dns(a) => {
            let proto = match a.transport {
                crate::probe::DnsTransport::Udp => "UDP",
                _ => "TCP",
            };
            let mut body_result = None;
            let mut error = None;
            if ok {
                let d: DnsData = parse(ProbeKind::Dns, &r.data)?;
                dst_addr = addr_of(&d.server);
                extra.dnssec = d.dnssec.clone();
                let wire = d.abuf.as_deref().and_then(|b| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(b).ok()
                });
                match wire.as_deref().and_then(|w| Some((w, dns_header(w)?))) {
                    Some((w, [id, qd, an, ns, ar])) => {
                        body_result = Some(AtlasDnsAnswer {
                            rt: round3(d.query_ms),
                            size: w.len(),
                            abuf: d.abuf.clone().unwrap_or_default(),
                            ID: id,
                            QDCOUNT: qd,
                            ANCOUNT: an,
                            NSCOUNT: ns,
                            ARCOUNT: ar,
                        })
                    }
                    None => {
                        error = Some(AtlasError {
                            timeout: None,
                            socket: Some("the answer's wire form was not kept".into()),
                        })
                    }
                }
            } else {
                dst_addr = a.resolver.as_deref().and_then(addr_of);
                error = Some(if r.status == Status::Timeout {
                    AtlasError {
                        timeout: Some(a.timeout_ms),
                        socket: None,
                    }
                } else {
                    AtlasError {
                        timeout: None,
                        socket: Some(failure.clone()),
                    }
                });
            }
            (
                a.name.clone(),
                AtlasBody::Dns {
                    proto: proto.into(),
                    result: body_result,
                    error,
                },
            )
        }
        Probe::Http(a) => {
            let method = format!("{:?}", a.method);
            let host = url::Url::parse(&a.url)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
                .unwrap_or_default();
            let response = if ok {
                let d: HttpData = parse(ProbeKind::Http, &r.data)?;
                dst_addr = addr_of(&d.peer);
                extra.connect_ms = Some(d.connect_ms);
                AtlasHttpResponse {
                    method,
                    af: dst_addr.as_ref().map(af_of),
                    dst_addr: dst_addr.map(|a| a.to_string()),
                    res: Some(d.status),
                    rt: Some(d.total_ms),
                    hsize: d.head_bytes,
                    bsize: d.body_bytes,
                    ver: "1.0".into(),
                    err: None,
                }
            } else {
                dst_addr = addr_of(&host);
                AtlasHttpResponse {
                    method,
                    af: dst_addr.as_ref().map(af_of),
                    dst_addr: dst_addr.map(|a| a.to_string()),
                    res: None,
                    rt: None,
                    hsize: None,
                    bsize: None,
                    ver: "1.0".into(),
                    err: Some(failure.clone()),
                }
            };
            (
                host,
                AtlasBody::Http {
                    uri: a.url.clone(),
                    result: vec![response],
                },
            )
        }
        Probe::Tls(a) => {
            let body = if ok {
                let d: TlsData = parse(ProbeKind::Tls, &r.data)?;
                dst_addr = addr_of(&d.peer);
                extra.connect_ms = Some(d.connect_ms);
                AtlasBody::Sslcert {
                    method: "TLS".into(),
                    dst_port: a.port.to_string(),
                    ver: d
                        .version
                        .as_deref()
                        .map(|v| v.trim_start_matches("TLS ").to_string()),
                    rt: Some(d.total_ms),
                    ttc: Some(d.connect_ms),
                    cert: d.chain_pem,
                    err: None,
                }
            } else {
                dst_addr = addr_of(&a.host);
                AtlasBody::Sslcert {
                    method: "TLS".into(),
                    dst_port: a.port.to_string(),
                    ver: None,
                    rt: None,
                    ttc: None,
                    cert: Vec::new(),
                    err: Some(failure.clone()),
                }
            };
            (a.host.clone(), body)
        }
        Probe::Tcp(_) => return Err(NotExported::Kind(ProbeKind::Tcp)),
    };
    Ok(AtlasResult {
        fw: ATLAS_FW,
        msm_id: msm_id(&r.job_id),
        prb_id: prb_id(&r.node_id),
        timestamp,
        from: from.and_then(addr_of).map(|a| a.to_string()),
        af: dst_addr.as_ref().map(af_of),
        dst_addr: dst_addr.map(|a| a.to_string()),
        dst_name,
        body,
        vantage: extra,
    })
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
    fn older_agents_bare_verdict_still_reads() {
        let d: DnsData =
            serde_json::from_value(json!({"rcode": "NOERROR", "dnssec": "secure"})).unwrap();
        assert_eq!(d.dnssec.unwrap().verdict, "secure");
        let d: DnsData =
            serde_json::from_value(json!({"dnssec": {"verdict": "bogus", "reason": "r"}})).unwrap();
        assert_eq!(d.dnssec.unwrap().reason, "r");
        let d: DnsData = serde_json::from_value(json!({})).unwrap();
        assert!(d.dnssec.is_none());
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
            json!({"target": "127.0.0.1", "sent": 2, "received": 0,
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
        let r = result(ProbeKind::Tcp, Status::Ok, json!({"peer": "127.0.0.1:1"}));
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
