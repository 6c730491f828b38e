//! Typed probe data: what an `ok` result carries in `data`, one type per
//! probe kind ([`DnsData`], [`HttpData`], [`TlsData`], [`TcpData`],
//! [`PingData`], [`TraceData`]), and [`ProbeData`] to tie a kind to its data.
//!
//! The agent builds these and the CLI, the Atlas export and the tests read
//! them, so the JSON is written and read in one place. The JSON is the one
//! agents have sent since the first release, field for field: a field that is
//! present only sometimes is an `Option` skipped when `None`, a field that
//! agents send as `null` stays `null`. Fields that later agents added are
//! optional when read (noted on each), so results stored from older agents
//! still parse; unknown fields are ignored, so an older reader still reads a
//! newer agent's result.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::probe::{DnsTransport, ProbeKind, QType, TraceProtocol};

// ---- dns ----

/// One DNS record as the `dns` probe reports it (presentation form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Owner name, fully qualified.
    pub name: String,
    /// Record type mnemonic (`A`, `RRSIG`, `TYPE65534`).
    #[serde(rename = "type")]
    pub rtype: String,
    /// TTL, seconds.
    pub ttl: u32,
    /// RDATA in presentation form.
    pub data: String,
}

/// The header flags of a DNS answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsFlags {
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// Authentic data (the resolver validated it).
    pub ad: bool,
    /// Checking disabled.
    pub cd: bool,
}

/// The name server identifier (RFC 5001) a server sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nsid {
    /// The bytes as text (invalid UTF-8 replaced).
    pub text: String,
    /// The bytes in lower-case hex, exactly.
    pub hex: String,
}

/// One extended DNS error (RFC 8914) of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedError {
    /// INFO-CODE.
    pub code: u16,
    /// The code's name from the IANA registry, lower case with dashes
    /// (`dnssec-bogus`), or `unknown`.
    pub name: String,
    /// EXTRA-TEXT, possibly empty.
    pub text: String,
}

/// The DNSSEC security status of an answer (RFC 4033 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityStatus {
    /// A chain of trust from an anchor proves the answer.
    Secure,
    /// The answer is provably unsigned (or no anchor covers it).
    Insecure,
    /// The answer should be signed and its signatures do not prove it.
    Bogus,
    /// The validator could not decide.
    Indeterminate,
}

impl SecurityStatus {
    /// The wire spelling (`secure`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secure => "secure",
            Self::Insecure => "insecure",
            Self::Bogus => "bogus",
            Self::Indeterminate => "indeterminate",
        }
    }
}

impl std::fmt::Display for SecurityStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DNSSEC verdict of a validating `dns` probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnssecVerdict {
    /// The security status.
    pub verdict: SecurityStatus,
    /// Stable reason code (docs/agent.md); empty in results of agents that
    /// reported the bare status.
    pub reason: String,
    /// One line for people; empty as `reason`.
    pub detail: String,
}

/// Data of an ok `dns` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsData {
    /// Resolver `ip:port`.
    pub server: String,
    /// The transport the answer came over (`udp` turns into `tcp` when the
    /// UDP answer was truncated).
    pub transport: DnsTransport,
    /// Query name as the job gave it.
    pub qname: String,
    /// Query type.
    pub qtype: QType,
    /// Response code mnemonic, upper case (`NOERROR`, `NXDOMAIN`, `SERVFAIL`).
    pub rcode: String,
    /// Header flags of the answer.
    pub flags: DnsFlags,
    /// Answer section.
    pub answers: Vec<DnsRecord>,
    /// Authority section.
    pub authority: Vec<DnsRecord>,
    /// Query time, ms.
    pub query_ms: f64,
    /// The answer as received, base64 of its wire form, for the Atlas export;
    /// absent over [`crate::atlas::MAX_ABUF_BYTES`] and in results of agents
    /// before the Atlas export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abuf: Option<String>,
    /// Absent when the job did not ask for NSID; `null` when it did and the
    /// server sent none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub nsid: Option<Option<Nsid>>,
    /// Extended DNS errors of the answer; absent when there are none (and in
    /// results of agents before they were reported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ede: Vec<ExtendedError>,
    /// DNSSEC verdict when the job asked for validation. Agents before the
    /// reason codes reported the bare status (`"dnssec": "secure"`); that
    /// reads as a verdict with an empty reason and detail.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "verdict_either"
    )]
    pub dnssec: Option<DnssecVerdict>,
    /// Time the validation took, ms, when there is a verdict (absent in
    /// results of agents that reported the bare status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_ms: Option<f64>,
}

/// A field that is there, even as `null`, is `Some`: [`DnsData::nsid`] tells
/// "not asked" (absent) from "asked, none sent" (`null`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The verdict as agents report it now, or as a bare word as older agents did.
#[derive(Deserialize)]
#[serde(untagged)]
enum VerdictForm {
    Full(DnssecVerdict),
    Bare(SecurityStatus),
}

fn verdict_either<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DnssecVerdict>, D::Error> {
    Ok(Option::<VerdictForm>::deserialize(d)?.map(|v| match v {
        VerdictForm::Full(v) => v,
        VerdictForm::Bare(verdict) => DnssecVerdict {
            verdict,
            reason: String::new(),
            detail: String::new(),
        },
    }))
}

// ---- tls, and the session of an https request ----

/// A certificate of a presented chain, summarised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    /// Subject DN (`CN=localhost`).
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Not-before, Unix seconds.
    pub not_before: i64,
    /// Not-after, Unix seconds.
    pub not_after: i64,
    /// Serial number, colon-separated hex.
    pub serial: String,
    /// Subject alternative names (`DNSName(localhost)`, ...).
    pub sans: Vec<String>,
}

/// One certificate of a chain: its summary, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Certificate {
    /// A certificate that parsed.
    Summary(CertSummary),
    /// A certificate that did not: `{"error": ...}`.
    Unparsable {
        /// Why.
        error: String,
    },
}

/// What a TLS handshake negotiated and the chain the server presented; the
/// whole of an https request's `tls`, and part of a `tls` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSession {
    /// Negotiated version (`TLS 1.3`); `null` if unknown.
    pub version: Option<String>,
    /// Negotiated cipher suite (`TLS13_AES_256_GCM_SHA384`); `null` if unknown.
    pub cipher: Option<String>,
    /// Negotiated ALPN protocol; `null` when none.
    pub alpn: Option<String>,
    /// The chain as presented, leaf first.
    pub chain: Vec<Certificate>,
    /// The first [`crate::atlas::MAX_CHAIN_PEM`] certificates of the chain,
    /// PEM, for the Atlas export; absent (read as empty) in results of agents
    /// before it.
    #[serde(default)]
    pub chain_pem: Vec<String>,
    /// Whether the chain validates against the web PKI roots for the name.
    pub valid: bool,
    /// Why not; `null` when valid.
    pub invalid_reason: Option<String>,
}

/// Data of an ok `tls` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsData {
    /// The session and the chain (their fields at the top level).
    #[serde(flatten)]
    pub session: TlsSession,
    /// Server `ip:port`.
    pub peer: String,
    /// The server name sent; `null` when none was (IP literal, or `sni: ""`).
    pub sni: Option<String>,
    /// Resolution time, ms.
    pub dns_ms: f64,
    /// Connect time, ms.
    pub connect_ms: f64,
    /// Handshake time, ms.
    pub handshake_ms: f64,
    /// Start to end of handshake, ms.
    pub total_ms: f64,
}

// ---- http ----

/// Data of an ok `http` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpData {
    /// The URL fetched.
    pub url: String,
    /// Server `ip:port`.
    pub peer: String,
    /// Resolution time, ms.
    pub dns_ms: f64,
    /// Connect time, ms.
    pub connect_ms: f64,
    /// TLS handshake time, ms (https only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ms: Option<f64>,
    /// The TLS session (https only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSession>,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// The response headers the job asked for, by lower-case name; repeated
    /// headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// Start to the response's first byte, ms.
    pub first_byte_ms: f64,
    /// Response head size, bytes; absent in results of agents before the
    /// Atlas export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_bytes: Option<u64>,
    /// Body bytes read (at most the job's `max_body`); absent when there is
    /// no body (HEAD, 204, 304), as are the other body fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
    /// Whether the body was cut at `max_body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_truncated: Option<bool>,
    /// SHA-256 of the body bytes read, lower-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// The `Content-Length` the server declared, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
    /// Start to the last byte read, ms.
    pub total_ms: f64,
}

// ---- tcp ----

/// Data of an ok `tcp` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpData {
    /// Server `ip:port` that accepted.
    pub peer: String,
    /// Resolution time, ms.
    pub dns_ms: f64,
    /// Connect time, ms.
    pub connect_ms: f64,
}

// ---- ping ----

/// One echo request of a `ping` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingPacket {
    /// Sequence number.
    pub seq: u16,
    /// Round trip, ms; `null` when no reply came.
    pub rtt_ms: Option<f64>,
    /// Why it was lost, when not by a timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Data of an ok `ping` result (also when every packet was lost).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingData {
    /// Address pinged.
    pub target: String,
    /// Resolution time, ms.
    pub dns_ms: f64,
    /// Requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// Lost requests, percent.
    pub loss_pct: f64,
    /// Each request, in order.
    pub packets: Vec<PingPacket>,
    /// Fastest reply, ms; absent when all were lost, as are the mean and the slowest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<f64>,
    /// Mean reply, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_ms: Option<f64>,
    /// Slowest reply, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
}

// ---- traceroute ----

/// One TTL of a `traceroute` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceData {
    /// Address traced.
    pub target: String,
    /// Resolution time, ms.
    pub dns_ms: f64,
    /// Packet type.
    pub protocol: TraceProtocol,
    /// Hops by TTL, up to the target or the job's `max_hops`.
    pub hops: Vec<TraceHop>,
}

// ---- any kind ----

/// What a node sends as `data` when the whole result would exceed its size
/// cap: the probe's own data is dropped, and `reason` says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruncatedData {
    /// Always `true`.
    pub truncated: bool,
    /// Size of the result with its data, bytes.
    pub result_bytes: u64,
}

/// The data of an ok result, by probe kind. It serialises as the inner
/// data alone; reading needs the kind ([`ProbeData::from_value`],
/// [`crate::result::ProbeResult::probe_data`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ProbeData {
    /// `dns`.
    Dns(DnsData),
    /// `http`.
    Http(HttpData),
    /// `tls`.
    Tls(TlsData),
    /// `tcp`.
    Tcp(TcpData),
    /// `ping`.
    Ping(PingData),
    /// `traceroute`.
    Traceroute(TraceData),
}

impl ProbeData {
    /// The probe kind this is the data of.
    pub fn kind(&self) -> ProbeKind {
        match self {
            Self::Dns(_) => ProbeKind::Dns,
            Self::Http(_) => ProbeKind::Http,
            Self::Tls(_) => ProbeKind::Tls,
            Self::Tcp(_) => ProbeKind::Tcp,
            Self::Ping(_) => ProbeKind::Ping,
            Self::Traceroute(_) => ProbeKind::Traceroute,
        }
    }

    /// Reads `data` as the data of a `kind` probe.
    pub fn from_value(kind: ProbeKind, data: &Value) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            ProbeKind::Dns => Self::Dns(DnsData::deserialize(data)?),
            ProbeKind::Http => Self::Http(HttpData::deserialize(data)?),
            ProbeKind::Tls => Self::Tls(TlsData::deserialize(data)?),
            ProbeKind::Tcp => Self::Tcp(TcpData::deserialize(data)?),
            ProbeKind::Ping => Self::Ping(PingData::deserialize(data)?),
            ProbeKind::Traceroute => Self::Traceroute(TraceData::deserialize(data)?),
        })
    }

    /// The JSON value, for [`crate::result::ProbeResult::data`].
    pub fn to_value(&self) -> Value {
        // Only strings, numbers, booleans, lists and string-keyed maps: this
        // cannot fail (a non-finite float becomes `null`).
        serde_json::to_value(self).expect("probe data always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Reads `sample` as `kind` data, writes it back and compares values:
    /// what agents send today is read and written unchanged.
    fn same_json(kind: ProbeKind, sample: Value) -> ProbeData {
        let d = ProbeData::from_value(kind, &sample).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(d.kind(), kind);
        assert_eq!(d.to_value(), sample);
        // Byte for byte too: the agent's `json!` gave a map with sorted keys,
        // and so does a value made from the typed data.
        assert_eq!(d.to_value().to_string(), sample.to_string());
        d
    }

    // Samples of what today's agent sends, taken from the loopback fixtures
    // of agent/tests/probes.rs.

    fn dns_sample() -> Value {
        json!({
            "server": "127.0.0.1:5353", "transport": "udp", "qname": "www.secure.test",
            "qtype": "A", "rcode": "NOERROR",
            "flags": {"aa": true, "tc": false, "rd": true, "ra": false, "ad": false, "cd": false},
            "answers": [
                {"name": "www.secure.test.", "type": "A", "ttl": 300, "data": "192.0.2.10"},
                {"name": "www.secure.test.", "type": "RRSIG", "ttl": 300, "data": "A 13 3 300 20300101000000 20240101000000 1234 secure.test. AAAA"}
            ],
            "authority": [],
            "query_ms": 0.412,
            "abuf": "q80BAAABAAAAAAAA",
            "nsid": {"text": "vantage-fixture", "hex": "76616e746167652d66697874757265"},
            "ede": [{"code": 6, "name": "dnssec-bogus", "text": ""}],
            "dnssec": {"verdict": "secure", "reason": "validated", "detail": "chain of trust from the anchor for secure.test."},
            "validation_ms": 3.25,
        })
    }

    #[test]
    fn dns_today() {
        let ProbeData::Dns(d) = same_json(ProbeKind::Dns, dns_sample()) else {
            unreachable!()
        };
        assert_eq!(d.transport, DnsTransport::Udp);
        assert_eq!(d.qtype, QType::A);
        assert_eq!(d.answers[0].rtype, "A");
        assert_eq!(d.nsid.unwrap().unwrap().text, "vantage-fixture");
        assert_eq!(d.dnssec.unwrap().verdict, SecurityStatus::Secure);
        // Without NSID asked, without validation, without EDE, too large for abuf.
        let mut plain = dns_sample();
        for k in ["abuf", "nsid", "ede", "dnssec", "validation_ms"] {
            plain.as_object_mut().unwrap().remove(k);
        }
        let ProbeData::Dns(d) = same_json(ProbeKind::Dns, plain) else {
            unreachable!()
        };
        assert_eq!((d.nsid, d.dnssec, d.abuf), (None, None, None));
        // NSID asked, none sent: `null`, kept apart from absent.
        let mut none = dns_sample();
        none["nsid"] = Value::Null;
        let ProbeData::Dns(d) = same_json(ProbeKind::Dns, none) else {
            unreachable!()
        };
        assert_eq!(d.nsid, Some(None));
    }

    #[test]
    fn dns_of_older_agents() {
        // The first agents: a bare DNSSEC status, no abuf, EDE or validation time.
        let mut old = dns_sample();
        for k in ["abuf", "ede", "validation_ms"] {
            old.as_object_mut().unwrap().remove(k);
        }
        old["dnssec"] = json!("bogus");
        let d = DnsData::deserialize(&old).unwrap();
        assert_eq!(
            d.dnssec,
            Some(DnssecVerdict {
                verdict: SecurityStatus::Bogus,
                reason: String::new(),
                detail: String::new()
            })
        );
        assert_eq!(d.validation_ms, None);
        old["dnssec"] = json!("maybe");
        assert!(DnsData::deserialize(&old).is_err());
    }

    fn session_sample() -> Value {
        json!({
            "version": "TLS 1.3", "cipher": "TLS13_AES_256_GCM_SHA384", "alpn": null,
            "chain": [
                {"subject": "CN=localhost", "issuer": "CN=vantage fixture CA",
                 "not_before": 1_700_000_000, "not_after": 1_800_000_000,
                 "serial": "01:02", "sans": ["DNSName(localhost)", "IPAddress(127.0.0.1)"]},
                {"error": "unparsable certificate: Parsing Error: InvalidTag"}
            ],
            "chain_pem": ["-----BEGIN CERTIFICATE-----\r\nMIIB\r\n-----END CERTIFICATE-----\r\n"],
            "valid": false,
            "invalid_reason": "invalid peer certificate: UnknownIssuer",
        })
    }

    #[test]
    fn tls_today_and_before_chain_pem() {
        let mut sample = session_sample();
        let extra = json!({"peer": "127.0.0.1:8443", "sni": "localhost", "dns_ms": 0.02,
                           "connect_ms": 0.1, "handshake_ms": 2.5, "total_ms": 2.7});
        sample
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let ProbeData::Tls(d) = same_json(ProbeKind::Tls, sample.clone()) else {
            unreachable!()
        };
        assert!(
            matches!(&d.session.chain[0], Certificate::Summary(c) if c.not_after == 1_800_000_000)
        );
        assert!(matches!(
            &d.session.chain[1],
            Certificate::Unparsable { .. }
        ));
        // An IP literal sends no SNI: `null`.
        sample["sni"] = Value::Null;
        same_json(ProbeKind::Tls, sample.clone());
        sample.as_object_mut().unwrap().remove("chain_pem");
        let d = TlsData::deserialize(&sample).unwrap();
        assert!(d.session.chain_pem.is_empty());
    }

    fn http_sample() -> Value {
        json!({
            "url": "http://127.0.0.1:8080/", "peer": "127.0.0.1:8080",
            "dns_ms": 0.001, "connect_ms": 0.08,
            "status": 200, "reason": "OK", "headers": {"x-fixture": "vantage"},
            "first_byte_ms": 0.9, "head_bytes": 240,
            "body_bytes": 31, "body_truncated": false,
            "body_sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "content_length": 31, "total_ms": 1.1,
        })
    }

    #[test]
    fn http_today_https_head_and_older() {
        same_json(ProbeKind::Http, http_sample());
        let mut https = http_sample();
        https["tls_ms"] = json!(2.5);
        https["tls"] = session_sample();
        let ProbeData::Http(d) = same_json(ProbeKind::Http, https) else {
            unreachable!()
        };
        assert!(!d.tls.unwrap().valid);
        // HEAD: no body fields.
        let mut head = http_sample();
        for k in [
            "body_bytes",
            "body_truncated",
            "body_sha256",
            "content_length",
        ] {
            head.as_object_mut().unwrap().remove(k);
        }
        same_json(ProbeKind::Http, head.clone());
        head.as_object_mut().unwrap().remove("head_bytes");
        assert_eq!(HttpData::deserialize(&head).unwrap().head_bytes, None);
    }

    #[test]
    fn tcp_ping_traceroute_today() {
        same_json(
            ProbeKind::Tcp,
            json!({"peer": "127.0.0.1:8443", "dns_ms": 0.0, "connect_ms": 0.05}),
        );
        same_json(
            ProbeKind::Ping,
            json!({"target": "127.0.0.1", "dns_ms": 0.0, "sent": 3, "received": 2, "loss_pct": 33.333333333333336,
                   "packets": [{"seq": 0, "rtt_ms": 0.05}, {"seq": 1, "rtt_ms": null},
                               {"seq": 2, "rtt_ms": null, "error": "network unreachable"}],
                   "min_ms": 0.05, "avg_ms": 0.05, "max_ms": 0.05}),
        );
        // Every packet lost: no min, mean or max.
        same_json(
            ProbeKind::Ping,
            json!({"target": "::1", "dns_ms": 0.0, "sent": 1, "received": 0, "loss_pct": 100.0,
                   "packets": [{"seq": 0, "rtt_ms": null}]}),
        );
        let ProbeData::Traceroute(d) = same_json(
            ProbeKind::Traceroute,
            json!({"target": "127.0.0.1", "dns_ms": 0.0, "protocol": "udp",
                   "hops": [{"ttl": 1, "addrs": ["127.0.0.1"], "rtts_ms": [0.07], "sent": 1, "received": 1},
                            {"ttl": 2, "addrs": [], "rtts_ms": [], "sent": 1, "received": 0}]}),
        ) else {
            unreachable!()
        };
        assert_eq!(d.protocol, TraceProtocol::Udp);
    }

    #[test]
    fn wrong_kind_or_shape_is_an_error() {
        assert!(ProbeData::from_value(ProbeKind::Ping, &dns_sample()).is_err());
        assert!(ProbeData::from_value(ProbeKind::Tcp, &Value::Null).is_err());
        let t = json!({"truncated": true, "result_bytes": 70000});
        assert!(ProbeData::from_value(ProbeKind::Dns, &t).is_err());
        assert_eq!(
            TruncatedData::deserialize(&t).unwrap(),
            TruncatedData {
                truncated: true,
                result_bytes: 70000
            }
        );
    }

    // ---- any typed data round-trips through JSON ----

    /// Milliseconds as the agent reports them: whole microseconds. Their
    /// shortest decimal form parses back to the same f64 without serde_json's
    /// `float_roundtrip` (which the workspace does not enable).
    fn ms() -> impl Strategy<Value = f64> {
        (0u64..100_000_000).prop_map(|us| us as f64 / 1000.0)
    }

    fn text() -> impl Strategy<Value = String> {
        ".{0,12}"
    }

    fn opt<T: std::fmt::Debug + Clone>(
        s: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Option<T>> {
        prop::option::of(s)
    }

    fn record() -> impl Strategy<Value = DnsRecord> {
        (text(), "[A-Z0-9]{1,10}", any::<u32>(), text()).prop_map(|(name, rtype, ttl, data)| {
            DnsRecord {
                name,
                rtype,
                ttl,
                data,
            }
        })
    }

    fn verdict() -> impl Strategy<Value = DnssecVerdict> {
        (
            prop_oneof![
                Just(SecurityStatus::Secure),
                Just(SecurityStatus::Insecure),
                Just(SecurityStatus::Bogus),
                Just(SecurityStatus::Indeterminate)
            ],
            text(),
            text(),
        )
            .prop_map(|(verdict, reason, detail)| DnssecVerdict {
                verdict,
                reason,
                detail,
            })
    }

    fn dns() -> impl Strategy<Value = DnsData> {
        let transports = prop_oneof![
            Just(DnsTransport::Udp),
            Just(DnsTransport::Tcp),
            Just(DnsTransport::Tls),
            Just(DnsTransport::Https)
        ];
        let qtypes = prop_oneof![Just(QType::A), Just(QType::AAAA), Just(QType::DNSKEY)];
        (
            (
                text(),
                transports,
                text(),
                qtypes,
                text(),
                any::<[bool; 6]>(),
            ),
            (
                prop::collection::vec(record(), 0..4),
                prop::collection::vec(record(), 0..3),
                ms(),
                opt(text()),
            ),
            (
                opt(opt((text(), "[0-9a-f]{0,8}"))),
                prop::collection::vec((any::<u16>(), text(), text()), 0..3),
                opt(verdict()),
                opt(ms()),
            ),
        )
            .prop_map(
                |(
                    (server, transport, qname, qtype, rcode, f),
                    (answers, authority, query_ms, abuf),
                    (nsid, ede, dnssec, validation_ms),
                )| DnsData {
                    server,
                    transport,
                    qname,
                    qtype,
                    rcode,
                    flags: DnsFlags {
                        aa: f[0],
                        tc: f[1],
                        rd: f[2],
                        ra: f[3],
                        ad: f[4],
                        cd: f[5],
                    },
                    answers,
                    authority,
                    query_ms,
                    abuf,
                    nsid: nsid.map(|n| n.map(|(text, hex)| Nsid { text, hex })),
                    ede: ede
                        .into_iter()
                        .map(|(code, name, text)| ExtendedError { code, name, text })
                        .collect(),
                    dnssec,
                    validation_ms,
                },
            )
    }

    fn certificate() -> impl Strategy<Value = Certificate> {
        prop_oneof![
            (
                text(),
                text(),
                any::<i64>(),
                any::<i64>(),
                text(),
                prop::collection::vec(text(), 0..3)
            )
                .prop_map(|(subject, issuer, not_before, not_after, serial, sans)| {
                    Certificate::Summary(CertSummary {
                        subject,
                        issuer,
                        not_before,
                        not_after,
                        serial,
                        sans,
                    })
                }),
            text().prop_map(|error| Certificate::Unparsable { error }),
        ]
    }

    fn session() -> impl Strategy<Value = TlsSession> {
        (
            opt(text()),
            opt(text()),
            opt(text()),
            prop::collection::vec(certificate(), 0..3),
            prop::collection::vec(text(), 0..3),
            any::<bool>(),
            opt(text()),
        )
            .prop_map(
                |(version, cipher, alpn, chain, chain_pem, valid, invalid_reason)| TlsSession {
                    version,
                    cipher,
                    alpn,
                    chain,
                    chain_pem,
                    valid,
                    invalid_reason,
                },
            )
    }

    fn tls() -> impl Strategy<Value = TlsData> {
        (session(), text(), opt(text()), [ms(), ms(), ms(), ms()]).prop_map(
            |(session, peer, sni, [dns_ms, connect_ms, handshake_ms, total_ms])| TlsData {
                session,
                peer,
                sni,
                dns_ms,
                connect_ms,
                handshake_ms,
                total_ms,
            },
        )
    }

    fn http() -> impl Strategy<Value = HttpData> {
        (
            (text(), text(), ms(), ms(), opt((ms(), session()))),
            (
                any::<u16>(),
                text(),
                prop::collection::btree_map("[a-z-]{1,8}", text(), 0..3),
                ms(),
                opt(any::<u64>()),
            ),
            (
                opt((any::<u64>(), any::<bool>(), "[0-9a-f]{64}")),
                opt(any::<u64>()),
                ms(),
            ),
        )
            .prop_map(
                |(
                    (url, peer, dns_ms, connect_ms, tls),
                    (status, reason, headers, first_byte_ms, head_bytes),
                    (body, content_length, total_ms),
                )| HttpData {
                    url,
                    peer,
                    dns_ms,
                    connect_ms,
                    tls_ms: tls.as_ref().map(|t| t.0),
                    tls: tls.map(|t| t.1),
                    status,
                    reason,
                    headers,
                    first_byte_ms,
                    head_bytes,
                    body_bytes: body.as_ref().map(|b| b.0),
                    body_truncated: body.as_ref().map(|b| b.1),
                    body_sha256: body.map(|b| b.2),
                    content_length,
                    total_ms,
                },
            )
    }

    fn ping() -> impl Strategy<Value = PingData> {
        let packet = (any::<u16>(), opt(ms()), opt(text()))
            .prop_map(|(seq, rtt_ms, error)| PingPacket { seq, rtt_ms, error });
        (
            (text(), ms(), any::<u32>(), any::<u32>(), ms()),
            prop::collection::vec(packet, 0..5),
            opt([ms(), ms(), ms()]),
        )
            .prop_map(
                |((target, dns_ms, sent, received, loss_pct), packets, stats)| PingData {
                    target,
                    dns_ms,
                    sent,
                    received,
                    loss_pct,
                    packets,
                    min_ms: stats.map(|s| s[0]),
                    avg_ms: stats.map(|s| s[1]),
                    max_ms: stats.map(|s| s[2]),
                },
            )
    }

    fn trace() -> impl Strategy<Value = TraceData> {
        let hop = (
            any::<u8>(),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(ms(), 0..3),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(ttl, addrs, rtts_ms, sent, received)| TraceHop {
                ttl,
                addrs,
                rtts_ms,
                sent,
                received,
            });
        let protocols = prop_oneof![
            Just(TraceProtocol::Udp),
            Just(TraceProtocol::Icmp),
            Just(TraceProtocol::Tcp)
        ];
        (text(), ms(), protocols, prop::collection::vec(hop, 0..4)).prop_map(
            |(target, dns_ms, protocol, hops)| TraceData {
                target,
                dns_ms,
                protocol,
                hops,
            },
        )
    }

    fn any_data() -> impl Strategy<Value = ProbeData> {
        prop_oneof![
            dns().prop_map(ProbeData::Dns),
            http().prop_map(ProbeData::Http),
            tls().prop_map(ProbeData::Tls),
            tcp().prop_map(ProbeData::Tcp),
            ping().prop_map(ProbeData::Ping),
            trace().prop_map(ProbeData::Traceroute),
        ]
    }

    fn tcp() -> impl Strategy<Value = TcpData> {
        (text(), ms(), ms()).prop_map(|(peer, dns_ms, connect_ms)| TcpData {
            peer,
            dns_ms,
            connect_ms,
        })
    }

    proptest! {
        #[test]
        fn any_data_round_trips(d in any_data()) {
            // Through the value the agent puts in a result, and through text.
            let v = d.to_value();
            prop_assert_eq!(&ProbeData::from_value(d.kind(), &v).unwrap(), &d);
            let text = serde_json::to_string(&d).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(ProbeData::from_value(d.kind(), &back).unwrap(), d);
        }
    }
}
