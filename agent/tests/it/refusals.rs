//! Orders the agent must refuse: forged signature, too few approvals, unknown
//! approver, expired, replayed, not targeted, kind not allowed, private target
//! under the default owner policy. Refusals of jobs the hub accepted are
//! `refused` results with their reason; refusals of what anyone could have
//! sent are counted and reported with the heartbeat. Payloads that the hub
//! itself would refuse are put on the node's channel with the hub's test-only
//! raw publish.

use crate::support::hub;
use serde_json::json;
use vantage_testkit::{Agent, jobs::node_job, now, wait_for};

#[test]
fn refused_orders_are_reported_with_reasons() {
    let hub = hub();
    let op = hub.operator("ops");
    // Default owner policy (no special addresses); ping is not on this node's allowlist.
    let mut agent = Agent::new(
        &hub,
        "",
        "[probes]\nallowed = [\"dns\", \"http\", \"tls\", \"tcp\", \"traceroute\"]\n",
    );
    agent.start();
    agent.subscribed(1);
    let node = agent.node_id.clone();
    let channel = format!("node.{node}");
    let dns = json!({"cmd": "dns", "args": {"name": "example.com"}});

    let mut forged = hub.sign(&node_job("forged", &node, dns.clone()), &[0, 1]);
    forged["job"]["probe"]["args"]["name"] = json!("victim.example");
    hub.raw(&op, &channel, &forged);

    hub.raw(
        &op,
        &channel,
        &hub.sign(&node_job("too-few", &node, dns.clone()), &[0]),
    );
    hub.raw(
        &op,
        &channel,
        &hub.sign(&node_job("unknown", &node, dns.clone()), &[0, 3]),
    );

    let mut expired = node_job("expired", &node, dns.clone());
    expired["not_before"] = json!(now() - 100);
    expired["expires"] = json!(now() - 1);
    hub.raw(&op, &channel, &hub.sign(&expired, &[0, 1]));

    let mut elsewhere = node_job("elsewhere", &node, dns.clone());
    elsewhere["select"] = json!({"country": "FR"});
    hub.raw(&op, &channel, &hub.sign(&elsewhere, &[0, 1]));

    hub.submit(
        &op,
        &node_job(
            "no-ping",
            &node,
            json!({"cmd": "ping", "args": {"host": "192.0.2.1"}}),
        ),
    );
    hub.submit(
        &op,
        &node_job(
            "loopback",
            &node,
            json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
        ),
    );
    hub.submit(
        &op,
        &node_job(
            "private-resolver",
            &node,
            json!({"cmd": "dns", "args": {"name": "example.com", "resolver": "192.168.1.1"}}),
        ),
    );

    // Refusals of jobs the hub accepted are results, with the reason and code.
    for (id, code, words) in [
        ("no-ping", "kind-not-allowed", "ping"),
        ("loopback", "owner-policy", "loopback"),
        ("private-resolver", "owner-policy", "private"),
    ] {
        let r = hub.result(&op, id, 20);
        assert_eq!(r["status"], "refused", "{id}: {r}");
        assert_eq!(r["code"], code, "{id}: {r}");
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.contains(words),
            "{id}: reason {reason:?} lacks {words:?}"
        );
        assert_eq!(r["node_id"], json!(node));
    }
    // Refusals of jobs without a quorum's signatures: anyone could have sent
    // them, so they are counted and reported with the heartbeat, not queued.
    // Quorum-signed jobs the hub never accepted are refused as results, which
    // the hub does not take (unknown-job): logged at the node.
    let unknown_key = hub.keys[3].public_key().key_id();
    for (id, words) in [
        ("forged", vec!["(forged-signature)"]),
        ("too-few", vec!["(too-few-approvals)"]),
        ("unknown", vec!["(unknown-approver)", &unknown_key[..]]),
        ("expired", vec!["(expired)"]),
        ("elsewhere", vec!["not targeted"]),
    ] {
        agent.wait_log(&format!("refused job {id}:"), 1, 20);
        let log = agent.log();
        let line = log
            .lines()
            .find(|l| l.contains(&format!("refused job {id}:")))
            .unwrap();
        for w in words {
            assert!(line.contains(w), "{id}: {line:?} lacks {w:?}");
        }
        assert!(op.results(id).is_empty(), "{id}");
    }
    wait_for("the refusal counts at the hub", 20, || {
        let (_, n) = op.get(&format!("/v1/nodes/{node}"));
        n["refused_totals"]
            == json!({"forged-signature": 1, "too-few-approvals": 1, "unknown-approver": 1})
    });

    // Replay: a job that passed verification once is refused when it comes
    // again. (Its first run is stopped by the owner's policy: with the default
    // policy no target on this machine may be probed, and tests probe nothing else.)
    let job = node_job(
        "once",
        &node,
        json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
    );
    let signed = hub.sign(&job, &[0, 1]);
    let (status, v) = op.post("/v1/jobs", &signed);
    assert_eq!(status, 201, "{v}");
    let first = hub.result(&op, "once", 20);
    assert_eq!(first["code"], "owner-policy", "{first}");
    hub.raw(&op, &channel, &signed);
    agent.wait_log("refused job once: replayed", 1, 20);
    wait_for("the replay to be counted at the hub", 20, || {
        let (_, n) = op.get(&format!("/v1/nodes/{node}"));
        n["refused_totals"]["replayed"] == 1
    });
    let all = op.results("once");
    assert_eq!(all.len(), 1, "one result per job and run: {all:?}");
    assert_eq!(all[0], first);
}
