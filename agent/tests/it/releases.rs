//! Agent releases on a node: the launcher starts a verified release from a
//! sealed memfd and the hub's accepted heartbeat confirms it; a release that
//! fails at start is rolled back and reported; a record that does not verify
//! is never started. The agents are real builds: the workspace's (version
//! 0.1.0, "the image's own") and `agent_build`s reporting other versions, one
//! of them with the `fail-after-start` feature. A supervisor restarts the
//! agent whenever it exits, as systemd's `Restart=always` does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use vantage_proto::release::{Artifact, SignedRelease};
use vantage_testkit::{Agent, Client, Hub, agent_build, bin, poll, wait_until};

use crate::support::hub;

/// The image's own agent's version.
const IMAGE: &str = env!("CARGO_PKG_VERSION");
/// A good release.
const GOOD: &str = "0.2.0";
/// A release built with `fail-after-start`.
const FAILING: &str = "0.2.1";
/// The target triple of the test's builds.
const TARGET: &str = vantage_agent::version::TARGET;

/// A release of `version` for `binary`, signed by the approvers at `keys`
/// of the hub's test policy.
pub fn signed_release(hub: &Hub, version: &str, binary: &[u8], keys: &[usize]) -> SignedRelease {
    let now = vantage_testkit::now();
    let release = json!({
        "v": 1, "version": version,
        "targets": {TARGET: {"vantage-agent": Artifact::of(binary)}},
        "rollout": {"waves": [100], "max_rollback_percent": 50, "confirm_secs": 30},
        "not_before": now - 60, "expires": now + 3600, "proposer": "a0"
    });
    let by: Vec<_> = keys.iter().map(|&k| &hub.keys[k]).collect();
    vantage_testkit::releases::sign(&release, &by)
}

/// Installs a release into the node's data directory as the updater leaves
/// it: the record, the binary, the switch state naming it unconfirmed.
fn preinstall(agent: &Agent, signed: &SignedRelease, binary: &[u8]) {
    let version = signed.release["version"].as_str().unwrap();
    let dir = agent.data().join("releases").join(version);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("release.json"),
        serde_json::to_vec(signed).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("vantage-agent"), binary).unwrap();
    let state = json!({"current": {"version": version, "confirmed": false, "starts": 0, "confirm_secs": 30}});
    std::fs::write(state_path(agent), state.to_string()).unwrap();
}

fn state_path(agent: &Agent) -> PathBuf {
    agent.data().join("releases/state.json")
}

/// The node's switch state.
pub fn state(agent: &Agent) -> Value {
    std::fs::read(state_path(agent))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// The node as the hub's operator API shows it.
pub fn node_entry(op: &Client, node_id: &str) -> Value {
    let (s, v) = op.get(&format!("/v1/nodes/{node_id}"));
    assert_eq!(s, 200, "{v}");
    v
}

/// Runs the image's agent of `agent`'s configuration again whenever it
/// exits (but not after exit 77, revoked), like systemd; logs to the agent's log.
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
    /// Exit codes seen so far.
    pub exits: Arc<Mutex<Vec<Option<i32>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    /// Starts supervising; `env` is set for the first start only (crash injection).
    pub fn start(agent: &Agent, env: Option<(&str, &str)>) -> Supervisor {
        let (stop, child, exits) = Default::default();
        let mut s = Supervisor {
            stop,
            child,
            exits,
            thread: None,
        };
        let (stop, child, exits) = (s.stop.clone(), s.child.clone(), s.exits.clone());
        // Built (or found) before the clock of any wait starts.
        let program = bin("vantage-agent");
        let config = agent.config_path();
        let log = agent.dir.path().join("agent.log");
        let mut env = env.map(|(k, v)| (k.to_string(), v.to_string()));
        s.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let mut cmd = agent_command(&program, &config, &log);
                if let Some((k, v)) = env.take() {
                    cmd.env(k, v);
                }
                *child.lock().unwrap() = Some(cmd.spawn().unwrap());
                let code = wait_exit(&child, &stop);
                exits.lock().unwrap().push(code);
                if code == Some(77) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
        s
    }

    /// How many times the agent exited.
    pub fn exit_codes(&self) -> Vec<Option<i32>> {
        self.exits.lock().unwrap().clone()
    }
}

fn agent_command(program: &Path, config: &Path, log: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("--config")
        .arg(config)
        .env("VANTAGE_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("VANTAGE_RELEASE_LAUNCHED")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        );
    cmd
}

fn wait_exit(child: &Mutex<Option<Child>>, stop: &AtomicBool) -> Option<i32> {
    loop {
        if let Some(c) = child.lock().unwrap().as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            if stop.load(Ordering::SeqCst) {
                let _ = c.kill();
                return c.wait().ok().and_then(|s| s.code());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until the hub's entry of the node satisfies `what`; returns it.
fn wait_node(
    op: &Client,
    agent: &Agent,
    secs: u64,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let seen = poll(secs, || Some(node_entry(op, &agent.node_id)).filter(&f));
    seen.unwrap_or_else(|| {
        panic!(
            "the node did not report {what} within {secs} s: {}\nthe agent's log:\n{}",
            node_entry(op, &agent.node_id),
            agent.log()
        )
    })
}

/// Waits until the hub heard `version` from the node.
pub fn wait_reported(op: &Client, agent: &Agent, version: &str, secs: u64) {
    wait_node(op, agent, secs, version, |n| n["agent_version"] == version);
}

#[test]
fn the_launcher_starts_a_verified_release_and_the_hub_confirms_it() {
    let hub = hub();
    let op = hub.operator("ops");
    let agent = Agent::new(&hub, "", "");
    let good = std::fs::read(agent_build(GOOD, &[])).unwrap();
    preinstall(&agent, &signed_release(&hub, GOOD, &good, &[0, 1]), &good);
    let _run = Supervisor::start(&agent, None);
    wait_reported(&op, &agent, GOOD, 30);
    wait_until("the release confirmed", 20, || {
        (state(&agent)["current"]["confirmed"] == true).then_some(())
    });
    assert!(
        agent
            .log()
            .contains("starting release 0.2.0 from a sealed copy")
    );
    assert!(agent.log().contains("release 0.2.0 confirmed"));
}

#[test]
fn a_release_that_fails_at_start_is_rolled_back_and_recorded() {
    let hub = hub();
    let op = hub.operator("ops");
    let agent = Agent::new(&hub, "", "");
    let failing = std::fs::read(agent_build(FAILING, &["fail-after-start"])).unwrap();
    preinstall(
        &agent,
        &signed_release(&hub, FAILING, &failing, &[0, 1]),
        &failing,
    );
    let run = Supervisor::start(&agent, None);
    wait_reported(&op, &agent, IMAGE, 40);
    let state = state(&agent);
    assert_eq!(state["failed"]["version"], FAILING, "{state}");
    assert_eq!(state["failed"]["code"], "release-rolled-back", "{state}");
    assert_eq!(state.get("current"), None, "{state}");
    assert_eq!(
        run.exit_codes().first(),
        Some(&Some(1)),
        "the release failed"
    );
    assert!(agent.log().contains("fail-after-start"));
}

#[test]
fn a_record_that_does_not_verify_is_never_started() {
    let hub = hub();
    let op = hub.operator("ops");
    // Never executed: any bytes do.
    let image = std::fs::read("/bin/true").unwrap();
    for (keys, tamper, code) in [
        (&[0][..], false, "too-few-approvals"),
        (&[0, 3][..], false, "unknown-approver"),
        (&[0, 1][..], true, "release-hash-mismatch"),
    ] {
        let agent = Agent::new(&hub, "", "");
        let signed = signed_release(&hub, GOOD, &image, keys);
        let mut bytes = image.clone();
        if tamper {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        }
        preinstall(&agent, &signed, &bytes);
        let _run = Supervisor::start(&agent, None);
        wait_reported(&op, &agent, IMAGE, 30);
        let state = state(&agent);
        assert_eq!(state["failed"]["code"], code, "{state}");
        assert!(!agent.log().contains("starting release"), "{}", agent.log());
    }
}

/// Submits `signed` to the hub and uploads `binary` for it.
fn publish(op: &Client, signed: &SignedRelease, binary: &[u8]) {
    let (s, v) = op.post("/v1/releases", &serde_json::to_value(signed).unwrap());
    assert_eq!(s, 201, "{v}");
    let version = signed.release["version"].as_str().unwrap();
    let (s, v) = op.put_bytes(
        &format!("/v1/releases/{version}/{TARGET}/vantage-agent"),
        binary,
    );
    assert_eq!(s, 201, "{v}");
}

/// Waits until the hub shows the node's failed release with `code`.
fn wait_failed(op: &Client, agent: &Agent, version: &str, code: &str, secs: u64) -> Value {
    let what = format!("{version} failed ({code})");
    wait_node(op, agent, secs, &what, |n| {
        let f = &n["failed_release"];
        f["version"] == version && f["code"] == code
    })
}

/// A hub, its operator, and a node running the image's agent under a supervisor.
fn running_image() -> (Hub, Client, Agent, Supervisor) {
    let hub = hub();
    let op = hub.operator("ops");
    let agent = Agent::new(&hub, "", "");
    let run = Supervisor::start(&agent, None);
    wait_reported(&op, &agent, IMAGE, 30);
    (hub, op, agent, run)
}

#[test]
fn an_offered_release_is_installed_started_and_reported() {
    let (hub, op, agent, run) = running_image();
    let good = std::fs::read(agent_build(GOOD, &[])).unwrap();
    publish(&op, &signed_release(&hub, GOOD, &good, &[0, 1]), &good);
    wait_reported(&op, &agent, GOOD, 90);
    let node = node_entry(&op, &agent.node_id);
    assert_eq!(node["from_release"], true, "{node}");
    assert_eq!(node.get("failed_release"), None, "{node}");
    wait_until("the release confirmed", 20, || {
        (state(&agent)["current"]["confirmed"] == true).then_some(())
    });
    assert_eq!(
        run.exit_codes(),
        [Some(75)],
        "one restart, after the switch"
    );
    assert!(
        agent
            .log()
            .contains("release 0.2.0 verified (approved by a0, a1)")
    );
}

#[test]
fn an_offered_release_that_fails_at_start_is_rolled_back_and_reported() {
    let (hub, op, agent, run) = running_image();
    let failing = std::fs::read(agent_build(FAILING, &["fail-after-start"])).unwrap();
    publish(
        &op,
        &signed_release(&hub, FAILING, &failing, &[0, 1]),
        &failing,
    );
    let node = wait_failed(&op, &agent, FAILING, "release-rolled-back", 90);
    assert_eq!(node["agent_version"], IMAGE, "{node}");
    assert_eq!(run.exit_codes()[..2], [Some(75), Some(1)]);
    // The hub offers it no more, and the node does not fetch it again.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(agent.log().matches("release 0.2.1 verified").count(), 1);
    assert_eq!(run.exit_codes().len(), 2, "{:?}", run.exit_codes());
}

/// A hub that offers what the node's own policy does not admit (here the
/// node's policy needs three approvers, the hub's two: a stolen or
/// misconfigured hub), or serves bytes other than the signed ones: the node
/// refuses with the code, stores and runs nothing, and reports it.
#[test]
fn an_under_quorum_or_tampered_release_is_refused_and_nothing_runs() {
    let hub = hub();
    let op = hub.operator("ops");
    let good = std::fs::read(agent_build(GOOD, &[])).unwrap();
    let strict = Agent::new(&hub, "", "");
    let mut policy = vantage_testkit::approvers::hub_policy(&hub.keys[..3], None);
    policy["policy"]["threshold"] = json!(3);
    let path = strict.dir.path().join("policy-3.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    let config = std::fs::read_to_string(strict.config_path()).unwrap();
    let shipped = format!("{:?}", hub.policy_path());
    strict.write_config(&config.replace(&shipped, &format!("{path:?}")));
    let tampered = Agent::new(&hub, "", "");
    let runs = [&strict, &tampered].map(|a| Supervisor::start(a, None));
    wait_reported(&op, &strict, IMAGE, 30);
    let signed = signed_release(&hub, GOOD, &good, &[0, 1]);
    let stored = hub
        .data()
        .join(format!("releases/{GOOD}/{TARGET}/vantage-agent"));
    let mut bytes = good.clone();
    bytes[1000] ^= 1;
    publish(&op, &signed, &good);
    std::fs::write(&stored, &bytes).unwrap();
    wait_failed(&op, &strict, GOOD, "too-few-approvals", 60);
    wait_failed(&op, &tampered, GOOD, "release-hash-mismatch", 60);
    for (agent, run) in [&strict, &tampered].iter().zip(&runs) {
        assert!(run.exit_codes().is_empty(), "{:?}", run.exit_codes());
        assert!(!agent.data().join("releases").join(GOOD).exists());
        assert_eq!(state(agent).get("current"), None);
    }
    assert!(!strict.log().contains("downloading"), "{}", strict.log());
}

/// A power cut at each write of an update (crash injection at the named
/// step of the atomic writes: before and after each rename): the node
/// boots on a good version every time, and ends on the release.
#[test]
fn a_power_cut_at_each_step_of_an_update_boots_a_good_version() {
    let hub = hub();
    let op = hub.operator("ops");
    let good = std::fs::read(agent_build(GOOD, &[])).unwrap();
    let points = [
        "vantage-agent.tmp",
        "vantage-agent",
        "release.json.tmp",
        "release.json",
        "state.json.tmp",
        "state.json",
    ];
    let agents: Vec<Agent> = points.iter().map(|_| Agent::new(&hub, "", "")).collect();
    let runs: Vec<Supervisor> = agents
        .iter()
        .zip(points)
        .map(|(a, p)| Supervisor::start(a, Some(("VANTAGE_PROVISION_CRASH_AT", p))))
        .collect();
    publish(&op, &signed_release(&hub, GOOD, &good, &[0, 1]), &good);
    for ((agent, run), point) in agents.iter().zip(&runs).zip(points) {
        wait_reported(&op, agent, GOOD, 120);
        let crashed = agent.log().contains(&format!("crash injected at {point}"));
        assert!(crashed, "{point}: {}", agent.log());
        assert_eq!(
            run.exit_codes().first(),
            Some(&None),
            "{point}: killed by SIGABRT"
        );
    }
}
