//! Which agent binary a node runs: the durable switch state of agent releases
//! (`releases/state.json` in the data directory) and the files of each
//! installed release (`releases/<version>/release.json`, the signed record,
//! and `releases/<version>/vantage-agent`, its bytes).
//!
//! Every change of the state is one atomic write (write, fsync, rename, fsync
//! the directory), and files are written before the state names them, so a
//! power cut at any moment leaves either the old state or the new one, each
//! naming only complete files (the launcher checks them again anyway).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vantage_proto::release::{BINARIES, FailedRelease, ReleaseError};

/// Starts an unconfirmed release gets: the next start without a heartbeat
/// accepted by the hub in between rolls back (a crash, a failed start, or no
/// confirmation within the release's `confirm_secs`).
pub const MAX_UNCONFIRMED_STARTS: u32 = 1;

/// The binary a release carries for the agent.
pub const BINARY: &str = BINARIES[0];

/// The switch state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// The release to run (`None`: the image's own binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Slot>,
    /// The last confirmed release before `current`, where a rollback goes
    /// (`None`: the image's own binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The last release that failed here, reported in every heartbeat until
    /// a later release is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedRelease>,
}

/// An installed release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// Its version.
    pub version: String,
    /// Whether the hub accepted a heartbeat from it.
    pub confirmed: bool,
    /// How often the launcher started it unconfirmed.
    #[serde(default)]
    pub starts: u32,
    /// How long it has to be confirmed, per start.
    #[serde(default)]
    pub confirm_secs: u64,
}

impl Slot {
    fn confirmed(version: String) -> Slot {
        Slot {
            version,
            confirmed: true,
            starts: 0,
            confirm_secs: 0,
        }
    }
}

/// What the launcher starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The image's own binary (this process goes on).
    Own,
    /// The release of this version.
    Release(String),
}

impl Switch {
    /// What to start now. Counts a start of an unconfirmed release, and
    /// rolls back one that already had its starts (store the state before
    /// starting anything).
    pub fn on_start(&mut self) -> Start {
        loop {
            let Some(slot) = &mut self.current else {
                return Start::Own;
            };
            if slot.confirmed {
                return Start::Release(slot.version.clone());
            }
            if slot.starts < MAX_UNCONFIRMED_STARTS {
                slot.starts += 1;
                return Start::Release(slot.version.clone());
            }
            let detail = format!(
                "started {} time(s) without a heartbeat accepted by the hub within {} s \
                 (it crashed, failed to start, or could not reach the hub)",
                slot.starts, slot.confirm_secs
            );
            self.roll_back(&ReleaseError::RolledBack(detail));
        }
    }

    /// Gives up the current release for `why` (recorded as the failed one)
    /// and goes back to the previous one (or the image's own binary).
    pub fn roll_back(&mut self, why: &ReleaseError) {
        if let Some(slot) = self.current.take() {
            self.failed = Some(FailedRelease {
                version: slot.version,
                code: why.code().to_string(),
                detail: why.to_string(),
            });
        }
        self.current = self.previous.take().map(Slot::confirmed);
    }

    /// Records a release refused before it was switched to.
    pub fn refuse(&mut self, version: &str, why: &ReleaseError) {
        self.failed = Some(FailedRelease {
            version: version.to_string(),
            code: why.code().to_string(),
            detail: why.to_string(),
        });
    }

    /// Makes `version` the current release, unconfirmed; the confirmed
    /// current one (if any) becomes the one to roll back to.
    pub fn switch_to(&mut self, version: &str, confirm_secs: u64) {
        if let Some(slot) = self.current.take().filter(|s| s.confirmed) {
            self.previous = Some(slot.version);
        }
        self.current = Some(Slot {
            version: version.to_string(),
            confirmed: false,
            starts: 0,
            confirm_secs,
        });
    }

    /// The hub accepted a heartbeat of the agent `version`: if that is the
    /// unconfirmed current release, it is kept (and the earlier failure
    /// forgotten). Returns whether anything changed.
    pub fn confirm(&mut self, version: &str) -> bool {
        match &mut self.current {
            Some(slot) if slot.version == version && !slot.confirmed => {
                slot.confirmed = true;
                slot.starts = 0;
                self.previous = None;
                self.failed = None;
                true
            }
            _ => false,
        }
    }

    /// The current release while it awaits confirmation.
    pub fn unconfirmed(&self) -> Option<&Slot> {
        self.current.as_ref().filter(|s| !s.confirmed)
    }

    /// The versions whose files must be kept.
    pub fn keeps(&self) -> Vec<&str> {
        let current = self.current.as_ref().map(|s| s.version.as_str());
        current
            .into_iter()
            .chain(self.previous.as_deref())
            .collect()
    }
}

/// Whether `version` is safe as a directory name (a release's version is
/// SemVer, but an offer comes from the hub and is checked before any use).
pub fn plausible_version(version: &str) -> bool {
    version.len() <= 64
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-".contains(&b))
}

/// The release files and the state in a data directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store of the data directory `data_dir`.
    pub fn new(data_dir: &Path) -> Store {
        Store {
            dir: data_dir.join("releases"),
        }
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The signed record of `version`.
    pub fn record(&self, version: &str) -> PathBuf {
        self.dir.join(version).join("release.json")
    }

    /// The agent binary of `version`.
    pub fn binary(&self, version: &str) -> PathBuf {
        self.dir.join(version).join(BINARY)
    }

    /// The stored state; none yet is the default (the image's own binary).
    /// An unreadable one is logged and taken as the default too: the
    /// image's own binary is always safe to run.
    pub fn load(&self) -> Switch {
        self.read().unwrap_or_else(|why| {
            tracing::error!("release switch state unreadable ({why}); the image's agent runs");
            Switch::default()
        })
    }

    fn read(&self) -> Result<Switch, String> {
        let path = self.state_path();
        match fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Switch::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }

    /// Stores the state durably.
    pub fn save(&self, state: &Switch) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        crate::durable::write(&self.state_path(), &bytes)
    }

    /// Writes the record and the binary of `version` durably.
    pub fn install(&self, version: &str, record: &[u8], binary: &[u8]) -> io::Result<()> {
        fs::create_dir_all(self.dir.join(version))?;
        crate::durable::write(&self.binary(version), binary)?;
        crate::durable::write(&self.record(version), record)
    }

    /// Removes every release directory but those of `keep` (what a crash
    /// left half-written, releases given up or superseded).
    pub fn prune(&self, keep: &[&str]) -> io::Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_dir() && !keep.iter().any(|k| name == **k) {
                fs::remove_dir_all(entry.path())?;
            }
        }
        vantage_node::durable::sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switched(from: Option<&str>, to: &str) -> Switch {
        let mut s = Switch::default();
        if let Some(v) = from {
            s.switch_to(v, 60);
            assert!(s.confirm(v));
        }
        s.switch_to(to, 60);
        s
    }

    #[test]
    fn a_new_release_gets_one_start_then_rolls_back_to_the_image() {
        let mut s = switched(None, "0.2.0");
        assert_eq!(s.on_start(), Start::Release("0.2.0".into()));
        assert_eq!(s.unconfirmed().unwrap().starts, 1);
        // Started again without a confirmation: it crashed or was not confirmed.
        assert_eq!(s.on_start(), Start::Own);
        let failed = s.failed.clone().unwrap();
        assert_eq!(
            (failed.version.as_str(), failed.code.as_str()),
            ("0.2.0", "release-rolled-back")
        );
        assert_eq!(s.current, None);
        // And it stays on the image's binary, still reporting the failure.
        assert_eq!(s.on_start(), Start::Own);
        assert!(s.failed.is_some());
    }

    #[test]
    fn a_rollback_goes_to_the_previous_confirmed_release() {
        let mut s = switched(Some("0.2.0"), "0.3.0");
        assert_eq!(s.previous.as_deref(), Some("0.2.0"));
        assert_eq!(s.keeps(), ["0.3.0", "0.2.0"]);
        assert_eq!(s.on_start(), Start::Release("0.3.0".into()));
        assert_eq!(s.on_start(), Start::Release("0.2.0".into()));
        assert_eq!(s.failed.as_ref().unwrap().version, "0.3.0");
        assert!(s.current.as_ref().unwrap().confirmed);
        assert_eq!(s.previous, None);
    }

    #[test]
    fn confirmation_keeps_the_release_and_forgets_the_failure() {
        let mut s = switched(None, "0.2.0");
        s.refuse("0.1.5", &ReleaseError::Download("x".into()));
        assert_eq!(s.on_start(), Start::Release("0.2.0".into()));
        assert!(!s.confirm("0.1.9"), "only the current release is confirmed");
        assert!(s.confirm("0.2.0"));
        assert!(!s.confirm("0.2.0"), "once");
        assert_eq!(s.failed, None);
        for _ in 0..3 {
            assert_eq!(s.on_start(), Start::Release("0.2.0".into()));
        }
    }

    #[test]
    fn switching_from_an_unconfirmed_release_keeps_the_last_good_one() {
        let mut s = switched(Some("0.2.0"), "0.3.0");
        s.switch_to("0.4.0", 60);
        assert_eq!(s.previous.as_deref(), Some("0.2.0"));
    }

    #[test]
    fn a_release_that_fails_verification_falls_back() {
        let mut s = switched(Some("0.2.0"), "0.3.0");
        assert!(s.confirm("0.3.0"));
        s.roll_back(&ReleaseError::HashMismatch {
            want: "a".into(),
            got: "b".into(),
        });
        assert_eq!(s.failed.as_ref().unwrap().code, "release-hash-mismatch");
        assert_eq!(s.on_start(), Start::Own);
    }

    #[test]
    fn versions_from_the_hub_are_checked_before_use_as_names() {
        for ok in ["0.2.0", "1.0.0-rc.1+build.5"] {
            assert!(plausible_version(ok), "{ok}");
        }
        for bad in ["", "..", "../x", "0.2/0", ".0", "a1", &"1".repeat(65)] {
            assert!(!plausible_version(bad), "{bad}");
        }
    }

    /// A power cut between any two writes of an update leaves a state that
    /// starts a good version: the files are written before the state names
    /// them, and each write replaces a whole file.
    #[test]
    fn store_survives_each_step_of_an_update() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load(), Switch::default());
        // Step 1: files written, state not yet: the old state still starts the image.
        store.install("0.2.0", b"{}", b"bin").unwrap();
        assert_eq!(store.load().on_start(), Start::Own);
        // Step 2: the state names it.
        let mut s = store.load();
        s.switch_to("0.2.0", 60);
        store.save(&s).unwrap();
        let mut s = store.load();
        assert_eq!(s.on_start(), Start::Release("0.2.0".into()));
        store.save(&s).unwrap();
        // A power cut before confirmation: the next start rolls back.
        let mut s = store.load();
        assert_eq!(s.on_start(), Start::Own);
        store.prune(&s.keeps()).unwrap();
        assert!(!store.binary("0.2.0").exists());
        assert_eq!(
            fs::read_dir(dir.path().join("releases")).unwrap().count(),
            1
        );
    }

    #[test]
    fn an_unreadable_state_starts_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::create_dir_all(dir.path().join("releases")).unwrap();
        fs::write(dir.path().join("releases/state.json"), b"{\"current\": 1").unwrap();
        let why = store.read().unwrap_err();
        assert!(why.contains("state.json"), "{why}");
        assert_eq!(store.load(), Switch::default());
    }
}
