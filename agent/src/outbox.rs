//! The results outbox: every result is on disk (fsynced) before it is sent and
//! is deleted only after the hub acknowledged it. Bounded: when full, the
//! oldest result is dropped, counted and reported.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::durable;

/// One stored result waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the outbox (increasing).
    pub seq: u64,
    /// The serialised result, exactly as it will be POSTed.
    pub body: Vec<u8>,
}

/// The on-disk outbox in `<data dir>/outbox/`.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    max: usize,
    queue: VecDeque<u64>,
    next: u64,
    dropped: u64,
}

const DROPPED_FILE: &str = "dropped";

impl Outbox {
    /// Opens (creating if needed) the outbox directory, holding at most `max` results.
    pub fn open(dir: &Path, max: usize) -> io::Result<Outbox> {
        fs::create_dir_all(dir)?;
        let mut seqs = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".json")
                && let Ok(n) = stem.parse::<u64>()
            {
                seqs.push(n);
            } else if name.starts_with('.') && name.ends_with(".tmp") {
                // A write interrupted before its rename: the result was never acknowledged
                // as queued, so it is not lost twice; remove the fragment.
                let _ = fs::remove_file(e.path());
            }
        }
        seqs.sort_unstable();
        let dropped = fs::read_to_string(dir.join(DROPPED_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let next = seqs.last().map_or(0, |s| s + 1);
        Ok(Outbox {
            dir: dir.into(),
            max,
            queue: seqs.into(),
            next,
            dropped,
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    /// Stores a result durably; returns its sequence number. Drops the oldest when full.
    pub fn push(&mut self, body: &[u8]) -> io::Result<u64> {
        while self.queue.len() >= self.max {
            if let Some(old) = self.queue.pop_front() {
                durable::remove(&self.path(old))?;
                self.count_dropped(1)?;
            }
        }
        let seq = self.next;
        durable::write(&self.path(seq), body)?;
        self.next += 1;
        self.queue.push_back(seq);
        Ok(seq)
    }

    /// The oldest results, up to `n`, in order.
    pub fn peek(&self, n: usize) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for &seq in self.queue.iter().take(n) {
            match fs::read(self.path(seq)) {
                Ok(body) => out.push(Entry { seq, body }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Deletes a result the hub acknowledged.
    pub fn ack(&mut self, seq: u64) -> io::Result<()> {
        durable::remove(&self.path(seq))?;
        self.queue.retain(|&s| s != seq);
        Ok(())
    }

    /// Deletes a result the hub refused for good, counting it as dropped.
    pub fn reject(&mut self, seq: u64) -> io::Result<()> {
        self.ack(seq)?;
        self.count_dropped(1)
    }

    fn count_dropped(&mut self, n: u64) -> io::Result<()> {
        self.dropped += n;
        durable::write(
            &self.dir.join(DROPPED_FILE),
            self.dropped.to_string().as_bytes(),
        )
    }

    /// Results waiting.
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Results dropped because the outbox was full, since the node was set up.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_in_order() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path(), 10).unwrap();
        let a = o.push(b"a").unwrap();
        o.push(b"b").unwrap();
        o.push(b"c").unwrap();
        o.ack(a).unwrap();
        drop(o);
        let mut o = Outbox::open(d.path(), 10).unwrap();
        let got: Vec<_> = o.peek(10).unwrap().into_iter().map(|e| e.body).collect();
        assert_eq!(got, vec![b"b".to_vec(), b"c".to_vec()]);
        let s = o.push(b"d").unwrap();
        assert_eq!(s, 3);
        assert_eq!(o.depth(), 3);
    }

    #[test]
    fn bounded_drops_oldest_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path(), 2).unwrap();
        for b in [b"1", b"2", b"3", b"4"] {
            o.push(b).unwrap();
        }
        assert_eq!(o.depth(), 2);
        assert_eq!(o.dropped(), 2);
        let got: Vec<_> = o.peek(5).unwrap().into_iter().map(|e| e.body).collect();
        assert_eq!(got, vec![b"3".to_vec(), b"4".to_vec()]);
        drop(o);
        assert_eq!(Outbox::open(d.path(), 2).unwrap().dropped(), 2);
    }

    #[test]
    fn rejected_results_are_counted_as_dropped() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path(), 5).unwrap();
        let a = o.push(b"a").unwrap();
        o.reject(a).unwrap();
        assert_eq!((o.depth(), o.dropped()), (0, 1));
        drop(o);
        assert_eq!(Outbox::open(d.path(), 5).unwrap().dropped(), 1);
    }

    #[test]
    fn interrupted_write_fragment_is_cleaned() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(".00000000000000000000.json.tmp"), b"half").unwrap();
        let o = Outbox::open(d.path(), 2).unwrap();
        assert_eq!(o.depth(), 0);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
