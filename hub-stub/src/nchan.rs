//! Publishing accepted jobs to nginx + Nchan, for networks that outgrow one hub
//! (`serve --nchan-publish-url URL`; see `scale/nginx-nchan.conf` and docs/scale.md).
//!
//! The hub stays the control plane: a job is first stored durably in the job log
//! (so the hub's own `/v1/sub` keeps working and nothing is lost), then handed to
//! one background thread that POSTs the envelope to Nchan's publisher location
//! for each channel, in log order, with retries. A failure is logged and counted
//! in `/metrics`; the job stays in the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, UNIX_EPOCH};

/// Jobs waiting for the publisher thread; beyond this the hub drops the Nchan copy
/// (and counts it) rather than stall job submission behind a dead nginx.
const QUEUE: usize = 10_000;
/// Attempts per channel, with doubling back-off starting at `FIRST_BACKOFF`.
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Counters shown in `/metrics`.
#[derive(Default, Debug)]
pub struct NchanMetrics {
    /// Envelopes Nchan accepted (one per channel).
    pub published: AtomicU64,
    /// Failed attempts that were retried.
    pub retries: AtomicU64,
    /// Envelopes given up on after every attempt, or dropped with a full queue.
    pub failed: AtomicU64,
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
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(i) | TrySendError::Disconnected(i)) => {
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

    /// Prometheus text for `/metrics`.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        let mut out = String::new();
        for (name, v, help) in [
            ("published", &m.published, "envelopes Nchan accepted"),
            ("retries", &m.retries, "failed publish attempts retried"),
            ("failed", &m.failed, "envelopes not delivered to Nchan"),
        ] {
            out.push_str(&format!(
                "# HELP vantage_hub_nchan_{name} {help}\n# TYPE vantage_hub_nchan_{name} counter\nvantage_hub_nchan_{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out
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
    for item in rx {
        for ch in &item.channels {
            let url = format!("{base}/{ch}");
            let body = envelope_json(item.seq, ch, item.time, &item.payload);
            if post(&agent, &url, &body, m) {
                m.published.fetch_add(1, Ordering::Relaxed);
            } else {
                m.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    seq = item.seq,
                    channel = %ch,
                    %url,
                    "giving up publishing to Nchan; nodes behind nginx miss this entry (it stays in the hub's log)"
                );
            }
        }
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &str, m: &NchanMetrics) -> bool {
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let why = match agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
        {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        tracing::warn!(%url, attempt, "Nchan publish failed: {why}");
        if attempt < ATTEMPTS {
            m.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_the_hub_stream() {
        let frame = crate::api::event_frame(7, "cc.DE", 1_343_000_000, r#"{"a":1}"#);
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
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/pub/", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut got = Vec::new();
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
    fn an_unreachable_nchan_is_retried_then_counted() {
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = Publisher::start(&format!("http://127.0.0.1:{port}/pub")).unwrap();
        p.enqueue(7, 0, &["all".into()], "{}");
        wait("the failure counted", || {
            p.metrics.failed.load(Ordering::Relaxed) == 1
        });
        assert_eq!(
            p.metrics.retries.load(Ordering::Relaxed),
            u64::from(ATTEMPTS - 1)
        );
        assert_eq!(p.metrics.published.load(Ordering::Relaxed), 0);
        assert!(p.metrics_text().contains("vantage_hub_nchan_failed 1\n"));
    }

    #[test]
    fn refuses_a_url_that_is_not_http() {
        assert!(Publisher::start("ftp://127.0.0.1/pub").is_err());
        assert!(Publisher::start("not a url").is_err());
    }
}
