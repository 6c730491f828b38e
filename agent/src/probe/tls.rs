//! The `tls` probe, and the recording TLS client the `http` probe shares: the
//! handshake always completes so the chain can be reported, and whether the
//! chain validates against the web PKI roots is recorded beside it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use vantage_proto::data::{CertSummary, Certificate, TlsData, TlsSession};
use vantage_proto::probe::TlsArgs;

use super::{Context, ProbeError, ms};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn web_pki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A client configuration that validates against the web PKI roots (for DoT and DoH).
pub fn web_pki_config(alpn: Vec<Vec<u8>>) -> ClientConfig {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(web_pki_roots())
        .with_no_client_auth();
    cfg.alpn_protocols = alpn;
    cfg
}

/// What the recording verifier saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The chain as the server sent it, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// `None` when it validates against the web PKI roots, else why not.
    pub invalid: Option<String>,
}

#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Seen>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        seen.invalid = verdict.err().map(|e| e.to_string());
        // A measurement reports an invalid chain; it does not abort on it.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A finished handshake with what was recorded.
pub struct Handshake {
    /// The TLS stream, ready for application data.
    pub stream: TlsStream<TcpStream>,
    /// The chain and its validity.
    pub seen: Seen,
    /// Milliseconds the handshake took.
    pub handshake_ms: f64,
}

/// Performs a TLS handshake on `tcp`, sending `sni` (none when `None`).
pub async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    sni: Option<&str>,
    alpn: Vec<Vec<u8>>,
) -> Result<Handshake, ProbeError> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(web_pki_roots()), provider())
        .build()
        .map_err(|e| ProbeError::Failed(format!("TLS verifier: {e}")))?;
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recorder {
            inner,
            seen: seen.clone(),
        }))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn;
    // An IP address as server name makes rustls send no SNI at all.
    let name = match sni {
        Some(s) => ServerName::try_from(s.to_string())
            .map_err(|e| ProbeError::Failed(format!("bad SNI name {s:?}: {e}")))?,
        None => ServerName::IpAddress(peer.ip().into()),
    };
    let t = Instant::now();
    let stream = TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| ProbeError::Failed(format!("TLS handshake: {e}")))?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(Handshake {
        stream,
        seen,
        handshake_ms: ms(t.elapsed()),
    })
}

/// Summarises the negotiated session and the chain.
pub fn summary(h: &Handshake) -> TlsSession {
    let (_, conn) = h.stream.get_ref();
    TlsSession {
        version: conn.protocol_version().map(|v| {
            format!("{v:?}")
                .replace('_', ".")
                .replace("TLSv1.", "TLS 1.")
        }),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite())),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        chain: h.seen.chain.iter().map(|c| cert_summary(c)).collect(),
        // PEM of the first certificates, for the Atlas `sslcert` export;
        // bounded so that a long chain cannot push a result over its size limit.
        chain_pem: h
            .seen
            .chain
            .iter()
            .take(vantage_proto::atlas::MAX_CHAIN_PEM)
            .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.as_ref().to_vec())))
            .collect(),
        valid: h.seen.invalid.is_none(),
        invalid_reason: h.seen.invalid.clone(),
    }
}

/// Subject, issuer, validity and names of one certificate.
pub fn cert_summary(der: &CertificateDer<'_>) -> Certificate {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, c)) => {
            let sans: Vec<String> = c
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|ext| {
                    ext.value
                        .general_names
                        .iter()
                        .map(|n| n.to_string())
                        .collect()
                })
                .unwrap_or_default();
            Certificate::Summary(CertSummary {
                subject: c.subject().to_string(),
                issuer: c.issuer().to_string(),
                not_before: c.validity().not_before.timestamp(),
                not_after: c.validity().not_after.timestamp(),
                serial: c.raw_serial_as_string(),
                sans,
            })
        }
        Err(e) => Certificate::Unparsable {
            error: format!("unparsable certificate: {e}"),
        },
    }
}

/// Runs a `tls` probe.
pub async fn run(a: &TlsArgs, ctx: &Context) -> Result<TlsData, ProbeError> {
    let timeout = Duration::from_millis(a.timeout_ms.into());
    let t0 = Instant::now();
    let work = async {
        let (tcp, peer, dns_ms, connect_ms) = super::connect(&a.host, a.port, a.af, ctx).await?;
        let sni = match a.sni.as_deref() {
            Some("") => None,
            Some(s) => Some(s.to_string()),
            None if a.host.parse::<std::net::IpAddr>().is_ok() => None,
            None => Some(a.host.clone()),
        };
        let h = handshake(tcp, peer, sni.as_deref(), Vec::new()).await?;
        Ok(TlsData {
            session: summary(&h),
            peer: peer.to_string(),
            sni,
            dns_ms,
            connect_ms,
            handshake_ms: h.handshake_ms,
            total_ms: ms(t0.elapsed()),
        })
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        ProbeError::Timeout(format!(
            "TLS to {}:{} did not finish within {} ms",
            a.host, a.port, a.timeout_ms
        ))
    })?
}
