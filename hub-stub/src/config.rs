//! The hub's settings, each described once: a field of [`HubSettings`] or
//! [`ServeSettings`] is a flag (`--keepalive 15s`), an environment variable
//! (`VANTAGE_HUB_KEEPALIVE`) and a key of the TOML file given with `--config`
//! (`keepalive = "15s"`). Layers, later ones winning: the built-in default,
//! the file, the environment, the flag. Clap reads the flags, the environment
//! and the defaults (and knows which of the three gave each value); the file
//! fills in what clap only had a default for.

use crate::hub::ServeConfig;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use vantage_human::Duration;

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read, or is not TOML.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error, or the parser's explanation with line and column.
        message: String,
    },
    /// The file names a setting the hub does not have.
    #[error("{path}: unknown key `{key}`; the keys are {known}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Every key, comma-separated.
        known: String,
    },
    /// A value in the file is not of the setting's form.
    #[error("{path}: {key}: {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Values that are each well-formed but do not fit together.
    #[error("{0}")]
    Invalid(String),
}

/// Settings every subcommand uses.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct HubSettings {
    /// The hub's data directory (CA, certificates, database).
    #[arg(
        long,
        global = true,
        env = "VANTAGE_HUB_DATA_DIR",
        default_value = "/var/lib/vantage-hub"
    )]
    pub data_dir: PathBuf,
}

/// `serve` settings.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct ServeSettings {
    /// Address and port to listen on.
    #[arg(long, env = "VANTAGE_HUB_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Base URL nodes use to reach the hub; default https://NAME:PORT (NAME: the first --name given to init).
    #[arg(long, env = "VANTAGE_HUB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Approval policy file (the image's /etc/vantage/policy.json); without it every job is refused.
    #[arg(long, env = "VANTAGE_HUB_POLICY")]
    pub policy: Option<PathBuf>,
    /// TESTS ONLY: allow operators to publish unsigned payloads (POST /v1/publish/CHANNEL).
    #[arg(long, env = "VANTAGE_HUB_UNSAFE_RAW_PUBLISH")]
    pub unsafe_raw_publish: bool,
    /// Interval of keep-alive comments on event streams (at least 1s).
    #[arg(long, env = "VANTAGE_HUB_KEEPALIVE", default_value = "15s")]
    pub keepalive: Duration,
    /// Job-log entries kept for catch-up.
    #[arg(long, env = "VANTAGE_HUB_RETENTION_ENTRIES", default_value_t = 100_000)]
    pub retention_entries: u64,
    /// Job-log age kept for catch-up.
    #[arg(long, env = "VANTAGE_HUB_RETENTION", default_value = "7d")]
    pub retention: Duration,
    /// Node certificate lifetime (agents renew at 70 % of it).
    #[arg(long, env = "VANTAGE_HUB_NODE_CERT_LIFETIME", default_value = "30d")]
    pub node_cert_lifetime: Duration,
    /// Enrolments without token waiting for approval, at most (more are refused).
    #[arg(long, env = "VANTAGE_HUB_MAX_PENDING", default_value_t = 10_000)]
    pub max_pending: u64,
    /// Enrolments without token waiting for approval from one source address, at most.
    #[arg(
        long,
        env = "VANTAGE_HUB_MAX_PENDING_PER_ADDRESS",
        default_value_t = 16
    )]
    pub max_pending_per_address: u64,
    /// A node counts as online this long after it was last seen.
    #[arg(long, env = "VANTAGE_HUB_ONLINE_WINDOW", default_value = "5m")]
    pub online_window: Duration,
    /// Interval of checks for new revocations (at least 50ms).
    #[arg(long, env = "VANTAGE_HUB_REVOCATION_POLL", default_value = "1s")]
    pub revocation_poll: Duration,
    /// Open connections in total, TLS handshakes included (when full, the oldest unfinished handshake gives way).
    #[arg(long, env = "VANTAGE_HUB_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Of --max-connections, slots only connections with a node or operator
    /// certificate may use [default: a tenth of --max-connections].
    #[arg(long, env = "VANTAGE_HUB_RESERVED_FOR_IDENTIFIED")]
    pub reserved_for_identified: Option<usize>,
    /// Open connections per node or operator (per address without a certificate).
    #[arg(long, env = "VANTAGE_HUB_MAX_CONNS_PER_IDENTITY", default_value_t = 8)]
    pub max_conns_per_identity: usize,
    /// Connections per source address before their TLS handshake ends (more are closed at once).
    #[arg(
        long,
        env = "VANTAGE_HUB_MAX_HANDSHAKES_PER_ADDRESS",
        default_value_t = 64
    )]
    pub max_handshakes_per_address: usize,
    /// Requests per second per identity, sustained.
    #[arg(long, env = "VANTAGE_HUB_RATE", default_value_t = 10.0)]
    pub rate: f64,
    /// Request burst per identity.
    #[arg(long, env = "VANTAGE_HUB_BURST", default_value_t = 60.0)]
    pub burst: f64,
    /// Time allowed for the TLS handshake and request headers.
    #[arg(long, env = "VANTAGE_HUB_HEADER_TIMEOUT", default_value = "10s")]
    pub header_timeout: Duration,
    /// Time without any bytes moving after which a connection is closed.
    #[arg(long, env = "VANTAGE_HUB_IDLE_TIMEOUT", default_value = "2m")]
    pub idle_timeout: Duration,
    /// Write the bound address to this file once listening.
    #[arg(long, env = "VANTAGE_HUB_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,
    /// Also publish every stored job to nginx + Nchan at this publisher base URL,
    /// e.g. http://127.0.0.1:8081/pub (see scale/nginx-nchan.conf).
    #[arg(long, env = "VANTAGE_HUB_NCHAN_PUBLISH_URL")]
    pub nchan_publish_url: Option<String>,
    /// Jobs accepted per target host and hour, when stricter than the policy's
    /// max_jobs_per_target_per_hour (the policy's limit always applies).
    #[arg(long, env = "VANTAGE_HUB_MAX_TARGET_RATE")]
    pub max_target_rate: Option<u32>,
    /// Bytes of results stored per node per day, at most (more are answered 429 result-volume).
    #[arg(
        long,
        env = "VANTAGE_HUB_MAX_RESULT_BYTES_PER_NODE_DAY",
        default_value_t = 100 * 1024 * 1024
    )]
    pub max_result_bytes_per_node_day: u64,
    /// Nodes heard from within this time count in an agent release's waves
    /// (others do not hold a wave back); three of the agent's default heartbeat intervals.
    #[arg(long, env = "VANTAGE_HUB_RELEASE_WINDOW", default_value = "15m")]
    pub release_window: Duration,
}

impl ServeSettings {
    /// Connection slots reserved for callers with a certificate; fewer than
    /// `max_connections`, or enrolling nodes (no certificate yet) find none.
    pub fn reserved(&self) -> Result<usize, ConfigError> {
        let reserved = self
            .reserved_for_identified
            .unwrap_or(self.max_connections / 10);
        if self.max_connections == 0 || reserved >= self.max_connections {
            return Err(ConfigError::Invalid(format!(
                "reserved_for_identified ({reserved}) must be below max_connections ({}): enrolling nodes have no certificate yet",
                self.max_connections
            )));
        }
        Ok(reserved)
    }

    /// What `serve` runs with; `default_host` is the first server name.
    pub fn serve_config(&self, default_host: String) -> Result<ServeConfig, ConfigError> {
        let reserved = self.reserved()?;
        Ok(ServeConfig {
            listen: self.listen,
            public_url: self.public_url.clone(),
            default_host,
            policy: self.policy.clone(),
            unsafe_raw_publish: self.unsafe_raw_publish,
            keepalive: self.keepalive.get().max(std::time::Duration::from_secs(1)),
            retention_entries: self.retention_entries,
            retention_age: self.retention.get(),
            node_cert_lifetime: self.node_cert_lifetime.get(),
            pending_caps: crate::db::PendingCaps {
                total: self.max_pending,
                per_address: self.max_pending_per_address,
            },
            online_window: self.online_window.get(),
            release_window: self.release_window.get(),
            revocation_poll: self
                .revocation_poll
                .get()
                .max(std::time::Duration::from_millis(50)),
            max_connections: self.max_connections,
            reserved_for_identified: reserved,
            max_conns_per_identity: self.max_conns_per_identity,
            max_handshakes_per_address: self.max_handshakes_per_address.max(1),
            rate: self.rate,
            burst: self.burst,
            header_timeout: self.header_timeout.get(),
            idle_timeout: self.idle_timeout.get(),
            addr_file: self.addr_file.clone(),
            max_target_rate: self.max_target_rate,
            result_bytes_per_node_day: self.max_result_bytes_per_node_day,
        })
    }
}

/// The settings' names (clap's argument ids, the file's keys) of `T`.
fn keys<T: Args>() -> Vec<String> {
    T::augment_args(Command::new("keys"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// Every key a configuration file may hold.
pub fn known_keys() -> Vec<String> {
    let mut k = keys::<HubSettings>();
    k.extend(keys::<ServeSettings>());
    k
}

/// A configuration file, read and checked for unknown keys.
#[derive(Debug, Default)]
pub struct ConfigFile {
    path: PathBuf,
    table: toml::Table,
}

impl ConfigFile {
    /// Reads `path`; every key must be one of [`known_keys`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file_error = |message: String| ConfigError::File {
            path: path.into(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| file_error(format!("cannot read it: {e}")))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_error(e.to_string()))?;
        let known = known_keys();
        if let Some(key) = table.keys().find(|k| !known.contains(k)) {
            return Err(ConfigError::UnknownKey {
                path: path.into(),
                key: key.clone(),
                known: known.join(", "),
            });
        }
        Ok(ConfigFile {
            path: path.into(),
            table,
        })
    }

    /// `from_clap` with the file's value for each setting that neither a flag
    /// nor the environment gave (`matches` says which gave what).
    pub fn layer<T>(&self, from_clap: T, matches: &ArgMatches) -> Result<T, ConfigError>
    where
        T: Args + Serialize + DeserializeOwned,
    {
        let mut merged = match toml::Value::try_from(&from_clap) {
            Ok(toml::Value::Table(t)) => t,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "a setting cannot be written as TOML: {other:?}"
                )));
            }
        };
        let mut out = from_clap;
        for key in keys::<T>() {
            let Some(value) = self.table.get(&key) else {
                continue;
            };
            if matches!(
                matches.value_source(&key),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            merged.insert(key.clone(), value.clone());
            // One key at a time, so an error names the key at fault.
            out = T::deserialize(toml::Value::Table(merged.clone())).map_err(|e| {
                ConfigError::Value {
                    path: self.path.clone(),
                    key,
                    message: e.message().to_string(),
                }
            })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as Cmd, settle};
    use clap::{CommandFactory, FromArgMatches};

    /// The command line `args` with a config file holding `toml`.
    fn settled(toml: &str, args: &[&str]) -> Result<Cli, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, toml).unwrap();
        let argv = ["vantage-hub", "--config", path.to_str().unwrap()];
        let m = Cli::command()
            .try_get_matches_from(argv.iter().chain(args))
            .unwrap();
        settle(Cli::from_arg_matches(&m).unwrap(), &m)
    }

    fn serve(cli: Cli) -> ServeSettings {
        match cli.cmd {
            Cmd::Serve(s) => *s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_setting_has_its_variable() {
        for cmd in [
            HubSettings::augment_args(Command::new("x")),
            ServeSettings::augment_args(Command::new("x")),
        ] {
            for a in cmd.get_arguments() {
                let want = format!("VANTAGE_HUB_{}", a.get_id().as_str().to_uppercase());
                assert_eq!(a.get_env().and_then(|e| e.to_str()), Some(&*want));
            }
        }
    }

    #[test]
    fn the_file_fills_what_flags_leave_to_defaults() {
        let file =
            "data_dir = \"/srv/hub\"\nkeepalive = \"3s\"\nrevocation_poll = \"250ms\"\nrate = 2\n";
        let cli = settled(file, &["serve", "--keepalive", "7s"]).unwrap();
        assert_eq!(cli.hub.data_dir, PathBuf::from("/srv/hub"));
        let s = serve(cli);
        assert_eq!(s.keepalive, Duration::from_secs(7), "the flag wins");
        assert_eq!(s.revocation_poll, Duration::from_millis(250));
        assert_eq!(s.rate, 2.0);
        assert_eq!(s.retention, Duration::from_secs(7 * 86_400), "default");
        // A flag after the subcommand wins over the file for global settings too.
        let cli = settled(file, &["serve", "--data-dir", "/tmp/x"]).unwrap();
        assert_eq!(cli.hub.data_dir, PathBuf::from("/tmp/x"));
        // Other subcommands take the global settings and ignore serve's.
        let cli = settled(file, &["nodes", "list"]).unwrap();
        assert_eq!(cli.hub.data_dir, PathBuf::from("/srv/hub"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_key_and_file() {
        let err = |toml: &str| settled(toml, &["serve"]).unwrap_err().to_string();
        let e = err("keepalive_secs = 15\n");
        assert!(e.contains("hub.toml: unknown key `keepalive_secs`"), "{e}");
        assert!(e.contains("keepalive,"), "the known keys are listed: {e}");
        let e = err("keepalive = 15\n");
        assert!(
            e.contains("hub.toml: keepalive: ") && e.contains("\"15s\""),
            "{e}"
        );
        assert!(err("listen = \"nowhere\"\n").contains("hub.toml: listen: "));
        assert!(err("[serve]\nlisten = 1\n").contains("unknown key `serve`"));
        let e = err("keepalive = \n");
        assert!(e.contains("hub.toml") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn settings_that_do_not_fit_together_are_refused() {
        let e = settled(
            "max_connections = 10\nreserved_for_identified = 10\n",
            &["serve"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("reserved_for_identified (10) must be below max_connections (10)"),
            "{e}"
        );
    }
}
