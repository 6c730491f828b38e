//! The `dns` probe: one query to the system's or a given resolver over UDP,
//! TCP, DNS-over-TLS or DNS-over-HTTPS, with NSID and an optional DNSSEC verdict
//! (`validate`). A verdict is data of an `ok` result; `error` and `timeout`
//! are for the network only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hickory_resolver::net::NetError;
use hickory_resolver::net::client::Client;
use hickory_resolver::net::h2::HttpsClientStream;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsHandle, tls::tls_client_connect};
use hickory_resolver::proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Edns, Message, Query,
};
use hickory_resolver::proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use vantage_proto::data::{DnsData, DnsFlags, DnsRecord, ExtendedError, Nsid};
use vantage_proto::probe::{DnsArgs, DnsTransport, QType};

use super::upstream::Upstream;
use super::validate;
use super::wire::{Used, Wire};
use super::{Context, ProbeError};

/// Runs a `dns` probe.
pub async fn run(a: &DnsArgs, ctx: &Context) -> Result<DnsData, ProbeError> {
    ctx.owner.check_name(&a.name).map_err(ProbeError::refused)?;
    let server = server_address(a)?;
    if !a.af.admits(&server.ip()) {
        return Err(ProbeError::Failed(format!(
            "resolver {server} is not of the address family {:?} the job asks for",
            a.af
        )));
    }
    if a.resolver.is_some() {
        ctx.owner
            .check_ip(server.ip())
            .map_err(ProbeError::refused)?;
    }
    let timeout = Duration::from_millis(a.timeout_ms.into());
    // Queries go out fully qualified: no search domains, and the validator
    // matches the answer's owner names against exactly this name.
    let mut name = Name::from_ascii(&a.name)
        .map_err(|e| ProbeError::Failed(format!("bad query name {:?}: {e}", a.name)))?;
    name.set_fqdn(true);
    let qtype = record_type(a.qtype);
    let msg = question(&name, qtype, a)?;
    let started = Instant::now();
    let (upstream, response, transport) = match a.transport {
        DnsTransport::Udp | DnsTransport::Tcp => {
            let wire = Wire::new(server, a.transport == DnsTransport::Tcp, timeout, a.dnssec);
            let (response, used) = wire.exchange(msg).await.map_err(ProbeError::Net)?;
            let transport = match used {
                Used::Udp => DnsTransport::Udp,
                Used::Tcp => DnsTransport::Tcp,
            };
            (Upstream::Wire(wire), response, transport)
        }
        DnsTransport::Tls | DnsTransport::Https => {
            let client = tokio::time::timeout(timeout, connect(a, server, timeout))
                .await
                .map_err(|_| ProbeError::Timeout(format!("connecting to resolver {server}")))??;
            let upstream = Upstream::Client(client, a.dnssec);
            let response = query(&upstream, msg, a, timeout).await?;
            (upstream, response, a.transport)
        }
    };
    let query_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut out = describe(&response, server, transport, a, query_ms);
    if a.dnssec {
        let t = Instant::now();
        let verdict =
            validate::validate(&response, &name, qtype, &upstream, &ctx.anchors, timeout).await;
        out.dnssec = Some(verdict);
        out.validation_ms = Some(super::ms(t.elapsed()));
    }
    Ok(out)
}

/// The probe's question: RD set, EDNS with a 1232-byte payload (the DNS
/// flag day 2020 value), DO when asked for or when validating, NSID if asked.
fn question(name: &Name, qtype: RecordType, a: &DnsArgs) -> Result<Message, ProbeError> {
    let mut msg = Message::query();
    msg.add_query(Query::query(name.clone(), qtype));
    msg.metadata.recursion_desired = true;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(a.dnssec_ok || a.dnssec);
    if a.nsid {
        let empty = NSIDPayload::new(Vec::new()).map_err(|e| fail("NSID", e))?;
        edns.options_mut().insert(EdnsOption::NSID(empty));
    }
    msg.set_edns(edns);
    Ok(msg)
}

fn server_address(a: &DnsArgs) -> Result<SocketAddr, ProbeError> {
    let default_port = match a.transport {
        DnsTransport::Udp | DnsTransport::Tcp => 53,
        DnsTransport::Tls => 853,
        DnsTransport::Https => 443,
    };
    if let Some(r) = &a.resolver {
        if let Ok(ip) = r.parse() {
            return Ok(SocketAddr::new(ip, default_port));
        }
        return vantage_proto::probe::parse_resolver(r)
            .map_err(|e| ProbeError::Failed(e.to_string()));
    }
    let (cfg, _) = hickory_resolver::system_conf::read_system_conf().map_err(|e| {
        ProbeError::Failed(format!(
            "no system resolver configured (/etc/resolv.conf): {e}"
        ))
    })?;
    cfg.name_servers
        .iter()
        .map(|ns| ns.ip)
        .find(|ip| a.af.admits(ip))
        .map(|ip| SocketAddr::new(ip, default_port))
        .ok_or_else(|| {
            ProbeError::Failed(format!(
                "the system has no resolver of address family {:?}",
                a.af
            ))
        })
}

async fn connect(
    a: &DnsArgs,
    server: SocketAddr,
    timeout: Duration,
) -> Result<Client<TokioRuntimeProvider>, ProbeError> {
    let provider = TokioRuntimeProvider::new();
    match a.transport {
        DnsTransport::Udp | DnsTransport::Tcp => Err(ProbeError::Failed(
            "UDP and TCP go through the probe's own path".into(),
        )),
        DnsTransport::Tls => {
            let name = tls_name(a, server);
            let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| ProbeError::Failed(format!("bad TLS name {name:?}: {e}")))?;
            let (fut, handle) = tls_client_connect(
                server,
                server_name,
                Arc::new(super::tls::web_pki_config(vec![b"dot".to_vec()])),
                provider,
            );
            let stream = fut.await.map_err(|e| fail("DNS-over-TLS connect", e))?;
            let (client, bg) =
                Client::<TokioRuntimeProvider>::with_timeout(stream, handle, timeout);
            tokio::spawn(bg);
            Ok(client)
        }
        DnsTransport::Https => {
            let name = tls_name(a, server);
            let mut builder = HttpsClientStream::builder(
                Arc::new(super::tls::web_pki_config(vec![b"h2".to_vec()])),
                provider,
            );
            builder.request_timeout(timeout);
            let stream = builder
                .build(server, Arc::from(name.as_str()), Arc::from("/dns-query"))
                .await
                .map_err(|e| fail("DNS-over-HTTPS connect", e))?;
            let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
            tokio::spawn(bg);
            Ok(client)
        }
    }
}

fn tls_name(a: &DnsArgs, server: SocketAddr) -> String {
    a.tls_name
        .clone()
        .unwrap_or_else(|| server.ip().to_string())
}

async fn query(
    upstream: &Upstream,
    msg: Message,
    a: &DnsArgs,
    timeout: Duration,
) -> Result<DnsResponse, ProbeError> {
    let mut options = DnsRequestOptions::default();
    options.edns_set_dnssec_ok = a.dnssec_ok || a.dnssec;
    let mut responses = upstream.send(DnsRequest::new(msg, options));
    match tokio::time::timeout(timeout, responses.next()).await {
        Err(_) => Err(ProbeError::Timeout(format!(
            "no-answer: no answer within {} ms",
            a.timeout_ms
        ))),
        Ok(None) => Err(ProbeError::Failed(
            "connection-closed: the resolver closed without answering".into(),
        )),
        Ok(Some(Err(e))) => {
            let text = e.to_string();
            if matches!(e, NetError::Timeout) || text.contains("timed out") {
                Err(ProbeError::Timeout(format!("no-answer: {text}")))
            } else {
                Err(ProbeError::Failed(text))
            }
        }
        Ok(Some(Ok(r))) => Ok(r),
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> ProbeError {
    ProbeError::Failed(format!("{what}: {e}"))
}

fn record_type(q: QType) -> RecordType {
    match q {
        QType::A => RecordType::A,
        QType::AAAA => RecordType::AAAA,
        QType::MX => RecordType::MX,
        QType::TXT => RecordType::TXT,
        QType::NS => RecordType::NS,
        QType::SOA => RecordType::SOA,
        QType::CNAME => RecordType::CNAME,
        QType::PTR => RecordType::PTR,
        QType::SRV => RecordType::SRV,
        QType::CAA => RecordType::CAA,
        QType::DS => RecordType::DS,
        QType::DNSKEY => RecordType::DNSKEY,
        QType::HTTPS => RecordType::HTTPS,
        QType::SVCB => RecordType::SVCB,
        QType::ANY => RecordType::ANY,
    }
}

fn record(r: &Record) -> DnsRecord {
    DnsRecord {
        name: r.name.to_string(),
        rtype: r.record_type().to_string(),
        ttl: r.ttl,
        data: r.data.to_string(),
    }
}

fn describe(
    r: &DnsResponse,
    server: SocketAddr,
    transport: DnsTransport,
    a: &DnsArgs,
    query_ms: f64,
) -> DnsData {
    let m = &r.metadata;
    // The answer exactly as received, for the Atlas export's `abuf`: a
    // re-encoding would lose the resolver's own name compression and order.
    let wire = r.as_buffer();
    let abuf =
        (!wire.is_empty() && wire.len() <= vantage_proto::atlas::MAX_ABUF_BYTES).then(|| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(wire)
        });
    let nsid = a.nsid.then(|| {
        r.edns
            .as_ref()
            .and_then(|e| match e.option(EdnsCode::NSID) {
                Some(EdnsOption::NSID(p)) => Some(p.as_ref().to_vec()),
                _ => None,
            })
            .map(|bytes| Nsid {
                text: String::from_utf8_lossy(&bytes).into_owned(),
                hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            })
    });
    DnsData {
        server: server.to_string(),
        transport,
        qname: a.name.clone(),
        qtype: a.qtype,
        rcode: format!("{:?}", m.response_code).to_uppercase(),
        flags: DnsFlags {
            aa: m.authoritative,
            tc: m.truncation,
            rd: m.recursion_desired,
            ra: m.recursion_available,
            ad: m.authentic_data,
            cd: m.checking_disabled,
        },
        answers: r.answers.iter().map(record).collect(),
        authority: r.authorities.iter().map(record).collect(),
        query_ms: (query_ms * 1000.0).round() / 1000.0,
        abuf,
        nsid,
        ede: extended_errors(r),
        dnssec: None,
        validation_ms: None,
    }
}

/// The extended DNS errors (RFC 8914) of a response: a validating
/// resolver's reason for SERVFAIL, or a note on an answer.
fn extended_errors(r: &DnsResponse) -> Vec<ExtendedError> {
    let Some(edns) = r.edns.as_ref() else {
        return Vec::new();
    };
    edns.options()
        .options
        .iter()
        .filter_map(|(code, opt)| match (code, opt) {
            (EdnsCode::Unknown(15), EdnsOption::Unknown(_, data)) if data.len() >= 2 => {
                let info = u16::from_be_bytes([data[0], data[1]]);
                Some(ExtendedError {
                    code: info,
                    name: validate::ede_name(info).to_string(),
                    text: String::from_utf8_lossy(&data[2..]).into_owned(),
                })
            }
            _ => None,
        })
        .collect()
}
