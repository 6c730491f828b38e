//! `vantage-agent selftest`: quick checks that a build works on its target
//! (run under qemu-user for the ARM builds): key and CSR generation, a DNS
//! query, an mTLS request to a hub. Prints each step; exits non-zero on failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use vantage_node::client::{self, ClientIdentity, PinnedCa, Timeouts};
use vantage_proto::data::ProbeData;
use vantage_proto::probe::{DnsArgs, Probe};

use crate::config::Owner;
use crate::owner::OwnerPolicy;

/// Options of `selftest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// DNS server to query (ip:port), e.g. 127.0.0.1:15353.
    #[arg(long)]
    pub dns: Option<String>,
    /// Name to look up (A record).
    #[arg(long, default_value = "www.secure.test")]
    pub name: String,
    /// Hub base URL for the mTLS check, e.g. https://127.0.0.1:8443.
    #[arg(long, requires_all = ["ca", "cert", "key"])]
    pub hub: Option<String>,
    /// The network CA (PEM) to pin.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

fn step(name: &str, r: Result<String, String>) -> bool {
    match r {
        Ok(m) => {
            println!("ok    {name}: {m}");
            true
        }
        Err(e) => {
            println!("FAIL  {name}: {e}");
            false
        }
    }
}

/// Runs the self-test.
pub fn main(a: &Args) -> ExitCode {
    let mut ok = true;
    ok &= step(
        "key and CSR",
        vantage_node::csr::NodeKey::generate()
            .map_err(|e| e.to_string())
            .and_then(|k| k.csr_pem(Some("selftest")).map_err(|e| e.to_string()))
            .map(|csr| format!("P-256 key, CSR of {} bytes", csr.len())),
    );
    if let Some(dns) = &a.dns {
        ok &= step("DNS query", dns_query(dns, &a.name));
    }
    if let Some(hub) = &a.hub {
        ok &= step("mTLS to the hub", mtls(hub, a));
    }
    if ok {
        println!("selftest passed");
        ExitCode::SUCCESS
    } else {
        println!("selftest FAILED");
        ExitCode::FAILURE
    }
}

fn dns_query(server: &str, name: &str) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The self-test talks to a loopback server on purpose.
    let owner = OwnerPolicy::new(&Owner {
        allow_special_addresses: true,
        ..Owner::default()
    });
    let ctx = crate::probe::Context::new(owner, None).map_err(|e| e.to_string())?;
    let probe = Probe::Dns(DnsArgs {
        resolver: Some(server.to_string()),
        timeout_ms: 5000,
        ..DnsArgs::lookup(name)
    });
    let data = rt
        .block_on(crate::probe::run(&probe, &ctx, Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let ProbeData::Dns(d) = data else {
        return Err(format!("a dns probe returned {:?} data", data.kind()));
    };
    Ok(format!(
        "{server} {name} A: {} with {} answer(s)",
        d.rcode,
        d.answers.len()
    ))
}

fn mtls(hub: &str, a: &Args) -> Result<String, String> {
    let path = |p: &Option<PathBuf>| p.clone().ok_or("missing path".to_string());
    let ca = PinnedCa::load(&path(&a.ca)?).map_err(|e| e.to_string())?;
    let cert = std::fs::read(path(&a.cert)?).map_err(|e| format!("certificate: {e}"))?;
    let key = std::fs::read(path(&a.key)?).map_err(|e| format!("key: {e}"))?;
    let id = ClientIdentity::from_pem(&cert, &key)?;
    let agent = client::agent(&ca, Some(&id), Timeouts::default());
    let hb = vantage_proto::node::Heartbeat {
        version: crate::version::VERSION.to_string(),
        ..Default::default()
    };
    let url = format!("{}/v1/heartbeat", hub.trim_end_matches('/'));
    let resp = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(&hb).unwrap_or_default().as_slice())
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        Ok(format!("POST {url}: HTTP {status}"))
    } else {
        Err(format!("POST {url}: HTTP {status}"))
    }
}
