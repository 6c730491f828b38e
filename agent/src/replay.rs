//! The persisted replay set: a job id runs once. Each accepted job leaves a
//! file in `<data dir>/replay/` until it has expired, holding the signed job so
//! a repeated job resumes its schedule after a restart.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable;

/// What the replay set keeps about one accepted job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The job's expiry (Unix seconds); the record is pruned after it.
    pub expires: u64,
    /// The signed job exactly as received (re-verified when reloaded).
    pub signed: serde_json::Value,
}

/// The replay set on disk.
#[derive(Debug)]
pub struct ReplaySet {
    dir: PathBuf,
}

fn file_name(job_id: &str) -> String {
    // Job ids may be "." or "..": hex keeps every id a plain, distinct file name.
    job_id.bytes().map(|b| format!("{b:02x}")).collect()
}

impl ReplaySet {
    /// Opens (creating if needed) the replay directory.
    pub fn open(dir: &Path) -> io::Result<ReplaySet> {
        fs::create_dir_all(dir)?;
        Ok(ReplaySet { dir: dir.into() })
    }

    /// Whether a job with this id was accepted before.
    pub fn contains(&self, job_id: &str) -> bool {
        self.dir.join(file_name(job_id)).exists()
    }

    /// Records a job as accepted, durably, before it runs.
    pub fn insert(&self, job_id: &str, record: &Record) -> io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
        durable::write(&self.dir.join(file_name(job_id)), &bytes)
    }

    /// Removes records of jobs expired before `now` and returns the others.
    pub fn prune_and_list(&self, now: u64) -> io::Result<Vec<Record>> {
        let mut live = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let path = e?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let rec: Option<Record> = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match rec {
                Some(r) if r.expires >= now => live.push(r),
                // Expired jobs are refused by their expiry anyway; an unreadable
                // record is kept, so its job can never run twice.
                Some(_) => durable::remove(&path)?,
                None => {}
            }
        }
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_prune() {
        let d = tempfile::tempdir().unwrap();
        let r = ReplaySet::open(d.path()).unwrap();
        assert!(!r.contains("j-1"));
        let rec = |e| Record {
            expires: e,
            signed: serde_json::json!({"job": {"id": "x"}}),
        };
        r.insert("j-1", &rec(100)).unwrap();
        r.insert("..", &rec(300)).unwrap();
        assert!(r.contains("j-1"));
        assert!(r.contains(".."));
        let r = ReplaySet::open(d.path()).unwrap();
        assert!(r.contains("j-1"));
        let live = r.prune_and_list(200).unwrap();
        assert_eq!(live, vec![rec(300)]);
        assert!(!r.contains("j-1"));
    }
}
