//! The `dns` probe: one query to the system's or a given resolver over UDP,
//! TCP, DNS-over-TLS or DNS-over-HTTPS, with NSID and an optional DNSSEC verdict.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hickory_resolver::net::client::Client;
use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::h2::HttpsClientStream;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::tcp::TcpClientStream;
use hickory_resolver::net::udp::UdpClientStream;
use hickory_resolver::net::{DnsHandle, tls::tls_client_connect};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Edns, Message, Query,
};
use hickory_resolver::proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use serde_json::{Value, json};
use vantage_proto::probe::{DnsArgs, DnsTransport, QType};

use super::{Context, ProbeError};

/// Runs a `dns` probe.
pub async fn run(a: &DnsArgs, ctx: &Context) -> Result<Value, ProbeError> {
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
    let started = Instant::now();
    let client = tokio::time::timeout(timeout, connect(a, server, timeout))
        .await
        .map_err(|_| ProbeError::Timeout(format!("connecting to resolver {server}")))??;
    let response = if a.dnssec {
        let handle = DnssecDnsHandle::with_trust_anchor(client, ctx.trust_anchors.clone());
        query(&handle, &name, qtype, a, timeout).await
    } else {
        query(&client, &name, qtype, a, timeout).await
    };
    let mut response = response?;
    let mut transport = a.transport;
    if a.transport == DnsTransport::Udp && response.metadata.truncation {
        let tcp = tcp_client(server, timeout).await?;
        response = if a.dnssec {
            let handle = DnssecDnsHandle::with_trust_anchor(tcp, ctx.trust_anchors.clone());
            query(&handle, &name, qtype, a, timeout).await?
        } else {
            query(&tcp, &name, qtype, a, timeout).await?
        };
        transport = DnsTransport::Tcp;
    }
    let query_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(describe(&response, server, transport, a, query_ms))
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

async fn tcp_client(
    server: SocketAddr,
    timeout: Duration,
) -> Result<Client<TokioRuntimeProvider>, ProbeError> {
    let provider = TokioRuntimeProvider::new();
    let (fut, handle) = TcpClientStream::new(server, None, Some(timeout), provider);
    let stream = fut.await.map_err(|e| fail("TCP connect", e))?;
    let (client, bg) = Client::<TokioRuntimeProvider>::with_timeout(stream, handle, timeout);
    tokio::spawn(bg);
    Ok(client)
}

async fn connect(
    a: &DnsArgs,
    server: SocketAddr,
    timeout: Duration,
) -> Result<Client<TokioRuntimeProvider>, ProbeError> {
    let provider = TokioRuntimeProvider::new();
    match a.transport {
        DnsTransport::Udp => {
            let stream = UdpClientStream::builder(server, provider)
                .with_timeout(Some(timeout))
                .build();
            let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
            tokio::spawn(bg);
            Ok(client)
        }
        DnsTransport::Tcp => tcp_client(server, timeout).await,
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

async fn query<H: DnsHandle>(
    handle: &H,
    name: &Name,
    qtype: RecordType,
    a: &DnsArgs,
    timeout: Duration,
) -> Result<DnsResponse, ProbeError> {
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
    let mut options = DnsRequestOptions::default();
    options.edns_set_dnssec_ok = a.dnssec_ok || a.dnssec;
    let mut responses = handle.send(DnsRequest::new(msg, options));
    match tokio::time::timeout(timeout, responses.next()).await {
        Err(_) => Err(ProbeError::Timeout(format!(
            "no answer within {} ms",
            a.timeout_ms
        ))),
        Ok(None) => Err(ProbeError::Failed(
            "the resolver closed without answering".into(),
        )),
        Ok(Some(Err(e))) => {
            let text = e.to_string();
            if text.contains("timed out") || text.contains("timeout") {
                Err(ProbeError::Timeout(text))
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

fn record_json(r: &Record) -> Value {
    json!({
        "name": r.name.to_string(),
        "type": r.record_type().to_string(),
        "ttl": r.ttl,
        "data": r.data.to_string(),
    })
}

/// The DNSSEC verdict of a validated response: every record in the answer
/// (or, for a negative answer, the authority section) must be secure for
/// `secure`; one bogus record makes the whole answer `bogus`.
pub fn verdict(records: &[Record]) -> &'static str {
    let relevant: Vec<Proof> = records
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
        .map(|r| r.proof)
        .collect();
    if relevant.is_empty() {
        return "indeterminate";
    }
    if relevant.contains(&Proof::Bogus) {
        "bogus"
    } else if relevant.iter().all(|p| *p == Proof::Secure) {
        "secure"
    } else if relevant.contains(&Proof::Indeterminate) {
        "indeterminate"
    } else {
        "insecure"
    }
}

fn describe(
    r: &DnsResponse,
    server: SocketAddr,
    transport: DnsTransport,
    a: &DnsArgs,
    query_ms: f64,
) -> Value {
    let m = &r.metadata;
    let mut out = json!({
        "server": server.to_string(),
        "transport": format!("{transport:?}").to_lowercase(),
        "qname": a.name,
        "qtype": format!("{:?}", a.qtype),
        "rcode": format!("{:?}", m.response_code).to_uppercase(),
        "flags": {
            "aa": m.authoritative, "tc": m.truncation, "rd": m.recursion_desired,
            "ra": m.recursion_available, "ad": m.authentic_data, "cd": m.checking_disabled,
        },
        "answers": r.answers.iter().map(record_json).collect::<Vec<_>>(),
        "authority": r.authorities.iter().map(record_json).collect::<Vec<_>>(),
        "query_ms": (query_ms * 1000.0).round() / 1000.0,
    });
    if a.nsid {
        let nsid = r
            .edns
            .as_ref()
            .and_then(|e| match e.option(EdnsCode::NSID) {
                Some(EdnsOption::NSID(p)) => Some(p.as_ref().to_vec()),
                _ => None,
            });
        out["nsid"] = match nsid {
            Some(bytes) => json!({
                "text": String::from_utf8_lossy(&bytes),
                "hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            }),
            None => Value::Null,
        };
    }
    if a.dnssec {
        let section = if r.answers.is_empty() {
            &r.authorities
        } else {
            &r.answers
        };
        out["dnssec"] = json!(verdict(section));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::RData;
    use hickory_resolver::proto::rr::rdata::A;

    fn rec(p: Proof) -> Record {
        let mut r = Record::from_rdata(Name::root(), 60, RData::A(A::new(192, 0, 2, 1)));
        r.proof = p;
        r
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(&[rec(Proof::Secure), rec(Proof::Secure)]), "secure");
        assert_eq!(verdict(&[rec(Proof::Secure), rec(Proof::Bogus)]), "bogus");
        assert_eq!(verdict(&[rec(Proof::Insecure)]), "insecure");
        assert_eq!(verdict(&[rec(Proof::Indeterminate)]), "indeterminate");
        assert_eq!(verdict(&[]), "indeterminate");
    }
}
