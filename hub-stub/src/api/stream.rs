//! Event streams: a node's subscription (SSE or long-poll) with catch-up from
//! the job log and explicit gap events, and operators following results.

use crate::api::{Resp, full, json};
use crate::datadir::now;
use crate::hub::event_frame;
use crate::hub::{Hub, Published};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, header};
use hyper::body::{Body, Frame};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use vantage_proto::node::GapEvent;
use vantage_proto::sse::{Event, KEEPALIVE};

const BATCH: usize = 256;
const MAX_POLL_SECS: u64 = 60;

fn last_event_id(headers: &HeaderMap, q: &HashMap<String, String>) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("last_event_id").cloned())
        .filter(|s| !s.trim().is_empty())
}

fn sse_response(body: axum::body::Body) -> Resp {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .expect("static response parts")
}

/// Where a subscriber stands in the job log.
struct Cursor {
    channels: Vec<String>,
    pos: u64,
}

impl Cursor {
    /// The frame of an entry for this subscriber, if it is on one of its channels.
    fn pick(&self, p: &Published) -> Option<Bytes> {
        p.frames
            .iter()
            .find(|(c, _)| self.channels.contains(c))
            .map(|(_, f)| f.clone())
    }

    /// The next batch after `pos` from the log, with a gap event first if retention
    /// dropped some; true if there is more. Batches keep a far-behind subscriber
    /// from loading the whole log into memory.
    async fn catch_up(
        &mut self,
        hub: &Arc<Hub>,
        requested: Option<&str>,
    ) -> Result<(Vec<Bytes>, bool), crate::db::DbError> {
        let mut out = Vec::new();
        let pruned = hub.pruned_through.load(Ordering::SeqCst);
        if self.pos < pruned {
            let requested = requested.map_or_else(|| self.pos.to_string(), str::to_string);
            out.push(gap_frame(&requested, pruned + 1, pruned));
            self.pos = pruned;
        }
        let (after, ch) = (self.pos, self.channels.clone());
        let entries = hub.db(move |db| db.log_after(after, &ch, BATCH)).await?;
        let more = entries.len() == BATCH;
        for e in entries {
            let c = e
                .channels
                .iter()
                .find(|c| self.channels.contains(c))
                .cloned()
                .unwrap_or_default();
            out.push(event_frame(e.seq, &c, e.time, &e.payload));
            self.pos = e.seq;
        }
        Ok((out, more))
    }
}

/// An `id:` line without data: moves the client's last event id without an event
/// (WHATWG: the id is taken even when nothing is dispatched).
fn position_frame(seq: u64) -> Bytes {
    Bytes::from(format!("id: {seq}\n\n"))
}

/// A gap event: what lay between `requested` and `oldest` is lost.
fn gap_frame(requested: &str, oldest: u64, id: u64) -> Bytes {
    let gap = GapEvent {
        requested: requested.to_string(),
        oldest,
    };
    let ev = Event {
        id: Some(id.to_string()),
        event: Some("gap".into()),
        data: serde_json::to_string(&gap).expect("serialises"),
        retry: None,
    };
    Bytes::from(ev.encode())
}

/// `GET /v1/sub/<channels>`: SSE stream, or long-poll with `?mode=poll`.
pub async fn subscribe(
    hub: Arc<Hub>,
    node: String,
    (serial, not_after): (String, i64),
    channels: Vec<String>,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Resp, crate::api::ApiError> {
    let last = last_event_id(headers, q);
    // Subscribe to live entries before reading the log, so nothing falls between.
    let rx = hub.log_tx.subscribe();
    let live = hub.last_seq.load(Ordering::SeqCst);
    let mut cur = Cursor {
        channels,
        pos: live,
    };
    let poll = q.get("mode").map(String::as_str) == Some("poll");
    let mut behind = false;
    let mut first = match last.as_deref().map(|s| (s, s.trim().parse::<u64>())) {
        // A fresh subscriber starts at the live end (and learns where that is).
        None if poll => Vec::new(),
        None => vec![position_frame(live)],
        Some((s, Ok(n))) if n <= live => {
            cur.pos = n;
            let (frames, more) = cur.catch_up(&hub, Some(s)).await?;
            behind = more;
            frames
        }
        // An id this log never issued (another hub, a restored database, or one a
        // hostile stream made up): we cannot know what the client missed, so say
        // so and send everything still held, oldest first. Moving the client to
        // the live end instead would skip jobs the hub holds; the node's replay
        // set drops what it already ran.
        Some((s, _)) => {
            let pruned = hub.pruned_through.load(Ordering::SeqCst);
            cur.pos = pruned;
            let mut frames = vec![gap_frame(s, pruned + 1, pruned)];
            let (held, more) = cur.catch_up(&hub, Some(s)).await?;
            behind = more;
            frames.extend(held);
            frames
        }
    };
    if poll {
        let timeout = q
            .get("timeout")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(25)
            .min(MAX_POLL_SECS);
        let _sub = hub.subscribe(&node, &cur.channels);
        if first.is_empty() {
            first = poll_wait(&hub, &mut cur, rx, Duration::from_secs(timeout)).await?;
        }
        if first.is_empty() {
            // Nothing for this subscriber: still move its position past what went by.
            first.push(position_frame(cur.pos));
        }
        hub.metrics.events_sent.inc_by(first.len() as u64);
        let body: Vec<u8> = first.concat();
        return Ok(sse_response(full(body)));
    }
    let guard = hub.subscribe(&node, &cur.channels);
    let body = StreamBody::new(|tx| async move {
        let _guard = guard;
        if let Err(e) = run_stream(&hub, (&serial, not_after), cur, rx, (first, behind), tx).await {
            tracing::debug!(node, "stream ended: {e}");
        }
    });
    Ok(sse_response(axum::body::Body::new(body)))
}

/// Where a stream's producer hands its next frame to the response body.
#[derive(Clone)]
struct Out(Arc<Mutex<Option<Bytes>>>);

impl Out {
    /// Hands over one frame and waits until the body has taken it.
    async fn send(&self, b: Bytes) {
        *self.0.lock().expect("frame slot") = Some(b);
        std::future::poll_fn(|_| {
            // No waker needed: the body takes the frame and polls the producer
            // again when hyper asks for the next one.
            if self.0.lock().expect("frame slot").is_some() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

/// An event-stream response body that runs its producer when hyper asks for the
/// next frame: no task and no channel per subscriber, and the producer goes
/// away with the connection. A reader that stops reading stops hyper from
/// asking; the connection's idle check then closes it.
struct StreamBody {
    out: Out,
    /// In a mutex only so the body is `Sync`; it is never locked (`get_mut`).
    run: Option<Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl StreamBody {
    fn new<F, Fut>(producer: F) -> Self
    where
        F: FnOnce(Out) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let out = Out(Arc::new(Mutex::new(None)));
        let run: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(producer(out.clone()));
        Self {
            out,
            run: Some(Mutex::new(run)),
        }
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(run) = this.run.as_mut()
            && run
                .get_mut()
                .expect("producer")
                .as_mut()
                .poll(cx)
                .is_ready()
        {
            this.run = None;
        }
        match this.out.0.lock().expect("frame slot").take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None if this.run.is_none() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

async fn poll_wait(
    hub: &Arc<Hub>,
    cur: &mut Cursor,
    mut rx: tokio::sync::broadcast::Receiver<Arc<Published>>,
    timeout: Duration,
) -> Result<Vec<Bytes>, crate::db::DbError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) | Ok(Err(RecvError::Closed)) => return Ok(Vec::new()),
            Ok(Err(RecvError::Lagged(_))) => {
                let (got, _) = cur.catch_up(hub, None).await?;
                if !got.is_empty() {
                    return Ok(got);
                }
            }
            Ok(Ok(p)) => {
                if p.seq <= cur.pos {
                    continue;
                }
                cur.pos = p.seq;
                if let Some(f) = cur.pick(&p) {
                    return Ok(vec![f]);
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum StreamEnd {
    #[error("certificate revoked")]
    Revoked,
    #[error("certificate expired")]
    Expired,
    #[error("{0}")]
    Db(#[from] crate::db::DbError),
}

/// Sends the log after the cursor, batch by batch, at the client's pace.
async fn send_backlog(hub: &Arc<Hub>, tx: &Out, cur: &mut Cursor) -> Result<(), StreamEnd> {
    loop {
        let (frames, more) = cur.catch_up(hub, None).await?;
        for f in frames {
            tx.send(f).await;
            hub.metrics.events_sent.inc();
        }
        if !more {
            return Ok(());
        }
    }
}

async fn run_stream(
    hub: &Arc<Hub>,
    (serial, not_after): (&str, i64),
    mut cur: Cursor,
    mut rx: tokio::sync::broadcast::Receiver<Arc<Published>>,
    (first, behind): (Vec<Bytes>, bool),
    tx: Out,
) -> Result<(), StreamEnd> {
    // Tell the client at once that the stream is open (and flush proxies).
    tx.send(Bytes::from_static(KEEPALIVE.as_bytes())).await;
    for f in first {
        tx.send(f).await;
        hub.metrics.events_sent.inc();
    }
    if behind {
        send_backlog(hub, &tx, &mut cur).await?;
    }
    let mut ka = tokio::time::interval(hub.cfg.keepalive);
    ka.tick().await;
    let mut revoked = hub.revoked_tx.subscribe();
    // The stream ends with the certificate; the node reconnects with its renewed one.
    let expiry = tokio::time::sleep(Duration::from_secs((not_after - now()).max(0) as u64));
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            _ = &mut expiry => return Err(StreamEnd::Expired),
            m = rx.recv() => match m {
                Ok(p) => {
                    if p.seq <= cur.pos {
                        continue;
                    }
                    cur.pos = p.seq;
                    if let Some(f) = cur.pick(&p) {
                        tx.send(f).await;
                        hub.metrics.events_sent.inc();
                    }
                }
                Err(RecvError::Lagged(_)) => send_backlog(hub, &tx, &mut cur).await?,
                Err(RecvError::Closed) => return Ok(()),
            },
            _ = ka.tick() => tx.send(Bytes::from_static(KEEPALIVE.as_bytes())).await,
            c = revoked.changed() => {
                if c.is_err() {
                    return Ok(());
                }
                let s = serial.to_string();
                let row = hub.db(move |db| db.cert(&s)).await?;
                if row.is_none_or(|r| r.revoked.is_some()) {
                    return Err(StreamEnd::Revoked);
                }
            }
        }
    }
}

/// Every stored result of a job, oldest first, read in pages.
pub async fn stored_results(
    hub: &Arc<Hub>,
    job_id: &str,
) -> Result<Vec<crate::db::ResultRow>, crate::db::DbError> {
    const PAGE: usize = 1000;
    let mut all = Vec::new();
    loop {
        let (j, after) = (
            job_id.to_string(),
            all.last().map_or(0, |r: &crate::db::ResultRow| r.id),
        );
        let rows = hub.db(move |db| db.results_of(&j, after, PAGE)).await?;
        let n = rows.len();
        all.extend(rows);
        if n < PAGE {
            return Ok(all);
        }
    }
}

/// `GET /v1/jobs/<id>/results`: JSON array, or with `?follow=1` an SSE stream.
pub async fn job_results(
    hub: Arc<Hub>,
    job_id: String,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Resp, crate::api::ApiError> {
    let follow = matches!(q.get("follow").map(String::as_str), Some("1" | "true"));
    if !follow {
        let all: Vec<serde_json::Value> = stored_results(&hub, &job_id)
            .await?
            .iter()
            .map(|r| serde_json::from_str(&r.body).unwrap_or_default())
            .collect();
        return Ok(json(StatusCode::OK, &all));
    }
    let mut after: i64 = last_event_id(headers, q)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut rx = hub.results_tx.subscribe();
    let body = StreamBody::new(|tx| async move {
        let result: Result<(), StreamEnd> = async {
            tx.send(Bytes::from_static(KEEPALIVE.as_bytes())).await;
            let mut ka = tokio::time::interval(hub.cfg.keepalive);
            ka.tick().await;
            let mut backlog = true;
            loop {
                if backlog {
                    backlog = false;
                    loop {
                        let j = job_id.clone();
                        let rows = hub.db(move |db| db.results_of(&j, after, BATCH)).await?;
                        let n = rows.len();
                        for r in rows {
                            after = r.id;
                            tx.send(result_frame(r.id, &r.body)).await;
                        }
                        if n < BATCH {
                            break;
                        }
                    }
                }
                tokio::select! {
                    m = rx.recv() => match m {
                        Ok(ev) if ev.job_id == job_id && ev.id > after => {
                            after = ev.id;
                            tx.send(result_frame(ev.id, &ev.body)).await;
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => backlog = true,
                        Err(RecvError::Closed) => return Ok(()),
                    },
                    _ = ka.tick() => tx.send(Bytes::from_static(KEEPALIVE.as_bytes())).await,
                }
            }
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(job = %job_id, "results stream ended: {e}");
        }
    });
    Ok(sse_response(axum::body::Body::new(body)))
}

fn result_frame(id: i64, body: &str) -> Bytes {
    Bytes::from(Event::message(id.to_string(), body).encode())
}
