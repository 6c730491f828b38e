//! Renewal against a hub that answers with a certificate for another key:
//! the node's one renewal path (`renew_stored`, which the agent calls) must
//! refuse it and keep the certificate it has, since a certificate its key
//! cannot use would cut the node off for good.
//!
//! A real hub always certifies the key of the CSR, so a scripted HTTPS
//! server on loopback plays the stolen or broken hub: TLS with a server
//! certificate from the node's pinned CA, one scripted answer per request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use vantage_node::client::{PinnedCa, Timeouts};
use vantage_node::enrol::{EnrolResponse, EnrolStatus, renew_stored};
use vantage_node::state::{DataDir, NodeState};
use vantage_proto::channel::NodeAttrs;
use vantage_proto::enrol::Endpoints;

const NODE: &str = "n-0011223344";

struct Ca {
    key: KeyPair,
    params: CertificateParams,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { key, params, pem }
    }

    fn issue(&self, sans: Vec<SanType>, key: &KeyPair) -> String {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let issuer = Issuer::from_params(&self.params, &self.key);
        params.signed_by(key, &issuer).unwrap().pem()
    }

    fn node_cert(&self, key: &KeyPair) -> String {
        let uri = format!("vantage:node:{NODE}").try_into().unwrap();
        self.issue(vec![SanType::URI(uri)], key)
    }
}

/// Answers each connection's request with the next of `answers` (a 200 JSON
/// body), then closes.
fn scripted_hub(ca: &Ca, answers: Vec<String>) -> u16 {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let ip = SanType::IpAddress("127.0.0.1".parse().unwrap());
    let cert = ca.issue(vec![ip], &key);
    let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    let pkey = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], pkey)
    .unwrap();
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (stream, body) in listener.incoming().zip(answers) {
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, stream.unwrap());
            let mut reader = BufReader::new(&mut tls);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut request = vec![0; length];
            let _ = reader.read_exact(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(head.as_bytes());
            let _ = tls.write_all(body.as_bytes());
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

fn answer(cert_pem: &str, hub: &str) -> String {
    let attrs = NodeAttrs {
        node_id: NODE.into(),
        country: "DE".into(),
        ..Default::default()
    };
    serde_json::to_string(&EnrolResponse {
        status: EnrolStatus::Issued,
        fingerprint: "00".into(),
        node_id: Some(NODE.into()),
        certificate: Some(cert_pem.into()),
        chain: None,
        channels: attrs.channels(),
        attrs: Some(attrs),
        endpoints: Some(Endpoints::for_hub(hub)),
        message: None,
    })
    .unwrap()
}

#[test]
fn a_renewed_certificate_for_another_key_is_refused_and_the_old_one_kept() {
    let ca = Ca::new();
    let mine = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let (stolen, renewed) = (ca.node_cert(&other), ca.node_cert(&mine));
    let elsewhere = "https://127.0.0.1:1";
    let port = scripted_hub(
        &ca,
        vec![answer(&stolen, elsewhere), answer(&renewed, elsewhere)],
    );
    let hub = format!("https://127.0.0.1:{port}");

    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    data.write_key(&mine.serialize_pem()).unwrap();
    let first = ca.node_cert(&mine);
    let node = NodeState {
        node_id: NODE.into(),
        attrs: NodeAttrs {
            node_id: NODE.into(),
            country: "DE".into(),
            ..Default::default()
        },
        channels: vec!["all".into()],
        endpoints: Endpoints::for_hub(&hub),
    };
    data.store_issued(&node, &first, &ca.pem).unwrap();
    let pinned = PinnedCa::from_pem(ca.pem.as_bytes()).unwrap();

    let err = renew_stored(&data, &pinned, Timeouts::default()).unwrap_err();
    assert!(err.to_string().contains("another key"), "{err}");
    assert_eq!(data.read_cert().unwrap().as_deref(), Some(first.as_str()));
    assert_eq!(data.read_node().unwrap(), Some(node));

    // The same hub answering with a certificate for the node's key is taken.
    let issued = renew_stored(&data, &pinned, Timeouts::default()).unwrap();
    assert_eq!(issued.cert_pem, renewed);
    assert_eq!(data.read_cert().unwrap().as_deref(), Some(renewed.as_str()));
}
