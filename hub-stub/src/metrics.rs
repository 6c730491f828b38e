//! The hub's metrics: counters the handlers bump, gauges set from the hub's
//! state at each scrape, request latency per route, all in one
//! `prometheus-client` registry that `/metrics` encodes (OpenMetrics text).

use crate::nchan::NchanMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vantage_proto::api::Stats;

/// Labels of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route as declared (`/v1/jobs/{id}`), so ids do not make new series.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// HTTP status code.
    pub status: u16,
}

/// Label of a per-channel gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    /// Channel name.
    pub channel: String,
}

/// Labels of the per-release node gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReleaseLabels {
    /// The release's version.
    pub version: String,
    /// `updated`, `failed` or `pending`.
    pub state: String,
}

/// Gauges describing the hub now, set from [`Stats`] at each scrape.
#[derive(Default)]
struct Now {
    connections: Gauge,
    subscriptions: Gauge,
    subscribed_nodes: Gauge,
    nodes: Gauge,
    nodes_online: Gauge,
    nodes_revoked: Gauge,
    pending: Gauge,
    log_entries: Gauge,
    last_seq: Gauge,
    pruned_through: Gauge,
    uptime: Gauge,
    policy_serial: Gauge,
}

/// Every metric of the hub, and the registry that names them.
pub struct Metrics {
    /// Requests served.
    pub requests: Counter,
    /// Requests refused for rate.
    pub rate_limited: Counter,
    /// Connections refused (limit or handshake failure).
    pub conn_refused: Counter,
    /// Jobs accepted.
    pub jobs_accepted: Counter,
    /// Jobs refused.
    pub jobs_refused: Counter,
    /// Events sent to subscribers.
    pub events_sent: Counter,
    /// Results stored.
    pub results_stored: Counter,
    /// Duplicate results ignored.
    pub results_duplicate: Counter,
    /// Results refused (unknown job, node not selected, run not scheduled).
    pub results_refused: Counter,
    /// Enrolments issued.
    pub enrolments: Counter,
    /// TLS handshakes cancelled because a newer connection needed the slot.
    pub handshakes_evicted: Counter,
    request_seconds: Family<RequestLabels, Histogram>,
    channel_subscribers: Family<ChannelLabel, Gauge>,
    release_nodes: Family<ReleaseLabels, Gauge>,
    now: Now,
    registry: Mutex<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics at zero, registered under `vantage_hub_`.
    pub fn new() -> Self {
        let request_seconds = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let m = Self {
            requests: Counter::default(),
            rate_limited: Counter::default(),
            conn_refused: Counter::default(),
            jobs_accepted: Counter::default(),
            jobs_refused: Counter::default(),
            events_sent: Counter::default(),
            results_stored: Counter::default(),
            results_duplicate: Counter::default(),
            results_refused: Counter::default(),
            enrolments: Counter::default(),
            handshakes_evicted: Counter::default(),
            request_seconds,
            channel_subscribers: Family::default(),
            release_nodes: Family::default(),
            now: Now::default(),
            registry: Mutex::new(Registry::with_prefix("vantage_hub")),
        };
        m.register_all();
        m
    }

    fn register_all(&self) {
        let mut r = crate::sync::lock(&self.registry);
        self.register_counters(&mut r);
        self.register_gauges(&mut r);
        r.register_with_unit(
            "request_duration",
            "time to answer a request (to the response head; streams excluded from their length)",
            Unit::Seconds,
            self.request_seconds.clone(),
        );
        r.register(
            "channel_subscribers",
            "open subscriptions per channel",
            self.channel_subscribers.clone(),
        );
        r.register(
            "release_nodes",
            "nodes in the waves of each agent release, by state (updated, failed, pending), as last counted",
            self.release_nodes.clone(),
        );
    }

    /// The totals counted since the start.
    fn register_counters(&self, r: &mut Registry) {
        for (name, help, c) in [
            ("requests", "HTTP requests", &self.requests),
            (
                "rate_limited",
                "requests refused for rate",
                &self.rate_limited,
            ),
            (
                "connections_refused",
                "connections refused before or in the TLS handshake",
                &self.conn_refused,
            ),
            ("jobs_accepted", "signed jobs accepted", &self.jobs_accepted),
            ("jobs_refused", "jobs refused", &self.jobs_refused),
            (
                "events_sent",
                "events sent to subscribers",
                &self.events_sent,
            ),
            ("results_stored", "results stored", &self.results_stored),
            (
                "results_duplicate",
                "results that were already stored",
                &self.results_duplicate,
            ),
            (
                "results_refused",
                "results refused (unknown job, node not selected, run not scheduled)",
                &self.results_refused,
            ),
            (
                "enrolments",
                "node certificates issued at enrolment",
                &self.enrolments,
            ),
        ] {
            r.register(name, help, c.clone());
        }
    }

    /// The state now, set from the hub's state when scraped.
    fn register_gauges(&self, r: &mut Registry) {
        let n = &self.now;
        for (name, help, g) in [
            (
                "connections",
                "open connections after the TLS handshake",
                &n.connections,
            ),
            (
                "subscriptions",
                "open channel subscriptions",
                &n.subscriptions,
            ),
            (
                "subscribed_nodes",
                "nodes with an open subscription",
                &n.subscribed_nodes,
            ),
            ("nodes", "enrolled nodes, revoked ones included", &n.nodes),
            ("nodes_online", "nodes online now", &n.nodes_online),
            ("nodes_revoked", "revoked nodes", &n.nodes_revoked),
            ("pending", "enrolments waiting for approval", &n.pending),
            ("log_entries", "entries in the job log", &n.log_entries),
            ("last_seq", "newest job-log sequence number", &n.last_seq),
            (
                "pruned_through",
                "job-log entries up to this one were pruned",
                &n.pruned_through,
            ),
            (
                "policy_serial",
                "serial of the approval policy in force (0: none)",
                &n.policy_serial,
            ),
        ] {
            r.register(name, help, g.clone());
        }
        r.register_with_unit(
            "uptime",
            "time since the hub started",
            Unit::Seconds,
            n.uptime.clone(),
        );
    }

    /// The nodes of each release's waves, by state.
    pub fn set_release_nodes(&self, releases: &[vantage_proto::api::ReleaseStatus]) {
        for r in releases {
            let sum = |f: fn(&vantage_proto::api::WaveStatus) -> u64| -> i64 {
                r.waves
                    .iter()
                    .map(f)
                    .sum::<u64>()
                    .try_into()
                    .unwrap_or(i64::MAX)
            };
            for (state, n) in [
                ("updated", sum(|w| w.updated)),
                ("failed", sum(|w| w.failed)),
                ("pending", sum(|w| w.pending)),
            ] {
                let labels = ReleaseLabels {
                    version: r.version.clone(),
                    state: state.to_string(),
                };
                self.release_nodes.get_or_create(&labels).set(n);
            }
        }
    }

    /// One answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.request_seconds
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .observe(took.as_secs_f64());
    }

    /// Registers a counter another part of the hub keeps.
    pub fn register_counter(&self, name: &str, help: &str, c: Counter) {
        crate::sync::lock(&self.registry).register(name, help, c);
    }

    /// Adds the Nchan publisher's counters to the registry.
    pub fn register_nchan(&self, m: Arc<NchanMetrics>) {
        crate::sync::lock(&self.registry).register_collector(Box::new(NchanCollector(m)));
    }

    /// The counters' part of [`Stats`] (the rest is the hub's state).
    pub fn totals(&self, s: &mut Stats) {
        s.requests = self.requests.get();
        s.rate_limited = self.rate_limited.get();
        s.connections_refused = self.conn_refused.get();
        s.jobs_accepted = self.jobs_accepted.get();
        s.jobs_refused = self.jobs_refused.get();
        s.events_sent = self.events_sent.get();
        s.results_stored = self.results_stored.get();
        s.results_duplicate = self.results_duplicate.get();
        s.results_refused = self.results_refused.get();
        s.enrolments = self.enrolments.get();
        s.handshakes_evicted = self.handshakes_evicted.get();
    }

    /// The registry as OpenMetrics text, with the gauges set from `s`, the
    /// policy serial and the open subscriptions per channel.
    pub fn encode(&self, s: &Stats, policy_serial: u64, channels: &[(String, usize)]) -> String {
        let n = &self.now;
        let set = |g: &Gauge, v: u64| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&n.connections, s.connections);
        set(&n.subscriptions, s.subscriptions);
        set(&n.subscribed_nodes, s.subscribed_nodes);
        set(&n.nodes, s.nodes);
        set(&n.nodes_online, s.nodes_online);
        set(&n.nodes_revoked, s.nodes_revoked);
        set(&n.pending, s.pending);
        set(&n.log_entries, s.log_entries);
        set(&n.last_seq, s.last_seq);
        set(&n.pruned_through, s.pruned_through);
        set(&n.uptime, s.uptime_secs);
        set(&n.policy_serial, policy_serial);
        // Channels nobody holds any more disappear instead of staying at 0.
        self.channel_subscribers.clear();
        for (c, k) in channels {
            set(
                &self
                    .channel_subscribers
                    .get_or_create(&ChannelLabel { channel: c.clone() }),
                *k as u64,
            );
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &crate::sync::lock(&self.registry))
            .expect("writing to a String cannot fail");
        out
    }
}

/// The Nchan publisher's counters, read at each scrape.
#[derive(Debug)]
struct NchanCollector(Arc<NchanMetrics>);

impl Collector for NchanCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        for (name, v, help) in [
            ("nchan_published", &m.published, "envelopes Nchan accepted"),
            (
                "nchan_retries",
                &m.retries,
                "failed Nchan publish attempts, each retried",
            ),
            (
                "nchan_failed",
                &m.failed,
                "envelopes not delivered to Nchan: the queue was full",
            ),
        ] {
            let c = ConstCounter::new(v.load(Ordering::Relaxed));
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let waiting = i64::try_from(m.waiting.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let g = ConstGauge::new(waiting);
        let help = "entries queued for Nchan or being published";
        g.encode(encoder.encode_descriptor("nchan_waiting", help, None, g.metric_type())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_typed_and_named() {
        let m = Metrics::new();
        m.results_stored.inc();
        m.observe_request("/v1/nodes", "GET", 200, Duration::from_millis(3));
        let nchan = Arc::new(NchanMetrics::default());
        nchan.failed.fetch_add(2, Ordering::Relaxed);
        m.register_nchan(nchan);
        let s = Stats {
            nodes: 3,
            ..Stats::default()
        };
        let text = m.encode(&s, 7, &[("cc.DE".into(), 2)]);
        for want in [
            "# TYPE vantage_hub_results_stored counter\n",
            "vantage_hub_results_stored_total 1\n",
            "# TYPE vantage_hub_nodes gauge\nvantage_hub_nodes 3\n",
            "vantage_hub_policy_serial 7\n",
            "vantage_hub_channel_subscribers{channel=\"cc.DE\"} 2\n",
            "# TYPE vantage_hub_request_duration_seconds histogram\n",
            "vantage_hub_request_duration_seconds_count{route=\"/v1/nodes\",method=\"GET\",status=\"200\"} 1\n",
            "vantage_hub_nchan_failed_total 2\n",
            "# TYPE vantage_hub_nchan_waiting gauge\nvantage_hub_nchan_waiting 0\n",
            "# EOF\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }
}
