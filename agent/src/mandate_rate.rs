//! The per-node rate of each mandate (`rates.per_node`): jobs this node
//! accepted under a mandate within the last hour, counted here because only
//! the node sees every job it is sent (a stolen hub, or a raw publish, goes
//! around the hub's counts).
//!
//! The counts live in `mandate-rate.json` in the data directory, written
//! atomically before the job counts as accepted, so a restart (or a crash)
//! does not reset them. They are kept per minute: at most 60 minutes for at
//! most [`MAX_MANDATES`] mandates, so the file stays small whatever a
//! mandate's rate; minutes older than the hour are pruned at every count.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use vantage_proto::job::Refusal;
use vantage_proto::mandate::{Mandate, RateScope, over_rate};

use crate::durable;

/// The file in the data directory.
pub const FILE: &str = "mandate-rate.json";

/// Most mandates counted at once (those with a job within the hour): more
/// are refused rather than forgotten, so the count always holds.
pub const MAX_MANDATES: usize = 64;

/// Counting granularity: the hour is a window of 60 whole minutes.
const MINUTE: u64 = 60;
const WINDOW_MINUTES: u64 = 60;

/// Largest file read back (60 minutes of [`MAX_MANDATES`] mandates fit many
/// times over).
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// What the file holds: per mandate id, jobs accepted per minute (Unix minute).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Counts {
    mandates: BTreeMap<String, BTreeMap<u64, u32>>,
}

impl Counts {
    /// Drops minutes that left the window ending at minute `now_min`.
    fn prune(&mut self, now_min: u64) {
        let oldest = (now_min + 1).saturating_sub(WINDOW_MINUTES);
        for minutes in self.mandates.values_mut() {
            minutes.retain(|m, _| *m >= oldest);
        }
        self.mandates.retain(|_, minutes| !minutes.is_empty());
    }

    fn in_window(&self, id: &str) -> u64 {
        self.mandates
            .get(id)
            .map_or(0, |m| m.values().map(|n| u64::from(*n)).sum())
    }
}

/// Jobs accepted per mandate within the last hour, kept across restarts.
pub struct NodeRate {
    path: PathBuf,
    counts: Mutex<Counts>,
}

impl NodeRate {
    /// The counts stored in `data_dir`. A file that cannot be read is
    /// logged and counting starts again: the atomic write never leaves a
    /// partial file, so only someone editing it gets there.
    pub fn open(data_dir: &Path) -> Self {
        let path = data_dir.join(FILE);
        let counts = read(&path).unwrap_or_else(|e| {
            tracing::error!(
                "cannot read the mandate rate counts {}: {e}; counting starts again",
                path.display()
            );
            Counts::default()
        });
        Self {
            path,
            counts: Mutex::new(counts),
        }
    }

    /// Counts one job under `mandate` at `now` (Unix seconds), durably, if
    /// the mandate's per-node rate allows it; otherwise the refusal.
    pub fn take(&self, mandate: &Mandate, now: u64) -> Result<(), Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let now_min = now / MINUTE;
        counts.prune(now_min);
        if let Some(r) = over_rate(mandate, RateScope::Node, counts.in_window(&mandate.id)) {
            return Err(r);
        }
        let refuse = |detail: String| Refusal::MandateRate {
            scope: RateScope::Node,
            detail,
        };
        if !counts.mandates.contains_key(&mandate.id) && counts.mandates.len() >= MAX_MANDATES {
            return Err(refuse(format!(
                "this node counts at most {MAX_MANDATES} mandates used within an hour"
            )));
        }
        *counts
            .mandates
            .entry(mandate.id.clone())
            .or_default()
            .entry(now_min)
            .or_default() += 1;
        let bytes = serde_json::to_vec(&*counts).expect("counts serialise");
        if let Err(e) = durable::write(&self.path, &bytes) {
            // Uncounted, the job could run again after a restart beyond the rate.
            if let Some(n) = counts
                .mandates
                .get_mut(&mandate.id)
                .and_then(|m| m.get_mut(&now_min))
            {
                *n -= 1;
            }
            return Err(refuse(format!(
                "cannot record the job in {}: {e}",
                self.path.display()
            )));
        }
        Ok(())
    }
}

fn read(path: &Path) -> io::Result<Counts> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Counts::default()),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES).read_to_end(&mut text)?;
    serde_json::from_slice(&text).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mandate(id: &str, per_node: u32) -> Mandate {
        let probes = json!({"ping": {}});
        let value =
            vantage_testkit::mandates::mandate(id, probes, json!("everyone"), [9, 9, per_node]);
        Mandate::from_value(&value).unwrap()
    }

    const T: u64 = 1_800_000_000;

    #[test]
    fn the_rate_holds_across_a_reopen_and_frees_up_after_the_hour() {
        let d = tempfile::tempdir().unwrap();
        let m = mandate("m", 2);
        let rate = NodeRate::open(d.path());
        rate.take(&m, T).unwrap();
        rate.take(&m, T + 30).unwrap();
        assert_eq!(
            rate.take(&m, T + 60).unwrap_err().code(),
            "mandate-rate-node"
        );
        // Another mandate counts on its own.
        rate.take(&mandate("other", 1), T).unwrap();

        let again = NodeRate::open(d.path());
        let e = again.take(&m, T + 120).unwrap_err();
        assert_eq!(e.code(), "mandate-rate-node");
        assert!(e.to_string().contains("allows 2 per node"), "{e}");
        // An hour after the first job's minute, it no longer counts.
        let later = T - T % MINUTE + 3600;
        again.take(&m, later).unwrap();
        again.take(&m, later).unwrap();
        assert_eq!(
            again.take(&m, later).unwrap_err().code(),
            "mandate-rate-node"
        );
        // The other mandate's count was pruned from the file.
        let stored: Counts =
            serde_json::from_slice(&std::fs::read(d.path().join(FILE)).unwrap()).unwrap();
        assert_eq!(stored.mandates.keys().collect::<Vec<_>>(), ["m"]);
    }

    #[test]
    fn mandates_beyond_the_bound_are_refused_not_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let rate = NodeRate::open(d.path());
        for i in 0..MAX_MANDATES {
            rate.take(&mandate(&format!("m{i}"), 5), T).unwrap();
        }
        let e = rate.take(&mandate("one-more", 5), T).unwrap_err();
        assert_eq!(e.code(), "mandate-rate-node");
        rate.take(&mandate("m0", 5), T).unwrap();
        // After the hour the old ones are pruned and there is room again.
        rate.take(&mandate("one-more", 5), T + 3600 + MINUTE)
            .unwrap();
    }

    #[test]
    fn a_damaged_file_starts_the_count_again_and_a_failed_write_refuses() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE), b"{not json").unwrap();
        let rate = NodeRate::open(d.path());
        let m = mandate("m", 1);
        rate.take(&m, T).unwrap();
        // A directory where the file should be: the count cannot be stored.
        let blocked = tempfile::tempdir().unwrap();
        std::fs::create_dir(blocked.path().join(FILE)).unwrap();
        let rate = NodeRate::open(blocked.path());
        let e = rate.take(&m, T).unwrap_err();
        assert!(e.to_string().contains("cannot record"), "{e}");
        assert_eq!(rate.counts.lock().unwrap().in_window("m"), 0);
    }
}
