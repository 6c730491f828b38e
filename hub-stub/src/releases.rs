//! Agent releases at the hub: the accepted releases ([`Catalog`]), where
//! their binaries are kept, which release each node is offered, and the
//! rollout in waves.
//!
//! The hub only paces a rollout; every node checks the quorum, its own fit
//! and the bytes itself. A wave's nodes are those the hub heard from within
//! the release window (`--release-window`, three default heartbeat
//! intervals) that match the selection, fall in the wave and report a target
//! the release has a binary for: nodes that are away, or run an agent from
//! before releases, do not hold a wave back. The next wave opens when every
//! node of the open waves runs the version (or a newer one) or reported it
//! failed; the rollout stops by itself when, among a wave's nodes that tried,
//! the failed share exceeds the release's `max_rollback_percent`.

use crate::db::{Db, DbError, NodeRow, ReleaseRow};
use crate::sync::lock;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vantage_proto::api::{ReleaseState, ReleaseStatus, ReleaseStop, WaveStatus};
use vantage_proto::release::{BINARIES, Release, SignedRelease};

/// An accepted release and its rollout.
#[derive(Debug, Clone)]
pub struct Entry {
    /// As signed and stored.
    pub signed: SignedRelease,
    /// Its signed part, parsed.
    pub release: Release,
    /// Its version, for ordering.
    pub semver: semver::Version,
    /// The stored row (submitter, signers, open wave, stop).
    pub row: ReleaseRow,
}

impl Entry {
    /// The entry of a stored row; `None` if it does not parse (an edited database).
    pub fn from_row(row: ReleaseRow) -> Option<Self> {
        let signed: SignedRelease = serde_json::from_str(&row.signed).ok()?;
        let release = Release::from_value(&signed.release).ok()?;
        let semver = release.semver().ok()?;
        Some(Self {
            signed,
            release,
            semver,
            row,
        })
    }

    /// `<target>/<binary>` of the release not uploaded under `root` yet.
    pub fn missing(&self, root: &Path) -> Vec<String> {
        let r = &self.release;
        r.targets
            .iter()
            .flat_map(|(t, bins)| bins.keys().map(move |b| (t, b)))
            .filter(|(t, b)| !binary_path(root, &r.version, t, b).is_file())
            .map(|(t, b)| format!("{t}/{b}"))
            .collect()
    }

    fn target_uploaded(&self, root: &Path, target: &str) -> bool {
        let r = &self.release;
        r.targets.get(target).is_some_and(|bins| {
            bins.keys()
                .all(|b| binary_path(root, &r.version, target, b).is_file())
        })
    }
}

/// Where a release's binary is kept: `<root>/releases/<version>/<target>/<binary>`.
/// Only called with the names of a validated release (SemVer, a target of
/// `[A-Za-z0-9_-]`, one of [`BINARIES`]), so no part climbs out.
pub fn binary_path(root: &Path, version: &str, target: &str, binary: &str) -> PathBuf {
    root.join("releases")
        .join(version)
        .join(target)
        .join(binary)
}

/// Copies the uploaded binaries (`<root>/releases/`) into the backup at `out`.
pub fn backup_binaries(root: &Path, out: &Path) -> std::io::Result<()> {
    let from = root.join("releases");
    if from.is_dir() {
        copy_tree(&from, &out.join("releases"))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The accepted releases, newest version first, as the database holds them.
#[derive(Default)]
pub struct Catalog {
    entries: Mutex<Vec<Arc<Entry>>>,
    // One rollout evaluation at a time, so two cannot both advance a wave.
    evaluating: Mutex<()>,
}

impl Catalog {
    /// The releases stored in `db`.
    pub fn load(db: &Db) -> Result<Self, DbError> {
        let c = Self::default();
        for row in db.releases()? {
            let version = row.version.clone();
            match Entry::from_row(row) {
                Some(e) => c.put(e),
                None => tracing::error!("stored release {version} does not parse; left out"),
            }
        }
        Ok(c)
    }

    /// Adds or replaces (by version) an entry.
    pub fn put(&self, e: Entry) {
        let mut all = lock(&self.entries);
        all.retain(|x| x.release.version != e.release.version);
        all.push(Arc::new(e));
        all.sort_by(|a, b| b.semver.cmp(&a.semver));
    }

    /// Reads one release again from `db` (after it was stored), in step
    /// with rollout evaluations.
    pub fn refresh(&self, db: &Db, version: &str) -> Result<(), DbError> {
        let _one = lock(&self.evaluating);
        if let Some(e) = db
            .releases()?
            .into_iter()
            .find(|r| r.version == version)
            .and_then(Entry::from_row)
        {
            self.put(e);
        }
        Ok(())
    }

    /// Whether the hub holds no release.
    pub fn is_empty(&self) -> bool {
        lock(&self.entries).is_empty()
    }

    /// Every entry, newest version first.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        lock(&self.entries).clone()
    }

    /// One entry.
    pub fn get(&self, version: &str) -> Option<Arc<Entry>> {
        lock(&self.entries)
            .iter()
            .find(|e| e.release.version == version)
            .cloned()
    }

    /// The version offered to `node` now: the newest release not stopped,
    /// with every binary for its target uploaded, that it would install
    /// (window, selection, target, version), whose wave for it is open and
    /// that it did not report failed.
    pub fn offer(&self, root: &Path, node: &NodeRow, running: &str, now: i64) -> Option<String> {
        let report = node.release.as_ref()?;
        let target = report.target.as_deref()?;
        let failed = report.failed.as_ref().map(|f| f.version.as_str());
        let attrs = node.attrs.for_node(&node.id);
        let now = u64::try_from(now).unwrap_or(0);
        self.all()
            .into_iter()
            .find(|e| {
                let r = &e.release;
                e.row.stopped.is_none()
                    && failed != Some(r.version.as_str())
                    && r.wave_of(&node.id).is_some_and(|w| w <= e.row.wave)
                    && r.check_for_node(&attrs, node.caps.as_ref(), target, running, now)
                        .is_ok()
                    && e.target_uploaded(root, target)
            })
            .map(|e| e.release.version.clone())
    }

    /// Counts every release's waves from `nodes`, opens the next wave or
    /// stops a rollout where it should (stored and audited), and returns
    /// every release's status, newest first.
    pub fn evaluate(
        &self,
        db: &Db,
        root: &Path,
        now: i64,
        window: Duration,
    ) -> Result<Vec<ReleaseStatus>, DbError> {
        let _one = lock(&self.evaluating);
        let nodes = db.nodes()?;
        let since = now - i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        for e in self.all() {
            let mut waves = count_waves(&e, &nodes, since);
            let missing = e.missing(root);
            let live = missing.is_empty() && phase(&e.release, now).is_none();
            let e = if live && e.row.stopped.is_none() {
                self.step(db, &e, &waves, now)?
            } else {
                e
            };
            for (i, w) in waves.iter_mut().enumerate() {
                w.open = e.row.stopped.is_none() && i <= e.row.wave;
            }
            out.push(status(&e, waves, missing, now));
        }
        Ok(out)
    }

    /// Applies [`next_step`] to one live release: stores and audits a stop or
    /// an opened wave, and returns the entry as it is now.
    fn step(
        &self,
        db: &Db,
        e: &Arc<Entry>,
        waves: &[WaveStatus],
        now: i64,
    ) -> Result<Arc<Entry>, DbError> {
        let r = &e.release;
        let subject = format!("release:{}", r.version);
        let mut next = (**e).clone();
        match next_step(r, e.row.wave, waves) {
            Step::Stop(reason) => {
                tracing::warn!(version = r.version, reason, "release rollout stopped");
                db.stop_release(&r.version, now, &reason)?;
                db.audit(
                    now,
                    "hub",
                    "release.stop",
                    &subject,
                    &serde_json::json!({"reason": reason, "wave": e.row.wave}),
                )?;
                next.row.stopped = Some((now, reason));
            }
            Step::Open(wave) => {
                tracing::info!(version = r.version, wave, "release wave opened");
                db.set_release_wave(&r.version, wave)?;
                db.audit(
                    now,
                    "hub",
                    "release.advance",
                    &subject,
                    &serde_json::json!({"from": e.row.wave, "to": wave, "percent": r.rollout.waves[wave]}),
                )?;
                next.row.wave = wave;
            }
            Step::Stay => return Ok(e.clone()),
        }
        self.put(next);
        Ok(self.get(&r.version).expect("just put"))
    }
}

/// Where a release is by the clock alone: `Some` before or after its window.
fn phase(r: &Release, now: i64) -> Option<ReleaseState> {
    let now = u64::try_from(now).unwrap_or(0);
    if now < r.not_before {
        Some(ReleaseState::Scheduled)
    } else if now >= r.expires {
        Some(ReleaseState::Expired)
    } else {
        None
    }
}

fn status(e: &Entry, waves: Vec<WaveStatus>, missing: Vec<String>, now: i64) -> ReleaseStatus {
    let r = &e.release;
    let last_open = e.row.wave + 1 == waves.len();
    let state = if e.row.stopped.is_some() {
        ReleaseState::Stopped
    } else if let Some(p) = phase(r, now).filter(|p| *p == ReleaseState::Expired) {
        p
    } else if !missing.is_empty() {
        ReleaseState::WaitingBinaries
    } else if let Some(p) = phase(r, now) {
        p
    } else if last_open && waves.iter().all(|w| w.pending == 0) {
        ReleaseState::Complete
    } else {
        ReleaseState::RollingOut
    };
    ReleaseStatus {
        version: r.version.clone(),
        state,
        submitted: e.row.submitted,
        submitter: e.row.submitter.clone(),
        signers: e.row.signers.clone(),
        not_before: r.not_before,
        expires: r.expires,
        missing,
        wave: e.row.wave,
        waves,
        stopped: e
            .row
            .stopped
            .clone()
            .map(|(at, reason)| ReleaseStop { at, reason }),
        audit: Vec::new(),
    }
}

/// Each wave's nodes (see the module's comment) and how far they got.
pub fn count_waves(e: &Entry, nodes: &[NodeRow], since: i64) -> Vec<WaveStatus> {
    let r = &e.release;
    let mut waves: Vec<WaveStatus> = r
        .rollout
        .waves
        .iter()
        .map(|&percent| WaveStatus {
            percent,
            ..WaveStatus::default()
        })
        .collect();
    for n in nodes {
        let Some(report) = n.release.as_ref() else {
            continue;
        };
        let counts = n.revoked.is_none()
            && report.heartbeat >= since
            && report
                .target
                .as_deref()
                .is_some_and(|t| r.artifact(t, BINARIES[0]).is_some())
            && r.rollout
                .select
                .matches(&n.attrs.for_node(&n.id), n.caps.as_ref());
        let Some(w) = r.wave_of(&n.id).filter(|_| counts) else {
            continue;
        };
        let wave = &mut waves[w];
        wave.nodes += 1;
        let runs = n
            .agent_version
            .as_deref()
            .and_then(|v| semver::Version::parse(v).ok())
            .is_some_and(|v| v >= e.semver);
        if runs {
            wave.updated += 1;
        } else if report
            .failed
            .as_ref()
            .is_some_and(|f| f.version == r.version)
        {
            wave.failed += 1;
        } else {
            wave.pending += 1;
        }
    }
    waves
}

/// What a live rollout does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing changes.
    Stay,
    /// Open waves up to this index.
    Open(usize),
    /// Stop, for this reason.
    Stop(String),
}

/// The next step of a rollout whose waves up to `open` are open: stop when
/// the failed share of an open wave's nodes that tried exceeds
/// `max_rollback_percent`; otherwise open the next waves while every node
/// of the open ones settled (runs it or failed it).
pub fn next_step(r: &Release, open: usize, waves: &[WaveStatus]) -> Step {
    let max = u64::from(r.rollout.max_rollback_percent);
    for (i, w) in waves.iter().enumerate().take(open + 1) {
        let tried = w.updated + w.failed;
        if w.failed > 0 && w.failed * 100 > max * tried {
            return Step::Stop(format!(
                "wave {} ({}%): {} of the {tried} nodes that tried it failed or rolled back, \
                 more than the release's {max}%",
                i + 1,
                w.percent,
                w.failed
            ));
        }
    }
    let mut wave = open;
    while wave + 1 < waves.len() && waves[..=wave].iter().all(|w| w.pending == 0) {
        wave += 1;
    }
    if wave == open {
        Step::Stay
    } else {
        Step::Open(wave)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn release(waves: &[u8], max: u8) -> Release {
        Release::from_value(&json!({
            "v": 1, "version": "0.2.0",
            "targets": {"t": {"vantage-agent": vantage_proto::release::Artifact::of(b"a")}},
            "rollout": {"waves": waves, "max_rollback_percent": max, "confirm_secs": 60},
            "not_before": 1, "expires": 10, "proposer": "p"
        }))
        .unwrap()
    }

    fn wave(nodes: u64, updated: u64, failed: u64) -> WaveStatus {
        WaveStatus {
            percent: 0,
            open: false,
            nodes,
            updated,
            failed,
            pending: nodes - updated - failed,
        }
    }

    #[test]
    fn waves_open_when_every_node_of_the_open_ones_settled() {
        let r = release(&[10, 50, 100], 50);
        assert_eq!(
            next_step(&r, 0, &[wave(2, 1, 0), wave(3, 0, 0), wave(5, 0, 0)]),
            Step::Stay
        );
        assert_eq!(
            next_step(&r, 0, &[wave(2, 2, 0), wave(3, 0, 0), wave(5, 0, 0)]),
            Step::Open(1)
        );
        // An empty wave holds nothing back; a failed node counts as settled.
        assert_eq!(
            next_step(&r, 0, &[wave(2, 1, 1), wave(0, 0, 0), wave(5, 0, 0)]),
            Step::Open(2)
        );
        assert_eq!(
            next_step(&r, 2, &[wave(2, 2, 0), wave(0, 0, 0), wave(5, 5, 0)]),
            Step::Stay
        );
    }

    #[test]
    fn more_failed_than_allowed_in_an_open_wave_stops() {
        let r = release(&[10, 100], 20);
        // 1 of 5 is 20 %: not more than allowed.
        assert_eq!(
            next_step(&r, 0, &[wave(6, 4, 1), wave(9, 0, 0)]),
            Step::Stay
        );
        let Step::Stop(why) = next_step(&r, 0, &[wave(6, 3, 1), wave(9, 0, 0)]) else {
            panic!("not stopped");
        };
        assert!(why.contains("1 of the 4 nodes"), "{why}");
        // A wave not open yet does not count.
        assert_eq!(
            next_step(&r, 0, &[wave(6, 1, 0), wave(9, 0, 9)]),
            Step::Stay
        );
        let r = release(&[100], 0);
        assert!(matches!(next_step(&r, 0, &[wave(9, 8, 1)]), Step::Stop(_)));
    }
}
