//! Command-line interface: `run` (default), `check-config`, `probe`, `selftest`.

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        None | Some(Command::Run) => crate::agent::main(&cli),
        Some(Command::CheckConfig) => crate::check::main(&cli),
        Some(Command::Probe { json }) => probe_once(&cli, json),
        Some(Command::Selftest(args)) => crate::selftest::main(args),
    }
}

fn probe_once(cli: &Cli, json: &str) -> ExitCode {
    crate::logging::init_stderr();
    let run = || -> anyhow::Result<serde_json::Value> {
        let cfg = cli.load_config()?;
        let value: serde_json::Value = serde_json::from_str(json)?;
        let probe = vantage_proto::probe::Probe::from_value(&value)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let ctx = crate::probe::Context::new(
            crate::owner::OwnerPolicy::new(&cfg.owner),
            cfg.trust_anchor.as_deref(),
        )?;
        let limit = cfg.probes.max_time.get();
        Ok(rt.block_on(async {
            match crate::probe::run(&probe, &ctx, limit).await {
                Ok(data) => serde_json::json!({"status": "ok", "data": data}),
                Err(e) => {
                    let (status, code) = match &e {
                        crate::probe::ProbeError::Refused(_) => ("refused", None),
                        crate::probe::ProbeError::Timeout(_) => ("timeout", None),
                        crate::probe::ProbeError::Failed(_) => ("error", None),
                        crate::probe::ProbeError::Net(n) if n.is_timeout() => {
                            ("timeout", Some(n.code()))
                        }
                        crate::probe::ProbeError::Net(n) => ("error", Some(n.code())),
                    };
                    let mut v = serde_json::json!({"status": status, "reason": e.to_string()});
                    if let Some(code) = code {
                        v["code"] = code.into();
                    }
                    v
                }
            }
        }))
    };
    match run() {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
