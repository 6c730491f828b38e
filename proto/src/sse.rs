//! Server-sent events (`text/event-stream`) framing: encoder and an incremental decoder.
//!
//! The decoder follows the WHATWG parsing rules (LF, CRLF or CR line ends,
//! `field: value`, comments, `data` lines joined by LF, a blank line dispatches)
//! and is built for bytes from the network: any split of the input gives the
//! same frames, every line and event is bounded, and garbage yields an error
//! for that line, after which decoding resumes at the next line.

use std::fmt::Write as _;
use thiserror::Error;

/// Default bound on one line, in bytes.
pub const DEFAULT_MAX_LINE: usize = 256 * 1024;
/// Default bound on one event's data, in bytes.
pub const DEFAULT_MAX_EVENT: usize = 1024 * 1024;
/// Longest event id the decoder takes, in bytes.
pub const MAX_EVENT_ID: usize = 256;

/// Whether `id` can be stored and sent back as `Last-Event-ID`: at most
/// [`MAX_EVENT_ID`] bytes of visible ASCII (or empty, which resets the id).
/// Anything else (a control byte, a huge id) would make every reconnect's
/// request invalid or refused, so a client that kept it could never resume.
pub fn valid_event_id(id: &str) -> bool {
    id.len() <= MAX_EVENT_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The last event id seen on the stream when this event was dispatched (SSE semantics).
    pub id: Option<String>,
    /// `event:` field; `None` means `message`.
    pub event: Option<String>,
    /// The data lines joined by `\n`.
    pub data: String,
    /// `retry:` field, in milliseconds, if the event carried one.
    pub retry: Option<u64>,
}

impl Event {
    /// A `message` event with data and an id.
    pub fn message(id: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            event: None,
            data: data.into(),
            retry: None,
        }
    }

    /// The wire form, ending with the blank line that dispatches it.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Some(e) = &self.event {
            writeln!(out, "event: {}", single_line(e)).expect("String write");
        }
        if let Some(id) = &self.id {
            writeln!(out, "id: {}", single_line(id)).expect("String write");
        }
        if let Some(r) = self.retry {
            writeln!(out, "retry: {r}").expect("String write");
        }
        for line in self.data.split('\n') {
            writeln!(out, "data: {line}").expect("String write");
        }
        out.push('\n');
        out
    }
}

/// A keep-alive comment frame.
pub const KEEPALIVE: &str = ":ka\n\n";

/// Encodes a comment (each line prefixed with `:`).
pub fn encode_comment(text: &str) -> String {
    let mut out = String::new();
    for line in text.split('\n') {
        writeln!(out, ":{line}").expect("String write");
    }
    out
}

fn single_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A dispatched event.
    Event(Event),
    /// A comment line (keep-alives are comments); the text after the colon.
    Comment(String),
}

/// Why part of the stream was discarded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SseError {
    /// A line grew past the bound; it was skipped up to its end.
    #[error("event-stream line longer than {0} bytes; skipped")]
    LineTooLong(usize),
    /// An event's data grew past the bound; the event was dropped.
    #[error("event-stream event larger than {0} bytes; dropped")]
    EventTooLarge(usize),
    /// A line was not UTF-8; it was skipped.
    #[error("event-stream line is not UTF-8; skipped")]
    NotUtf8,
    /// An `id` field that could not be sent back as `Last-Event-ID`; the
    /// previous id stays in force.
    #[error(
        "event-stream id of {len} bytes ignored: ids must be at most {MAX_EVENT_ID} bytes of visible ASCII (starts {start:?})"
    )]
    InvalidId {
        /// Its length in bytes.
        len: usize,
        /// Its first characters, for the log.
        start: String,
    },
}

/// Incremental decoder. Feed it bytes as they arrive.
#[derive(Debug)]
pub struct Decoder {
    max_line: usize,
    max_event: usize,
    line: Vec<u8>,
    /// Discarding the rest of an over-long line.
    skipping: bool,
    /// The previous byte was CR, so an LF now is part of the same line end.
    after_cr: bool,
    /// At the very start (a BOM is dropped there).
    at_start: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    retry: Option<u64>,
    last_id: Option<String>,
    event_overflow: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE, DEFAULT_MAX_EVENT)
    }
}

impl Decoder {
    /// A decoder with bounds on line and event size.
    pub fn new(max_line: usize, max_event: usize) -> Self {
        Self {
            max_line,
            max_event,
            line: Vec::new(),
            skipping: false,
            after_cr: false,
            at_start: true,
            data: String::new(),
            has_data: false,
            event: None,
            retry: None,
            last_id: None,
            event_overflow: false,
        }
    }

    /// Starts resuming from a known last event id (as after a reconnect).
    pub fn with_last_id(mut self, id: Option<String>) -> Self {
        self.last_id = id;
        self
    }

    /// The last event id seen.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Consumes bytes; returns the frames and errors completed by them, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Frame, SseError>> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut out);
                }
                _ if self.skipping => {}
                _ => {
                    if self.line.len() >= self.max_line {
                        self.line.clear();
                        self.skipping = true;
                        out.push(Err(SseError::LineTooLong(self.max_line)));
                    } else {
                        self.line.push(b);
                    }
                }
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<Result<Frame, SseError>>) {
        if self.skipping {
            self.skipping = false;
            self.at_start = false;
            return;
        }
        let mut raw = std::mem::take(&mut self.line);
        if self.at_start {
            self.at_start = false;
            if raw.starts_with(&[0xEF, 0xBB, 0xBF]) {
                raw.drain(..3);
            }
        }
        let Ok(line) = String::from_utf8(raw) else {
            out.push(Err(SseError::NotUtf8));
            return;
        };
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Ok(Frame::Comment(comment.to_string())));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_event {
                    if !self.event_overflow {
                        out.push(Err(SseError::EventTooLarge(self.max_event)));
                    }
                    self.event_overflow = true;
                    self.data.clear();
                } else if !self.event_overflow {
                    self.data.push_str(value);
                    self.data.push('\n');
                    self.has_data = true;
                }
            }
            "event" => self.event = Some(value.to_string()),
            "id" if valid_event_id(value) => self.last_id = Some(value.to_string()),
            "id" => out.push(Err(SseError::InvalidId {
                len: value.len(),
                start: value.chars().take(32).collect(),
            })),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Result<Frame, SseError>>) {
        let event = self.event.take();
        let retry = self.retry.take();
        let overflow = std::mem::replace(&mut self.event_overflow, false);
        if !self.has_data || overflow {
            self.data.clear();
            self.has_data = false;
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        out.push(Ok(Frame::Event(Event {
            id: self.last_id.clone(),
            event,
            data,
            retry,
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn events(frames: Vec<Result<Frame, SseError>>) -> Vec<Event> {
        frames
            .into_iter()
            .filter_map(|f| match f {
                Ok(Frame::Event(e)) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn decodes_the_spec_examples() {
        let mut d = Decoder::default();
        let text = "\u{feff}: test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\nevent: gap\ndata: {\"a\":1}\ndata: x\r\n\r\n";
        let got = d.feed(text.as_bytes());
        assert_eq!(got[0], Ok(Frame::Comment(" test stream".into())));
        let ev = events(got);
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0], Event::message("1", "first event"));
        assert_eq!(ev[1].id.as_deref(), Some(""));
        assert_eq!(ev[1].data, "second event");
        assert_eq!(ev[2].data, " third event");
        assert_eq!(ev[3].event.as_deref(), Some("gap"));
        assert_eq!(ev[3].data, "{\"a\":1}\nx");
    }

    #[test]
    fn cr_then_lf_across_chunks_is_one_line_end() {
        let mut d = Decoder::default();
        let mut all = d.feed(b"data: a\r");
        all.extend(d.feed(b"\n\r"));
        all.extend(d.feed(b"\ndata: b\n\n"));
        assert_eq!(
            events(all)
                .iter()
                .map(|e| e.data.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn bounds_are_enforced_and_decoding_resumes() {
        let mut d = Decoder::new(16, 32);
        let mut frames = d.feed(b"data: this line is far too long for the bound\n\ndata: ok\n\n");
        assert_eq!(frames.remove(0), Err(SseError::LineTooLong(16)));
        assert_eq!(
            events(frames),
            [Event {
                id: None,
                event: None,
                data: "ok".into(),
                retry: None
            }]
        );
        let frames =
            d.feed(b"data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\ndata: ok\n\n");
        assert!(frames.contains(&Err(SseError::EventTooLarge(32))));
        assert_eq!(events(frames).len(), 1);
        let frames = d.feed(b"data: \xff\xfe\n\n");
        assert_eq!(frames, [Err(SseError::NotUtf8)]);
    }

    #[test]
    fn unusable_ids_are_ignored_and_reported() {
        let mut d = Decoder::default();
        let long = "7".repeat(MAX_EVENT_ID + 1);
        let text = format!(
            "id: 1\ndata: a\n\nid: 2\u{1}x\ndata: b\n\nid: {long}\ndata: c\n\nid: 2 3\ndata: d\n\nid: {}\ndata: e\n\n",
            "9".repeat(MAX_EVENT_ID)
        );
        let frames = d.feed(text.as_bytes());
        let errors = frames.iter().filter(|f| f.is_err()).count();
        assert_eq!(errors, 3, "{frames:?}");
        let ids: Vec<_> = events(frames).into_iter().map(|e| e.id).collect();
        let max = "9".repeat(MAX_EVENT_ID);
        assert_eq!(
            ids,
            [
                Some("1"),
                Some("1"),
                Some("1"),
                Some("1"),
                Some(max.as_str())
            ]
            .map(|o| o.map(String::from))
        );
        assert_eq!(d.last_id(), Some(max.as_str()));
        assert!(valid_event_id("") && valid_event_id("1543512360:0,1543512360:[1]"));
        assert!(!valid_event_id("a\tb") && !valid_event_id("é"));
    }

    #[test]
    fn encode_then_decode() {
        let e = Event {
            id: Some("7".into()),
            event: Some("gap".into()),
            data: "a\nb".into(),
            retry: Some(3000),
        };
        let mut d = Decoder::default();
        let mut frames = d.feed(e.encode().as_bytes());
        frames.extend(d.feed(KEEPALIVE.as_bytes()));
        assert_eq!(
            frames,
            [Ok(Frame::Event(e)), Ok(Frame::Comment("ka".into()))]
        );
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        (
            prop::option::of("[!-~]{0,12}"),
            prop::option::of("[a-z]{1,8}"),
            "[^\r]{0,40}",
            prop::option::of(0u64..100_000),
        )
            .prop_map(|(id, event, data, retry)| Event {
                id,
                event,
                data,
                retry,
            })
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(evs in prop::collection::vec(arb_event(), 0..6), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
            let mut text = String::new();
            for e in &evs {
                text += &e.encode();
            }
            let bytes = text.as_bytes();
            let whole = Decoder::default().feed(bytes);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort();
            let mut d = Decoder::default();
            let mut pieces = Vec::new();
            let mut start = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                pieces.extend(d.feed(&bytes[start..p]));
                start = p;
            }
            prop_assert_eq!(&pieces, &whole);
            // An event without id inherits the previous one (SSE semantics); compare the rest.
            let got = events(whole);
            prop_assert_eq!(got.len(), evs.len());
            for (g, e) in got.iter().zip(&evs) {
                prop_assert_eq!(&g.data, &e.data);
                prop_assert_eq!(&g.event, &e.event);
                if e.id.is_some() {
                    prop_assert_eq!(&g.id, &e.id);
                }
            }
        }

        #[test]
        fn garbage_never_panics_and_stays_bounded(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..10)) {
            let mut d = Decoder::new(64, 256);
            for c in &chunks {
                for f in d.feed(c) {
                    if let Ok(Frame::Event(e)) = f {
                        prop_assert!(e.data.len() <= 256);
                    }
                }
                prop_assert!(d.line.len() <= 64);
                prop_assert!(d.data.len() <= 256);
                prop_assert!(d.last_id().is_none_or(valid_event_id));
            }
        }
    }
}
