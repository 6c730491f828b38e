//! Catch-up through the hub for a node subscribed elsewhere (nginx + Nchan).
//! Nchan's event ids are its own, and when a reconnecting node's id is older
//! than Nchan's buffer, Nchan resumes at its oldest message without a gap
//! event. So the agent also remembers the highest hub sequence number it has
//! handled (the envelopes' `id`) and, after each (re)connect, asks the hub once
//! by long-poll what came after it: the hub replays its log or sends a `gap`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use vantage_proto::sse::{Decoder, Frame};

use crate::subscribe::{SubEvent, frame_event};

/// The highest hub sequence number handled, persisted in `hub-seq`.
pub struct HubSeq {
    path: PathBuf,
    highest: Mutex<Option<u64>>,
}

impl HubSeq {
    /// Reads the persisted number (none if missing or unreadable).
    pub fn open(path: PathBuf) -> HubSeq {
        let highest = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        HubSeq {
            path,
            highest: Mutex::new(highest),
        }
    }

    /// The highest number handled so far.
    pub fn get(&self) -> Option<u64> {
        *self.highest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persists `seq` if it is higher than what is stored.
    pub fn advance(&self, seq: u64) -> std::io::Result<()> {
        let mut h = self.highest.lock().unwrap_or_else(|p| p.into_inner());
        if h.is_some_and(|h| h >= seq) {
            return Ok(());
        }
        crate::durable::write(&self.path, seq.to_string().as_bytes())?;
        *h = Some(seq);
        Ok(())
    }

    /// Persists `seq` even if lower: the hub moved the node to it (after a gap,
    /// or when the hub's log restarted), so a higher stored number would make
    /// every later catch-up report the same gap again.
    pub fn set(&self, seq: u64) -> std::io::Result<()> {
        let mut h = self.highest.lock().unwrap_or_else(|p| p.into_inner());
        crate::durable::write(&self.path, seq.to_string().as_bytes())?;
        *h = Some(seq);
        Ok(())
    }
}

/// The hub's long-poll URL that answers at once with what follows the given id.
pub fn poll_url(hub_sub_url: &str) -> String {
    let sep = if hub_sub_url.contains('?') { '&' } else { '?' };
    format!("{hub_sub_url}{sep}mode=poll&timeout=0")
}

/// One catch-up request: the events the hub sends after `after`.
pub fn fetch(agent: &ureq::Agent, url: &str, after: Option<u64>) -> Result<Vec<SubEvent>, String> {
    let mut req = agent.get(url).header("Accept", "text/event-stream");
    if let Some(seq) = after {
        req = req.header("Last-Event-ID", seq.to_string());
    }
    let resp = req.call().map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let mut reader = resp.into_body().into_reader();
    if status != 200 {
        let mut body = String::new();
        let _ = reader.take(2048).read_to_string(&mut body);
        return Err(format!(
            "{url} answered HTTP {status}: {}",
            crate::logging::one_line(&body)
        ));
    }
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| format!("reading {url}: {e}"))?;
        if n == 0 {
            break;
        }
        for frame in decoder.feed(&buf[..n]) {
            match frame {
                Ok(Frame::Event(ev)) => out.extend(frame_event(ev)),
                Ok(Frame::Comment(_)) => {}
                Err(e) => tracing::warn!("catch-up from the hub: {e}"),
            }
        }
    }
    if let Some(p) = decoder.last_id() {
        out.push(SubEvent::Position(p.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_seq_only_advances_but_can_be_set_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub-seq");
        let s = HubSeq::open(path.clone());
        assert_eq!(s.get(), None);
        s.advance(5).unwrap();
        s.advance(3).unwrap();
        assert_eq!(HubSeq::open(path.clone()).get(), Some(5));
        s.set(2).unwrap();
        assert_eq!(HubSeq::open(path).get(), Some(2));
    }

    #[test]
    fn poll_url_appends_the_query() {
        assert_eq!(
            poll_url("https://h/v1/sub/all"),
            "https://h/v1/sub/all?mode=poll&timeout=0"
        );
        assert_eq!(
            poll_url("https://h/s?x=1"),
            "https://h/s?x=1&mode=poll&timeout=0"
        );
    }
}
