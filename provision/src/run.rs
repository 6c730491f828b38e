//! What `vantage-provision` does at every boot: honour a reset request,
//! apply the volunteer's Wi-Fi and host name, and enrol the node unless it
//! already has a healthy identity, telling the volunteer how it went.
//!
//! Every step is safe to repeat, and every file is replaced atomically, so a
//! power cut at any point leaves a state the next boot finishes from: the key
//! is stored before the first CSR leaves the node, the hub answers a repeated
//! enrolment with the same key with the same certificate, `node.json` is
//! written last, and the token is scrubbed only after that.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vantage_proto::enrol::EnrolRequest;

use vantage_node::backoff::Backoff;
use vantage_node::cert::CertInfo;
use vantage_node::client::{self, ClientIdentity, PinnedCa, Timeouts, rustls_error};
use vantage_node::csr::{CsrError, NodeKey};
use vantage_node::durable::{atomic_write, sync_dir};
use vantage_node::enrol::{self, AttrsChange, AttrsResponse, EnrolError, EnrolOutcome, Issued};
use vantage_node::fault;
use vantage_node::revocation::{Evidence, Marker};
use vantage_node::state::{DataDir, FORMAT, NodeState, StateError};

use crate::clock;
use crate::config::{self, Settings};
use crate::status::{Reporter, Status};
use crate::wifi;

/// Name of the marker file on the boot partition that asks for a new
/// identity (`vantage-reset.txt` counts too).
pub const RESET_FILE: &str = "vantage-reset";

/// Where the boot partition is mounted on a node.
pub const DEFAULT_BOOT_DIR: &str = "/boot/firmware";

/// Everything the run needs to know; the binary fills it from flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// The boot partition (status file, reset marker).
    pub boot_dir: PathBuf,
    /// The volunteer's settings file.
    pub config: PathBuf,
    /// The data partition.
    pub data_dir: PathBuf,
    /// The pinned network CA.
    pub ca: PathBuf,
    /// The wpa_supplicant file to write, `None` to leave Wi-Fi alone.
    pub wpa_conf: Option<PathBuf>,
    /// The host name file to write, `None` to leave the host name alone.
    pub hostname_file: Option<PathBuf>,
    /// systemd-timesyncd's "synchronised" flag file.
    pub timesync_flag: PathBuf,
    /// Make one attempt and return [`Outcome::NotYet`] instead of waiting.
    pub once: bool,
    /// First delay between attempts (before jitter; see `vantage_node::backoff`).
    pub retry_min: Duration,
    /// Longest delay between attempts.
    pub retry_max: Duration,
}

impl Options {
    /// The node's standard paths, with the boot and data directories given.
    pub fn new(boot_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        let boot_dir = boot_dir.into();
        Options {
            config: boot_dir.join(config::FILE_NAME),
            boot_dir,
            data_dir: data_dir.into(),
            ca: client::DEFAULT_CA_PATH.into(),
            wpa_conf: Some(wifi::DEFAULT_WPA_CONF.into()),
            hostname_file: Some("/etc/hostname".into()),
            timesync_flag: clock::DEFAULT_TIMESYNC_FLAG.into(),
            once: false,
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
        }
    }
}

/// How a run ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The node has a healthy identity.
    Enrolled {
        /// Its id.
        node_id: String,
        /// True when this run enrolled it.
        fresh: bool,
    },
    /// Only with [`Options::once`]: not enrolled yet (waiting for approval,
    /// the hub or the clock); run again later.
    NotYet,
}

/// Why a run gave up.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// The volunteer must change something (the status file says what).
    #[error("{0}")]
    NeedsVolunteer(String),
    /// The node itself is broken (image, storage).
    #[error("{0}")]
    Broken(String),
}

impl Fatal {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Fatal::NeedsVolunteer(_) => 2,
            Fatal::Broken(_) => 1,
        }
    }
}

/// Applies the Wi-Fi and host name settings only (for a unit that runs
/// before the network comes up). Problems are reported, never fatal.
pub fn apply_early(opts: &Options) {
    let (path, note) = config::locate(&opts.config);
    if let Some(n) = note {
        log(&n);
    }
    match config::load(&path) {
        Ok(Some(s)) => apply_system_settings(opts, &s),
        Ok(None) => log("no vantage.toml on the boot partition; nothing to apply"),
        Err(invalid) => log(&format!("vantage.toml has problems: {invalid}")),
    }
}

/// The whole boot-time job. See the module documentation.
pub fn run(opts: &Options) -> Result<Outcome, Fatal> {
    let reporter = Reporter::new(&opts.boot_dir);
    let data = DataDir::new(&opts.data_dir);
    let report = |s: &Status| {
        if let Err(e) = reporter.report(s) {
            log(&format!("cannot write {}: {e}", reporter.path().display()));
        }
    };

    if let Err(e) = reset_if_asked(opts, &data) {
        let f = Fatal::Broken(e);
        report(&problem(
            &f.to_string(),
            "Re-flash the SD card if this happens again.",
        ));
        return Err(f);
    }
    // After a reset (which wipes the `format` file with the rest) and before
    // anything reads the directory.
    upgrade_format(&data, &report)?;
    let (config_path, name_note) = config::locate(&opts.config);
    if let Some(n) = name_note {
        reporter.note(n);
    }
    let settings = config::load(&config_path);
    if let Ok(Some(s)) = &settings {
        apply_system_settings(opts, s);
    }

    stop_if_revoked(&data, &settings, &report)?;
    let lost_identity = match healthy_identity(&data) {
        Ok(node) => {
            return Ok(already_enrolled(
                opts,
                &data,
                &config_path,
                &settings,
                node,
                &report,
            ));
        }
        Err(why) => why,
    };
    let settings = required(settings, &report)?;
    let ca = network_ca(&opts.ca, &report)?;
    let floor = clock::floor(
        ca.ders()
            .filter_map(|der| CertInfo::from_der(der).ok())
            .map(|c| c.not_before),
    );
    let key = node_key(&data, &report)?;
    log(&format!("key fingerprint {}", key.fingerprint()));

    Enrolment {
        opts,
        config: &config_path,
        lost_identity,
        settings: &settings,
        ca: &ca,
        floor,
        key: &key,
        data: &data,
        report: &report,
    }
    .run()
}

/// A revoked node stays stopped until the volunteer resets it (the reset
/// removes the marker): enrolling again needs a new token or approval
/// anyway, and ENROLLED would tell them all is well.
fn stop_if_revoked(
    data: &DataDir,
    settings: &Result<Option<Settings>, config::Invalid>,
    report: &dyn Fn(&Status),
) -> Result<(), Fatal> {
    let Some(marker) = Marker::read(data) else {
        return Ok(());
    };
    let token = matches!(settings, Ok(Some(s)) if s.token.is_some());
    report(&revoked(data, &marker, token));
    Err(Fatal::NeedsVolunteer(format!(
        "the hub revoked this node's certificate ({} has {}); the node needs a reset and a \
         new token to enrol again",
        Marker::path(data).display(),
        marker.evidence
    )))
}

/// The volunteer's settings, which enrolment needs.
fn required(
    settings: Result<Option<Settings>, config::Invalid>,
    report: &dyn Fn(&Status),
) -> Result<Settings, Fatal> {
    match settings {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            let f = Fatal::NeedsVolunteer(format!(
                "There is no {} on the boot partition, so the node does not know its hub.",
                config::FILE_NAME
            ));
            report(&problem(
                &f.to_string(),
                "Put the card in your computer, copy vantage.toml.example to vantage.toml on the \
                 boot partition, fill it in (at least hub and country), and start the node again.",
            ));
            Err(f)
        }
        Err(invalid) => {
            let f = Fatal::NeedsVolunteer(format!("vantage.toml has problems:\n{invalid}"));
            report(&problem(
                &f.to_string(),
                "Put the card in your computer, correct vantage.toml as described above (the \
                 file vantage.toml.example shows every setting), and start the node again.",
            ));
            Err(f)
        }
    }
}

/// The network's CA certificate shipped in the image.
fn network_ca(path: &Path, report: &dyn Fn(&Status)) -> Result<PinnedCa, Fatal> {
    PinnedCa::load(path).map_err(|e| {
        let f = Fatal::Broken(format!(
            "The network's CA certificate is missing or damaged: {e}"
        ));
        report(&problem(
            &f.to_string(),
            "The system image is damaged or incomplete: flash the SD card again with the \
             image of your network.",
        ));
        f
    })
}

/// The node's key, made and stored (before any CSR leaves the node) if
/// there is none or it is damaged.
fn node_key(data: &DataDir, report: &dyn Fn(&Status)) -> Result<NodeKey, Fatal> {
    let loaded = NodeKey::load_or_generate(data).or_else(|e| match e {
        // A damaged key is useless to anyone: replace it.
        CsrError::Crypto(_) => {
            log(&format!(
                "{}: {e}; making a new key",
                data.key_path().display()
            ));
            let key = NodeKey::generate()?;
            data.write_key(&key.to_pem())?;
            Ok((key, true))
        }
        other => Err(other),
    });
    match loaded {
        Ok((key, _)) => Ok(key),
        Err(e) => {
            let f = Fatal::Broken(format!("The node's key cannot be stored: {e}"));
            report(&problem(
                &f.to_string(),
                "The SD card may be full, damaged or write-protected. Try another card, \
                 flashed with the image of your network.",
            ));
            Err(f)
        }
    }
}

struct Enrolment<'a> {
    opts: &'a Options,
    config: &'a Path,
    lost_identity: Option<String>,
    settings: &'a Settings,
    ca: &'a PinnedCa,
    floor: i64,
    key: &'a NodeKey,
    data: &'a DataDir,
    report: &'a dyn Fn(&Status),
}

/// What one enrolment attempt came to.
enum Step {
    /// Enrolled.
    Done(Outcome),
    /// The token was refused: ask for approval instead, at once.
    Again,
    /// Pending or unreachable: try again after a while.
    Wait,
}

impl Enrolment<'_> {
    fn run(&self) -> Result<Outcome, Fatal> {
        let mut token = self.settings.token.clone();
        let mut pending_why = match &self.lost_identity {
            Some(why) => format!(
                "This node was enrolled, but its identity can no longer be used ({why}). \
                 There is no (unused) token in vantage.toml, so the node asks the hub's \
                 administrator to approve it again."
            ),
            None => "There is no token in vantage.toml, so the node asks the hub's \
                     administrator to approve it."
                .to_owned(),
        };
        let mut backoff = Backoff::new(self.opts.retry_min, self.opts.retry_max);
        loop {
            let now = clock::now();
            if now < self.floor {
                (self.report)(&clock_status(now, &self.opts.timesync_flag));
                if self.opts.once {
                    return Ok(Outcome::NotYet);
                }
                std::thread::sleep(Duration::from_secs(2));
                continue;
            }
            match self.attempt(&mut token, &mut pending_why)? {
                Step::Done(outcome) => return Ok(outcome),
                Step::Again => continue,
                Step::Wait => {}
            }
            if self.opts.once {
                return Ok(Outcome::NotYet);
            }
            let delay = backoff.next_delay();
            log(&format!("next attempt in {:.1} s", delay.as_secs_f64()));
            std::thread::sleep(delay);
        }
    }

    /// One enrolment request, with `token` if there is one still unrefused.
    fn attempt(&self, token: &mut Option<String>, pending_why: &mut String) -> Result<Step, Fatal> {
        let hub = &self.settings.hub;
        let csr = self
            .key
            .csr_pem(self.settings.hostname.as_deref())
            .map_err(|e| Fatal::Broken(format!("cannot make a CSR: {e}")))?;
        let req = EnrolRequest {
            csr,
            token: token.clone(),
            declared: self.settings.declared(),
            agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        };
        let agent = client::agent(self.ca, None, Timeouts::default());
        log(&format!(
            "enrolling with {hub} ({})",
            if token.is_some() {
                "with token"
            } else {
                "asking for approval"
            }
        ));
        match enrol::enrol(&agent, hub, &req) {
            Ok(EnrolOutcome::Issued(issued)) => return self.store(*issued).map(Step::Done),
            Ok(EnrolOutcome::Pending {
                fingerprint,
                message,
            }) => {
                (self.report)(&Status::Pending {
                    fingerprint,
                    hub: hub.clone(),
                    why: pending_why.clone(),
                    hub_says: message,
                });
            }
            Err(e) => match e.permanent_refusal() {
                Some((status, message)) => {
                    return self.refused(token, pending_why, status, message);
                }
                None => {
                    let clock_wrong = clock::now() < self.floor;
                    (self.report)(&unreachable_status(hub, &e, clock_wrong));
                }
            },
        }
        Ok(Step::Wait)
    }

    /// The hub refused for good: without the token if there was one, else
    /// the volunteer must act.
    fn refused(
        &self,
        token: &mut Option<String>,
        pending_why: &mut String,
        status: u16,
        message: &str,
    ) -> Result<Step, Fatal> {
        if token.take().is_some() {
            log(&format!("token refused (HTTP {status}): {message}"));
            *pending_why = format!(
                "The hub did not accept the token in vantage.toml ({message}), \
                 so the node asks the hub's administrator to approve it instead."
            );
            return Ok(Step::Again);
        }
        let hub = &self.settings.hub;
        let f = Fatal::NeedsVolunteer(format!(
            "The hub {hub} refused to enrol this node: {message}"
        ));
        (self.report)(&problem(
            &f.to_string(),
            "Check the settings in vantage.toml, or ask the hub's administrator \
             what is wrong, then start the node again.",
        ));
        Err(f)
    }

    fn store(&self, issued: Issued) -> Result<Outcome, Fatal> {
        fault::point("issued");
        let cert = CertInfo::from_pem(&issued.cert_pem)
            .map_err(|e| Fatal::Broken(format!("the hub sent an unreadable certificate: {e}")))?;
        if cert.spki_der != self.key.public_key_der() {
            return Err(Fatal::Broken(
                "the hub sent a certificate for another key; not storing it".into(),
            ));
        }
        self.data
            .store_issued(&issued.node, &issued.cert_pem, &issued.chain_pem)
            .map_err(|e| Fatal::Broken(format!("cannot store the node's certificate: {e}")))?;
        if self.settings.token.is_some()
            && let Err(e) = scrub_token(self.config)
        {
            log(&format!(
                "cannot remove the used token from vantage.toml: {e}"
            ));
        }
        (self.report)(&enrolled(
            &issued.node,
            disagreement(self.settings, &issued.node, None),
        ));
        Ok(Outcome::Enrolled {
            node_id: issued.node.node_id,
            fresh: true,
        })
    }
}

/// `vantage-provision refresh-status`, run (privileged) by the agent's unit
/// whenever the agent stops: the agent may not write the boot partition, so
/// when it stopped because the hub revoked the node, this tells the
/// volunteer at once rather than at the next boot. True if it did.
pub fn refresh_status(opts: &Options) -> std::io::Result<bool> {
    let data = DataDir::new(&opts.data_dir);
    let Some(marker) = Marker::read(&data) else {
        return Ok(false);
    };
    // vantage.toml is not read here (this runs as root); whether a token
    // waits for a reset file is said at the next boot.
    Reporter::new(&opts.boot_dir).report(&revoked(&data, &marker, false))?;
    Ok(true)
}

/// What the volunteer reads about a revoked node, from the agent's marker.
fn revoked(data: &DataDir, marker: &Marker, token_without_reset: bool) -> Status {
    let hub = match data.read_node() {
        Ok(Some(node)) => node.endpoints.hub,
        _ if !marker.url.is_empty() => marker.url.clone(),
        _ => "the hub".to_owned(),
    };
    let how = match Evidence::from_code(&marker.evidence) {
        Some(e) => e.describe().to_owned(),
        None => marker.detail.clone(),
    };
    let seen = if marker.at > 0 {
        format!("Seen on {}: {how}.", vantage_human::utc(marker.at))
    } else {
        format!("Seen by the node's agent: {how}.")
    };
    Status::Revoked {
        node_id: marker.node_id.clone(),
        hub,
        seen,
        token_without_reset,
    }
}

/// A healthy node: scrub a leftover token; when vantage.toml declares other
/// attributes than the node is enrolled with, ask the hub for them; tell
/// the volunteer what is in force and what is not; done.
fn already_enrolled(
    opts: &Options,
    data: &DataDir,
    config_path: &Path,
    settings: &Result<Option<Settings>, config::Invalid>,
    mut node: NodeState,
    report: &dyn Fn(&Status),
) -> Outcome {
    let mut note = None;
    match settings {
        Ok(Some(s)) => {
            if s.token.is_some()
                && let Err(e) = scrub_token(config_path)
            {
                log(&format!(
                    "cannot remove the used token from vantage.toml: {e}"
                ));
            }
            let mut asked = None;
            if disagreement(s, &node, None).is_some() {
                let answer = ask_hub_for_attrs(opts, data, &node, s).map(|resp| {
                    let updated = NodeState {
                        attrs: resp.attrs,
                        channels: resp.channels,
                        ..node.clone()
                    };
                    if updated != node {
                        match data.write_node(&updated) {
                            Ok(()) => node = updated,
                            Err(e) => log(&format!("cannot store the new attributes: {e}")),
                        }
                    }
                    resp.waiting
                });
                if let Err(e) = &answer {
                    log(&format!(
                        "cannot ask the hub for the file's attributes: {e}"
                    ));
                }
                asked = Some(answer);
            }
            note = disagreement(s, &node, asked.as_ref());
        }
        Err(invalid) => {
            note = Some(format!(
                "vantage.toml has problems (they only matter for Wi-Fi and the host name now):\n{invalid}"
            ))
        }
        _ => {}
    }
    report(&enrolled(&node, note));
    Outcome::Enrolled {
        node_id: node.node_id,
        fresh: false,
    }
}

/// `POST /v1/attrs` with the file's attributes, over mTLS with the node's
/// identity. Short timeouts: the node works without the answer.
fn ask_hub_for_attrs(
    opts: &Options,
    data: &DataDir,
    node: &NodeState,
    s: &Settings,
) -> Result<AttrsResponse, String> {
    let ca = PinnedCa::load(&opts.ca).map_err(|e| e.to_string())?;
    let identity = ClientIdentity::load(data).map_err(|e| e.to_string())?;
    let timeouts = Timeouts {
        connect: Duration::from_secs(10),
        call: Some(Duration::from_secs(20)),
    };
    let agent = client::agent(&ca, Some(&identity), timeouts);
    let resp = enrol::update_attrs(&agent, &node.endpoints.hub, &s.declared())
        .map_err(|e| e.to_string())?;
    if resp.attrs.node_id != node.node_id || resp.attrs.validate().is_err() {
        return Err("the hub's answer names another node or invalid attributes".into());
    }
    Ok(resp)
}

/// Where vantage.toml says something else than what the node is enrolled
/// with, in words: the values in force, the file's values that are not, and
/// why (`asked`: what the hub answered when asked for them). `None` when
/// they agree. Without this a corrected file (`UK` to `GB`, say) would
/// change nothing at the next boot and say nothing either.
pub fn disagreement(
    s: &Settings,
    node: &NodeState,
    asked: Option<&Result<Option<AttrsChange>, String>>,
) -> Option<String> {
    let a = &node.attrs;
    let mut not_applied = Vec::new();
    // Not the hub: the hub states its own address (its public URL), which
    // may rightly be written differently from the volunteer's (a name
    // instead of an address, an explicit :443).
    if s.country != a.country {
        not_applied.push(format!("country = \"{}\"", s.country));
    }
    if let Some(ct) = &s.continent
        && a.continent.as_ref() != Some(ct)
    {
        not_applied.push(format!("continent = \"{ct}\""));
    }
    let mut file_tags = s.tags.clone();
    let mut node_tags = a.tags.clone();
    file_tags.sort();
    node_tags.sort();
    if file_tags != node_tags {
        not_applied.push(format!("tags = [{}]", quoted(&s.tags)));
    }
    if not_applied.is_empty() {
        return None;
    }
    let in_force = format!(
        "country {}, continent {}, tags [{}]",
        a.country,
        a.continent.as_deref().unwrap_or("(none)"),
        quoted(&a.tags)
    );
    let why = match asked {
        Some(Ok(Some(change))) => format!(
            "The hub's administrator has been asked to approve country = \"{}\"{}: a node's \
             country and continent change only with their approval (they run: vantage-hub \
             nodes approve {}). The node takes the new values at its first start after that.",
            change.country,
            change
                .continent
                .as_ref()
                .map(|c| format!(", continent = \"{c}\""))
                .unwrap_or_default(),
            node.node_id
        ),
        Some(Err(e)) => format!(
            "The node could not ask the hub for the file's values ({e}); it asks again at its \
             next start. Tags change at once; a new country or continent needs the hub \
             administrator's approval."
        ),
        None => "At enrolment the token's values win over the file's. The node asks the hub for \
                 the file's values at its next start: new tags are taken at once, a new \
                 country or continent needs the hub administrator's approval."
            .to_owned(),
        Some(Ok(None)) => "The hub did not take them: ask the hub's administrator; or, to \
                           enrol again with the file's values, put an empty file named \
                           vantage-reset on the boot partition (the node gets a new id, and \
                           needs a new token or approval)."
            .to_owned(),
    };
    Some(format!(
        "vantage.toml and this node's enrolment disagree. In force: {in_force}. Not applied \
         (yet) from vantage.toml: {}. {why} Or change vantage.toml back to the values in force.",
        not_applied.join("; ")
    ))
}

fn quoted(tags: &[String]) -> String {
    tags.iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stored identity if it is complete and usable: `node.json`, a
/// certificate for the stored key, not expired (when the clock can tell).
/// `Err(Some(why))` when there was an identity that is no longer usable.
fn healthy_identity(data: &DataDir) -> Result<NodeState, Option<String>> {
    let node = match data.read_node() {
        Ok(Some(n)) => n,
        Ok(None) => return Err(None),
        Err(e) => {
            log(&format!("{e}; enrolling again"));
            return Err(Some(e.to_string()));
        }
    };
    let check = || -> Result<(), String> {
        let key = data
            .read_key()
            .map_err(|e| e.to_string())?
            .ok_or("key.pem is missing")?;
        let key = NodeKey::from_pem(&key).map_err(|e| format!("key.pem: {e}"))?;
        let cert = data
            .read_cert()
            .map_err(|e| e.to_string())?
            .ok_or("cert.pem is missing")?;
        let cert = CertInfo::from_pem(&cert).map_err(|e| format!("cert.pem: {e}"))?;
        if cert.spki_der != key.public_key_der() {
            return Err("cert.pem does not belong to key.pem".into());
        }
        let now = clock::now();
        if now >= clock::build_time() && now > cert.not_after {
            return Err(format!(
                "the certificate expired on {}",
                vantage_human::utc(cert.not_after)
            ));
        }
        Ok(())
    };
    match check() {
        Ok(()) => Ok(node),
        Err(why) => {
            log(&format!(
                "stored identity not usable ({why}); enrolling again"
            ));
            Err(Some(why))
        }
    }
}

/// Brings the data directory to this release's format, so that an older
/// layout is read only upgraded and a newer one not at all.
fn upgrade_format(data: &DataDir, report: &dyn Fn(&Status)) -> Result<(), Fatal> {
    match data.upgrade() {
        Ok(found) if found < FORMAT => log(&format!(
            "data directory {} upgraded from format {found} to {FORMAT}",
            data.root().display()
        )),
        Ok(_) => {}
        Err(e @ StateError::NewerFormat { .. }) => {
            let f = Fatal::NeedsVolunteer(e.to_string());
            report(&problem(
                &f.to_string(),
                "Put the card in your computer and flash the newer vantage image again; or, to \
                 keep this one, create an empty file named vantage-reset on the boot partition \
                 (the node enrols again as a new node).",
            ));
            return Err(f);
        }
        Err(e) => {
            let f = Fatal::Broken(e.to_string());
            report(&problem(
                &f.to_string(),
                "Re-flash the SD card if this happens again.",
            ));
            return Err(f);
        }
    }
    Ok(())
}

fn reset_if_asked(opts: &Options, data: &DataDir) -> Result<(), String> {
    // Windows' Notepad saves "vantage-reset" as "vantage-reset.txt"; take either.
    let markers: Vec<PathBuf> = [RESET_FILE.to_owned(), format!("{RESET_FILE}.txt")]
        .iter()
        .map(|name| opts.boot_dir.join(name))
        .filter(|p| p.exists())
        .collect();
    if markers.is_empty() {
        return Ok(());
    }
    log("vantage-reset found on the boot partition: wiping the node's identity and state");
    data.wipe_identity().map_err(|e| e.to_string())?;
    wipe_agent_state(data.root()).map_err(|e| format!("{}: {e}", data.root().display()))?;
    for marker in markers {
        std::fs::remove_file(&marker)
            .map_err(|e| format!("cannot remove {}: {e}", marker.display()))?;
    }
    sync_dir(&opts.boot_dir).map_err(|e| format!("{}: {e}", opts.boot_dir.display()))?;
    fault::point("reset");
    Ok(())
}

/// Removes what the agent kept for the old identity (last event id, replay
/// cache, outbox): it would be sent under the new identity otherwise.
fn wipe_agent_state(root: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name() == "lost+found" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    sync_dir(root)
}

fn apply_system_settings(opts: &Options, s: &Settings) {
    if let (Some(path), Some(w)) = (&opts.wpa_conf, &s.wifi) {
        match wifi::apply(path, w) {
            Ok(true) => log(&format!(
                "Wi-Fi settings for {:?} written to {}",
                w.ssid,
                path.display()
            )),
            Ok(false) => {}
            Err(e) => log(&format!("cannot write {}: {e}", path.display())),
        }
    }
    if let (Some(path), Some(name)) = (&opts.hostname_file, &s.hostname) {
        let want = format!("{name}\n");
        if std::fs::read_to_string(path).ok().as_deref() != Some(want.as_str()) {
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| atomic_write(path, want.as_bytes(), 0o644));
            match written {
                Ok(()) => log(&format!("host name {name} written to {}", path.display())),
                Err(e) => log(&format!("cannot write {}: {e}", path.display())),
            }
        }
    }
}

/// Rewrites the settings file without its `token` line.
fn scrub_token(path: &Path) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    if let Some(clean) = config::without_token(&text) {
        atomic_write(path, clean.as_bytes(), 0o644)?;
        log("the used token was removed from vantage.toml");
    }
    Ok(())
}

fn enrolled(node: &NodeState, note: Option<String>) -> Status {
    Status::Enrolled {
        node_id: node.node_id.clone(),
        hub: node.endpoints.hub.clone(),
        country: node.attrs.country.clone(),
        channels: node.channels.clone(),
        note,
    }
}

fn problem(what: &str, todo: &str) -> Status {
    Status::Problem {
        what: what.to_owned(),
        todo: todo.to_owned(),
    }
}

fn clock_status(now: i64, timesync_flag: &Path) -> Status {
    let synced = if clock::synchronised(timesync_flag) {
        " (the time service reports success, yet the clock is still wrong)"
    } else {
        ""
    };
    Status::Waiting {
        what: format!(
            "The node's clock says {}, which cannot be right{synced}. A Raspberry Pi has no \
             battery-backed clock; the node waits until it has the time from the network \
             before it enrols, because secure connections need the right time.",
            vantage_human::utc(now)
        ),
        todo: "make sure the node is connected to the Internet (cable, or the [wifi] settings \
               in vantage.toml) and that your network lets it reach time servers (NTP, UDP \
               port 123)."
            .to_owned(),
    }
}

fn unreachable_status(hub: &str, e: &EnrolError, clock_wrong: bool) -> Status {
    let (what, todo) = match e {
        EnrolError::Transport(t) => describe_transport(hub, t, clock_wrong),
        EnrolError::Refused { status, message } => (
            format!("The hub {hub} is having trouble (HTTP {status}: {message})."),
            "nothing to do on the node; tell the hub's administrator.".to_owned(),
        ),
        EnrolError::BadResponse(m) => (
            format!("The hub {hub} gave an answer the node does not understand ({m})."),
            "the node may need a newer image; ask the hub's administrator.".to_owned(),
        ),
    };
    Status::Waiting { what, todo }
}

fn describe_transport(hub: &str, e: &ureq::Error, clock_wrong: bool) -> (String, String) {
    let network = "check that the node is connected (network cable, or the [wifi] settings in \
                   vantage.toml) and that hub = \"...\" in vantage.toml is exactly what the \
                   administrator gave you."
        .to_owned();
    if let Some(tls) = rustls_error(e) {
        return describe_tls(hub, tls, clock_wrong).unwrap_or_else(|| {
            (
                format!("The secure connection to {hub} failed: {tls}."),
                network,
            )
        });
    }
    let what = match e {
        ureq::Error::HostNotFound => format!("The hub's name in {hub} could not be found (DNS)."),
        ureq::Error::Timeout(_) => format!("The hub {hub} did not answer in time."),
        ureq::Error::ConnectionFailed => format!("The node could not connect to {hub}."),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("The node could not connect to {hub} (connection refused).")
        }
        other => format!("The hub {hub} could not be reached: {other}."),
    };
    (what, network)
}

/// What a certificate failure means for the volunteer: the wrong network
/// (another CA), the wrong name for the right hub, an expired hub
/// certificate, or the node's clock. `None` for failures that are not about
/// the hub's certificate.
fn describe_tls(hub: &str, tls: &rustls::Error, clock_wrong: bool) -> Option<(String, String)> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = tls else {
        return None;
    };
    let now = vantage_human::utc(clock::now());
    let ntp = "make sure the node is connected and can reach time servers (NTP, UDP port 123); \
               the node sets its clock from them by itself.";
    let clock_note = if clock_wrong {
        " The node's clock is certainly wrong."
    } else {
        ""
    };
    Some(match cert {
        C::NotValidYet | C::NotValidYetContext { .. } => {
            let from = match cert {
                C::NotValidYetContext { not_before, .. } => format!(
                    " The certificate is valid from {}.",
                    vantage_human::utc(unix(*not_before))
                ),
                _ => String::new(),
            };
            (
                format!(
                    "The secure connection to {hub} failed because the node's clock is behind: \
                     it says {now}, before the hub's certificate became valid.{from}{clock_note}"
                ),
                ntp.to_owned(),
            )
        }
        C::Expired | C::ExpiredContext { .. } if clock_wrong => (
            format!(
                "The secure connection to {hub} failed because the dates do not match: the \
                 node's clock says {now}, which cannot be right."
            ),
            ntp.to_owned(),
        ),
        C::Expired | C::ExpiredContext { .. } => hub_cert_expired(hub, cert, &now),
        C::NotValidForName | C::NotValidForNameContext { .. } => wrong_name(hub, cert),
        C::Revoked => (
            format!("The hub's certificate at {hub} has been revoked by your network."),
            "tell the hub's administrator; nothing to change on the node.".to_owned(),
        ),
        C::UnknownIssuer | C::BadSignature => (
            format!(
                "The server at {hub} is not your network's hub: its certificate is not \
                 signed by the network's authority built into this image."
            ),
            "check hub = \"...\" in vantage.toml, and that you flashed the image of the \
             same network; a network that intercepts secure connections (some hotel or \
             company networks) also causes this."
                .to_owned(),
        ),
        other => (
            format!("The hub's certificate at {hub} is not acceptable: {other}."),
            "tell the hub's administrator this message.".to_owned(),
        ),
    })
}

/// The hub's certificate expired (and the node's clock is plausible).
fn hub_cert_expired(hub: &str, cert: &rustls::CertificateError, now: &str) -> (String, String) {
    let when = match cert {
        rustls::CertificateError::ExpiredContext { not_after, .. } => {
            format!(" on {}", vantage_human::utc(unix(*not_after)))
        }
        _ => String::new(),
    };
    (
        format!(
            "The hub's certificate expired{when} (the node's clock says {now}), so the \
             node cannot trust {hub}."
        ),
        "tell the hub's administrator that the hub's certificate has expired \
         (vantage-hub server-cert makes a new one). If the node's clock is far ahead \
         instead, check that it can reach time servers (NTP, UDP port 123)."
            .to_owned(),
    )
}

/// The hub's certificate is the network's but not for the name in `hub`.
fn wrong_name(hub: &str, cert: &rustls::CertificateError) -> (String, String) {
    let host = host_of(hub);
    let names = match cert {
        rustls::CertificateError::NotValidForNameContext { presented, .. }
            if !presented.is_empty() =>
        {
            format!(" It is made out for: {}.", presented.join(", "))
        }
        _ => String::new(),
    };
    (
        format!(
            "The server at {hub} has a certificate from your network's authority, but \
             not for the name {host}.{names}"
        ),
        format!(
            "write the hub's address in vantage.toml exactly as the administrator gave \
             it (hub = \"https://NAME:PORT\", with one of the names above); or ask the \
             administrator to add {host} to the hub's certificate \
             (vantage-hub server-cert --name {host} ...)."
        ),
    )
}

fn unix(t: rustls::pki_types::UnixTime) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

/// The host part of a hub URL (`https://host:port/...`), for messages.
fn host_of(hub: &str) -> &str {
    let rest = hub.strip_prefix("https://").unwrap_or(hub);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

fn log(msg: &str) {
    eprintln!("vantage-provision: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_are_named_by_their_cause() {
        use rustls::CertificateError as C;
        use rustls::pki_types::UnixTime;
        let hub = "https://hub.example.net:8443";
        let what = |e: C, clock_wrong: bool| {
            let (w, todo) =
                describe_tls(hub, &rustls::Error::InvalidCertificate(e), clock_wrong).unwrap();
            format!("{w} / {todo}")
        };
        let t = |s| UnixTime::since_unix_epoch(Duration::from_secs(s));
        let expired = what(
            C::ExpiredContext {
                time: t(1_800_000_000),
                not_after: t(1_764_013_200),
            },
            false,
        );
        assert!(
            expired.contains("hub's certificate expired on 2025-11-24T19:40:00Z"),
            "{expired}"
        );
        assert!(what(C::Expired, true).contains("which cannot be right"));
        let early = what(
            C::NotValidYetContext {
                time: t(0),
                not_before: t(1_764_013_200),
            },
            true,
        );
        assert!(
            early.contains("clock is behind") && early.contains("NTP"),
            "{early}"
        );
        let foreign = what(C::UnknownIssuer, false);
        assert!(foreign.contains("not your network's hub"), "{foreign}");
        let name = what(C::NotValidForName, false);
        assert!(
            name.contains("not for the name hub.example.net") && !name.contains("not your network"),
            "{name}"
        );
        assert!(describe_tls(hub, &rustls::Error::HandshakeNotComplete, false).is_none());
    }

    #[test]
    fn host_of_hub_urls() {
        assert_eq!(host_of("https://hub.example.net:8443/x"), "hub.example.net");
        assert_eq!(host_of("https://127.0.0.1"), "127.0.0.1");
        assert_eq!(host_of("https://[::1]:8443"), "::1");
    }

    #[test]
    fn a_data_directory_of_a_newer_release_stops_provisioning() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path().join("boot");
        let data = DataDir::new(dir.path().join("data"));
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::create_dir_all(data.root()).unwrap();
        std::fs::write(data.format_path(), format!("{}\n", FORMAT + 1)).unwrap();
        let err = run(&Options::new(&boot, data.root())).unwrap_err();
        assert!(
            matches!(&err, Fatal::NeedsVolunteer(m) if m.contains("newer than this release")),
            "{err}"
        );
        let status = std::fs::read_to_string(boot.join(crate::status::FILE_NAME)).unwrap();
        assert!(status.contains("vantage-reset"), "{status}");
    }

    #[test]
    fn reset_wipes_identity_and_agent_state_but_not_lost_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path().join("boot");
        let data = DataDir::new(dir.path().join("data"));
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::create_dir_all(data.root().join("outbox")).unwrap();
        std::fs::create_dir_all(data.root().join("lost+found")).unwrap();
        std::fs::write(data.root().join("outbox/1.json"), "{}").unwrap();
        data.write_key("KEY").unwrap();
        let opts = Options::new(&boot, data.root());
        reset_if_asked(&opts, &data).unwrap();
        assert!(data.key_path().exists(), "no marker, no wipe");
        std::fs::write(boot.join("vantage-reset.txt"), "").unwrap();
        reset_if_asked(&opts, &data).unwrap();
        let left: Vec<_> = std::fs::read_dir(data.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["lost+found"]);
        assert!(!boot.join("vantage-reset.txt").exists());
    }
}
