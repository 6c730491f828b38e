//! Per-identity limits: open connections and request rate; the total of
//! connections, with room kept for nodes and operators.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// The hub's connection slots: `max` in all, shared by connections still in
/// their TLS handshake and established ones. Nobody can be told apart before
/// the handshake ends, so a handshake holds its slot only until a newer
/// connection needs it: when every slot is taken, the oldest handshake is
/// cancelled. A real client's handshake takes milliseconds, a silent or slow
/// one seconds, so silent connections cannot keep anyone out. The oldest is
/// taken from the source address with the most handshakes open, so that an
/// attacker who opens connections faster than a handshake takes evicts its
/// own first, not the lone client that is finishing one. After the
/// handshake, connections without a verified certificate may hold at most
/// `max - reserved` slots, so nodes and operators always find room.
pub struct Admission {
    max: usize,
    reserved: usize,
    state: Mutex<AdmissionState>,
}

#[derive(Default)]
struct AdmissionState {
    next: u64,
    /// Handshakes in progress (ids only grow), each with what cancels it.
    handshaking: HashMap<u64, oneshot::Sender<()>>,
    /// The same ids per source address, oldest first.
    by_address: HashMap<IpAddr, BTreeSet<u64>>,
    identified: usize,
    anonymous: usize,
}

impl AdmissionState {
    fn remove(&mut self, addr: IpAddr, id: u64) -> Option<oneshot::Sender<()>> {
        let tx = self.handshaking.remove(&id)?;
        if let Some(ids) = self.by_address.get_mut(&addr) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_address.remove(&addr);
            }
        }
        Some(tx)
    }

    /// The oldest handshake of the address with the most open. A scan: it runs
    /// only when every slot is taken, over at most one entry per address.
    fn evictee(&self) -> Option<(IpAddr, u64)> {
        self.by_address
            .iter()
            .filter_map(|(a, ids)| Some((ids.len(), *ids.first()?, *a)))
            .max_by_key(|(n, oldest, _)| (*n, std::cmp::Reverse(*oldest)))
            .map(|(_, id, a)| (a, id))
    }
}

/// A connection in its TLS handshake; its slot is freed when dropped.
pub struct Handshake {
    admission: Arc<Admission>,
    addr: IpAddr,
    id: u64,
    cancel: oneshot::Receiver<()>,
}

/// An established connection's slot; freed when dropped.
pub struct Slot {
    admission: Arc<Admission>,
    identified: bool,
}

/// Why an ended handshake got no slot.
#[derive(Debug, PartialEq, Eq)]
pub enum NoSlot {
    /// A newer connection took its slot while it was shaking hands.
    Evicted,
    /// Connections without a certificate hold all the slots they may.
    AnonymousFull,
}

impl Admission {
    /// `max` slots, `reserved` of them only for verified certificates.
    pub fn new(max: usize, reserved: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            reserved: reserved.min(max),
            state: Mutex::new(AdmissionState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AdmissionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a connection just accepted from `addr`:
    /// `Some((handshake, evicted))`, `evicted` telling whether a handshake was
    /// cancelled to make room; `None` when established connections hold
    /// every slot.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Option<(Handshake, bool)> {
        let mut s = self.state();
        let mut evicted = false;
        if s.handshaking.len() + s.identified + s.anonymous >= self.max {
            let (a, id) = s.evictee()?;
            // Dropping the sender wakes the handshake's task, which then gives up.
            s.remove(a, id);
            evicted = true;
        }
        let id = s.next;
        s.next += 1;
        let (tx, cancel) = oneshot::channel();
        s.handshaking.insert(id, tx);
        s.by_address.entry(addr).or_default().insert(id);
        Some((
            Handshake {
                admission: self.clone(),
                addr,
                id,
                cancel,
            },
            evicted,
        ))
    }

    /// Connections (handshaking, identified, anonymous) right now.
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.state();
        (s.handshaking.len(), s.identified, s.anonymous)
    }
}

impl Handshake {
    /// Resolves when a newer connection took this handshake's slot.
    pub async fn evicted(&mut self) {
        let _ = (&mut self.cancel).await;
    }

    /// The handshake ended: the slot becomes an established connection's,
    /// within the anonymous share unless `identified` (a verified certificate).
    pub fn finish(self, identified: bool) -> Result<Slot, NoSlot> {
        let a = self.admission.clone();
        let mut s = a.state();
        if s.remove(self.addr, self.id).is_none() {
            return Err(NoSlot::Evicted);
        }
        if identified {
            s.identified += 1;
        } else if s.anonymous < a.max - a.reserved {
            s.anonymous += 1;
        } else {
            return Err(NoSlot::AnonymousFull);
        }
        Ok(Slot {
            admission: a.clone(),
            identified,
        })
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let (addr, id) = (self.addr, self.id);
        self.admission.state().remove(addr, id);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.admission.state();
        if self.identified {
            s.identified -= 1;
        } else {
            s.anonymous -= 1;
        }
    }
}

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

/// Bytes of results each node may have stored per window: the result rate
/// limit alone still lets one node add tens of gigabytes a day to the
/// database. Kept in memory (a restart starts the windows again): the map
/// holds one entry per node that sent results.
pub struct ResultVolume {
    max: u64,
    window: i64,
    used: Mutex<HashMap<String, (i64, u64)>>,
    /// Results refused for volume since the hub started.
    pub refused: prometheus_client::metrics::counter::Counter,
}

impl ResultVolume {
    /// `max` bytes per node per `window` seconds.
    pub fn new(max: u64, window: i64) -> Self {
        Self {
            max,
            window: window.max(1),
            used: Mutex::new(HashMap::new()),
            refused: Default::default(),
        }
    }

    /// [`Self::take`] for a result, by the size it is stored with.
    pub fn take_result(
        &self,
        node: &str,
        r: &vantage_proto::result::ProbeResult,
        now: i64,
    ) -> Result<(), String> {
        let stored = serde_json::to_vec(r).expect("results serialise");
        self.take(node, stored.len() as u64, now)
    }

    /// Counts `bytes` of a result of `node` at `now` (Unix seconds), or says
    /// why not: the node's window already holds `max` bytes with them.
    pub fn take(&self, node: &str, bytes: u64, now: i64) -> Result<(), String> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let (start, n) = used.entry(node.to_string()).or_insert((now, 0));
        if now.saturating_sub(*start) >= self.window {
            (*start, *n) = (now, 0);
        }
        if n.saturating_add(bytes) > self.max {
            self.refused.inc();
            return Err(format!(
                "node {node} has sent {n} bytes of results since {start} (Unix time), at most {} per {} s are stored; keep the result and send it again after {}",
                self.max,
                self.window,
                *start + self.window
            ));
        }
        *n += bytes;
        Ok(())
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
    fn a_full_pool_evicts_the_oldest_handshake() {
        let a = Admission::new(3, 1);
        let (mut h0, e0) = a.admit(ip(2)).unwrap();
        let (h1, _) = a.admit(ip(3)).unwrap();
        let (h2, e2) = a.admit(ip(4)).unwrap();
        assert!(!e0 && !e2);
        let (h3, e3) = a.admit(ip(5)).unwrap();
        assert!(
            e3,
            "the fourth connection takes the oldest handshake's slot"
        );
        assert_eq!(a.counts(), (3, 0, 0));
        // The evicted one learns it at once and gets no slot.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), h0.evicted()).await })
            .expect("eviction wakes the handshake");
        assert_eq!(h0.finish(true).err(), Some(NoSlot::Evicted));
        // The newest handshake is not touched by older ones finishing.
        let s1 = h1.finish(false).unwrap();
        let s3 = h3.finish(true).unwrap();
        assert_eq!(a.counts(), (1, 1, 1));
        drop(h2);
        drop((s1, s3));
        assert_eq!(a.counts(), (0, 0, 0));
    }

    #[test]
    fn the_address_with_most_handshakes_gives_way_first() {
        let a = Admission::new(4, 0);
        let (_operator, _) = a.admit(ip(1)).unwrap();
        let flood: Vec<_> = (0..3).map(|_| a.admit(ip(9)).unwrap().0).collect();
        // The operator's handshake is the oldest, but the flood's address holds more.
        let (_next, evicted) = a.admit(ip(9)).unwrap();
        assert!(evicted);
        assert_eq!(
            flood
                .into_iter()
                .map(|h| h.finish(false).is_ok())
                .collect::<Vec<_>>(),
            [false, true, true]
        );
        assert_eq!(a.counts(), (2, 0, 0));
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn anonymous_connections_leave_the_reserve_to_certificates() {
        let a = Admission::new(4, 2);
        let anon: Vec<_> = (0..2)
            .map(|_| a.admit(ip(7)).unwrap().0.finish(false).unwrap())
            .collect();
        let (h, _) = a.admit(ip(7)).unwrap();
        assert_eq!(h.finish(false).err(), Some(NoSlot::AnonymousFull));
        // A refused handshake frees its slot; certificates use the reserve.
        let ids: Vec<_> = (0..2)
            .map(|_| a.admit(ip(7)).unwrap().0.finish(true).unwrap())
            .collect();
        assert_eq!(a.counts(), (0, 2, 2));
        // Every slot is established: nothing to evict, the newcomer is refused.
        assert!(a.admit(ip(7)).is_none());
        drop(anon);
        assert!(a.admit(ip(7)).is_some());
        drop(ids);
    }

    #[test]
    fn result_volume_is_bounded_per_node_and_window() {
        let v = ResultVolume::new(100, 60);
        assert!(v.take("n-1", 60, 1000).is_ok());
        assert!(v.take("n-1", 40, 1010).is_ok());
        let why = v.take("n-1", 1, 1059).unwrap_err();
        assert!(why.contains("after 1060"), "{why}");
        assert!(v.take("n-2", 100, 1059).is_ok(), "each node has its own");
        assert!(v.take("n-1", 100, 1060).is_ok(), "a new window");
        assert_eq!(v.refused.get(), 1);
    }

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
