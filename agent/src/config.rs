//! The agent's configuration file (`/etc/vantage/agent.toml`): strict TOML, unknown keys are errors.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vantage_human::Duration;

/// Default location of the configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/vantage/agent.toml";
/// Default data directory (node state written by enrolment, agent state).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/vantage";
/// Default pinned network CA.
pub const DEFAULT_CA: &str = "/etc/vantage/ca.pem";
/// Default approval policy shipped with the image.
pub const DEFAULT_POLICY: &str = "/etc/vantage/policy.json";

/// How the agent subscribes to its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SubscribeMode {
    /// One long-lived `text/event-stream` response.
    #[default]
    EventStream,
    /// Repeated long-poll requests (`?mode=poll`).
    LongPoll,
}

/// What the data of each subscription message holds (the "message template").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MessageForm {
    /// An envelope `{"id", "channel", "time", "payload"}` (the hub, and Nchan fed by the hub).
    #[default]
    Envelope,
    /// A bare signed job `{"job", "signatures"}`.
    SignedJob,
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Data directory with `node.json`, `key.pem`, `cert.pem` and the agent's state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The pinned network CA (PEM).
    #[serde(default = "default_ca")]
    pub ca: PathBuf,
    /// The shipped approval policy (approver keys and threshold). The hub only offers
    /// successors, which the agent accepts when a quorum of the current approvers signed them.
    #[serde(default = "default_policy")]
    pub policy: PathBuf,
    /// DNSSEC trust anchors (DNSKEY records in zone-file form); default: the root's, built in.
    #[serde(default)]
    pub trust_anchor: Option<PathBuf>,
    /// Subscription settings.
    #[serde(default)]
    pub subscribe: Subscribe,
    /// Probe runtime limits.
    #[serde(default)]
    pub probes: Probes,
    /// The owner's local policy, applied after the network's.
    #[serde(default)]
    pub owner: Owner,
    /// Results outbox.
    #[serde(default)]
    pub outbox: Outbox,
    /// Heartbeat interval (`heartbeat_secs = 300` on older cards still reads).
    #[serde(
        default = "default_heartbeat",
        alias = "heartbeat_secs",
        deserialize_with = "secs"
    )]
    pub heartbeat: Duration,
}

/// `[subscribe]`; a missing key takes its value from `Subscribe::default()`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Subscribe {
    /// Event stream (default) or long poll.
    pub mode: SubscribeMode,
    /// Subscriber URL template; `{channels}` becomes the comma-separated channel list.
    /// Default: the hub's `sub` endpoint from `node.json`. Set it for nginx + Nchan.
    pub url: Option<String>,
    /// What each message's data holds.
    pub message: MessageForm,
    /// Time without any bytes (events or keep-alive comments) before reconnecting.
    #[serde(alias = "keepalive_timeout_secs", deserialize_with = "secs")]
    pub keepalive_timeout: Duration,
    /// First reconnect delay (doubles up to `max_backoff`, with jitter).
    #[serde(alias = "min_backoff_secs", deserialize_with = "secs")]
    pub min_backoff: Duration,
    /// Largest reconnect delay.
    #[serde(alias = "max_backoff_secs", deserialize_with = "secs")]
    pub max_backoff: Duration,
    /// Long-poll: how long the server may hold a request (whole seconds).
    #[serde(alias = "poll_timeout_secs", deserialize_with = "secs")]
    pub poll_timeout: Duration,
}

/// `[probes]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    /// Probe kinds this node runs (`dns`, `http`, `tls`, `tcp`, `ping`, `traceroute`).
    #[serde(default = "default_allowed")]
    pub allowed: Vec<String>,
    /// Probes running at the same time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Hard limit on one probe's run time, whatever the job asks.
    #[serde(
        default = "default_probe_timeout",
        alias = "max_secs",
        deserialize_with = "secs"
    )]
    pub max_time: Duration,
    /// Largest serialised result in bytes; larger `data` is replaced by a note.
    #[serde(default = "default_result_bytes")]
    pub max_result_bytes: usize,
}

/// `[owner]`: what the node's owner allows, whatever the network signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// Allow targets in private, loopback, link-local, ULA, multicast and other
    /// special ranges (checked on the resolved address). Default false.
    #[serde(default)]
    pub allow_special_addresses: bool,
    /// Extra denied address ranges (CIDR, IPv4 or IPv6).
    #[serde(default)]
    pub deny_cidrs: Vec<String>,
    /// Denied host names: an entry denies the name and every name below it.
    #[serde(default)]
    pub deny_names: Vec<String>,
    /// Most probes started per minute (repeats included).
    #[serde(default = "default_rate")]
    pub max_probes_per_minute: u32,
}

/// `[outbox]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbox {
    /// Most results held; when full the oldest is dropped, counted and reported.
    #[serde(default = "default_outbox_max")]
    pub max_results: usize,
}

/// Durations of keys that once held bare seconds: either form reads.
fn secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Duration::deserialize_seconds_or_text(d)
}

fn default_data_dir() -> PathBuf {
    DEFAULT_DATA_DIR.into()
}
fn default_ca() -> PathBuf {
    DEFAULT_CA.into()
}
fn default_policy() -> PathBuf {
    DEFAULT_POLICY.into()
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(300)
}
fn default_keepalive() -> Duration {
    Duration::from_secs(45)
}
fn default_min_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}
fn default_poll_timeout() -> Duration {
    Duration::from_secs(25)
}
fn default_allowed() -> Vec<String> {
    PROBE_KINDS.iter().map(|s| s.to_string()).collect()
}
fn default_concurrency() -> usize {
    4
}
fn default_probe_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_result_bytes() -> usize {
    64 * 1024
}
fn default_rate() -> u32 {
    30
}
fn default_outbox_max() -> usize {
    10_000
}

/// Every probe kind the agent knows.
pub const PROBE_KINDS: [&str; 6] = ["dns", "http", "tls", "tcp", "ping", "traceroute"];

impl Default for Subscribe {
    fn default() -> Self {
        Subscribe {
            mode: SubscribeMode::default(),
            url: None,
            message: MessageForm::default(),
            keepalive_timeout: default_keepalive(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            poll_timeout: default_poll_timeout(),
        }
    }
}
impl Default for Probes {
    fn default() -> Self {
        Probes {
            allowed: default_allowed(),
            concurrency: default_concurrency(),
            max_time: default_probe_timeout(),
            max_result_bytes: default_result_bytes(),
        }
    }
}
impl Default for Owner {
    fn default() -> Self {
        Owner {
            allow_special_addresses: false,
            deny_cidrs: Vec::new(),
            deny_names: Vec::new(),
            max_probes_per_minute: default_rate(),
        }
    }
}
impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            max_results: default_outbox_max(),
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type, ...).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// A value is well-formed but not usable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl Config {
    /// Reads and validates the file at `path`. A missing file at the default
    /// location means "all defaults"; a missing file named explicitly is an error.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        Config::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        for kind in &self.probes.allowed {
            if !PROBE_KINDS.contains(&kind.as_str()) {
                return Err(format!(
                    "probes.allowed: unknown probe kind {kind:?}; known kinds: {}",
                    PROBE_KINDS.join(", ")
                ));
            }
        }
        if self.probes.concurrency == 0 || self.probes.concurrency > 256 {
            return Err("probes.concurrency must be between 1 and 256".into());
        }
        if self.probes.max_result_bytes < 1024 {
            return Err("probes.max_result_bytes must be at least 1024".into());
        }
        for c in &self.owner.deny_cidrs {
            vantage_proto::cidr::Cidr::parse(c)
                .map_err(|e| format!("owner.deny_cidrs: {c:?}: {e}"))?;
        }
        if self.owner.max_probes_per_minute == 0 {
            return Err("owner.max_probes_per_minute must be at least 1 (remove probes from probes.allowed to run none)".into());
        }
        if let Some(url) = &self.subscribe.url {
            if !url.contains("{channels}") {
                return Err(format!(
                    "subscribe.url {url:?} lacks the {{channels}} placeholder, e.g. \"https://nchan.example/sub/{{channels}}\""
                ));
            }
            let probe = url.replace("{channels}", "all");
            let parsed = url::Url::parse(&probe).map_err(|e| format!("subscribe.url: {e}"))?;
            if parsed.scheme() != "https" {
                return Err("subscribe.url must use https (the node authenticates with its client certificate)".into());
            }
        }
        let s = &self.subscribe;
        if s.keepalive_timeout < Duration::from_secs(5) {
            return Err("subscribe.keepalive_timeout must be at least 5s".into());
        }
        if s.min_backoff < Duration::from_secs(1) || s.max_backoff < s.min_backoff {
            return Err("subscribe: need 1s <= min_backoff <= max_backoff".into());
        }
        if self.outbox.max_results == 0 {
            return Err("outbox.max_results must be at least 1".into());
        }
        if self.heartbeat < Duration::from_secs(5) {
            return Err("heartbeat must be at least 5s".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, Path::new("agent.toml"))
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.subscribe.mode, SubscribeMode::EventStream);
        assert!(!c.owner.allow_special_addresses);
        assert_eq!(c.probes.allowed.len(), 6);
    }

    #[test]
    fn unknown_keys_are_errors_with_location() {
        let e = parse("[owner]\nallow_privat = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_privat"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = parse("colour = 1\n").unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn bad_values_are_explained() {
        let e = parse("[probes]\nallowed = [\"shell\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown probe kind \"shell\""), "{e}");
        let e = parse("[owner]\ndeny_cidrs = [\"10.0.0.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("10.0.0.0/33"), "{e}");
        let e = parse("[subscribe]\nurl = \"https://x/sub\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("{channels}"), "{e}");
        let e = parse("[subscribe]\nmode = \"websocket\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("websocket"), "{e}");
    }

    #[test]
    fn durations_in_one_form_and_the_old_keys_of_cards_in_use() {
        let new = parse(
            "heartbeat = \"1m\"\n[subscribe]\nkeepalive_timeout = \"30s\"\nmin_backoff = \"2s\"\nmax_backoff = \"5m\"\npoll_timeout = \"20s\"\n[probes]\nmax_time = \"90s\"\n",
        )
        .unwrap();
        // What agent.toml files written before the durations had units hold.
        let old = parse(
            "heartbeat_secs = 60\n[subscribe]\nkeepalive_timeout_secs = 30\nmin_backoff_secs = 2\nmax_backoff_secs = 300\npoll_timeout_secs = 20\n[probes]\nmax_secs = 90\n",
        )
        .unwrap();
        for c in [&new, &old] {
            assert_eq!(c.heartbeat, Duration::from_secs(60));
            assert_eq!(c.subscribe.keepalive_timeout, Duration::from_secs(30));
            assert_eq!(c.subscribe.min_backoff, Duration::from_secs(2));
            assert_eq!(c.subscribe.max_backoff, Duration::from_secs(300));
            assert_eq!(c.subscribe.poll_timeout, Duration::from_secs(20));
            assert_eq!(c.probes.max_time, Duration::from_secs(90));
        }
        // A bare number is seconds under either name, as the old keys held.
        assert_eq!(
            parse("heartbeat = 60\n").unwrap().heartbeat,
            Duration::from_secs(60)
        );
        let e = parse("heartbeat_secs = 60\nheartbeat = \"1m\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("heartbeat"), "both names at once: {e}");
        let e = parse("heartbeat = \"soon\"\n").unwrap_err().to_string();
        assert!(e.contains("\"soon\" is not a duration"), "{e}");
        let e = parse("heartbeat = \"1s\"\n").unwrap_err().to_string();
        assert!(e.contains("heartbeat must be at least 5s"), "{e}");
    }

    #[test]
    fn full_file_parses() {
        let c = parse(
            r#"
data_dir = "/tmp/x"
trust_anchor = "/tmp/ta"
heartbeat_secs = 60
[subscribe]
mode = "long-poll"
url = "https://nchan.example/sub/{channels}"
message = "signed-job"
[probes]
allowed = ["dns", "tcp"]
concurrency = 2
[owner]
allow_special_addresses = true
deny_cidrs = ["192.0.2.0/24", "2001:db8::/32"]
deny_names = ["example.org"]
max_probes_per_minute = 10
[outbox]
max_results = 5
"#,
        )
        .unwrap();
        assert_eq!(c.subscribe.mode, SubscribeMode::LongPoll);
        assert_eq!(c.outbox.max_results, 5);
    }
}
