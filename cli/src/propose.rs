//! `vantage propose`: turns flags into a job file for approvers to sign.
//!
//! The flags mirror the probe catalog in ARCHITECTURE.md. Only the flags
//! given go into the probe's arguments; the protocol crate then parses and
//! validates the whole job and fills in every default, so the job file that
//! approvers sign states exactly what nodes will run.

use crate::error::{CliError, CliResult};
use crate::timespec;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use vantage_proto::job::{Job, SignedJob};
use vantage_proto::select::Selection;

/// Options every probe kind shares that shape the job rather than the probe.
#[derive(Debug, Clone, Args)]
pub struct JobOpts {
    /// Which nodes: e.g. "country=DE or continent=SA", "asn=3320 and tag=fiber",
    /// "node=n-0123456789", "everyone". `and` binds tighter than `or`.
    #[arg(long = "from", value_name = "SELECTION", default_value = "everyone")]
    pub from: String,
    /// At most this many nodes; the hub picks among those online that match.
    #[arg(long)]
    pub limit: Option<u32>,
    /// How long the job stays valid after --not-before: 30m, 1h, 2d.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub expires: String,
    /// When nodes may start: now, +10m, Unix seconds or 2026-11-24T18:00:00Z.
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub not_before: String,
    /// Nodes start after a random delay within this window (e.g. 60s), so a
    /// target does not see every node at once.
    #[arg(long, value_name = "DURATION")]
    pub spread: Option<String>,
    /// Repeat the measurement at this interval until the job expires (e.g. 5m).
    #[arg(long, value_name = "DURATION")]
    pub repeat: Option<String>,
    /// Job id ([A-Za-z0-9._-], at most 64); generated when absent.
    #[arg(long)]
    pub id: Option<String>,
    /// Who proposes the job (default: $USER).
    #[arg(long)]
    pub proposer: Option<String>,
    /// Where to write the job file (default: <id>.job.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Overwrite the job file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Check the job against this approval policy's allowlist and limits now
    /// rather than at the hub.
    #[arg(long, value_name = "FILE", env = "VANTAGE_POLICY")]
    pub policy: Option<std::path::PathBuf>,
}

/// Options of probes that resolve names and time out.
#[derive(Debug, Clone, Args)]
pub struct NetOpts {
    /// Address family: ipv4, ipv6 or any.
    #[arg(long, value_name = "FAMILY")]
    pub af: Option<String>,
    /// Timeout, e.g. 500ms or 3s (per packet or hop for ping and traceroute).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<vantage_human::Duration>,
}

/// A probe's arguments with the options of the command that orders it.
#[derive(Debug, Clone, Args)]
pub struct With<P: Args, J: Args> {
    /// The probe's arguments.
    #[command(flatten)]
    pub probe: P,
    /// How the job is made and sent.
    #[command(flatten)]
    pub job: J,
}

/// The probe to measure, with `J` the options of the command (`propose`'s
/// [`JobOpts`], or the one-line measurements' own).
#[derive(Debug, Clone, Subcommand)]
pub enum ProbeCmd<J: Args = JobOpts> {
    /// DNS query: dns example.com --type AAAA --dnssec
    Dns(With<DnsArgs, J>),
    /// HTTP(S) request: http https://example.com/
    Http(With<HttpArgs, J>),
    /// TLS handshake and certificate: tls example.com --port 443
    Tls(With<TlsArgs, J>),
    /// TCP connect: tcp example.com --port 25
    Tcp(With<TcpArgs, J>),
    /// ICMP echo: ping example.com --count 5
    Ping(With<PingArgs, J>),
    /// Traceroute: traceroute example.com --protocol icmp
    Traceroute(With<TracerouteArgs, J>),
}

/// The arguments of a `dns` probe.
#[derive(Debug, Clone, Args)]
pub struct DnsArgs {
    /// The name to query.
    pub name: String,
    /// Record type: A, AAAA, MX, TXT, NS, SOA, CNAME, PTR, SRV, CAA, DS, DNSKEY, HTTPS, SVCB, ANY.
    #[arg(long = "type", value_name = "QTYPE")]
    pub qtype: Option<String>,
    /// Resolver as ip or ip:port (default: the node's own resolver).
    #[arg(long)]
    pub resolver: Option<String>,
    /// Transport to the resolver: udp, tcp, tls, https.
    #[arg(long)]
    pub transport: Option<String>,
    /// TLS name of the resolver (for tls and https).
    #[arg(long)]
    pub tls_name: Option<String>,
    /// Set the DO bit (ask for DNSSEC records).
    #[arg(long = "do")]
    pub dnssec_ok: bool,
    /// Ask for the answering server's NSID.
    #[arg(long)]
    pub nsid: bool,
    /// Validate DNSSEC on the node and report a verdict.
    #[arg(long)]
    pub dnssec: bool,
    #[command(flatten)]
    net: NetOpts,
}

/// The arguments of a `http` probe.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// http:// or https:// URL.
    pub url: String,
    /// GET or HEAD.
    #[arg(long)]
    pub method: Option<String>,
    /// Most body bytes read and hashed.
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<u32>,
    /// Response header to report (repeatable, at most 16).
    #[arg(long = "header", value_name = "NAME")]
    pub headers: Vec<String>,
    #[command(flatten)]
    net: NetOpts,
}

/// The arguments of a `tls` probe.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Host name or IP address.
    pub host: String,
    /// Port (default 443).
    #[arg(long)]
    pub port: Option<u16>,
    /// Server name to send in SNI (default: the host); "" for none.
    #[arg(long)]
    pub sni: Option<String>,
    #[command(flatten)]
    net: NetOpts,
}

/// The arguments of a `tcp` probe.
#[derive(Debug, Clone, Args)]
pub struct TcpArgs {
    /// Host name or IP address.
    pub host: String,
    /// Port to connect to.
    #[arg(long)]
    pub port: u16,
    #[command(flatten)]
    net: NetOpts,
}

/// The arguments of a `ping` probe.
#[derive(Debug, Clone, Args)]
pub struct PingArgs {
    /// Host name or IP address.
    pub host: String,
    /// Echo requests to send (1-16, default 3).
    #[arg(long)]
    pub count: Option<u8>,
    #[command(flatten)]
    net: NetOpts,
}

/// The arguments of a `traceroute` probe.
#[derive(Debug, Clone, Args)]
pub struct TracerouteArgs {
    /// Host name or IP address.
    pub host: String,
    /// udp (default), icmp or tcp.
    #[arg(long)]
    pub protocol: Option<String>,
    /// Destination port for udp and tcp.
    #[arg(long)]
    pub port: Option<u16>,
    /// Highest TTL (1-64, default 30).
    #[arg(long)]
    pub max_hops: Option<u8>,
    #[command(flatten)]
    net: NetOpts,
}

fn put(args: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        args.insert(key.to_string(), v);
    }
}

fn put_net(args: &mut Map<String, Value>, net: &NetOpts) {
    put(args, "af", net.af.clone().map(Value::from));
    // The protocol counts milliseconds; people write `500ms` or `3s`.
    let ms = net
        .timeout
        .map(|d| u32::try_from(d.get().as_millis()).unwrap_or(u32::MAX));
    put(args, "timeout_ms", ms.map(Value::from));
}

impl<J: Args> ProbeCmd<J> {
    /// The job options given with this probe.
    pub fn job_opts(&self) -> &J {
        match self {
            Self::Dns(c) => &c.job,
            Self::Http(c) => &c.job,
            Self::Tls(c) => &c.job,
            Self::Tcp(c) => &c.job,
            Self::Ping(c) => &c.job,
            Self::Traceroute(c) => &c.job,
        }
    }

    /// `{"cmd": ..., "args": {...}}` with the arguments the flags give.
    pub fn probe_value(&self) -> Value {
        let mut a = Map::new();
        let cmd = match self {
            Self::Dns(With { probe: c, .. }) => {
                put(&mut a, "name", Some(c.name.clone().into()));
                put(
                    &mut a,
                    "qtype",
                    c.qtype.as_ref().map(|q| q.to_ascii_uppercase().into()),
                );
                put(&mut a, "resolver", c.resolver.clone().map(Value::from));
                put(&mut a, "transport", c.transport.clone().map(Value::from));
                put(&mut a, "tls_name", c.tls_name.clone().map(Value::from));
                put(&mut a, "do", c.dnssec_ok.then_some(true.into()));
                put(&mut a, "nsid", c.nsid.then_some(true.into()));
                put(&mut a, "dnssec", c.dnssec.then_some(true.into()));
                put_net(&mut a, &c.net);
                "dns"
            }
            Self::Http(With { probe: c, .. }) => {
                put(&mut a, "url", Some(c.url.clone().into()));
                put(
                    &mut a,
                    "method",
                    c.method.as_ref().map(|m| m.to_ascii_uppercase().into()),
                );
                put(&mut a, "max_body", c.max_body.map(Value::from));
                put(
                    &mut a,
                    "headers",
                    (!c.headers.is_empty()).then(|| json!(c.headers)),
                );
                put_net(&mut a, &c.net);
                "http"
            }
            Self::Tls(With { probe: c, .. }) => {
                put(&mut a, "host", Some(c.host.clone().into()));
                put(&mut a, "port", c.port.map(Value::from));
                put(&mut a, "sni", c.sni.clone().map(Value::from));
                put_net(&mut a, &c.net);
                "tls"
            }
            Self::Tcp(With { probe: c, .. }) => {
                put(&mut a, "host", Some(c.host.clone().into()));
                put(&mut a, "port", Some(c.port.into()));
                put_net(&mut a, &c.net);
                "tcp"
            }
            Self::Ping(With { probe: c, .. }) => {
                put(&mut a, "host", Some(c.host.clone().into()));
                put(&mut a, "count", c.count.map(Value::from));
                put_net(&mut a, &c.net);
                "ping"
            }
            Self::Traceroute(With { probe: c, .. }) => {
                put(&mut a, "host", Some(c.host.clone().into()));
                put(
                    &mut a,
                    "protocol",
                    c.protocol.as_ref().map(|p| p.to_ascii_lowercase().into()),
                );
                put(&mut a, "port", c.port.map(Value::from));
                put(&mut a, "max_hops", c.max_hops.map(Value::from));
                put_net(&mut a, &c.net);
                "traceroute"
            }
        };
        json!({"cmd": cmd, "args": a})
    }
}

impl<J: Args> ProbeCmd<J> {
    /// The job of this probe in `frame`, validated by the protocol crate
    /// (which fills in every default).
    pub fn job(&self, frame: JobFrame, now: u64) -> CliResult<Job> {
        let probe = self.probe_value();
        let kind = probe["cmd"].as_str().unwrap_or("job").to_string();
        let id = match frame.id {
            Some(id) => id,
            None => generate_id(&kind, now)?,
        };
        let mut job = json!({
            "v": vantage_proto::job::JOB_VERSION, "id": id, "probe": probe,
            "select": frame.select, "not_before": frame.not_before, "expires": frame.expires,
            "proposer": frame.proposer,
        });
        if let Some(l) = frame.limit {
            job["limit"] = l.into();
        }
        if let Some(m) = frame.mandate {
            job["mandate"] = m.into();
        }
        for (key, secs) in [("spread_secs", frame.spread), ("repeat_secs", frame.repeat)] {
            if let Some(s) = secs {
                job[key] = s.into();
            }
        }
        Job::from_value(&job).map_err(|e| CliError::usage(e.to_string()))
    }
}

/// What a job says besides its probe.
#[derive(Debug, Clone)]
pub struct JobFrame {
    /// Job id (generated when `None`).
    pub id: Option<String>,
    /// Which nodes.
    pub select: Selection,
    /// At most this many of them.
    pub limit: Option<u32>,
    /// Valid from (Unix seconds).
    pub not_before: u64,
    /// Valid until (Unix seconds).
    pub expires: u64,
    /// Start-time spread (seconds).
    pub spread: Option<u64>,
    /// Repeat interval (seconds).
    pub repeat: Option<u64>,
    /// Who proposes (under a mandate: the operator's name in it).
    pub proposer: String,
    /// The mandate it is ordered under.
    pub mandate: Option<String>,
}

impl ProbeCmd {
    /// The job these flags describe, validated by the protocol crate.
    pub fn build(&self, now: u64, default_proposer: Option<String>) -> CliResult<Job> {
        let o = self.job_opts();
        let select = Selection::parse(&o.from)
            .map_err(|e| CliError::usage(format!("--from {:?}: {e}", o.from)))?;
        let not_before = timespec::parse_time(&o.not_before, now)?;
        let duration = |d: &Option<String>| d.as_deref().map(timespec::parse_duration).transpose();
        let frame = JobFrame {
            id: o.id.clone(),
            select,
            limit: o.limit,
            not_before,
            expires: not_before.saturating_add(timespec::parse_duration(&o.expires)?),
            spread: duration(&o.spread)?,
            repeat: duration(&o.repeat)?,
            proposer: o.proposer.clone().or(default_proposer).ok_or_else(|| {
                CliError::usage("who proposes this job? give --proposer NAME (or set $USER)")
            })?,
            mandate: None,
        };
        self.job(frame, now)
    }
}

/// A fresh job id: `<kind>-<UTC date>-<UTC time>-<4 random hex digits>`.
pub fn generate_id(kind: &str, now: u64) -> CliResult<String> {
    let mut rnd = [0u8; 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rnd)
        .map_err(|_| CliError::local("the system random generator failed"))?;
    let stamp: String = vantage_human::utc(now)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Ok(format!(
        "{kind}-{}-{}-{:02x}{:02x}",
        &stamp[..8],
        &stamp[8..14],
        rnd[0],
        rnd[1]
    ))
}

/// The unsigned job file for `job`.
pub fn unsigned(job: &Job) -> SignedJob {
    SignedJob {
        job: job.to_value(),
        signatures: Vec::new(),
        mandated: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        p: ProbeCmd,
    }

    fn build(args: &[&str]) -> CliResult<Job> {
        let t = T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap();
        t.p.build(1_764_000_000, Some("alice".into()))
    }

    #[test]
    fn the_issue_example() {
        let job = build(&[
            "dns",
            "example.com",
            "--type",
            "AAAA",
            "--dnssec",
            "--from",
            "country=DE or continent=SA",
            "--limit",
            "20",
            "--expires",
            "1h",
        ])
        .unwrap();
        let v = job.to_value();
        assert_eq!(v["probe"]["args"]["qtype"], "AAAA");
        assert_eq!(v["probe"]["args"]["dnssec"], true);
        assert_eq!(
            v["select"],
            json!({"or": [{"country": "DE"}, {"continent": "SA"}]})
        );
        assert_eq!(v["limit"], 20);
        assert_eq!(job.expires - job.not_before, 3600);
        assert_eq!(job.proposer, "alice");
        assert!(job.id.starts_with("dns-20251124-"), "{}", job.id);
        assert!(job.describe().contains("DNS query AAAA example.com"));
    }

    #[test]
    fn every_kind_builds() {
        for args in [
            &[
                "http",
                "https://example.com/",
                "--method",
                "head",
                "--header",
                "server",
            ][..],
            &["tls", "example.com", "--port", "8443", "--sni", ""],
            &["tcp", "192.0.2.1", "--port", "25", "--af", "ipv4"],
            &["ping", "example.com", "--count", "5", "--timeout", "500ms"],
            &[
                "traceroute",
                "example.com",
                "--protocol",
                "TCP",
                "--max-hops",
                "20",
            ],
        ] {
            let job = build(args).unwrap();
            assert_eq!(job.probe.kind().as_str(), args[0]);
        }
        let ping = build(&["ping", "example.com", "--timeout", "1s"]).unwrap();
        assert_eq!(ping.to_value()["probe"]["args"]["timeout_ms"], 1000);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            &["dns", "example.com", "--type", "AAAAA"][..],
            &["ping", "example.com", "--count", "99"],
            &["http", "ftp://example.com/"],
            &["dns", "example.com", "--from", "country=DE or"],
            &["dns", "example.com", "--expires", "soon"],
            &["dns", "example.com", "--limit", "0"],
        ] {
            assert!(matches!(build(args), Err(CliError::Usage(_))), "{args:?}");
        }
    }
}
