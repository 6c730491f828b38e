//! Refusals of stream data anyone could have sent (unreadable messages, jobs
//! without a quorum of valid signatures, replays), counted instead of queued.
//! One result per such message would let a junk flood fill the outbox and the
//! node's request budget at the hub ahead of real results, and all unreadable
//! messages would share one result key anyway. The counts and a sample ride
//! on the next heartbeat (one report per heartbeat interval).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vantage_proto::node::{MAX_REFUSAL_SAMPLE, RefusalSummary};

/// The counts since the last report the hub took.
#[derive(Debug, Default)]
pub struct Tally {
    since_ms: Option<u64>,
    counts: BTreeMap<String, u64>,
    sample: Option<String>,
}

impl Tally {
    /// Counts one refusal; true if it is the first with this code in the
    /// interval (worth a log line; the rest are summarised).
    pub fn add(&mut self, code: &str, now_ms: u64, describe: impl FnOnce() -> String) -> bool {
        self.since_ms.get_or_insert(now_ms);
        let n = self.counts.entry(code.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        if self.sample.is_none() {
            let mut s = describe();
            if s.len() > MAX_REFUSAL_SAMPLE {
                let mut cut = MAX_REFUSAL_SAMPLE - 3;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                s.push_str("...");
            }
            self.sample = Some(s);
        }
        *n == 1
    }

    /// The summary to report, if anything was counted.
    pub fn summary(&self, now_ms: u64) -> Option<RefusalSummary> {
        let since_ms = self.since_ms?;
        Some(RefusalSummary {
            since_ms,
            until_ms: now_ms,
            counts: self.counts.clone(),
            sample: self.sample.clone(),
        })
    }

    /// Forgets what `reported` covered (the hub took it); what was counted
    /// while it was being sent stays for the next report.
    pub fn reported(&mut self, reported: &RefusalSummary) {
        for (code, n) in &reported.counts {
            if let Some(c) = self.counts.get_mut(code) {
                *c = c.saturating_sub(*n);
            }
        }
        self.counts.retain(|_, n| *n > 0);
        if self.counts.is_empty() {
            *self = Tally::default();
        } else {
            self.since_ms = Some(reported.until_ms);
            if self.sample == reported.sample {
                self.sample = None;
            }
        }
    }
}

/// A handle on one [`Tally`]: orders count into it, the heartbeat reports it.
#[derive(Debug, Default, Clone)]
pub struct Refusals(Arc<Mutex<Tally>>);

impl Refusals {
    fn with<T>(&self, f: impl FnOnce(&mut Tally) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// [`Tally::add`].
    pub fn add(&self, code: &str, now_ms: u64, describe: impl FnOnce() -> String) -> bool {
        self.with(|t| t.add(code, now_ms, describe))
    }

    /// [`Tally::summary`].
    pub fn summary(&self, now_ms: u64) -> Option<RefusalSummary> {
        self.with(|t| t.summary(now_ms))
    }

    /// [`Tally::reported`].
    pub fn reported(&self, reported: &RefusalSummary) {
        self.with(|t| t.reported(reported));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_summarise_and_survive_a_failed_report() {
        let mut t = Tally::default();
        assert_eq!(t.summary(5), None);
        assert!(t.add("invalid", 10, || "x".repeat(2000)));
        assert!(!t.add("invalid", 11, || unreachable!("one sample per interval")));
        assert!(t.add("forged-signature", 12, String::new));
        let s = t.summary(20).unwrap();
        assert_eq!((s.since_ms, s.until_ms, s.total()), (10, 20, 3));
        assert_eq!(s.counts["invalid"], 2);
        assert!(s.sample.as_ref().unwrap().len() <= MAX_REFUSAL_SAMPLE);
        // Not taken by the hub: the next report still has everything.
        t.add("invalid", 21, String::new);
        assert_eq!(t.summary(30).unwrap().total(), 4);
        // Taken: only what came after the snapshot is left.
        t.reported(&s);
        let rest = t.summary(40).unwrap();
        assert_eq!(
            rest.counts.into_iter().collect::<Vec<_>>(),
            [("invalid".to_string(), 1)]
        );
        assert_eq!(rest.since_ms, 20);
        t.reported(&t.summary(40).unwrap());
        assert_eq!(t.summary(50), None);
    }
}
