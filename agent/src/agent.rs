//! The running agent: loads the node's state, wires the tasks that each own
//! a part of it, and owns shutdown. The data path reads top to bottom:
//! `subscribe` (the connection) → `stream` (event ids, gaps, catch-up) →
//! `orders` (read, verify, replay set) → `jobs` (schedule, probe) →
//! `results` (the outbox) → `sender` (to the hub). Beside it run
//! `heartbeat`, `renewal` and `systemd`; any task that sees the hub refuse
//! the node's certificate reports it to `revoked`, which stops the agent.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use vantage_node::client::{ClientIdentity, PinnedCa};
use vantage_node::policy_chain::load_policy;
use vantage_node::state::{DataDir, FORMAT, NodeState};

pub use crate::revoked::EXIT_REVOKED;

use crate::approvals::Approvals;
use crate::args::Cli;
use crate::config::Config;
use crate::gaps::Gaps;
use crate::health::Health;
use crate::heartbeat::Heartbeat;
use crate::hub::Hub;
use crate::jobs::Jobs;
use crate::mandate_rate::NodeRate;
use crate::orders::Orders;
use crate::outbox::Outbox;
use crate::owner::{self, OwnerPolicy, RateCap};
use crate::policy_update::PolicyChain;
use crate::probe;
use crate::reach::Caps;
use crate::reconcile::HubSeq;
use crate::releases::{EXIT_SWITCHED, EXIT_UNCONFIRMED, Releases};
use crate::renewal::Renewal;
use crate::replay::ReplaySet;
use crate::results::Results;
use crate::revoked::Revoked;
use crate::sender::Sender;
use crate::stream::{self, Stream};
use crate::switch::Store;
use crate::tally::Refusals;
use crate::updater::Updater;

/// The node's state as loaded at start, before any task runs.
pub struct Agent {
    cfg: Config,
    data: DataDir,
    node: NodeState,
    ca: PinnedCa,
    identity: ClientIdentity,
    policy: PolicyChain,
    outbox: Outbox,
    replay: ReplaySet,
    probes: probe::Context,
    started: Instant,
}

impl Agent {
    /// Loads configuration-dependent state: node identity, policy, outbox, replay set.
    pub fn load(cfg: Config) -> anyhow::Result<Agent> {
        let data = DataDir::new(&cfg.data_dir);
        // Before anything else reads the directory: an older layout is read
        // only upgraded, a newer one (a release went back) not at all.
        let found = data.upgrade().map_err(|e| anyhow!("{e}"))?;
        if found < FORMAT {
            tracing::info!(
                "data directory {} upgraded from format {found} to {FORMAT}",
                cfg.data_dir.display()
            );
        }
        let node = data
            .read_node()
            .map_err(|e| anyhow!("{e}"))?
            .ok_or_else(|| {
                anyhow!(
                    "this node is not enrolled yet: {} is missing; vantage-provision enrols it",
                    data.node_path().display()
                )
            })?;
        let ca = PinnedCa::load(&cfg.ca).map_err(|e| anyhow!("{e}"))?;
        let identity = ClientIdentity::load(&data).map_err(|e| anyhow!("{e}"))?;
        let policy = PolicyChain::open(load_policy(&cfg.policy)?, &cfg.data_dir);
        let outbox = Outbox::open(&cfg.data_dir.join("outbox"), cfg.outbox.max_results)
            .with_context(|| format!("cannot open the outbox in {}", cfg.data_dir.display()))?;
        let replay = ReplaySet::open(&cfg.data_dir.join("replay"))
            .with_context(|| format!("cannot open the replay set in {}", cfg.data_dir.display()))?;
        let probes =
            probe::Context::new(OwnerPolicy::new(&cfg.owner), cfg.trust_anchor.as_deref())?;
        Ok(Agent {
            data,
            node,
            ca,
            identity,
            policy,
            outbox,
            replay,
            probes,
            started: Instant::now(),
            cfg,
        })
    }

    /// Wires and starts every task; returns what stops the agent.
    fn start(self) -> (Revoked, Releases) {
        let (cfg, node) = (&self.cfg, &self.node);
        let health = Health::default();
        let revoked = Revoked::new(self.data.clone(), node.node_id.clone());
        let hub = Hub::new(
            self.data.clone(),
            self.ca.clone(),
            self.identity,
            revoked.clone(),
        );
        let hub_url = node.endpoints.hub.clone();
        let (max_bytes, max_results) = (cfg.probes.max_result_bytes, cfg.outbox.max_results);
        let shared = Shared {
            approvals: Approvals::new(self.policy, hub.clone(), hub_url, health.clone()),
            results: Results::new(self.outbox, max_bytes, max_results, health.clone()),
            refusals: Refusals::default(),
            caps: Caps::default(),
            started: self.started,
            releases: Releases::open(
                Store::new(&cfg.data_dir),
                crate::launcher::launched().as_deref(),
            ),
            health,
            revoked,
            hub,
        };
        let orders = shared.orders(cfg, node, self.probes, self.replay);
        orders.resume();
        shared.spawn_stream(cfg, node, orders);
        shared.spawn_beside(cfg, node, self.data, self.ca);
        shared.spawn_updater(node);
        (shared.revoked, shared.releases)
    }
}

/// The handles the tasks share.
struct Shared {
    approvals: Approvals,
    results: Results,
    refusals: Refusals,
    health: Health,
    revoked: Revoked,
    hub: Hub,
    caps: Caps,
    started: Instant,
    releases: Releases,
}

impl Shared {
    /// Orders checked as `cfg` and `node` say, run with `probes`.
    fn orders(
        &self,
        cfg: &Config,
        node: &NodeState,
        probes: probe::Context,
        replay: ReplaySet,
    ) -> Orders {
        let jobs = Jobs::new(
            node.node_id.clone(),
            probes,
            cfg.probes.max_time.get(),
            RateCap::new(cfg.owner.max_probes_per_minute),
            cfg.probes.concurrency,
            self.results.clone(),
        );
        Orders {
            node_id: node.node_id.clone(),
            attrs: node.attrs.clone(),
            caps: self.caps.clone(),
            owner: owner::digest(cfg),
            mandate_rate: NodeRate::open(&cfg.data_dir),
            replay,
            approvals: self.approvals.clone(),
            refusals: self.refusals.clone(),
            results: self.results.clone(),
            jobs,
            health: self.health.clone(),
        }
    }

    /// The subscription, and the task that hands its events to `orders`.
    fn spawn_stream(&self, cfg: &Config, node: &NodeState, orders: Orders) {
        let last_id = cfg.data_dir.join("last-event-id");
        let rx = stream::subscribe(cfg, node, self.hub.clone(), &last_id);
        let gaps = Gaps {
            hub: self.hub.clone(),
            url: node.endpoints.gap.clone(),
            health: self.health.clone(),
        };
        let stream = Stream {
            catch_up: Stream::catch_up_url(cfg, node),
            orders,
            gaps,
            approvals: self.approvals.clone(),
            hub: self.hub.clone(),
            health: self.health.clone(),
            revoked: self.revoked.clone(),
            hub_seq: HubSeq::open(cfg.data_dir.join("hub-seq")),
            last_id,
            form: cfg.subscribe.message,
        };
        tokio::spawn(stream.run(rx));
    }

    /// Delivery, heartbeat, renewal and systemd; says READY.
    fn spawn_beside(&self, cfg: &Config, node: &NodeState, data: DataDir, ca: PinnedCa) {
        let sender = Sender {
            results: self.results.clone(),
            hub: self.hub.clone(),
            url: node.endpoints.results.clone(),
            health: self.health.clone(),
        };
        tokio::spawn(sender.run());
        let heartbeat = Heartbeat {
            every: cfg.heartbeat.get(),
            hub: self.hub.clone(),
            url: node.endpoints.heartbeat.clone(),
            approvals: self.approvals.clone(),
            results: self.results.clone(),
            health: self.health.clone(),
            refusals: self.refusals.clone(),
            caps: self.caps.clone(),
            hub_url: node.endpoints.hub.clone(),
            owner: owner::digest(cfg),
            started: self.started,
            releases: self.releases.clone(),
        };
        tokio::spawn(heartbeat.run());
        let renewal = Renewal {
            data,
            ca,
            hub: self.hub.clone(),
            health: self.health.clone(),
        };
        tokio::spawn(renewal.run());
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        tokio::spawn(crate::systemd::run(
            self.health.clone(),
            self.results.clone(),
        ));
    }

    /// The updater, acting on the releases the heartbeat answers offer.
    fn spawn_updater(&self, node: &NodeState) {
        let updater = Updater {
            releases: self.releases.clone(),
            hub: self.hub.clone(),
            hub_url: node.endpoints.hub.clone(),
            approvals: self.approvals.clone(),
            attrs: node.attrs.clone(),
            caps: self.caps.clone(),
            health: self.health.clone(),
        };
        tokio::spawn(updater.run());
    }
}

/// `vantage-agent run`.
pub fn main(cli: &Cli) -> ExitCode {
    crate::logging::init();
    let result = (|| -> anyhow::Result<Stopped> {
        let cfg = cli.load_config()?;
        crate::launcher::launch(&cfg);
        if cfg!(feature = "fail-after-start") {
            anyhow::bail!(
                "built with the feature fail-after-start (a test build): \
                 exiting before the first heartbeat"
            );
        }
        let agent = Agent::load(cfg)?;
        // One thread is plenty for a node's probes; it keeps the idle footprint small.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(8)
            .build()?;
        rt.block_on(run(agent))
    })();
    match result {
        Ok(Stopped::Signal) => ExitCode::SUCCESS,
        Ok(Stopped::Revoked) => ExitCode::from(EXIT_REVOKED),
        Ok(Stopped::Switched) => ExitCode::from(EXIT_SWITCHED),
        Ok(Stopped::Unconfirmed) => ExitCode::from(EXIT_UNCONFIRMED),
        Err(e) => {
            tracing::error!("{e:#}");
            let _ = sd_notify::notify(
                false,
                &[sd_notify::NotifyState::Status(&format!("failed: {e:#}"))],
            );
            eprintln!("vantage-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Why a running agent stopped.
enum Stopped {
    /// SIGTERM or Ctrl-C.
    Signal,
    /// The hub revoked the node's certificate.
    Revoked,
    /// The node switched to a new release (the launcher starts it).
    Switched,
    /// This release was not confirmed in time (the next start rolls back).
    Unconfirmed,
}

async fn run(agent: Agent) -> anyhow::Result<Stopped> {
    tracing::info!(
        "vantage-agent {} starting as node {} (channels {})",
        crate::version::VERSION,
        agent.node.node_id,
        agent.node.channels.join(",")
    );
    let (revoked, releases) = agent.start();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stopped = tokio::select! {
        _ = term.recv() => Stopped::Signal,
        _ = tokio::signal::ctrl_c() => Stopped::Signal,
        () = revoked.wait() => Stopped::Revoked,
        () = releases.switched() => Stopped::Switched,
        () = releases.unconfirmed() => Stopped::Unconfirmed,
    };
    tracing::info!("stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    Ok(stopped)
}
