//! What arrives from the subscription, in order: each message goes to
//! `orders` and then its event id is persisted (`last-event-id`); gaps go to
//! `gaps`; a (re)connect fetches the approval policy and, when the stream
//! comes from elsewhere (Nchan), catches up through the hub (`reconcile`)
//! from the highest hub sequence number handled (`hub-seq`).

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use vantage_node::state::NodeState;
use vantage_proto::enrol::Endpoints;

use crate::approvals::Approvals;
use crate::config::{Config, MessageForm};
use crate::gaps::Gaps;
use crate::health::Health;
use crate::hub::Hub;
use crate::orders::Orders;
use crate::reconcile::{self, HubSeq};
use crate::revoked::Revoked;
use crate::subscribe::{SubEvent, Subscription};

/// Starts the subscription on its own thread; its events come out of the
/// returned channel. `last_id` is where the last handled event id is kept.
pub fn subscribe(
    cfg: &Config,
    node: &NodeState,
    hub: Hub,
    last_id: &Path,
) -> mpsc::Receiver<SubEvent> {
    let (tx, rx) = mpsc::channel(64);
    let template = cfg
        .subscribe
        .url
        .clone()
        .unwrap_or_else(|| node.endpoints.subscribe.clone());
    let sub = Subscription {
        url: Endpoints::subscribe_url(&template, &node.channels),
        cfg: cfg.subscribe.clone(),
        last_id: crate::subscribe::read_last_id(last_id),
        connected: false,
        hub_stream: cfg.subscribe.url.is_none(),
        agent: Box::new(move |read_timeout| Ok(hub.stream_agent(read_timeout))),
    };
    std::thread::Builder::new()
        .name("subscribe".into())
        .spawn(move || sub.run(tx))
        .expect("spawning the subscription thread");
    rx
}

/// The stream task's parts.
pub struct Stream {
    /// Where messages go.
    pub orders: Orders,
    /// Where gaps go.
    pub gaps: Gaps,
    /// Refreshed at each (re)connect.
    pub approvals: Approvals,
    /// The client to the hub (for catch-up).
    pub hub: Hub,
    /// Connection state and errors.
    pub health: Health,
    /// Told when the hub's stream refuses the node as revoked.
    pub revoked: Revoked,
    /// The highest hub sequence number handled.
    pub hub_seq: HubSeq,
    /// Where the last handled event id is kept.
    pub last_id: PathBuf,
    /// What each message's data holds.
    pub form: MessageForm,
    /// The hub's catch-up URL, when the stream comes from elsewhere (Nchan).
    pub catch_up: Option<String>,
}

impl Stream {
    /// The hub's catch-up URL for `node`, if `cfg` subscribes elsewhere.
    pub fn catch_up_url(cfg: &Config, node: &NodeState) -> Option<String> {
        // Not the hub's own stream: ask the hub what that one cannot tell.
        cfg.subscribe.url.as_ref().map(|_| {
            reconcile::poll_url(&Endpoints::subscribe_url(
                &node.endpoints.subscribe,
                &node.channels,
            ))
        })
    }

    /// Handles the subscription's events until it stops.
    pub async fn run(self, mut rx: mpsc::Receiver<SubEvent>) {
        while let Some(ev) = rx.recv().await {
            match ev {
                SubEvent::Connected(url) => self.connected(&url).await,
                SubEvent::Lost(why) => {
                    self.health.set_connected(false);
                    self.health.set_error(format!("subscription: {why}"));
                }
                SubEvent::Message { id, data } => {
                    if let Some(seq) = self.orders.handle(self.form, &id, &data).await {
                        self.advance(seq);
                    }
                    if let Some(id) = id {
                        self.persist_last_id(&id);
                    }
                }
                SubEvent::Revoked {
                    evidence,
                    url,
                    detail,
                } => self.revoked.report(evidence, &url, &detail),
                SubEvent::Position(id) => self.persist_last_id(&id),
                SubEvent::Gap { id, gap } => {
                    self.gaps.report(gap);
                    if let Some(id) = id {
                        let _ = crate::durable::write(&self.last_id, id.as_bytes());
                    }
                }
            }
        }
    }

    async fn connected(&self, url: &str) {
        // Long-poll reconnects after every answer: act on changes only.
        if self.health.set_connected(true) {
            return;
        }
        tracing::info!("subscribed: {url}");
        let approvals = self.approvals.clone();
        tokio::spawn(async move { approvals.refresh().await });
        if let Some(catch_up) = &self.catch_up {
            self.reconcile(catch_up).await;
        }
    }

    fn persist_last_id(&self, id: &str) {
        if let Err(e) = crate::durable::write(&self.last_id, id.as_bytes()) {
            self.health
                .set_error(format!("cannot persist the last event id: {e}"));
        }
    }

    fn advance(&self, seq: u64) {
        if let Err(e) = self.hub_seq.advance(seq) {
            self.health
                .set_error(format!("cannot persist the hub sequence number: {e}"));
        }
    }

    /// Asks the hub, by long-poll from the highest hub sequence number handled,
    /// for what the stream from elsewhere (Nchan) may have skipped: jobs go
    /// through the normal checks (the replay set drops duplicates), a gap is
    /// reported. Batch by batch until the hub has nothing more.
    async fn reconcile(&self, url: &str) {
        loop {
            let (agent, url, after) = (self.hub.http(), url.to_string(), self.hub_seq.get());
            let fetched =
                tokio::task::spawn_blocking(move || reconcile::fetch(&agent, &url, after))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
            let events = match fetched {
                Ok(ev) => ev,
                Err(e) => {
                    self.health.set_error(format!(
                        "catching up from the hub: {e}; will retry on the next reconnect"
                    ));
                    return;
                }
            };
            let jobs = self.catch_up(events).await;
            if jobs == 0 || self.hub_seq.get() == after {
                return;
            }
            tracing::info!("caught up {jobs} message(s) from the hub");
        }
    }

    /// Handles one catch-up batch; returns how many messages it held.
    async fn catch_up(&self, events: Vec<SubEvent>) -> usize {
        let mut jobs = 0usize;
        for ev in events {
            match ev {
                SubEvent::Message { id, data } => {
                    jobs += 1;
                    if let Some(seq) = self.orders.handle(MessageForm::Envelope, &id, &data).await {
                        self.advance(seq);
                    }
                    // Also past an unreadable envelope, so the next batch moves on.
                    if let Some(seq) = id.and_then(|i| i.parse().ok()) {
                        self.advance(seq);
                    }
                }
                SubEvent::Gap { id, gap } => {
                    self.gaps.report(gap);
                    if let Some(seq) = id.and_then(|i| i.parse().ok())
                        && let Err(e) = self.hub_seq.set(seq)
                    {
                        self.health
                            .set_error(format!("cannot persist the hub sequence number: {e}"));
                    }
                }
                SubEvent::Position(p) => {
                    if let Ok(seq) = p.parse() {
                        self.advance(seq);
                    }
                }
                SubEvent::Connected(_) | SubEvent::Lost(_) | SubEvent::Revoked { .. } => {}
            }
        }
        jobs
    }
}
