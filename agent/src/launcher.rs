//! The launcher: the first thing `vantage-agent run` does in the image's own
//! binary. If the switch state names a release, it verifies the release's
//! signed record against the approval policy the node holds (the shipped
//! policy and its verified successors), its bytes against the record's
//! artifact for this target, and executes exactly those bytes from a sealed
//! memfd. A release that is not yet confirmed has its start counted
//! (durably) before; one that already had its start is rolled back. Whatever
//! fails falls back to the previous release, and last to the image's own
//! binary, which then runs in this process. The executed release finds
//! [`LAUNCHED`] in its environment and does not launch again.

use std::ffi::OsString;

use anyhow::anyhow;
use vantage_node::policy_chain::load_policy;
use vantage_proto::release::{ReleaseError, SignedRelease};

use crate::config::Config;
use crate::policy_update::PolicyChain;
use crate::sealed::Sealed;
use crate::switch::{BINARY, Start, Store, Switch};
use crate::version::TARGET;

/// Set by the launcher for the release it executes: its version.
pub const LAUNCHED: &str = "VANTAGE_RELEASE_LAUNCHED";

/// The version this process was launched as, if it is a release.
pub fn launched() -> Option<String> {
    std::env::var(LAUNCHED).ok()
}

/// Executes the release the switch state names, if one verifies; returns
/// when the image's own binary (this process) is to run.
pub fn launch(cfg: &Config) {
    if launched().is_some() {
        return;
    }
    let store = Store::new(&cfg.data_dir);
    let mut state = store.load();
    // What is on disk: every change is stored before anything is started.
    let mut stored = state.clone();
    loop {
        let failed = state.failed.clone();
        let start = state.on_start();
        if let Some(f) = state
            .failed
            .as_ref()
            .filter(|&f| failed.as_ref() != Some(f))
        {
            tracing::error!("release {f}; going back");
        }
        let Start::Release(version) = start else {
            save_if_changed(&store, &stored, &state);
            return;
        };
        let why = match verified(cfg, &store, &version) {
            Ok(sealed) if save_if_changed(&store, &stored, &state) => {
                tracing::info!("starting release {version} from a sealed copy");
                let mut env: Vec<_> = std::env::vars_os().collect();
                env.push((LAUNCHED.into(), version.clone().into()));
                let err = sealed.exec(std::env::args_os().collect::<Vec<OsString>>(), env);
                stored = state.clone();
                ReleaseError::RolledBack(format!("cannot execute it: {err}"))
            }
            // Unsaved, the start would not count: a crashing release could
            // then be started for ever.
            Ok(_) => return,
            Err(e) => e,
        };
        tracing::error!("release {version} is not started: {why}");
        state.roll_back(&why);
    }
}

/// Stores `state` if it differs from `stored`; false if that failed.
fn save_if_changed(store: &Store, stored: &Switch, state: &Switch) -> bool {
    if stored == state {
        return true;
    }
    match store.save(state) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(
                "cannot store the release switch state: {e}; running the image's agent"
            );
            false
        }
    }
}

/// The binary of release `version`, sealed and checked against its record,
/// which verifies against the node's policy.
fn verified(cfg: &Config, store: &Store, version: &str) -> Result<Sealed, ReleaseError> {
    let rolled_back =
        |what: &str, e: &dyn std::fmt::Display| ReleaseError::RolledBack(format!("{what}: {e}"));
    let text = std::fs::read(store.record(version)).map_err(|e| rolled_back("record", &e))?;
    let signed = SignedRelease::from_json(&text).map_err(ReleaseError::Invalid)?;
    let shipped = load_policy(&cfg.policy).map_err(|e| rolled_back("policy", &anyhow!(e)))?;
    let policy = PolicyChain::open(shipped, &cfg.data_dir).current();
    let (release, _) = signed.verify(&policy)?;
    if release.version != version {
        return Err(rolled_back(
            "record",
            &format!("names version {}", release.version),
        ));
    }
    let artifact = release
        .artifact(TARGET, BINARY)
        .ok_or_else(|| ReleaseError::NoTarget(TARGET.to_string()))?;
    let bytes = std::fs::read(store.binary(version)).map_err(|e| rolled_back("binary", &e))?;
    Sealed::new(&format!("vantage-agent-{version}"), &bytes, artifact)
}
