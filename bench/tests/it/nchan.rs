//! The hub publishing through real nginx + Nchan (+ Redis) on loopback, with the
//! real `vantage-hub` and `vantage-agent` binaries: the agent subscribes at nginx
//! with its client certificate; a signed job submitted to the hub reaches it and
//! its result reaches the hub; a job missed while the agent was down is caught up
//! after reconnect; a second nginx sharing Redis delivers the hub's jobs too; a
//! node may not subscribe to another node's channel; a revoked node is refused
//! by nginx once the CRL is refreshed.
//!
//! Needs nginx, libnginx-mod-nchan and redis-server, so `cargo test` skips it;
//! `make test-nchan` installs them and runs it.

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use vantage_bench::client::{Refused, subscribe};
use vantage_bench::pki::{Creds, client_tls};
use vantage_bench::servers::{Nginx, start_redis};
use vantage_hub::datadir::DataDir;
use vantage_testkit::jobs::node_job;
use vantage_testkit::{Agent, Hub, Node, wait_for};

/// A hub initialised with the test policy (not serving yet: nginx needs its
/// certificates first), by address only.
fn hub_for_nginx() -> (Hub, DataDir) {
    let hub = Hub::builder().names(&["127.0.0.1"]).init();
    let dd = DataDir::new(hub.data());
    (hub, dd)
}

/// Serves `hub`, publishing to nginx at `publish_url`.
fn serve(hub: &mut Hub, publish_url: &str, extra: &[&str]) {
    hub.serve_args = [
        "--nchan-publish-url",
        publish_url,
        "--rate",
        "1000",
        "--burst",
        "1000",
    ]
    .iter()
    .chain(extra)
    .map(|a| a.to_string())
    .collect();
    hub.spawn();
}

/// The agent's settings: subscribe at nginx on `sub_port`.
fn nginx_agent_config(sub_port: u16) -> String {
    format!(
        "url = \"https://127.0.0.1:{sub_port}/sub/{{channels}}\"\n\
         keepalive_timeout_secs = 45\nmin_backoff_secs = 1\nmax_backoff_secs = 2\n\
         [owner]\nallow_special_addresses = true\n"
    )
}

fn creds_of(node_dir: &Path, name: &str) -> Creds {
    Creds {
        name: name.to_string(),
        cert_pem: std::fs::read_to_string(node_dir.join("cert.pem")).unwrap(),
        key_pem: std::fs::read_to_string(node_dir.join("key.pem")).unwrap(),
    }
}

fn node_creds(node: &Node) -> Creds {
    Creds {
        name: node.id.clone(),
        cert_pem: node.cert.clone(),
        key_pem: node.key.clone(),
    }
}

fn tcp_job(id: &str, node: &str, port: u16) -> Value {
    node_job(
        id,
        node,
        json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": port}}),
    )
}

/// The hub's CRL, PEM.
fn crl(op: &vantage_testkit::Client) -> String {
    let (status, v) = op.get("/v1/crl?format=pem");
    assert_eq!(status, 200, "{v}");
    v.as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, libnginx-mod-nchan and redis-server: run with make test-nchan"]
async fn agent_and_hub_through_nginx_nchan_redis() {
    let tmp = tempfile::tempdir().unwrap();
    // Approval policy: the kit's three approvers, two needed.
    let (mut hub, dd) = hub_for_nginx();

    // Redis, nginx + Nchan storing channels in it, the hub publishing to nginx.
    let redis_dir = tmp.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let redis = start_redis(&redis_dir).unwrap();
    let redis_url = format!("redis://{}", redis.addr);
    let nginx = Nginx::start(&dd, &tmp.path().join("nginx"), Some(&redis_url), 64).unwrap();
    // A second nginx sharing the Redis store: the hub publishes to the first only.
    let nginx2 = Nginx::start(&dd, &tmp.path().join("nginx2"), Some(&redis_url), 64).unwrap();
    serve(&mut hub, &nginx.publish_url, &[]);

    // Two nodes enrolled at the hub; the agent runs as node A.
    let mut agent = Agent::new(&hub, "", &nginx_agent_config(nginx.run.addr.port()));
    let a = agent.node_id.clone();
    let node_b = hub.node_with(&["--country", "DE", "--continent", "EU"], "DE");
    let b = node_b.id.clone();
    agent.start();
    agent.wait_log("subscribed:", 1, 30);
    assert!(
        agent
            .log()
            .contains(&format!("127.0.0.1:{}/sub/", nginx.run.addr.port())),
        "the agent subscribed somewhere else than nginx:\n{}",
        agent.log()
    );

    // An operator submits a signed job; it reaches the agent through nginx, the
    // result reaches the hub.
    let op = hub.operator("ops");
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    hub.submit(&op, &tcp_job("j-nchan-1", &a, port));
    let r = hub.result(&op, "j-nchan-1", 30);
    assert_eq!(r["node_id"], a.as_str(), "{r}");
    assert_eq!(r["status"], "ok", "{r}");

    // A job submitted while the agent is down is caught up from Nchan's buffer
    // (Last-Event-ID) when it comes back.
    agent.kill9();
    hub.submit(&op, &tcp_job("j-nchan-2", &a, port));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(op.results("j-nchan-2").is_empty());
    agent.start();
    agent.wait_log("subscribed:", 2, 30);
    let r = hub.result(&op, "j-nchan-2", 30);
    assert_eq!(r["status"], "ok", "{r}");

    // nginx, not only the hub, checks who subscribes: B's certificate works on
    // B's channels, A's own channel is not B's to read, and no certificate no entry.
    let b_tls = client_tls(&dd.ca_cert(), &node_creds(&node_b)).unwrap();
    let mut s = subscribe(
        b_tls.clone(),
        nginx.run.addr,
        &format!("/sub/all,node.{b}"),
        None,
    )
    .await
    .expect("node B subscribes at nginx");
    let refused = subscribe(
        b_tls.clone(),
        nginx.run.addr,
        &format!("/sub/all,node.{a}"),
        None,
    )
    .await
    .err()
    .expect("B must not read A's channel");
    assert_eq!(refused.downcast_ref::<Refused>().unwrap().status, 403);
    // B receives a job published for everyone, with the hub's envelope.
    let mut everyone = tcp_job("j-nchan-all", &a, port);
    everyone["select"] = json!("everyone");
    hub.submit(&op, &everyone);
    let ev = tokio::time::timeout(Duration::from_secs(10), s.next_event())
        .await
        .expect("B got the job for everyone")
        .unwrap()
        .unwrap();
    let env: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(env["channel"], "all", "{env}");
    assert_eq!(env["payload"]["job"]["id"], "j-nchan-all", "{env}");
    drop(s);
    // A runs it too; its result must be in before A is revoked, or the hub's
    // refusal of that result, not nginx, tells the agent.
    assert_eq!(hub.result(&op, "j-nchan-all", 30)["node_id"], a.as_str());

    // Revoke A at the hub; once nginx has the refreshed CRL it refuses A's
    // certificate, and B still gets in.
    let crl_before = crl(&op);
    hub.cli_ok(&["node", "revoke", &a]);
    let t = Instant::now();
    let crl = loop {
        let c = crl(&op);
        if c != crl_before {
            break c;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the hub's CRL never changed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let a_tls = client_tls(&dd.ca_cert(), &creds_of(&agent.data(), &a)).unwrap();
    let path_a = format!("/sub/all,node.{a}");
    subscribe(a_tls.clone(), nginx.run.addr, &path_a, None)
        .await
        .expect("before the CRL refresh nginx still admits A");
    nginx.refresh_crl(crl.as_bytes()).unwrap();
    let t = Instant::now();
    let refused = loop {
        match subscribe(a_tls.clone(), nginx.run.addr, &path_a, None).await {
            Err(e) => break e,
            Ok(_) => {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "nginx still admits revoked A"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let refused = refused
        .downcast_ref::<Refused>()
        .expect("refused, not broken");
    assert!(
        refused.status == 400 || refused.status == 0,
        "revoked A: {refused}"
    );
    subscribe(b_tls, nginx.run.addr, &format!("/sub/all,node.{b}"), None)
        .await
        .expect("B still subscribes after the CRL refresh");
    // The agent's stream ends with the old nginx worker and its reconnects fail.
    agent.wait_log("HTTP 400", 1, 30);
    drop((hub, nginx, nginx2, redis));
}

/// Nchan cannot tell a node what it missed: an id it no longer holds resumes
/// silently. The agent therefore asks the hub once after every (re)connect,
/// from the highest hub sequence number it handled. A fresh nginx (channels in
/// memory) stands in for a buffer the node's outage outran; the hub keeps only
/// two log entries, so a longer outage is a gap the node must report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx and libnginx-mod-nchan: run with make test-nchan"]
async fn agent_on_nchan_catches_up_from_the_hub_and_reports_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut hub, dd) = hub_for_nginx();
    let nginx = Nginx::start(&dd, &tmp.path().join("nginx"), None, 64).unwrap();
    serve(&mut hub, &nginx.publish_url, &["--retention-entries", "2"]);
    let mut agent = Agent::new(&hub, "", &nginx_agent_config(nginx.run.addr.port()));
    let a = agent.node_id.clone();
    agent.start();
    agent.wait_log("subscribed:", 1, 30);

    let op = hub.operator("ops");
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    let submit = |id: &str| hub.submit(&op, &tcp_job(id, &a, port));

    // Through Nchan as usual.
    submit("j-gap-1");
    assert_eq!(hub.result(&op, "j-gap-1", 30)["status"], "ok");

    // Missed while down, and not in the Nchan the node comes back to: the hub has it.
    agent.kill9();
    submit("j-gap-2");
    let nginx2 = Nginx::start(&dd, &tmp.path().join("nginx2"), None, 64).unwrap();
    let config = agent.config_path();
    let old = nginx_agent_config(nginx.run.addr.port());
    let text = std::fs::read_to_string(&config).unwrap();
    agent.write_config(&text.replace(&old, &nginx_agent_config(nginx2.run.addr.port())));
    agent.start();
    agent.wait_log("subscribed:", 2, 30);
    assert_eq!(hub.result(&op, "j-gap-2", 30)["status"], "ok");
    agent.wait_log("caught up 1 message(s) from the hub", 1, 10);

    // Down for longer than the hub's retention: what the hub still holds runs,
    // the rest is reported as a gap, never silently skipped.
    agent.kill9();
    for id in ["j-gap-3", "j-gap-4", "j-gap-5", "j-gap-6"] {
        submit(id);
    }
    agent.start();
    agent.wait_log("subscribed:", 3, 30);
    for id in ["j-gap-5", "j-gap-6"] {
        assert_eq!(hub.result(&op, id, 30)["status"], "ok");
    }
    wait_for("the hub to log the node's gap report", 30, || {
        hub.log().contains("node reports a gap")
    });
    assert!(op.results("j-gap-3").is_empty());
    drop((hub, nginx, nginx2));
}
