//! The command line's arguments (`vantage-agent --help`); `cli` acts on them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

/// The vantage node agent.
#[derive(Debug, Parser)]
#[command(name = "vantage-agent", version = crate::version::VERSION, about)]
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
