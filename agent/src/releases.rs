//! The running agent's handle on agent releases: what the heartbeat reports
//! (whether this agent came from a release, the last release that failed
//! here), the confirmation of a newly switched release when the hub accepts
//! its heartbeat, the hub's offers for the updater, and the stop after a
//! switch or an unconfirmed start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use vantage_proto::release::{ReleaseError, ReleaseReport};

use crate::switch::{Store, Switch};
use crate::version::VERSION;

/// Exit code after switching to a new release: the supervisor (systemd's
/// `Restart=always`) starts the launcher, which starts the release.
pub const EXIT_SWITCHED: u8 = 75;
/// Exit code of a release the hub did not confirm within its `confirm_secs`:
/// the next start rolls it back.
pub const EXIT_UNCONFIRMED: u8 = 76;

/// A handle on the node's releases, shared by the heartbeat and the updater.
#[derive(Clone)]
pub struct Releases(Arc<Inner>);

struct Inner {
    store: Store,
    state: Mutex<Switch>,
    /// Whether this agent is a release the launcher started.
    from_release: bool,
    offers: watch::Sender<Option<String>>,
    switched: Notify,
}

impl Releases {
    /// The releases of `store`, for an agent launched as `launched`.
    pub fn open(store: Store, launched: Option<&str>) -> Releases {
        let state = store.load();
        Releases(Arc::new(Inner {
            store,
            state: Mutex::new(state),
            from_release: launched == Some(VERSION),
            offers: watch::Sender::new(None),
            switched: Notify::new(),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Switch> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The release files.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// What the heartbeat says about releases (nothing for an image's agent
    /// that never had one).
    pub fn report(&self) -> Option<ReleaseReport> {
        let report = ReleaseReport {
            failed: self.state().failed.clone(),
            from_release: self.0.from_release,
        };
        (report != ReleaseReport::default()).then_some(report)
    }

    /// The hub accepted a heartbeat: confirms this agent's release if it
    /// awaits that.
    pub fn accepted(&self) {
        let mut state = self.state();
        let mut next = state.clone();
        if !self.0.from_release || !next.confirm(VERSION) {
            return;
        }
        match self.0.store.save(&next) {
            Ok(()) => {
                tracing::info!("release {VERSION} confirmed: the hub accepted its heartbeat");
                *state = next;
            }
            Err(e) => tracing::error!("cannot store the confirmation of release {VERSION}: {e}"),
        }
    }

    /// Waits out this release's time to be confirmed; returns if it was not
    /// (never for a confirmed release or the image's agent).
    pub async fn unconfirmed(&self) {
        // The guard is dropped before any await: the state lock is never
        // held across one.
        let secs = self
            .state()
            .unconfirmed()
            .filter(|slot| self.0.from_release && slot.version == VERSION)
            .map(|slot| slot.confirm_secs);
        let Some(secs) = secs else {
            return std::future::pending().await;
        };
        tokio::time::sleep(Duration::from_secs(secs)).await;
        if self.state().unconfirmed().is_none() {
            return std::future::pending().await;
        }
        tracing::error!(
            "release {VERSION}: no heartbeat accepted by the hub within {secs} s; stopping \
             (exit {EXIT_UNCONFIRMED}), the next start goes back"
        );
    }

    /// Takes the hub's offer from a heartbeat answer.
    pub fn offer(&self, version: Option<String>) {
        self.0.offers.send_replace(version);
    }

    /// The offers, for the updater.
    pub fn offers(&self) -> watch::Receiver<Option<String>> {
        self.0.offers.subscribe()
    }

    /// Whether an offered `version` is worth installing now: not the one
    /// running, not the one that failed, and not while this agent's own
    /// release awaits confirmation.
    pub fn wants(&self, version: &str) -> bool {
        let state = self.state();
        version != VERSION
            && state.failed.as_ref().is_none_or(|f| f.version != version)
            && state.unconfirmed().is_none()
    }

    /// Records a refused release (reported until a later one succeeds).
    pub fn refuse(&self, version: &str, why: &ReleaseError) {
        let mut state = self.state();
        let mut next = state.clone();
        next.refuse(version, why);
        if let Err(e) = self.0.store.save(&next) {
            tracing::error!("cannot store the refusal of release {version}: {e}");
        }
        *state = next;
    }

    /// The versions whose files are kept (the current and previous release).
    pub fn keeps(&self) -> Vec<String> {
        self.state()
            .keeps()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Switches to the installed release `version` (durably), and wakes
    /// [`Releases::switched`].
    pub fn switch_to(&self, version: &str, confirm_secs: u64) -> std::io::Result<()> {
        let mut state = self.state();
        let mut next = state.clone();
        next.switch_to(version, confirm_secs);
        self.0.store.save(&next)?;
        *state = next;
        self.0.switched.notify_one();
        Ok(())
    }

    /// Returns once the node switched to a new release.
    pub async fn switched(&self) {
        self.0.switched.notified().await;
    }
}
