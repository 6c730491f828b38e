//! `vantage-agent check-config`: checks the configuration and the node's
//! state and says what is wrong and how to fix it.

use std::path::Path;
use std::process::ExitCode;

use vantage_node::client::{ClientIdentity, PinnedCa};
use vantage_node::state::{DataDir, FORMAT};

use crate::args::Cli;
use crate::certs::{self, unix_now};

/// Runs every check, prints one line per check; non-zero exit if any failed.
pub fn main(cli: &Cli) -> ExitCode {
    let mut failed = 0;
    let mut report = |ok: Result<String, String>| match ok {
        Ok(m) => println!("ok    {m}"),
        Err(m) => {
            failed += 1;
            println!("FAIL  {m}");
        }
    };
    let cfg = match cli.load_config() {
        Ok(c) => {
            report(Ok(format!("configuration {}", cli.config.display())));
            c
        }
        Err(e) => {
            report(Err(e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    report(
        PinnedCa::load(&cfg.ca)
            .map(|_| format!("network CA {}", cfg.ca.display()))
            .map_err(|e| format!("{e}; the image ships it as /etc/vantage/ca.pem (setting: ca)")),
    );
    report(policy(&cfg.policy));
    if let Some(ta) = &cfg.trust_anchor {
        report(anchors(ta));
    }
    let data = DataDir::new(&cfg.data_dir);
    report(data_format(&data));
    report(node(&data));
    report(cert(&data));
    if data.cert_path().exists() {
        report(
            ClientIdentity::load(&data)
                .map(|_| "client key and certificate load".to_string())
                .map_err(|e| e.to_string()),
        );
    }
    report(writable(&cfg.data_dir));
    if nix::unistd::geteuid().is_root() {
        println!(
            "note  running as root; on a node the agent runs as user vantage with CAP_NET_RAW for ping and traceroute"
        );
    }
    if failed == 0 {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("{failed} check(s) failed");
        ExitCode::FAILURE
    }
}

fn policy(path: &Path) -> Result<String, String> {
    vantage_node::policy_chain::load_policy(path)
        .map(|p| {
            format!(
                "approval policy {} (network {}, serial {}, {} of {} approvers)",
                path.display(),
                p.network,
                p.serial,
                p.threshold,
                p.approvers.len()
            )
        })
        .map_err(|e| format!("{e:#} (setting: policy)"))
}

fn anchors(ta: &Path) -> Result<String, String> {
    crate::probe::anchors::Anchors::load(ta)
        .map(|a| {
            let zones: Vec<String> = a.zones().iter().map(|z| z.to_string()).collect();
            format!(
                "DNSSEC trust anchors {} load (zones: {})",
                ta.display(),
                zones.join(" ")
            )
        })
        .map_err(|e| {
            format!(
                "trust anchor file {}: {e} (setting: trust_anchor)",
                ta.display()
            )
        })
}

fn node(data: &DataDir) -> Result<String, String> {
    match data.read_node() {
        Ok(Some(n)) => Ok(format!(
            "node {} enrolled, channels {}",
            n.node_id,
            n.channels.join(",")
        )),
        Ok(None) => Err(format!(
            "{} is missing: the node is not enrolled yet; vantage-provision enrols it",
            data.node_path().display()
        )),
        Err(e) => Err(format!("{e}")),
    }
}

fn cert(data: &DataDir) -> Result<String, String> {
    match data.read_cert() {
        Ok(Some(pem)) => match certs::validity(&pem) {
            Ok(v) if v.expired(unix_now()) => Err(format!(
                "the node certificate expired at {} (Unix time); re-enrol the node with vantage-provision",
                v.not_after
            )),
            Ok(v) => Ok(format!(
                "node certificate valid for {} more hours",
                (v.not_after - unix_now()) / 3600
            )),
            Err(e) => Err(format!("{}: {e}", data.cert_path().display())),
        },
        Ok(None) => Err(format!(
            "{} is missing; vantage-provision writes it at enrolment",
            data.cert_path().display()
        )),
        Err(e) => Err(format!("{e}")),
    }
}

/// The data directory's format, read only: check-config changes nothing, the
/// agent upgrades an older format when it starts.
fn data_format(data: &DataDir) -> Result<String, String> {
    match data.format() {
        Ok(found) if found < FORMAT => Ok(format!(
            "data directory format {found}; the agent upgrades it to {FORMAT} when it starts"
        )),
        Ok(found) => Ok(format!("data directory format {found}")),
        Err(e) => Err(e.to_string()),
    }
}

fn writable(dir: &Path) -> Result<String, String> {
    let probe = dir.join(".check-config");
    crate::durable::write(&probe, b"x")
        .and_then(|()| crate::durable::remove(&probe))
        .map(|()| format!("data directory {} is writable", dir.display()))
        .map_err(|e| {
            format!(
                "data directory {} is not writable: {e}; it must belong to the agent's user",
                dir.display()
            )
        })
}
