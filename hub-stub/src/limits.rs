//! Per-identity limits: open connections and request rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Counts open connections per identity and hands out guards.
#[derive(Default)]
pub struct ConnCounter {
    open: Mutex<HashMap<String, usize>>,
}

/// Holds one connection slot of an identity; frees it when dropped.
pub struct ConnGuard {
    counter: Arc<ConnCounter>,
    key: String,
}

impl ConnCounter {
    /// Takes a slot for `key` if fewer than `max` are open.
    pub fn acquire(self: &Arc<Self>, key: &str, max: usize) -> Option<ConnGuard> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnGuard {
            counter: self.clone(),
            key: key.to_string(),
        })
    }

    /// Open connections in total.
    pub fn total(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// At most one log line per interval for an event anyone can cause (a
/// refused connection, a failed handshake): a flood must not become a flood
/// of log lines. The lines that were left out are counted.
pub struct LogThrottle {
    every: std::time::Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    /// One line per `every`.
    pub fn new(every: std::time::Duration) -> Self {
        Self {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` if a line may be logged at `now`, `n` being how many were
    /// left out since the last one; `None` if this one is left out.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.0 {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                s.0 = Some(now);
                Some(std::mem::take(&mut s.1))
            }
        }
    }
}

/// Token buckets per identity: `rate` requests a second, bursts up to `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter with the given sustained rate and burst.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false if the bucket is empty.
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = b.entry(key.to_string()).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets buckets that are full again, so memory follows active callers only.
    pub fn sweep(&self, now: Instant) {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (rate, burst) = (self.rate, self.burst);
        b.retain(|_, (tokens, last)| {
            *tokens + now.saturating_duration_since(*last).as_secs_f64() * rate < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_throttled_and_counted() {
        let t = LogThrottle::new(std::time::Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s| t0 + std::time::Duration::from_secs(s);
        assert_eq!(t.allow(at(0)), Some(0));
        assert_eq!(t.allow(at(1)), None);
        assert_eq!(t.allow(at(9)), None);
        assert_eq!(t.allow(at(10)), Some(2));
        assert_eq!(t.allow(at(25)), Some(0));
    }
    use std::time::Duration;

    #[test]
    fn connection_slots_are_bounded_and_freed() {
        let c = Arc::new(ConnCounter::default());
        let a = c.acquire("node:a", 2).unwrap();
        let _b = c.acquire("node:a", 2).unwrap();
        assert!(c.acquire("node:a", 2).is_none());
        assert!(c.acquire("node:b", 2).is_some());
        drop(a);
        assert!(c.acquire("node:a", 2).is_some());
    }

    #[test]
    fn rate_limit_refills() {
        let r = RateLimiter::new(2.0, 3.0);
        let t = Instant::now();
        assert!((0..3).all(|_| r.allow("k", t)));
        assert!(!r.allow("k", t));
        assert!(r.allow("k", t + Duration::from_millis(600)));
        r.sweep(t + Duration::from_secs(10));
        assert!(r.buckets.lock().unwrap().is_empty());
    }
}
