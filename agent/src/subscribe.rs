//! The subscription: one long-lived HTTPS request to the hub (or to nginx +
//! Nchan serving the same channels), read on a dedicated thread with ureq and
//! decoded with the protocol's bounded event-stream decoder. Events go to the
//! async side over a channel. Reconnects with `vantage_node::backoff` (exponential, full jitter);
//! a connection silent for longer than the keep-alive timeout is dropped.

use std::io::Read;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vantage_node::backoff::Backoff;
use vantage_node::revocation::{self, Evidence};
use vantage_proto::node::GapEvent;
use vantage_proto::sse::{Decoder, Event, Frame};

use crate::config::{Subscribe, SubscribeMode};

/// What the subscription reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SubEvent {
    /// A message (an envelope, or a bare signed job with the Nchan template) with its event id.
    Message {
        /// The event id to persist once handled.
        id: Option<String>,
        /// The data lines.
        data: String,
    },
    /// The server reported events lost between the client's last id and `oldest`.
    Gap {
        /// The event id of the gap event itself.
        id: Option<String>,
        /// The gap.
        gap: GapEvent,
    },
    /// The server moved the stream's position (an `id:` without an event, as
    /// the hub does for a fresh subscriber); persist it like a handled event's id.
    Position(String),
    /// Connected (HTTP 200) to the given URL.
    Connected(String),
    /// The connection ended or failed, with why.
    Lost(String),
    /// The hub refused the node's certificate as revoked; the subscription
    /// has stopped for good.
    Revoked {
        /// How the hub said so.
        evidence: Evidence,
        /// The request it refused.
        url: String,
        /// The error or the hub's answer.
        detail: String,
    },
}

/// Builds an HTTPS agent for one connection attempt (so a renewed certificate is picked up).
pub type AgentFactory = Box<dyn Fn(Duration) -> Result<ureq::Agent, String> + Send>;

/// The subscription loop's settings.
pub struct Subscription {
    /// Subscriber URL with the channels filled in.
    pub url: String,
    /// Settings from `[subscribe]`.
    pub cfg: Subscribe,
    /// The last event id handled (persisted by the caller).
    pub last_id: Option<String>,
    /// Makes the agent for each connection.
    pub agent: AgentFactory,
    /// The last connection attempt got HTTP 200 (resets the backoff).
    pub connected: bool,
    /// The stream is the hub's own: a refusal of the node's certificate as
    /// revoked is the hub's word and stops the node. Not for a stream from
    /// elsewhere (Nchan): a server there could otherwise stop every node
    /// for good; the hub's own answers to heartbeats show it soon enough.
    pub hub_stream: bool,
}

impl Subscription {
    /// Runs forever on the calling thread, sending events to `tx`; returns when `tx` closes.
    pub fn run(mut self, tx: mpsc::Sender<SubEvent>) {
        let mut backoff = Backoff::new(self.cfg.min_backoff.get(), self.cfg.max_backoff.get());
        loop {
            let started = Instant::now();
            let outcome = self.connect_once(&tx);
            if tx.is_closed() {
                return;
            }
            let mut asked = None;
            let reason = match outcome {
                Ok(()) => "the server closed the stream".to_string(),
                Err(Lost::Busy(e, after)) => {
                    asked = Some(after);
                    e
                }
                Err(Lost::Revoked(evidence, detail)) => {
                    let url = self.request_url();
                    let _ = tx.blocking_send(SubEvent::Revoked {
                        evidence,
                        url,
                        detail,
                    });
                    return;
                }
                Err(Lost::Failed(e)) => e,
            };
            // A long-poll that ends normally reconnects at once.
            if self.cfg.mode == SubscribeMode::LongPoll && reason == "poll complete" {
                backoff.reset();
                continue;
            }
            if tx.blocking_send(SubEvent::Lost(reason)).is_err() {
                return;
            }
            // A connection the server took (HTTP 200) starts the backoff over:
            // after a hub restart the node is back within the minimum delay,
            // not after a delay that grew while the hub was away.
            if std::mem::take(&mut self.connected) || started.elapsed() > Duration::from_secs(60) {
                backoff.reset();
            }
            std::thread::sleep(backoff.next_delay_after(asked));
        }
    }

    fn request_url(&self) -> String {
        match self.cfg.mode {
            SubscribeMode::EventStream => self.url.clone(),
            SubscribeMode::LongPoll => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!(
                    "{}{sep}mode=poll&timeout={}",
                    self.url,
                    self.cfg.poll_timeout.as_secs()
                )
            }
        }
    }

    fn connect_once(&mut self, tx: &mpsc::Sender<SubEvent>) -> Result<(), Lost> {
        let read_timeout = match self.cfg.mode {
            SubscribeMode::EventStream => self.cfg.keepalive_timeout.get(),
            SubscribeMode::LongPoll => self
                .cfg
                .keepalive_timeout
                .get()
                .max(self.cfg.poll_timeout.get() + Duration::from_secs(15)),
        };
        let url = self.request_url();
        let resp = self.open(&url, read_timeout)?;
        self.connected = true;
        if tx.blocking_send(SubEvent::Connected(url.clone())).is_err() {
            return Ok(());
        }
        self.read(tx, resp, &url, read_timeout)
    }

    /// Sends the request; the response if the server took it (HTTP 200).
    fn open(
        &self,
        url: &str,
        read_timeout: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, Lost> {
        let agent = (self.agent)(read_timeout).map_err(Lost::Failed)?;
        let mut req = agent.get(url).header("Accept", "text/event-stream");
        if let Some(id) = &self.last_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.call().map_err(|e| {
            let detail = format!("connecting to {url}: {e}");
            match revocation::from_error(&e).filter(|_| self.hub_stream) {
                Some(evidence) => Lost::Revoked(evidence, detail),
                None => Lost::Failed(detail),
            }
        })?;
        let status = resp.status().as_u16();
        if status != 200 {
            let asked = retry_after(&resp).filter(|_| matches!(status, 429 | 503));
            let mut body = String::new();
            let _ = resp
                .into_body()
                .into_reader()
                .take(2048)
                .read_to_string(&mut body);
            let detail = format!(
                "{url} answered HTTP {status}: {}",
                crate::logging::one_line(&body)
            );
            return Err(
                match revocation::from_answer(status, &body).filter(|_| self.hub_stream) {
                    Some(evidence) => Lost::Revoked(evidence, detail),
                    None => match asked {
                        Some(after) => Lost::Busy(detail, after),
                        None => Lost::Failed(detail),
                    },
                },
            );
        }
        Ok(resp)
    }

    /// Reads the stream until it ends or fails, sending its events to `tx`.
    fn read(
        &mut self,
        tx: &mpsc::Sender<SubEvent>,
        resp: ureq::http::Response<ureq::Body>,
        url: &str,
        read_timeout: Duration,
    ) -> Result<(), Lost> {
        let mut decoder = Decoder::default().with_last_id(self.last_id.clone());
        let mut reader = resp.into_body().into_reader();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => {
                    return match self.cfg.mode {
                        SubscribeMode::LongPoll => Err(Lost::Failed("poll complete".into())),
                        SubscribeMode::EventStream => Ok(()),
                    };
                }
                Ok(n) => n,
                Err(e) if is_timeout(&e) => {
                    return Err(Lost::Failed(format!(
                        "no data or keep-alive for {} s; reconnecting",
                        read_timeout.as_secs()
                    )));
                }
                Err(e) => return Err(Lost::Failed(format!("reading the stream: {e}"))),
            };
            if !self.forward(tx, &mut decoder, &buf[..n], url) {
                return Ok(());
            }
        }
    }

    /// Decodes `bytes` and sends the events and the new position to `tx`;
    /// false once `tx` is closed.
    fn forward(
        &mut self,
        tx: &mpsc::Sender<SubEvent>,
        decoder: &mut Decoder,
        bytes: &[u8],
        url: &str,
    ) -> bool {
        for frame in decoder.feed(bytes) {
            match frame {
                Ok(Frame::Event(ev)) => {
                    let id = ev.id.clone();
                    let Some(out) = frame_event(ev) else {
                        continue;
                    };
                    self.last_id = id.or(self.last_id.take());
                    if tx.blocking_send(out).is_err() {
                        return false;
                    }
                }
                Ok(Frame::Comment(_)) => {}
                Err(e) => tracing::warn!("event stream from {url}: {e}"),
            }
        }
        let position = decoder.last_id().map(str::to_string);
        if position.is_some() && position != self.last_id {
            self.last_id = position.clone();
            if let Some(p) = position
                && tx.blocking_send(SubEvent::Position(p)).is_err()
            {
                return false;
            }
        }
        true
    }
}

/// Why a connection ended.
enum Lost {
    /// Reconnect after a while.
    Failed(String),
    /// The server is busy and said when to come back (`Retry-After` on a 503
    /// or 429): not before then, plus jitter.
    Busy(String, Duration),
    /// The hub refused the node's certificate as revoked: never reconnect.
    Revoked(Evidence, String),
}

/// Most a server's `Retry-After` can hold a node back: a hostile or broken
/// server must not silence a node for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A `Retry-After` in seconds (the HTTP-date form is not used by the hub),
/// capped at [`MAX_RETRY_AFTER`].
fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The persisted last event id, if there is one that can be sent back as
/// `Last-Event-ID`. An unusable one (written by an older agent that stored ids
/// unchecked) would make every reconnect fail before a byte is sent, so it is
/// dropped with a log line and the node resumes as a fresh subscriber.
pub fn read_last_id(path: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let id = text.trim_matches(['\n', '\r']);
    if id.is_empty() {
        return None;
    }
    if !vantage_proto::sse::valid_event_id(id) {
        tracing::warn!(
            "ignoring the stored last event id in {} ({} bytes, not at most {} bytes of visible ASCII): \
             it cannot be sent as Last-Event-ID; resuming as a fresh subscriber",
            path.display(),
            bytes.len(),
            vantage_proto::sse::MAX_EVENT_ID
        );
        return None;
    }
    Some(id.to_string())
}

/// A message or a gap event from a decoded event (none for an unreadable gap event).
pub fn frame_event(ev: Event) -> Option<SubEvent> {
    if ev.event.as_deref() == Some("gap") {
        match serde_json::from_str::<GapEvent>(&ev.data) {
            Ok(gap) => Some(SubEvent::Gap { id: ev.id, gap }),
            Err(e) => {
                tracing::warn!("unreadable gap event {:?}: {e}", ev.data);
                None
            }
        }
    } else {
        Some(SubEvent::Message {
            id: ev.id,
            data: ev.data,
        })
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) {
        return true;
    }
    let text = e.to_string().to_ascii_lowercase();
    text.contains("timeout") || text.contains("timed out")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_stored_ids_are_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("last-event-id");
        assert_eq!(read_last_id(&p), None);
        for bad in ["a\u{1}b".to_string(), "7".repeat(200 * 1024), "x y".into()] {
            std::fs::write(&p, &bad).unwrap();
            assert_eq!(read_last_id(&p), None, "{bad:.20}");
        }
        std::fs::write(&p, "1543512360:0\n").unwrap();
        assert_eq!(read_last_id(&p).as_deref(), Some("1543512360:0"));
        std::fs::write(&p, "").unwrap();
        assert_eq!(read_last_id(&p), None);
    }
}
