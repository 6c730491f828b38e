//! The probe catalog: which measurements exist and their typed, validated arguments.
//!
//! A probe travels as `{"cmd": "<kind>", "args": {...}}`. Parsing refuses unknown
//! commands, unknown argument fields and out-of-range values, so whatever
//! reaches a node's runtime is already a well-formed measurement. No field can
//! carry a command line.

use crate::ProtoError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Which address family a probe resolves and connects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
    /// Whichever the resolver returns first (the default).
    #[default]
    Any,
}

impl AddressFamily {
    /// Whether `addr` is of this family.
    pub fn admits(self, addr: &IpAddr) -> bool {
        match self {
            Self::Ipv4 => addr.is_ipv4(),
            Self::Ipv6 => addr.is_ipv6(),
            Self::Any => true,
        }
    }
}

/// The kinds of probe, as named in `cmd` and in policies' allowlists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// DNS query.
    Dns,
    /// HTTP(S) request.
    Http,
    /// TLS handshake.
    Tls,
    /// TCP connect.
    Tcp,
    /// ICMP echo.
    Ping,
    /// Traceroute.
    Traceroute,
}

impl ProbeKind {
    /// Every kind, in catalog order.
    pub const ALL: [ProbeKind; 6] = [
        Self::Dns,
        Self::Http,
        Self::Tls,
        Self::Tcp,
        Self::Ping,
        Self::Traceroute,
    ];

    /// The `cmd` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Http => "http",
            Self::Tls => "tls",
            Self::Tcp => "tcp",
            Self::Ping => "ping",
            Self::Traceroute => "traceroute",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProbeKind {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ProtoError::UnknownCommand(s.to_string()))
    }
}

/// DNS record types a `dns` probe may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(missing_docs, clippy::upper_case_acronyms)]
pub enum QType {
    #[default]
    A,
    AAAA,
    MX,
    TXT,
    NS,
    SOA,
    CNAME,
    PTR,
    SRV,
    CAA,
    DS,
    DNSKEY,
    HTTPS,
    SVCB,
    ANY,
}

/// How a `dns` probe talks to its resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsTransport {
    /// Plain DNS over UDP (falls back to TCP on truncation).
    #[default]
    Udp,
    /// Plain DNS over TCP.
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484).
    Https,
}

/// Arguments of a `dns` probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsArgs {
    /// The name to query.
    pub name: String,
    /// Record type.
    #[serde(default)]
    pub qtype: QType,
    /// `ip` or `ip:port` of the resolver; the system's resolvers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Transport to the resolver.
    #[serde(default)]
    pub transport: DnsTransport,
    /// TLS server name of the resolver (for `tls` and `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_name: Option<String>,
    /// Set the DO bit (ask for DNSSEC records).
    #[serde(default, rename = "do")]
    pub dnssec_ok: bool,
    /// Ask for the NSID of the answering server.
    #[serde(default)]
    pub nsid: bool,
    /// Validate DNSSEC and report a verdict.
    #[serde(default)]
    pub dnssec: bool,
    /// Address family for reaching the resolver.
    #[serde(default)]
    pub af: AddressFamily,
    /// Timeout in milliseconds (1..=30000).
    #[serde(default = "default_dns_timeout")]
    pub timeout_ms: u32,
}

impl DnsArgs {
    /// An `A` lookup of `name` through the system's resolvers with every
    /// other argument at its default: what `{"name": ...}` means.
    pub fn lookup(name: impl Into<String>) -> Self {
        DnsArgs {
            name: name.into(),
            qtype: QType::A,
            resolver: None,
            transport: DnsTransport::Udp,
            tls_name: None,
            dnssec_ok: false,
            nsid: false,
            dnssec: false,
            af: AddressFamily::Any,
            timeout_ms: default_dns_timeout(),
        }
    }
}

/// HTTP method of an `http` probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HttpMethod {
    /// GET (the default).
    #[default]
    GET,
    /// HEAD.
    HEAD,
}

/// Arguments of an `http` probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpArgs {
    /// `http://` or `https://` URL without user-info.
    pub url: String,
    /// Method.
    #[serde(default)]
    pub method: HttpMethod,
    /// Whole-request timeout in milliseconds (1..=60000).
    #[serde(default = "default_http_timeout")]
    pub timeout_ms: u32,
    /// Most body bytes read and hashed (0..=1048576).
    #[serde(default = "default_max_body")]
    pub max_body: u32,
    /// Response header names to report (at most 16).
    #[serde(default)]
    pub headers: Vec<String>,
    /// Address family.
    #[serde(default)]
    pub af: AddressFamily,
}

/// Arguments of a `tls` probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsArgs {
    /// Host name or IP literal.
    pub host: String,
    /// Port (default 443).
    #[serde(default = "default_tls_port")]
    pub port: u16,
    /// Server name sent in SNI; the host when absent, none when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Address family.
    #[serde(default)]
    pub af: AddressFamily,
    /// Handshake timeout in milliseconds (1..=60000).
    #[serde(default = "default_http_timeout")]
    pub timeout_ms: u32,
}

/// Arguments of a `tcp` probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpArgs {
    /// Host name or IP literal.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Address family.
    #[serde(default)]
    pub af: AddressFamily,
    /// Connect timeout in milliseconds (1..=30000).
    #[serde(default = "default_dns_timeout")]
    pub timeout_ms: u32,
}

/// Arguments of a `ping` probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingArgs {
    /// Host name or IP literal.
    pub host: String,
    /// Echo requests to send (1..=16).
    #[serde(default = "default_ping_count")]
    pub count: u8,
    /// Address family.
    #[serde(default)]
    pub af: AddressFamily,
    /// Per-packet timeout in milliseconds (1..=10000).
    #[serde(default = "default_ping_timeout")]
    pub timeout_ms: u32,
}

/// Packet type of a `traceroute` probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceProtocol {
    /// UDP datagrams (the default).
    #[default]
    Udp,
    /// ICMP echo requests.
    Icmp,
    /// TCP SYNs.
    Tcp,
}

/// Arguments of a `traceroute` probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracerouteArgs {
    /// Host name or IP literal.
    pub host: String,
    /// Packet type.
    #[serde(default)]
    pub protocol: TraceProtocol,
    /// Destination port for udp and tcp (default 33434 for udp, 80 for tcp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Highest TTL (1..=64).
    #[serde(default = "default_max_hops")]
    pub max_hops: u8,
    /// Address family.
    #[serde(default)]
    pub af: AddressFamily,
    /// Per-hop timeout in milliseconds (1..=10000).
    #[serde(default = "default_hop_timeout")]
    pub timeout_ms: u32,
}

impl TracerouteArgs {
    /// The destination port, with the protocol's default.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.protocol {
            TraceProtocol::Tcp => 80,
            _ => 33434,
        })
    }
}

fn default_dns_timeout() -> u32 {
    5000
}
fn default_http_timeout() -> u32 {
    10000
}
fn default_max_body() -> u32 {
    65536
}
fn default_tls_port() -> u16 {
    443
}
fn default_ping_count() -> u8 {
    3
}
fn default_ping_timeout() -> u32 {
    2000
}
fn default_max_hops() -> u8 {
    30
}
fn default_hop_timeout() -> u32 {
    1000
}

/// A measurement with its validated arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", content = "args", rename_all = "lowercase")]
pub enum Probe {
    /// DNS query.
    Dns(DnsArgs),
    /// HTTP(S) request.
    Http(HttpArgs),
    /// TLS handshake.
    Tls(TlsArgs),
    /// TCP connect.
    Tcp(TcpArgs),
    /// ICMP echo.
    Ping(PingArgs),
    /// Traceroute.
    Traceroute(TracerouteArgs),
}

impl Probe {
    /// Parses and validates `{"cmd": ..., "args": ...}`, accepting the legacy
    /// short form `{"cmd": "dnslookup", "args": "name"}` as a `dns` query for A records.
    pub fn from_value(value: &Value) -> Result<Self, ProtoError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ProtoError::invalid("probe", "must be an object with cmd and args"))?;
        if let Some(extra) = obj.keys().find(|k| *k != "cmd" && *k != "args") {
            return Err(ProtoError::invalid(
                "probe",
                format!("unknown field {extra:?}; a probe has only cmd and args"),
            ));
        }
        let cmd = obj
            .get("cmd")
            .and_then(Value::as_str)
            .ok_or_else(|| ProtoError::invalid("probe.cmd", "missing or not a string"))?;
        let args = obj.get("args").cloned().unwrap_or(Value::Null);
        let probe = if cmd == "dnslookup" {
            let name = args.as_str().ok_or_else(|| {
                ProtoError::invalid("probe.args", "dnslookup takes the name as a string")
            })?;
            Probe::Dns(DnsArgs::lookup(name))
        } else {
            let kind: ProbeKind = cmd.parse()?;
            let args = if args.is_null() {
                Value::Object(Default::default())
            } else {
                args
            };
            let parsed = match kind {
                ProbeKind::Dns => serde_json::from_value(args).map(Probe::Dns),
                ProbeKind::Http => serde_json::from_value(args).map(Probe::Http),
                ProbeKind::Tls => serde_json::from_value(args).map(Probe::Tls),
                ProbeKind::Tcp => serde_json::from_value(args).map(Probe::Tcp),
                ProbeKind::Ping => serde_json::from_value(args).map(Probe::Ping),
                ProbeKind::Traceroute => serde_json::from_value(args).map(Probe::Traceroute),
            };
            parsed
                .map_err(|e| ProtoError::invalid(format!("probe.args of {cmd}"), e.to_string()))?
        };
        probe.validate()?;
        Ok(probe)
    }

    /// The kind of this probe.
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

    /// The host the probe measures (for owner policy and per-target limits):
    /// the URL's host, the resolver for a `dns` probe with one, or the name.
    pub fn target(&self) -> String {
        match self {
            Self::Dns(a) => a
                .resolver
                .as_deref()
                .map(|r| resolver_host(r).to_string())
                .unwrap_or_else(|| a.name.clone()),
            Self::Http(a) => url::Url::parse(&a.url)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
                .unwrap_or_default(),
            Self::Tls(a) => a.host.clone(),
            Self::Tcp(a) => a.host.clone(),
            Self::Ping(a) => a.host.clone(),
            Self::Traceroute(a) => a.host.clone(),
        }
    }

    /// Checks every argument's range and syntax.
    pub fn validate(&self) -> Result<(), ProtoError> {
        match self {
            Self::Dns(a) => {
                check_name("probe.args.name", &a.name, true)?;
                if let Some(r) = &a.resolver {
                    parse_resolver(r)?;
                }
                if let Some(n) = &a.tls_name {
                    check_name("probe.args.tls_name", n, false)?;
                }
                check_range("probe.args.timeout_ms", a.timeout_ms, 1, 30_000)
            }
            Self::Http(a) => {
                let u = url::Url::parse(&a.url)
                    .map_err(|e| ProtoError::invalid("probe.args.url", e.to_string()))?;
                if u.scheme() != "http" && u.scheme() != "https" {
                    return Err(ProtoError::invalid(
                        "probe.args.url",
                        format!("scheme {:?} is not http or https", u.scheme()),
                    ));
                }
                if !u.username().is_empty() || u.password().is_some() {
                    return Err(ProtoError::invalid(
                        "probe.args.url",
                        "user names and passwords in URLs are not allowed",
                    ));
                }
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(ProtoError::invalid("probe.args.url", "has no host"));
                }
                check_range("probe.args.timeout_ms", a.timeout_ms, 1, 60_000)?;
                check_range("probe.args.max_body", a.max_body, 0, 1 << 20)?;
                if a.headers.len() > 16 {
                    return Err(ProtoError::invalid(
                        "probe.args.headers",
                        "at most 16 header names",
                    ));
                }
                for h in &a.headers {
                    if h.is_empty()
                        || h.len() > 64
                        || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        return Err(ProtoError::invalid(
                            "probe.args.headers",
                            format!("{h:?} is not a header name"),
                        ));
                    }
                }
                Ok(())
            }
            Self::Tls(a) => {
                check_host("probe.args.host", &a.host)?;
                check_port("probe.args.port", a.port)?;
                if let Some(sni) = a.sni.as_deref().filter(|s| !s.is_empty()) {
                    check_name("probe.args.sni", sni, false)?;
                }
                check_range("probe.args.timeout_ms", a.timeout_ms, 1, 60_000)
            }
            Self::Tcp(a) => {
                check_host("probe.args.host", &a.host)?;
                check_port("probe.args.port", a.port)?;
                check_range("probe.args.timeout_ms", a.timeout_ms, 1, 30_000)
            }
            Self::Ping(a) => {
                check_host("probe.args.host", &a.host)?;
                check_range("probe.args.count", a.count.into(), 1, 16)?;
                check_range("probe.args.timeout_ms", a.timeout_ms, 1, 10_000)
            }
            Self::Traceroute(a) => {
                check_host("probe.args.host", &a.host)?;
                if let Some(p) = a.port {
                    check_port("probe.args.port", p)?;
                }
                check_range("probe.args.max_hops", a.max_hops.into(), 1, 64)?;
                check_range("probe.args.timeout_ms", a.timeout_ms, 1, 10_000)
            }
        }
    }

    /// The probe in plain words, for people who approve it.
    pub fn describe(&self) -> String {
        match self {
            Self::Dns(a) => {
                let mut s = format!("DNS query {:?} {}", a.qtype, a.name);
                match &a.resolver {
                    Some(r) => s += &format!(" via {r} ({:?})", a.transport).to_lowercase(),
                    None => s += " via the node's own resolver",
                }
                if a.dnssec {
                    s += ", validating DNSSEC";
                }
                if a.nsid {
                    s += ", asking for NSID";
                }
                s
            }
            Self::Http(a) => format!("HTTP {:?} {}", a.method, a.url),
            Self::Tls(a) => format!("TLS handshake with {}:{}", a.host, a.port),
            Self::Tcp(a) => format!("TCP connect to {}:{}", a.host, a.port),
            Self::Ping(a) => format!("ping {} ({} packets)", a.host, a.count),
            Self::Traceroute(a) => format!(
                "traceroute to {} ({:?}, at most {} hops)",
                a.host, a.protocol, a.max_hops
            )
            .replace("Udp", "UDP")
            .replace("Icmp", "ICMP")
            .replace("Tcp", "TCP"),
        }
    }
}

/// Parses a resolver given as `ip` or `ip:port` (IPv6 with a port as `[ip]:port`).
pub fn parse_resolver(text: &str) -> Result<SocketAddr, ProtoError> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        ProtoError::invalid(
            "probe.args.resolver",
            format!("{text:?} is not an IP address or ip:port"),
        )
    })
}

fn resolver_host(text: &str) -> IpAddr {
    parse_resolver(text)
        .map(|s| s.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

fn check_range(field: &str, v: u32, lo: u32, hi: u32) -> Result<(), ProtoError> {
    if v < lo || v > hi {
        return Err(ProtoError::invalid(
            field,
            format!("{v} is outside {lo}..={hi}"),
        ));
    }
    Ok(())
}

fn check_port(field: &str, port: u16) -> Result<(), ProtoError> {
    if port == 0 {
        return Err(ProtoError::invalid(field, "port 0 is not a port"));
    }
    Ok(())
}

/// A host: an IP literal or a DNS name.
fn check_host(field: &str, host: &str) -> Result<(), ProtoError> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_name(field, host, false)
}

/// A DNS name of LDH labels (underscores allowed when `query` is set, for SRV-style names).
pub(crate) fn check_name(field: &str, name: &str, query: bool) -> Result<(), ProtoError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if query && (trimmed.is_empty() || trimmed.parse::<IpAddr>().is_ok()) {
        // The root and reverse look-ups by address are legitimate query names.
        if name.len() <= 253 {
            return Ok(());
        }
    }
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(ProtoError::invalid(
            field,
            format!("{name:?} is not a host name (1 to 253 characters)"),
        ));
    }
    for label in trimmed.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (query && b == b'_'));
        if !ok {
            return Err(ProtoError::invalid(
                field,
                format!("{name:?} is not a valid host name (label {label:?})"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_form_is_dns_a() {
        let p = Probe::from_value(&json!({"cmd": "dnslookup", "args": "jpmens.net"})).unwrap();
        match p {
            Probe::Dns(a) => {
                assert_eq!(a.name, "jpmens.net");
                assert_eq!(a.qtype, QType::A);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_fill_in() {
        let p =
            Probe::from_value(&json!({"cmd": "ping", "args": {"host": "example.com"}})).unwrap();
        assert_eq!(
            p,
            Probe::Ping(PingArgs {
                host: "example.com".into(),
                count: 3,
                af: AddressFamily::Any,
                timeout_ms: 2000
            })
        );
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            (
                json!({"cmd": "shell", "args": "rm -rf /"}),
                "unknown probe command",
            ),
            (
                json!({"cmd": "tcp", "args": {"host": "a.b", "port": 0}}),
                "port 0",
            ),
            (
                json!({"cmd": "tcp", "args": {"host": "a b", "port": 1}}),
                "not a valid host name",
            ),
            (
                json!({"cmd": "ping", "args": {"host": "x", "count": 99}}),
                "outside 1..=16",
            ),
            (
                json!({"cmd": "http", "args": {"url": "file:///etc/passwd"}}),
                "not http or https",
            ),
            (
                json!({"cmd": "http", "args": {"url": "http://u:p@h/"}}),
                "passwords",
            ),
            (
                json!({"cmd": "dns", "args": {"name": "x", "exec": "id"}}),
                "unknown field",
            ),
            (
                json!({"cmd": "dns", "args": {"name": "x", "resolver": "nope"}}),
                "not an IP",
            ),
            (
                json!({"cmd": "dns", "args": {"name": "x"}, "extra": 1}),
                "unknown field",
            ),
        ];
        for (v, want) in cases {
            let err = Probe::from_value(&v).unwrap_err().to_string();
            assert!(err.contains(want), "{v}: {err}");
        }
    }

    #[test]
    fn round_trips_through_json() {
        let p = Probe::from_value(
            &json!({"cmd": "traceroute", "args": {"host": "::1", "protocol": "tcp"}}),
        )
        .unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(Probe::from_value(&v).unwrap(), p);
        assert_eq!(p.target(), "::1");
        if let Probe::Traceroute(a) = &p {
            assert_eq!(a.effective_port(), 80);
        }
    }

    #[test]
    fn target_of_http_and_dns() {
        let h = Probe::from_value(&json!({"cmd": "http", "args": {"url": "https://[::1]:8443/x"}}))
            .unwrap();
        assert_eq!(h.target(), "::1");
        let d = Probe::from_value(
            &json!({"cmd": "dns", "args": {"name": "a.test", "resolver": "127.0.0.1:5353"}}),
        )
        .unwrap();
        assert_eq!(d.target(), "127.0.0.1");
    }
}
