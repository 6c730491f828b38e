//! Delivery: the task that POSTs the outbox's results to the hub, oldest
//! first, deleting each only after a 2xx, and retries with backoff.

use std::time::Duration;

use vantage_node::backoff::Backoff;

use crate::health::Health;
use crate::hub::Hub;
use crate::outbox::Entry;
use crate::results::Results;

/// The delivery task's parts.
pub struct Sender {
    /// The outbox.
    pub results: Results,
    /// The client to the hub.
    pub hub: Hub,
    /// The hub's results endpoint.
    pub url: String,
    /// Where delivery problems are noted.
    pub health: Health,
}

/// What became of one result.
enum Delivery {
    /// Taken, or dropped for good: go on with the next.
    Done,
    /// Try again later.
    Retry,
}

impl Sender {
    /// Delivers forever: batches of up to 32, waiting for new results when
    /// the outbox is empty and after a failure.
    pub async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        loop {
            let batch = self.results.peek(32);
            if batch.is_empty() {
                self.results.changed(Duration::from_secs(60)).await;
                continue;
            }
            for entry in batch {
                if let Delivery::Retry = self.deliver(entry, &mut backoff).await {
                    self.results.changed(backoff.next_delay()).await;
                    break;
                }
            }
        }
    }

    async fn deliver(&self, entry: Entry, backoff: &mut Backoff) -> Delivery {
        match self.hub.post(self.url.clone(), entry.body).await {
            Ok((200..=299, _)) => {
                backoff.reset();
                if let Err(e) = self.results.ack(entry.seq) {
                    self.health
                        .set_error(format!("cannot delete a delivered result: {e}"));
                }
                Delivery::Done
            }
            Ok((status, body))
                if (400..500).contains(&status) && status != 408 && status != 429 =>
            {
                // The hub will never take this result; keeping it would block the rest.
                self.health.set_error(format!(
                    "the hub rejected a result (HTTP {status}: {}); dropped it",
                    crate::logging::one_line(&body)
                ));
                self.results.reject(entry.seq);
                Delivery::Done
            }
            Ok((status, body)) => {
                self.health.set_error(format!(
                    "the hub could not store a result (HTTP {status}: {}); will retry",
                    crate::logging::one_line(&body)
                ));
                Delivery::Retry
            }
            Err(e) => {
                self.health
                    .set_error(format!("cannot deliver results: {e}; will retry"));
                Delivery::Retry
            }
        }
    }
}
