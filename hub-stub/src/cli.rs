//! The `vantage-hub` command line: everything the operator of a hub does.

use crate::api::{issue_operator, node_status, pending_entry, registry_entry};
use crate::datadir::{DataDir, now, write_atomic, write_private};
use crate::db::{Attrs, CertRole};
use crate::server::{Hub, ServeConfig, serve};
use crate::tokens;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vantage_proto::channel::{validate_continent, validate_country, validate_tag};

/// The vantage hub: TLS pub/sub with client-certificate identity, enrolment CA, job log and results.
#[derive(Parser, Debug)]
#[command(name = "vantage-hub", version)]
pub struct Cli {
    /// The hub's data directory (CA, certificates, database).
    #[arg(
        long,
        global = true,
        env = "VANTAGE_HUB_DATA_DIR",
        default_value = "/var/lib/vantage-hub"
    )]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a data directory: network CA, server certificate, database.
    Init {
        /// Network name (goes into the CA's name).
        #[arg(long, default_value = "vantage")]
        network: String,
        /// DNS name or IP address nodes use to reach the hub (repeat for more).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Server certificate lifetime in days.
        #[arg(long, default_value_t = 825)]
        server_days: i64,
    },
    /// Issue a new server certificate (new names, or before the old one expires); restart the hub after.
    ServerCert {
        /// DNS name or IP address (repeat for more).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Lifetime in days.
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
    /// Serve HTTPS until stopped.
    Serve(ServeArgs),
    /// Print the hub's OpenAPI 3.1 document (as served at /v1/openapi.json).
    Openapi,
    /// Enrolment tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// The node registry: list, show, approve pending enrolments, revoke.
    #[command(subcommand, alias = "node")]
    Nodes(NodesCmd),
    /// Operator credentials.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Write a consistent copy of the hub (database, CA, server key) to a new directory.
    Backup {
        /// Directory to create.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `serve` options.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:8443", env = "VANTAGE_HUB_LISTEN")]
    listen: SocketAddr,
    /// Base URL nodes use to reach the hub; default https://NAME:PORT (NAME: the first --name given to init).
    #[arg(long, env = "VANTAGE_HUB_PUBLIC_URL")]
    public_url: Option<String>,
    /// Approval policy file (the image's /etc/vantage/policy.json); without it every job is refused.
    #[arg(long, env = "VANTAGE_HUB_POLICY")]
    policy: Option<PathBuf>,
    /// TESTS ONLY: allow operators to publish unsigned payloads (POST /v1/publish/CHANNEL).
    #[arg(long)]
    unsafe_raw_publish: bool,
    /// Seconds between keep-alive comments on event streams.
    #[arg(long, default_value_t = 15)]
    keepalive_secs: u64,
    /// Job-log entries kept for catch-up.
    #[arg(long, default_value_t = 100_000)]
    retention_entries: u64,
    /// Job-log age kept for catch-up (e.g. 7d).
    #[arg(long, default_value = "7d", value_parser = tokens::parse_duration)]
    retention: i64,
    /// Node certificate lifetime in days.
    #[arg(long, default_value_t = 30)]
    node_cert_days: i64,
    /// Enrolments without token waiting for approval, at most (more are refused).
    #[arg(long, default_value_t = 10_000)]
    max_pending: u64,
    /// Enrolments without token waiting for approval from one source address, at most.
    #[arg(long, default_value_t = 16)]
    max_pending_per_address: u64,
    /// A node counts as online this long after it was last seen (e.g. 5m).
    #[arg(long, default_value = "5m", value_parser = tokens::parse_duration)]
    online_window: i64,
    /// Milliseconds between checks for new revocations.
    #[arg(long, default_value_t = 1000)]
    revocation_poll_ms: u64,
    /// Open connections in total, TLS handshakes included (when full, the oldest unfinished handshake gives way).
    #[arg(long, default_value_t = 20_000)]
    max_connections: usize,
    /// Of --max-connections, slots only connections with a node or operator
    /// certificate may use [default: a tenth of --max-connections].
    #[arg(long)]
    reserved_for_identified: Option<usize>,
    /// Open connections per node or operator (per address without a certificate).
    #[arg(long, default_value_t = 8)]
    max_conns_per_identity: usize,
    /// Connections per source address before their TLS handshake ends (more are closed at once).
    #[arg(long, default_value_t = 64)]
    max_handshakes_per_address: usize,
    /// Requests per second per identity, sustained.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Request burst per identity.
    #[arg(long, default_value_t = 60.0)]
    burst: f64,
    /// Seconds allowed for the TLS handshake and request headers.
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds without any bytes moving after which a connection is closed.
    #[arg(long, default_value_t = 120)]
    idle_timeout_secs: u64,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Also publish every stored job to nginx + Nchan at this publisher base URL,
    /// e.g. http://127.0.0.1:8081/pub (see scale/nginx-nchan.conf).
    #[arg(long, env = "VANTAGE_HUB_NCHAN_PUBLISH_URL")]
    nchan_publish_url: Option<String>,
    /// Jobs accepted per target host and hour, when stricter than the policy's
    /// max_jobs_per_target_per_hour (the policy's limit always applies).
    #[arg(long)]
    max_target_rate: Option<u32>,
    /// Bytes of results stored per node per day, at most (more are answered 429 result-volume).
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_result_bytes_per_node_day: u64,
}

/// `token` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a one-time enrolment token; its attributes win over what the node declares.
    Create {
        /// Country (ISO 3166-1 alpha-2, e.g. DE).
        #[arg(long)]
        country: String,
        /// Continent (AF AN AS EU NA OC SA).
        #[arg(long)]
        continent: Option<String>,
        /// Autonomous system number.
        #[arg(long)]
        asn: Option<u32>,
        /// Tag (repeat for more).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Validity, e.g. 7d, 12h.
        #[arg(long, default_value = "7d", value_parser = tokens::parse_duration)]
        expires: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (hashes only; the tokens themselves are not stored).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `nodes` subcommands.
#[derive(Subcommand, Debug)]
pub enum NodesCmd {
    /// List nodes with status.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one node.
    Show {
        /// Node id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List enrolments waiting for approval.
    Pending {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending enrolment by its key fingerprint (a unique prefix of 8+ characters will do),
    /// or a node's change of country or continent by its node id (n-...).
    Approve {
        /// Fingerprint as the node shows it, or the id of a node that asked for a change.
        fingerprint: String,
    },
    /// Revoke a node: its certificates go on the CRL and the hub refuses it at once.
    Revoke {
        /// Node id.
        id: String,
    },
}

/// `operator` subcommands.
#[derive(Subcommand, Debug)]
pub enum OperatorCmd {
    /// Issue an operator certificate: writes NAME.crt, NAME.key and ca.pem into --out.
    Issue {
        /// Operator name.
        name: String,
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Lifetime in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke every certificate of an operator.
    Revoke {
        /// Operator name.
        name: String,
    },
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serialises"));
}

fn fmt_time(t: Option<i64>) -> String {
    t.map(|t| httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)))
        .unwrap_or_else(|| "-".into())
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    let dd = DataDir::new(&cli.data_dir);
    match cli.cmd {
        Command::Openapi => print!("{}", crate::api::ApiDoc::pretty()),
        Command::Init {
            network,
            names,
            server_days,
        } => {
            dd.init(&network, &names, server_days)?;
            println!(
                "initialised {}; nodes pin {}; next: vantage-hub --data-dir {} serve",
                dd.root().display(),
                dd.ca_cert().display(),
                dd.root().display()
            );
        }
        Command::ServerCert { names, days } => {
            let (ca, db) = dd.open()?;
            dd.issue_server_cert(&ca, &db, &names, days)?;
            println!(
                "new server certificate in {}; restart the hub",
                dd.server_cert().display()
            );
        }
        Command::Serve(a) => {
            let (_, db) = dd.open()?;
            let default_host = db
                .meta("server_names")?
                .and_then(|n| n.split(',').next().map(str::to_string))
                .context("the data directory has no server name; run `server-cert --name HOST`")?;
            drop(db);
            let reserved = a.reserved_for_identified.unwrap_or(a.max_connections / 10);
            if a.max_connections == 0 || reserved >= a.max_connections {
                bail!(
                    "--reserved-for-identified ({reserved}) must be below --max-connections ({}): enrolling nodes have no certificate yet",
                    a.max_connections
                );
            }
            let cfg = ServeConfig {
                listen: a.listen,
                public_url: a.public_url,
                default_host,
                policy: a.policy,
                unsafe_raw_publish: a.unsafe_raw_publish,
                keepalive: Duration::from_secs(a.keepalive_secs.max(1)),
                retention_entries: a.retention_entries,
                retention_age: Duration::from_secs(a.retention as u64),
                node_cert_days: a.node_cert_days,
                pending_caps: crate::db::PendingCaps {
                    total: a.max_pending,
                    per_address: a.max_pending_per_address,
                },
                online_window: Duration::from_secs(a.online_window as u64),
                revocation_poll: Duration::from_millis(a.revocation_poll_ms.max(50)),
                max_connections: a.max_connections,
                reserved_for_identified: reserved,
                max_conns_per_identity: a.max_conns_per_identity,
                max_handshakes_per_address: a.max_handshakes_per_address.max(1),
                rate: a.rate,
                burst: a.burst,
                header_timeout: Duration::from_secs(a.header_timeout_secs),
                idle_timeout: Duration::from_secs(a.idle_timeout_secs),
                addr_file: a.addr_file,
                max_target_rate: a.max_target_rate,
                result_bytes_per_node_day: a.max_result_bytes_per_node_day,
            };
            let hub = Hub::new(dd, cfg)?;
            if let Some(url) = &a.nchan_publish_url {
                let publisher = crate::nchan::Publisher::start(url)?;
                hub.metrics.register_nchan(publisher.metrics.clone());
                let _ = hub.nchan.set(publisher);
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(hub))?;
        }
        Command::Token(TokenCmd::Create {
            country,
            continent,
            asn,
            tags,
            expires,
            json,
        }) => {
            validate_country(&country)?;
            if !vantage_proto::country::is_assigned(&country) {
                let hint = vantage_proto::country::hint(&country)
                    .map(|h| format!(": {h}"))
                    .unwrap_or_default();
                bail!("{country} is not an ISO 3166-1 country code{hint}");
            }
            if let Some(c) = &continent {
                validate_continent(c)?;
            }
            for t in &tags {
                validate_tag(t)?;
            }
            let (_, db) = dd.open()?;
            let token = tokens::generate()?;
            let attrs = Attrs {
                country,
                continent,
                asn,
                tags,
            };
            let exp = now() + expires;
            db.insert_token(&tokens::hash(&token), &attrs, now(), exp)?;
            db.audit(
                now(),
                "cli",
                "token.create",
                &tokens::hash(&token),
                &json!({"attrs": attrs, "expires": exp}),
            )?;
            if json {
                print_json(&json!({"token": token, "expires": exp, "attrs": attrs}));
            } else {
                println!("{token}");
                eprintln!(
                    "one-time token, valid until {}; put it in the node's vantage.toml",
                    fmt_time(Some(exp))
                );
            }
        }
        Command::Token(TokenCmd::List { json }) => {
            let (_, db) = dd.open()?;
            let list = db.tokens()?;
            if json {
                print_json(&serde_json::to_value(&list)?);
            } else {
                for t in list {
                    let state = match (&t.node_id, t.expires > now()) {
                        (Some(n), _) => format!("used by {n}"),
                        (None, true) => format!("valid until {}", fmt_time(Some(t.expires))),
                        (None, false) => "expired".into(),
                    };
                    println!("{}  {}  {state}", &t.hash[..16], t.attrs.country);
                }
            }
        }
        Command::Nodes(cmd) => nodes(&dd, cmd)?,
        Command::Operator(OperatorCmd::Issue {
            name,
            out,
            days,
            json,
        }) => {
            let (ca, db) = dd.open()?;
            let (issued, key) = issue_operator(&ca, &db, &name, days)?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let (crt, keyp, cap) = (
                out.join(format!("{name}.crt")),
                out.join(format!("{name}.key")),
                out.join("ca.pem"),
            );
            write_atomic(&crt, issued.cert_pem.as_bytes(), 0o644)?;
            write_private(&keyp, &key)?;
            write_atomic(&cap, ca.cert_pem().as_bytes(), 0o644)?;
            if json {
                print_json(&json!({"name": name, "cert": crt, "key": keyp, "ca": cap,
                                   "serial": issued.serial, "not_after": issued.not_after}));
            } else {
                println!(
                    "wrote {}, {} and {}",
                    crt.display(),
                    keyp.display(),
                    cap.display()
                );
            }
        }
        Command::Operator(OperatorCmd::Revoke { name }) => {
            let (ca, db) = dd.open()?;
            let serials = db.revoke_subject(CertRole::Operator, &name, now())?;
            if serials.is_empty() {
                bail!("operator {name} has no unrevoked certificate");
            }
            db.audit(
                now(),
                "cli",
                "operator.revoke",
                &name,
                &json!({"serials": serials}),
            )?;
            dd.write_crl(&ca, &db)?;
            println!(
                "revoked {} certificate(s) of operator {name}",
                serials.len()
            );
        }
        Command::Backup { out } => {
            let (_, db) = dd.open()?;
            if out.exists() {
                bail!("{} exists; give a new directory", out.display());
            }
            std::fs::create_dir_all(&out)?;
            db.backup_to(&out.join("hub.db"))?;
            for p in [
                dd.ca_cert(),
                dd.ca_key(),
                dd.server_cert(),
                dd.server_key(),
                dd.crl_pem(),
            ] {
                let name = p.file_name().expect("file");
                std::fs::copy(&p, out.join(name))
                    .with_context(|| format!("cannot copy {}", p.display()))?;
            }
            crate::governance::backup_chain(dd.root(), &out)?;
            println!(
                "backup written to {} (it holds the CA key: keep it safe)",
                out.display()
            );
        }
    }
    Ok(())
}

fn nodes(dd: &DataDir, cmd: NodesCmd) -> Result<()> {
    let (ca, db) = dd.open()?;
    // Without the running hub's view of open streams, "online" is "seen recently".
    let online = |t: Option<i64>| t.is_some_and(|t| now() - t <= 300);
    match cmd {
        NodesCmd::List { json } => {
            let list = db.nodes()?;
            let pending = db.pending_open()?;
            if json {
                let mut v: Vec<_> = list
                    .iter()
                    .map(|n| {
                        registry_entry(n, node_status(n.revoked.is_some(), online(n.last_seen)))
                    })
                    .collect();
                v.extend(pending.iter().map(pending_entry));
                print_json(&v);
            } else {
                for n in list {
                    println!(
                        "{:14} {:8} {:3} {:4} last seen {}",
                        n.id,
                        node_status(n.revoked.is_some(), online(n.last_seen)).as_str(),
                        n.attrs.country,
                        n.attrs.continent.as_deref().unwrap_or("-"),
                        fmt_time(n.last_seen)
                    );
                }
                for p in pending {
                    println!(
                        "{:14} pending  {:3} {:4} fingerprint {}",
                        "-",
                        p.declared.country,
                        p.declared.continent.as_deref().unwrap_or("-"),
                        p.fingerprint
                    );
                }
            }
        }
        NodesCmd::Show { id, json } => {
            let n = db
                .node(&id)?
                .with_context(|| format!("no node {id}; `vantage-hub nodes list` shows them"))?;
            let entry = registry_entry(&n, node_status(n.revoked.is_some(), online(n.last_seen)));
            let v = serde_json::to_value(&entry)?;
            if json {
                print_json(&v);
            } else {
                for (k, val) in v.as_object().expect("object") {
                    println!("{k:16} {val}");
                }
            }
        }
        NodesCmd::Pending { json } => {
            let list = db.pending_open()?;
            if json {
                print_json(&serde_json::to_value(&list)?);
            } else {
                for c in db.attr_changes()? {
                    let now_in = db.node(&c.node_id)?.map(|n| n.attrs).unwrap_or_default();
                    println!(
                        "{}  asks for country {} continent {} (now {} {})  {}",
                        c.node_id,
                        c.country,
                        c.continent.as_deref().unwrap_or("-"),
                        now_in.country,
                        now_in.continent.as_deref().unwrap_or("-"),
                        if c.approved.is_some() {
                            "approved, made at the node's next start"
                        } else {
                            "pending: vantage-hub nodes approve <node id>"
                        }
                    );
                }
                for p in list {
                    println!(
                        "{}  {} {}  from {}  {}",
                        p.fingerprint,
                        p.declared.country,
                        p.declared.continent.as_deref().unwrap_or("-"),
                        p.address.as_deref().unwrap_or("-"),
                        if p.approved.is_some() {
                            "approved, waiting for the node to poll"
                        } else {
                            "pending"
                        }
                    );
                }
            }
        }
        NodesCmd::Approve { fingerprint } if fingerprint.trim().starts_with("n-") => {
            let id = fingerprint.trim();
            let Some(change) = db.attr_change(id)? else {
                bail!("node {id} has asked for no change; `vantage-hub nodes pending` lists them");
            };
            db.approve_attr_change(id, now())?;
            db.audit(
                now(),
                "cli",
                "attrs.approve",
                id,
                &json!({"country": change.country, "continent": change.continent}),
            )?;
            println!(
                "approved country {} continent {} for {id}; the node makes the change at its next start",
                change.country,
                change.continent.as_deref().unwrap_or("-")
            );
        }
        NodesCmd::Approve { fingerprint } => {
            let fp = fingerprint.trim().to_ascii_lowercase().replace(':', "");
            if fp.len() < 8 {
                bail!("give at least 8 characters of the fingerprint");
            }
            let matches = db.pending_by_prefix(&fp)?;
            let p = match matches.as_slice() {
                [one] => one,
                [] => bail!(
                    "no pending enrolment has fingerprint {fp}; `vantage-hub nodes pending` lists them"
                ),
                _ => bail!(
                    "{} pending enrolments start with {fp}; give more of the fingerprint",
                    matches.len()
                ),
            };
            if p.node_id.is_some() {
                bail!(
                    "that enrolment was already issued as node {}",
                    p.node_id.as_deref().unwrap_or("?")
                );
            }
            db.approve_pending(&p.fingerprint, now())?;
            db.audit(
                now(),
                "cli",
                "pending.approve",
                &p.fingerprint,
                &json!({"declared": p.declared}),
            )?;
            println!(
                "approved {}; the node gets its certificate at its next poll",
                p.fingerprint
            );
        }
        NodesCmd::Revoke { id } => {
            if db.node(&id)?.is_none() {
                bail!("no node {id}; `vantage-hub nodes list` shows them");
            }
            let serials = db.revoke_subject(CertRole::Node, &id, now())?;
            db.audit(
                now(),
                "cli",
                "node.revoke",
                &id,
                &json!({"serials": serials}),
            )?;
            dd.write_crl(&ca, &db)?;
            println!(
                "revoked node {id} ({} certificate(s)); a running hub refuses it within a second",
                serials.len()
            );
        }
    }
    Ok(())
}
