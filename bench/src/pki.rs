//! One network's PKI for every system under test: a real hub data directory
//! (its CA, server certificate, CRL and registry), with nodes enrolled straight
//! into the registry so thousands of them take seconds, not an enrolment each.

use anyhow::{Context, Result};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Of every certificate the benchmark issues: longer than any run.
const LIFETIME: Duration = Duration::from_secs(30 * 86_400);
use vantage_hub::datadir::{DataDir, now};
use vantage_hub::db::{Attrs, CertRole, NodeRow};

/// A client identity: certificate chain and key, PEM.
#[derive(Clone)]
pub struct Creds {
    /// Node id or operator name.
    pub name: String,
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// A hub data directory with `n` nodes and one operator.
pub struct Network {
    /// The hub data directory.
    pub dd: DataDir,
    /// Nodes, `b-00000` …
    pub nodes: Vec<Creds>,
    /// The operator `bench`.
    pub operator: Creds,
}

/// The channels every bench node subscribes to.
pub fn channels_of(node: &str) -> String {
    format!("all,node.{node}")
}

impl Network {
    /// Creates the hub data directory under `dir` and enrols `n` nodes.
    pub fn create(dir: &Path, n: usize) -> Result<Self> {
        let dd = DataDir::new(dir.join("hub"));
        dd.init("bench", &["127.0.0.1".to_string()], LIFETIME)?;
        let (ca, db) = dd.open()?;
        let (issued, key) = vantage_hub::api::issue_operator(&ca, &db, "bench", LIFETIME)?;
        let operator = Creds {
            name: "bench".into(),
            cert_pem: issued.cert_pem,
            key_pem: key,
        };
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("b-{i:05}");
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let csr = CertificateParams::default()
                .serialize_request(&key)?
                .pem()?;
            let csr_key = vantage_hub::pki::parse_csr(&csr)?;
            let issued = ca.issue_node(&id, &csr_key, LIFETIME)?;
            let row = NodeRow {
                id: id.clone(),
                attrs: Attrs {
                    country: "DE".into(),
                    continent: Some("EU".into()),
                    asn: None,
                    tags: Vec::new(),
                },
                key_fingerprint: csr_key.fingerprint.clone(),
                cert_pem: issued.cert_pem.clone(),
                cert_serial: issued.serial.clone(),
                cert_not_after: issued.not_after,
                enrolled: now(),
                enrolled_via: "token".into(),
                revoked: None,
                last_seen: None,
                agent_version: None,
                address: None,
                caps: None,
                owner: None,
                release: None,
            };
            db.insert_node(&row, None, None)?;
            nodes.push(Creds {
                name: id,
                cert_pem: issued.cert_pem,
                key_pem: key.serialize_pem(),
            });
        }
        Ok(Self {
            dd,
            nodes,
            operator,
        })
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dd.ca_cert()
    }

    /// Revokes a node in the registry and rewrites `crl.pem` (what the hub does
    /// on `vantage revoke`; a running hub picks it up from the database).
    pub fn revoke(&self, node: &str) -> Result<()> {
        let (ca, db) = self.dd.open()?;
        db.revoke_subject(CertRole::Node, node, now())?;
        self.dd.write_crl(&ca, &db)?;
        Ok(())
    }

    /// A TLS client configuration presenting `who`'s certificate and trusting the network CA.
    pub fn client_tls(&self, who: &Creds) -> Result<Arc<ClientConfig>> {
        client_tls(&self.ca_file(), who)
    }
}

/// A TLS client configuration presenting `who`'s certificate and trusting the CA in `ca_file`.
pub fn client_tls(ca_file: &Path, who: &Creds) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("cannot read {}", ca_file.display()))?
    {
        roots.add(c?)?;
    }
    let chain = CertificateDer::pem_slice_iter(who.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("client certificate PEM")?;
    let key = PrivateKeyDer::from_pem_slice(who.key_pem.as_bytes()).context("client key PEM")?;
    let cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(cfg))
}

/// The name every server under test presents (its certificate's IP SAN).
pub fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
}
