//! The `vantage-hub` command line: everything the operator of a hub does.

use crate::api::{issue_operator, node_status, pending_entry, registry_entry};
use crate::config::{ConfigError, ConfigFile, HubSettings, ServeSettings};
use crate::datadir::{DataDir, now, write_atomic, write_private};
use crate::db::{Attrs, CertRole, Db, NodeRow, PendingRow};
use crate::hub::Hub;
use crate::pki::Ca;
use crate::server::serve;
use crate::tokens;
use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vantage_human::Duration;
use vantage_human::legacy::{self, Renamed};
use vantage_human::table;
use vantage_proto::api::NodeStatus;
use vantage_proto::channel::{validate_continent, validate_country, validate_tag};

/// The vantage hub: TLS pub/sub with client-certificate identity, enrolment CA, job log and results.
///
/// Every setting is a flag, an environment variable VANTAGE_HUB_<KEY> and a
/// key of the --config file; a flag wins over the environment, which wins
/// over the file (docs/hub.md lists the keys).
#[derive(Parser, Debug)]
#[command(name = "vantage-hub", version)]
pub struct Cli {
    /// Configuration file (TOML); its keys are the settings' names, e.g. keepalive = "15s".
    #[arg(long, global = true, env = "VANTAGE_HUB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Settings of every subcommand.
    #[command(flatten)]
    pub hub: HubSettings,
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
        /// Server certificate lifetime.
        #[arg(long, default_value = "825d")]
        server_cert_lifetime: Duration,
    },
    /// Issue a new server certificate (new names, or before the old one expires); restart the hub after.
    ServerCert {
        /// DNS name or IP address (repeat for more).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Lifetime.
        #[arg(long, default_value = "825d")]
        lifetime: Duration,
    },
    /// Serve HTTPS until stopped.
    Serve(Box<ServeSettings>),
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

/// `token` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a one-time enrolment token; its attributes win over what the node declares.
    Create(NewToken),
    /// List tokens (hashes only; the tokens themselves are not stored).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `token create`: the attributes and lifetime of a new token.
#[derive(clap::Args, Debug)]
pub struct NewToken {
    /// Country (ISO 3166-1 alpha-2, e.g. DE).
    #[arg(long)]
    pub country: String,
    /// Continent (AF AN AS EU NA OC SA).
    #[arg(long)]
    pub continent: Option<String>,
    /// Autonomous system number.
    #[arg(long)]
    pub asn: Option<u32>,
    /// Tag (repeat for more).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Validity, e.g. 7d, 12h.
    #[arg(long, default_value = "7d")]
    pub expires: Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
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
        /// Lifetime.
        #[arg(long, default_value = "365d")]
        lifetime: Duration,
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
    t.map(vantage_human::utc).unwrap_or_else(|| "-".into())
}

/// Flags of earlier versions that counted in their name's unit; they still
/// work, hidden, rewritten to the duration flags (docs/hub.md).
pub const RENAMED_FLAGS: &[Renamed] = &[
    Renamed {
        old: "--keepalive-secs",
        new: "--keepalive",
        unit: "s",
    },
    Renamed {
        old: "--revocation-poll-ms",
        new: "--revocation-poll",
        unit: "ms",
    },
    Renamed {
        old: "--header-timeout-secs",
        new: "--header-timeout",
        unit: "s",
    },
    Renamed {
        old: "--idle-timeout-secs",
        new: "--idle-timeout",
        unit: "s",
    },
    Renamed {
        old: "--node-cert-days",
        new: "--node-cert-lifetime",
        unit: "d",
    },
    Renamed {
        old: "--server-days",
        new: "--server-cert-lifetime",
        unit: "d",
    },
    Renamed {
        old: "--days",
        new: "--lifetime",
        unit: "d",
    },
];

/// Parses the command line, layers the --config file under it, and runs it.
pub fn main() -> ExitCode {
    let (args, notices) = legacy::rewrite(std::env::args_os(), RENAMED_FLAGS);
    for n in notices {
        eprintln!("{n}");
    }
    let matches = Cli::command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let cli = match settle(cli, &matches) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cli` with the settings of its --config file where neither a flag nor
/// the environment gave one, checked.
pub fn settle(mut cli: Cli, matches: &clap::ArgMatches) -> Result<Cli, ConfigError> {
    if let Some(path) = &cli.config {
        let file = ConfigFile::load(path)?;
        cli.hub = file.layer(cli.hub, matches)?;
        if let (Command::Serve(s), Some(("serve", m))) = (&mut cli.cmd, matches.subcommand()) {
            **s = file.layer(ServeSettings::clone(s), m)?;
        }
    }
    if let Command::Serve(s) = &cli.cmd {
        s.reserved()?;
    }
    Ok(cli)
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    let dd = DataDir::new(&cli.hub.data_dir);
    match cli.cmd {
        Command::Openapi => print!("{}", crate::api::ApiDoc::pretty()),
        Command::Init {
            network,
            names,
            server_cert_lifetime,
        } => init(&dd, &network, &names, server_cert_lifetime)?,
        Command::ServerCert { names, lifetime } => server_cert(&dd, &names, lifetime)?,
        Command::Serve(a) => serve_until_stopped(dd, &a)?,
        Command::Token(TokenCmd::Create(t)) => token_create(&dd, t)?,
        Command::Token(TokenCmd::List { json }) => token_list(&dd, json)?,
        Command::Nodes(cmd) => nodes(&dd, cmd)?,
        Command::Operator(OperatorCmd::Issue {
            name,
            out,
            lifetime,
            json,
        }) => operator_issue(&dd, &name, &out, lifetime, json)?,
        Command::Operator(OperatorCmd::Revoke { name }) => operator_revoke(&dd, &name)?,
        Command::Backup { out } => backup(&dd, &out)?,
    }
    Ok(())
}

fn init(dd: &DataDir, network: &str, names: &[String], lifetime: Duration) -> Result<()> {
    dd.init(network, names, lifetime.get())?;
    println!(
        "initialised {}; nodes pin {}; next: vantage-hub --data-dir {} serve",
        dd.root().display(),
        dd.ca_cert().display(),
        dd.root().display()
    );
    Ok(())
}

fn server_cert(dd: &DataDir, names: &[String], lifetime: Duration) -> Result<()> {
    let (ca, db) = dd.open()?;
    dd.issue_server_cert(&ca, &db, names, lifetime.get())?;
    println!(
        "new server certificate in {}; restart the hub",
        dd.server_cert().display()
    );
    Ok(())
}

fn serve_until_stopped(dd: DataDir, a: &ServeSettings) -> Result<()> {
    let (_, db) = dd.open()?;
    let default_host = db
        .meta("server_names")?
        .and_then(|n| n.split(',').next().map(str::to_string))
        .context("the data directory has no server name; run `server-cert --name HOST`")?;
    drop(db);
    let cfg = a.serve_config(default_host)?;
    let hub = Hub::new(dd, cfg)?;
    if let Some(url) = &a.nchan_publish_url {
        let publisher = crate::nchan::Publisher::start(url)?;
        hub.metrics.register_nchan(publisher.metrics.clone());
        let _ = hub.nchan.set(publisher);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(hub))
}

/// A token's attributes, checked as the hub checks what a node declares.
fn token_attrs(t: NewToken) -> Result<Attrs> {
    validate_country(&t.country)?;
    if !vantage_proto::country::is_assigned(&t.country) {
        let hint = vantage_proto::country::hint(&t.country)
            .map(|h| format!(": {h}"))
            .unwrap_or_default();
        bail!("{} is not an ISO 3166-1 country code{hint}", t.country);
    }
    if let Some(c) = &t.continent {
        validate_continent(c)?;
    }
    for tag in &t.tags {
        validate_tag(tag)?;
    }
    Ok(Attrs {
        country: t.country,
        continent: t.continent,
        asn: t.asn,
        tags: t.tags,
    })
}

fn token_create(dd: &DataDir, t: NewToken) -> Result<()> {
    let (expires, json) = (t.expires, t.json);
    let attrs = token_attrs(t)?;
    let (_, db) = dd.open()?;
    let token = tokens::generate()?;
    if expires.get().is_zero() {
        bail!("--expires must be longer than 0s");
    }
    let exp = now() + i64::try_from(expires.as_secs()).unwrap_or(i64::MAX / 2);
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
    Ok(())
}

fn token_list(dd: &DataDir, json: bool) -> Result<()> {
    let (_, db) = dd.open()?;
    let list = db.tokens()?;
    if json {
        print_json(&serde_json::to_value(&list)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            let state = match (&t.node_id, t.expires > now()) {
                (Some(n), _) => format!("used by {n}"),
                (None, true) => format!("valid until {}", fmt_time(Some(t.expires))),
                (None, false) => "expired".into(),
            };
            vec![t.hash[..16].to_string(), t.attrs.country.clone(), state]
        })
        .collect();
    print!("{}", table::render(&["hash", "country", "state"], &rows));
    Ok(())
}

fn operator_issue(
    dd: &DataDir,
    name: &str,
    out: &Path,
    lifetime: Duration,
    json: bool,
) -> Result<()> {
    let (ca, db) = dd.open()?;
    let (issued, key) = issue_operator(&ca, &db, name, lifetime.get())?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
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
    Ok(())
}

fn operator_revoke(dd: &DataDir, name: &str) -> Result<()> {
    let (ca, db) = dd.open()?;
    let serials = db.revoke_subject(CertRole::Operator, name, now())?;
    if serials.is_empty() {
        bail!("operator {name} has no unrevoked certificate");
    }
    db.audit(
        now(),
        "cli",
        "operator.revoke",
        name,
        &json!({"serials": serials}),
    )?;
    dd.write_crl(&ca, &db)?;
    println!(
        "revoked {} certificate(s) of operator {name}",
        serials.len()
    );
    Ok(())
}

fn backup(dd: &DataDir, out: &Path) -> Result<()> {
    let (_, db) = dd.open()?;
    if out.exists() {
        bail!("{} exists; give a new directory", out.display());
    }
    std::fs::create_dir_all(out)?;
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
    crate::governance::backup_chain(dd.root(), out)?;
    crate::releases::backup_binaries(dd.root(), out)
        .context("cannot copy the agent releases' binaries")?;
    println!(
        "backup written to {} (it holds the CA key: keep it safe)",
        out.display()
    );
    Ok(())
}

fn continent(c: &Option<String>) -> String {
    c.as_deref().unwrap_or("-").to_string()
}

/// `nodes pending` for people: changes of country or continent nodes asked
/// for, then enrolments waiting for approval (each table only when it has rows).
fn pending_tables(db: &Db, list: &[PendingRow]) -> Result<String> {
    let mut changes = Vec::new();
    for c in db.attr_changes()? {
        let now_in = db.node(&c.node_id)?.map(|n| n.attrs).unwrap_or_default();
        let state = if c.approved.is_some() {
            "approved, made at the node's next start"
        } else {
            "pending: vantage-hub nodes approve <node id>"
        };
        changes.push(vec![
            c.node_id,
            format!("{} {}", c.country, continent(&c.continent)),
            format!("{} {}", now_in.country, continent(&now_in.continent)),
            state.into(),
        ]);
    }
    let enrolments: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let state = if p.approved.is_some() {
                "approved, waiting for the node to poll"
            } else {
                "pending"
            };
            vec![
                p.fingerprint.clone(),
                p.declared.country.clone(),
                continent(&p.declared.continent),
                p.address.as_deref().unwrap_or("-").into(),
                state.into(),
            ]
        })
        .collect();
    let mut out = String::new();
    if !changes.is_empty() {
        out += &table::render(&["node", "asks for", "now", "state"], &changes);
    }
    if !enrolments.is_empty() {
        let headers = ["fingerprint", "country", "continent", "from", "state"];
        out += &table::render(&headers, &enrolments);
    }
    Ok(out)
}

fn nodes(dd: &DataDir, cmd: NodesCmd) -> Result<()> {
    let (ca, db) = dd.open()?;
    match cmd {
        NodesCmd::List { json } => nodes_list(&db, json),
        NodesCmd::Show { id, json } => node_show(&db, &id, json),
        NodesCmd::Pending { json } => {
            let list = db.pending_open()?;
            if json {
                print_json(&serde_json::to_value(&list)?);
            } else {
                print!("{}", pending_tables(&db, &list)?);
            }
            Ok(())
        }
        NodesCmd::Approve { fingerprint } if fingerprint.trim().starts_with("n-") => {
            approve_attr_change(&db, fingerprint.trim())
        }
        NodesCmd::Approve { fingerprint } => approve_enrolment(&db, &fingerprint),
        NodesCmd::Revoke { id } => revoke_node(dd, &ca, &db, &id),
    }
}

/// A node's status as the registry shows it. Without the running hub's view
/// of open streams, "online" is "seen recently".
fn status_of(n: &NodeRow) -> NodeStatus {
    let online = n.last_seen.is_some_and(|t| now() - t <= 300);
    node_status(n.revoked.is_some(), online)
}

fn nodes_list(db: &Db, json: bool) -> Result<()> {
    let list = db.nodes()?;
    let pending = db.pending_open()?;
    if json {
        let mut v: Vec<_> = list
            .iter()
            .map(|n| registry_entry(n, status_of(n)))
            .collect();
        v.extend(pending.iter().map(pending_entry));
        print_json(&v);
        return Ok(());
    }
    let nodes = list.iter().map(|n| {
        vec![
            n.id.clone(),
            status_of(n).as_str().into(),
            n.attrs.country.clone(),
            continent(&n.attrs.continent),
            fmt_time(n.last_seen),
            String::new(),
        ]
    });
    let pending = pending.iter().map(|p| {
        vec![
            "-".into(),
            "pending".into(),
            p.declared.country.clone(),
            continent(&p.declared.continent),
            "-".into(),
            p.fingerprint.clone(),
        ]
    });
    let rows: Vec<Vec<String>> = nodes.chain(pending).collect();
    let headers = [
        "node",
        "status",
        "country",
        "continent",
        "last seen",
        "fingerprint",
    ];
    print!("{}", table::render(&headers, &rows));
    Ok(())
}

fn node_show(db: &Db, id: &str, json: bool) -> Result<()> {
    let n = db
        .node(id)?
        .with_context(|| format!("no node {id}; `vantage-hub nodes list` shows them"))?;
    let v = serde_json::to_value(registry_entry(&n, status_of(&n)))?;
    if json {
        print_json(&v);
    } else {
        for (k, val) in v.as_object().expect("object") {
            println!("{k:16} {val}");
        }
    }
    Ok(())
}

/// Approves the change of country or continent node `id` asked for.
fn approve_attr_change(db: &Db, id: &str) -> Result<()> {
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
    Ok(())
}

/// Approves the pending enrolment whose key fingerprint starts with `fingerprint`.
fn approve_enrolment(db: &Db, fingerprint: &str) -> Result<()> {
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
    Ok(())
}

fn revoke_node(dd: &DataDir, ca: &Ca, db: &Db, id: &str) -> Result<()> {
    if db.node(id)?.is_none() {
        bail!("no node {id}; `vantage-hub nodes list` shows them");
    }
    let serials = db.revoke_subject(CertRole::Node, id, now())?;
    db.audit(
        now(),
        "cli",
        "node.revoke",
        id,
        &json!({"serials": serials}),
    )?;
    dd.write_crl(ca, db)?;
    println!(
        "revoked node {id} ({} certificate(s)); a running hub refuses it within a second",
        serials.len()
    );
    Ok(())
}
