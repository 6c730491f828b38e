//! The outbox: results wait on disk while the hub is down and are delivered
//! once when it is back, also across a SIGKILL of the agent.

use crate::support::{hub, hub_with};
use serde_json::json;
use vantage_testkit::{Agent, Hub, jobs::node_job, now, wait_for};

/// Submits `n` ping jobs that run 3–4 s after submission (not before
/// `not_before`, then a random delay in the spread window), waits until the agent
/// accepted them, then stops the hub so that they complete while it is down.
fn jobs_complete_while_hub_is_down(
    hub: &mut Hub,
    agent: &Agent,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let op = hub.operator("ops");
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for id in &ids {
        let mut job = node_job(
            id,
            &agent.node_id,
            json!({"cmd": "ping", "args": {"host": "127.0.0.1", "count": 1}}),
        );
        job["not_before"] = json!(now() + 3);
        job["spread_secs"] = json!(1);
        hub.submit(&op, &job);
    }
    agent.wait_log("accepted job", n, 20);
    hub.kill();
    wait_for("results in the outbox", 20, || agent.outbox_depth() == n);
    agent.wait_log("cannot deliver results", 1, 20);
    ids
}

fn assert_delivered_once(hub: &Hub, agent: &Agent, ids: &[String]) {
    let op = hub.operator("ops");
    for id in ids {
        let r = hub.result(&op, id, 30);
        assert_eq!(r["status"], "ok", "{r}");
    }
    wait_for("an empty outbox", 20, || agent.outbox_depth() == 0);
    for id in ids {
        assert_eq!(op.results(id).len(), 1, "{id}");
    }
    let (_, stats) = op.get("/v1/stats");
    assert_eq!(stats["results_duplicate"], 0, "{stats}");
}

#[test]
fn results_wait_while_the_hub_is_down() {
    let mut hub = hub();
    let mut agent = Agent::new(&hub, "", "[owner]\nallow_special_addresses = true\n");
    agent.start();
    agent.subscribed(1);
    let ids = jobs_complete_while_hub_is_down(&mut hub, &agent, "down", 3);
    hub.spawn();
    agent.subscribed(2);
    assert_delivered_once(&hub, &agent, &ids);
}

#[test]
fn outbox_survives_sigkill() {
    let mut hub = hub();
    let mut agent = Agent::new(&hub, "", "[owner]\nallow_special_addresses = true\n");
    agent.start();
    agent.subscribed(1);
    let ids = jobs_complete_while_hub_is_down(&mut hub, &agent, "killed", 2);
    agent.kill9();
    assert_eq!(agent.outbox_depth(), 2, "the results are on disk");
    hub.spawn();
    agent.start();
    agent.subscribed(2);
    assert_delivered_once(&hub, &agent, &ids);
    // The persisted Last-Event-ID means the restarted agent was not sent the jobs again.
    assert_eq!(agent.log().matches("accepted job").count(), 2);
    assert!(!agent.log().contains("replayed"));
}

#[test]
fn a_gap_older_than_the_hubs_retention_is_reported() {
    let hub = hub_with(&["--keepalive", "1s", "--retention-entries", "2"]);
    let mut agent = Agent::new(&hub, "", "[owner]\nallow_special_addresses = true\n");
    agent.start();
    agent.subscribed(1);
    let op = hub.operator("ops");
    let ping = json!({"cmd": "ping", "args": {"host": "127.0.0.1", "count": 1}});
    // A job the agent sees, so its persisted position is that job's sequence number.
    hub.submit(&op, &node_job("seen", &agent.node_id, ping.clone()));
    agent.wait_log("accepted job", 1, 20);
    agent.kill9();
    // Four jobs while it is away; the hub keeps only the last two.
    for i in 0..4 {
        hub.submit(
            &op,
            &node_job(&format!("missed-{i}"), &agent.node_id, ping.clone()),
        );
    }
    agent.start();
    agent.wait_log("the hub lost messages after", 1, 30);
    wait_for("the gap report at the hub", 30, || {
        hub.log().contains("node reports a gap")
    });
    // What the hub still held is caught up; what it lost is not run.
    agent.wait_log("accepted job", 3, 30);
    let log = agent.log();
    assert!(
        log.contains("missed-2") && log.contains("missed-3"),
        "{log}"
    );
    assert!(
        !log.contains("missed-0") && !log.contains("missed-1"),
        "{log}"
    );
}
