//! Publishing accepted jobs to nginx + Nchan, for networks that outgrow one hub
//! (`serve --nchan-publish-url URL`; see `scale/nginx-nchan.conf` and docs/scale.md).
//!
//! The hub stays the control plane: a job is first stored durably in the job log
//! (so the hub's own `/v1/sub` keeps working and nothing is lost), then handed to
//! one background thread that POSTs the envelope to Nchan's publisher location
//! for each channel, in log order. An envelope Nchan does not take is tried
//! again (backing off up to `MAX_BACKOFF`) until it does, and the entries after
//! it wait in order behind it: when Nchan recovers, connected nodes get every
//! entry, in order, without reconnecting, and none is skipped (a skipped entry
//! followed by a later one would move the node past it for good). Only when
//! `QUEUE` entries wait is a new one left to the hub's log (counted as failed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, UNIX_EPOCH};

/// Jobs waiting for the publisher thread; beyond this the hub drops the Nchan copy
/// (and counts it) rather than stall job submission or grow without bound
/// behind a dead nginx.
const QUEUE: usize = 10_000;
/// Back-off between attempts (`vantage_node::backoff`, full jitter): doubling from
/// `FIRST_BACKOFF` up to `MAX_BACKOFF`,
/// so a recovered Nchan gets the waiting entries within `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Counters shown in `/metrics`.
#[derive(Default, Debug)]
pub struct NchanMetrics {
    /// Envelopes Nchan accepted (one per channel).
    pub published: AtomicU64,
    /// Failed attempts (each is retried).
    pub retries: AtomicU64,
    /// Envelopes dropped because `QUEUE` entries were already waiting.
    pub failed: AtomicU64,
    /// Entries queued or being published (a gauge).
    pub waiting: AtomicU64,
}

struct Item {
    seq: u64,
    time: i64,
    channels: Vec<String>,
    payload: String,
}

/// The hub's side of the Nchan link.
pub struct Publisher {
    base: String,
    tx: SyncSender<Item>,
    /// Counters.
    pub metrics: Arc<NchanMetrics>,
}

impl Publisher {
    /// Starts the publisher thread for a publisher base URL such as
    /// `http://127.0.0.1:8081/pub` (the channel is appended as the last path segment).
    pub fn start(base: &str) -> anyhow::Result<Arc<Self>> {
        let base = base.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base).map_err(|e| {
            anyhow::anyhow!("--nchan-publish-url {base}: {e}; give e.g. http://127.0.0.1:8081/pub")
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("--nchan-publish-url {base}: the scheme must be http or https");
        }
        let (tx, rx) = sync_channel(QUEUE);
        let metrics = Arc::new(NchanMetrics::default());
        let (b, m) = (base.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("nchan-publish".into())
            .spawn(move || run(&b, rx, &m))?;
        Ok(Arc::new(Self { base, tx, metrics }))
    }

    /// Queues a stored job-log entry for Nchan. Never blocks.
    pub fn enqueue(&self, seq: u64, time: i64, channels: &[String], payload: &str) {
        let item = Item {
            seq,
            time,
            channels: channels.to_vec(),
            payload: payload.to_string(),
        };
        // Counted before it is sent, so the thread never sees it below zero.
        self.metrics.waiting.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(i) | TrySendError::Disconnected(i)) => {
                self.metrics.waiting.fetch_sub(1, Ordering::Relaxed);
                self.metrics
                    .failed
                    .fetch_add(i.channels.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    seq,
                    url = %self.base,
                    "Nchan publish queue full or stopped; entry stays in the hub's log only"
                );
            }
        }
    }
}

/// The envelope a node receives (ARCHITECTURE.md, "The message a node receives"),
/// byte for byte what the hub's own stream carries as `data:`.
pub fn envelope_json(seq: u64, channel: &str, time: i64, payload: &str) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(time.max(0) as u64);
    vantage_proto::envelope::Envelope::encode(seq, channel, at, payload)
}

fn run(base: &str, rx: Receiver<Item>, m: &NchanMetrics) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    // An outage means one failure every MAX_BACKOFF: logged at most once a minute.
    let log = crate::limits::LogThrottle::new(Duration::from_secs(60));
    for item in rx {
        for ch in &item.channels {
            let url = format!("{base}/{ch}");
            let body = envelope_json(item.seq, ch, item.time, &item.payload);
            post_until_taken(&agent, &url, &body, item.seq, m, &log);
            m.published.fetch_add(1, Ordering::Relaxed);
        }
        m.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

fn post_until_taken(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    seq: u64,
    m: &NchanMetrics,
    log: &crate::limits::LogThrottle,
) {
    let mut backoff = vantage_node::backoff::Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    let mut failed_since = None;
    loop {
        let why = match agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
        {
            Ok(r) if r.status().is_success() => break,
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        m.retries.fetch_add(1, Ordering::Relaxed);
        failed_since.get_or_insert_with(std::time::Instant::now);
        if let Some(left_out) = log.allow(std::time::Instant::now()) {
            tracing::warn!(%url, seq, left_out, waiting = m.waiting.load(Ordering::Relaxed),
                "Nchan publish failed: {why}; retrying, later entries wait in order");
        }
        std::thread::sleep(backoff.next_delay());
    }
    if let Some(t) = failed_since {
        tracing::info!(%url, seq, "Nchan took the entry after {:.1} s of failures", t.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_the_hub_stream() {
        let frame = crate::hub::event_frame(7, "cc.DE", 1_343_000_000, r#"{"a":1}"#);
        let text = std::str::from_utf8(&frame).unwrap();
        let env = envelope_json(7, "cc.DE", 1_343_000_000, r#"{"a":1}"#);
        assert!(text.contains(&format!("data: {env}\n")), "{text}");
    }

    fn wait(what: &str, f: impl Fn() -> bool) {
        let t = std::time::Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(15), "timed out: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Accepts `n` requests; returns (request line, body) pairs in arrival order.
    fn fake_nchan(n: usize) -> (String, std::thread::JoinHandle<Vec<(String, String)>>) {
        fake_nchan_down_for(0, n)
    }

    /// Answers the first `down` requests 503 (an Nchan that is down), then
    /// accepts `n`; returns the accepted (request line, body) pairs in order.
    fn fake_nchan_down_for(
        down: usize,
        n: usize,
    ) -> (String, std::thread::JoinHandle<Vec<(String, String)>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/pub/", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut refused = 0;
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            while got.len() < n {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                if refused < down {
                    refused += 1;
                    w.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                    continue;
                }
                got.push((line.trim().to_string(), String::from_utf8(body).unwrap()));
                w.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
                    .unwrap();
            }
            got
        });
        (url, h)
    }

    #[test]
    fn publishes_each_channel_in_log_order() {
        let (url, server) = fake_nchan(3);
        let p = Publisher::start(&url).unwrap();
        p.enqueue(
            1,
            1_343_000_000,
            &["all".into(), "cc.DE".into()],
            r#"{"a":1}"#,
        );
        p.enqueue(2, 1_343_000_001, &["node.n-1".into()], r#"{"a":2}"#);
        let got = server.join().unwrap();
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "POST /pub/all HTTP/1.1",
                "POST /pub/cc.DE HTTP/1.1",
                "POST /pub/node.n-1 HTTP/1.1"
            ]
        );
        assert_eq!(
            got[1].1,
            envelope_json(1, "cc.DE", 1_343_000_000, r#"{"a":1}"#)
        );
        wait("three published", || {
            p.metrics.published.load(Ordering::Relaxed) == 3
        });
        assert_eq!(p.metrics.failed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_unreachable_nchan_is_retried_and_the_entry_kept() {
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = Publisher::start(&format!("http://127.0.0.1:{port}/pub")).unwrap();
        p.enqueue(7, 0, &["all".into()], "{}");
        wait("retries counted", || {
            p.metrics.retries.load(Ordering::Relaxed) >= 3
        });
        assert_eq!(p.metrics.published.load(Ordering::Relaxed), 0);
        assert_eq!(p.metrics.failed.load(Ordering::Relaxed), 0);
        assert_eq!(p.metrics.waiting.load(Ordering::Relaxed), 1);
    }

    /// Nchan down for as many attempts as the hub once made before giving
    /// up on an entry (six), then back: every entry arrives, in log order,
    /// the one that failed first.
    #[test]
    fn entries_wait_for_a_recovered_nchan_in_order() {
        let (url, server) = fake_nchan_down_for(6, 3);
        let p = Publisher::start(&url).unwrap();
        for seq in 1..=3 {
            p.enqueue(
                seq,
                1_343_000_000,
                &["all".into()],
                &format!("{{\"n\":{seq}}}"),
            );
        }
        let got = server.join().unwrap();
        let bodies: Vec<String> = got.into_iter().map(|(_, b)| b).collect();
        let want: Vec<String> = (1..=3)
            .map(|seq| envelope_json(seq, "all", 1_343_000_000, &format!("{{\"n\":{seq}}}")))
            .collect();
        assert_eq!(bodies, want);
        wait("all published", || {
            p.metrics.published.load(Ordering::Relaxed) == 3
        });
        assert_eq!(p.metrics.failed.load(Ordering::Relaxed), 0);
        assert_eq!(p.metrics.retries.load(Ordering::Relaxed), 6);
        assert_eq!(p.metrics.waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn refuses_a_url_that_is_not_http() {
        assert!(Publisher::start("ftp://127.0.0.1/pub").is_err());
        assert!(Publisher::start("not a url").is_err());
    }
}
