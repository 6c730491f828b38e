//! The updater: when a heartbeat answer offers a release, fetch its signed
//! record from the hub, verify the quorum against the policy the node holds
//! and check it is for this node (window, selection, target, no downgrade
//! unless allowed), download the binary (the hub first, then each mirror;
//! where it comes from does not matter, its hash and size do), store it,
//! self-test it from a sealed memfd, then switch durably and stop, so that the
//! launcher starts it. A refused release is recorded and reported in every
//! heartbeat; a failed download is retried at the next offer.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vantage_proto::channel::NodeAttrs;
use vantage_proto::node::Capabilities;
use vantage_proto::policy::Policy;
use vantage_proto::release::{Artifact, MAX_RELEASE_BYTES, Release, ReleaseError, SignedRelease};

use crate::approvals::Approvals;
use crate::health::Health;
use crate::hub::Hub;
use crate::reach::Caps;
use crate::releases::Releases;
use crate::sealed::Sealed;
use crate::switch::{BINARY, Store, plausible_version};
use crate::version::{TARGET, VERSION};

/// How long the new binary's self-test may take.
const SELFTEST_TIME: Duration = Duration::from_secs(60);

/// The updater task's parts.
pub struct Updater {
    /// The switch state, and the offers from heartbeat answers.
    pub releases: Releases,
    /// The client to the hub.
    pub hub: Hub,
    /// The hub's base URL.
    pub hub_url: String,
    /// The policy releases are verified against.
    pub approvals: Approvals,
    /// The node's attributes (the rollout's selection).
    pub attrs: NodeAttrs,
    /// The node's capabilities (the rollout's selection).
    pub caps: Caps,
    /// Where a failed download is shown.
    pub health: Health,
}

impl Updater {
    /// Acts on each offer until the node switches.
    pub async fn run(self) {
        let mut offers = self.releases.offers();
        while offers.changed().await.is_ok() {
            let Some(version) = offers.borrow_and_update().clone() else {
                continue;
            };
            if self.releases.wants(&version) {
                self.install(version).await;
            }
        }
    }

    async fn install(&self, version: String) {
        let mut keep = self.releases.keeps();
        keep.push(version.clone());
        let install = Install {
            http: self.hub.http(),
            hub_url: self.hub_url.trim_end_matches('/').to_string(),
            policy: self.approvals.current(),
            attrs: self.attrs.clone(),
            caps: self.caps.get(),
            store: self.releases.store().clone(),
            keep,
        };
        let v = version.clone();
        let outcome = tokio::task::spawn_blocking(move || install.run(&v))
            .await
            .unwrap_or_else(|e| Err(ReleaseError::Download(format!("updater thread: {e}"))));
        match outcome {
            Ok(confirm_secs) => match self.releases.switch_to(&version, confirm_secs) {
                Ok(()) => tracing::info!(
                    "release {version} installed and self-tested; restarting into it \
                     (it must have a heartbeat accepted within {confirm_secs} s)"
                ),
                Err(e) => self
                    .health
                    .set_error(format!("release {version}: cannot store the switch: {e}")),
            },
            // Worth another try at the next offer.
            Err(e @ (ReleaseError::Download(_) | ReleaseError::NotYetValid { .. })) => {
                tracing::warn!("release {version}: {e} ({}); trying again later", e.code());
                self.health.set_error(format!("release {version}: {e}"));
            }
            Err(e) => {
                tracing::error!("release {version} refused: {e} ({})", e.code());
                self.releases.refuse(&version, &e);
            }
        }
    }
}

/// One installation, on a blocking thread.
struct Install {
    http: ureq::Agent,
    hub_url: String,
    policy: Arc<Policy>,
    attrs: NodeAttrs,
    caps: Option<Capabilities>,
    store: Store,
    keep: Vec<String>,
}

impl Install {
    /// Verifies, downloads, stores and self-tests `version`; returns the
    /// release's time to be confirmed.
    fn run(&self, version: &str) -> Result<u64, ReleaseError> {
        if !plausible_version(version) {
            return Err(ReleaseError::Download(format!(
                "the hub offered {version:?}, not a version"
            )));
        }
        let url = format!("{}/v1/releases/{version}", self.hub_url);
        let text =
            get_bytes(&self.http, &url, MAX_RELEASE_BYTES).map_err(ReleaseError::Download)?;
        let signed = SignedRelease::from_json(&text).map_err(ReleaseError::Invalid)?;
        let (release, approvers) = signed.verify(&self.policy)?;
        if release.version != version {
            return Err(ReleaseError::Download(format!(
                "asked the hub for release {version}, got {}",
                release.version
            )));
        }
        let now = crate::certs::unix_now();
        release.check_for_node(&self.attrs, self.caps.as_ref(), TARGET, VERSION, now)?;
        let artifact = release
            .artifact(TARGET, BINARY)
            .ok_or_else(|| ReleaseError::NoTarget(TARGET.to_string()))?;
        tracing::info!(
            "release {version} verified (approved by {}); downloading {} bytes",
            approvers.join(", "),
            artifact.size
        );
        let keep: Vec<&str> = self.keep.iter().map(String::as_str).collect();
        let store = |e: std::io::Error| ReleaseError::Download(format!("storing it: {e}"));
        self.store.prune(&keep).map_err(store)?;
        let bytes = self.download(&release, artifact)?;
        self.store.install(version, &text, &bytes).map_err(store)?;
        selftest(version, &bytes, artifact)?;
        Ok(release.rollout.confirm_secs)
    }

    /// The binary from the hub, else from the first mirror that has it.
    fn download(&self, release: &Release, artifact: &Artifact) -> Result<Vec<u8>, ReleaseError> {
        let path = format!("{}/{TARGET}/{BINARY}", release.version);
        let hub = (
            self.http.clone(),
            format!("{}/v1/releases/{path}", self.hub_url),
        );
        let mirrors = release
            .mirrors
            .iter()
            .map(|m| (mirror_agent(), format!("{m}{path}")));
        let mut last = ReleaseError::Download("no source".into());
        for (http, url) in std::iter::once(hub).chain(mirrors) {
            last = match get_bytes(&http, &url, artifact.size + 1) {
                Ok(bytes) => match artifact.check(&bytes) {
                    Ok(()) => return Ok(bytes),
                    Err(e) => e,
                },
                Err(e) => ReleaseError::Download(e),
            };
            tracing::warn!("release {}: {url}: {last}", release.version);
        }
        Err(last)
    }
}

/// A client for mirrors: public roots (the content is checked by hash, the
/// TLS only keeps the download private), no client certificate.
fn mirror_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .https_only(true)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .new_agent()
}

/// `GET url`, at most `limit` bytes, a 200 answer only.
fn get_bytes(http: &ureq::Agent, url: &str, limit: u64) -> Result<Vec<u8>, String> {
    let mut resp = http
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().with_config().limit(limit).read_to_vec();
    match (status, body) {
        (200, Ok(bytes)) => Ok(bytes),
        (200, Err(e)) => Err(format!("GET {url}: {e}")),
        (s, body) => Err(format!(
            "GET {url}: HTTP {s}: {}",
            crate::logging::one_line(&String::from_utf8_lossy(&body.unwrap_or_default()))
        )),
    }
}

/// Runs the new binary from a sealed memfd: it must name the release's
/// version and pass its own self-test (key and CSR) on this CPU.
fn selftest(version: &str, bytes: &[u8], artifact: &Artifact) -> Result<(), ReleaseError> {
    let sealed = Sealed::new(
        &format!("vantage-agent-{version}-selftest"),
        bytes,
        artifact,
    )?;
    let failed = |what: String| ReleaseError::SelfTest(what);
    let out = run(sealed.command().arg("--version")).map_err(failed)?;
    let want = format!("vantage-agent {version}");
    if out.trim() != want {
        return Err(failed(format!(
            "--version says {:?}, not {want:?}",
            out.trim()
        )));
    }
    run(sealed.command().arg("selftest")).map_err(failed)?;
    Ok(())
}

/// Runs `cmd` to its end within [`SELFTEST_TIME`]; its standard output if it
/// succeeded.
fn run(cmd: &mut Command) -> Result<String, String> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let mut child = KillOnDrop(child);
    let start = Instant::now();
    loop {
        match child.0.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => break,
            Some(status) => return Err(format!("{cmd:?}: {status}")),
            None if start.elapsed() > SELFTEST_TIME => {
                return Err(format!("{cmd:?}: no answer within {SELFTEST_TIME:?}"));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.0.stdout.take() {
        std::io::Read::read_to_string(&mut stdout, &mut out).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
