//! Command-line interface: `run` (default), `check-config`, `probe`, `selftest`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

/// The vantage node agent.
#[derive(Debug, Parser)]
#[command(name = "vantage-agent", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, env = "VANTAGE_AGENT_CONFIG", default_value = config::DEFAULT_CONFIG, global = true)]
    pub config: PathBuf,
    /// Data directory (overrides `data_dir` in the configuration).
    #[arg(long, env = "VANTAGE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: subscribe, verify, probe, report (the default).
    Run,
    /// Check the configuration and the node state, explain what is wrong.
    CheckConfig,
    /// Run one probe locally under the owner's policy and print its result
    /// (`{"cmd": "dns", "args": {...}}`, as in a job).
    Probe {
        /// The probe as JSON.
        json: String,
    },
    /// Self-test for a new build or platform: key + CSR, a DNS query, an mTLS request.
    Selftest(crate::selftest::Args),
}

impl Cli {
    fn explicit_config(&self) -> bool {
        self.config != PathBuf::from(config::DEFAULT_CONFIG)
            || std::env::var_os("VANTAGE_AGENT_CONFIG").is_some()
    }

    /// Loads the configuration with the command-line overrides applied.
    pub fn load_config(&self) -> Result<Config, config::ConfigError> {
        let mut cfg = Config::load(&self.config, self.explicit_config())?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        Ok(cfg)
    }
}

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
