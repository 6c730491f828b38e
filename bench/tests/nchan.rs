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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vantage_bench::client::{Poster, Refused, subscribe};
use vantage_bench::pki::{Creds, client_tls};
use vantage_bench::servers::{Nginx, start_hub, start_redis};
use vantage_hub::datadir::DataDir;
use vantage_node::client::{PinnedCa, Timeouts};
use vantage_node::enrol::{EnrolOutcome, enrol};
use vantage_proto::enrol::{Declared, EnrolRequest};
use vantage_proto::sign::ApproverKey;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// `target/debug` (or whatever profile this test was built with).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds the hub and the agent (a no-op when they are up to date).
fn binaries() -> (PathBuf, PathBuf) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args(["build", "-p", "vantage-hub", "-p", "vantage-agent"])
        .current_dir(repo_root())
        .status()
        .unwrap()
        .success();
    assert!(ok, "building vantage-hub and vantage-agent failed");
    (
        bin_dir().join("vantage-hub"),
        bin_dir().join("vantage-agent"),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hub_cli(hub: &Path, data: &Path, args: &[&str]) -> String {
    let out = Command::new(hub)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vantage-hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Enrols a node with a one-time token through the hub's API (as provisioning does).
fn enrol_node(hub: &Path, data: &Path, url: &str, node_dir: &Path) -> String {
    let out = hub_cli(
        hub,
        data,
        &[
            "token",
            "create",
            "--json",
            "--country",
            "DE",
            "--continent",
            "EU",
        ],
    );
    let token = serde_json::from_str::<Value>(&out).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let state = vantage_node::state::DataDir::new(node_dir);
    let key = vantage_node::csr::NodeKey::generate().unwrap();
    state.write_key(&key.to_pem()).unwrap();
    let ca = PinnedCa::load(&data.join("ca.pem")).unwrap();
    let agent = vantage_node::client::agent(&ca, None, Timeouts::default());
    let req = EnrolRequest {
        csr: key.csr_pem(None).unwrap(),
        token: Some(token),
        declared: Declared {
            country: "DE".into(),
            ..Declared::default()
        },
        agent_version: None,
    };
    match enrol(&agent, url, &req).unwrap() {
        EnrolOutcome::Issued(i) => {
            state
                .store_issued(&i.node, &i.cert_pem, &i.chain_pem)
                .unwrap();
            i.node.node_id
        }
        other => panic!("enrolment not issued: {other:?}"),
    }
}

struct Agent {
    child: Option<Child>,
    log: PathBuf,
    config: PathBuf,
    bin: PathBuf,
}

impl Agent {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(&self.bin)
                .arg("--config")
                .arg(&self.config)
                .env("VANTAGE_LOG", "info")
                .env_remove("JOURNAL_STREAM")
                .env_remove("NOTIFY_SOCKET")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, n: usize, secs: u64) {
        wait_for(&format!("agent log line {needle:?} x{n}"), secs, || {
            self.log().matches(needle).count() >= n
        });
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

fn creds_of(node_dir: &Path, name: &str) -> Creds {
    Creds {
        name: name.to_string(),
        cert_pem: std::fs::read_to_string(node_dir.join("cert.pem")).unwrap(),
        key_pem: std::fs::read_to_string(node_dir.join("key.pem")).unwrap(),
    }
}

fn signed(keys: &[ApproverKey], job: &Value) -> Value {
    let sigs: Vec<Value> = keys[..2]
        .iter()
        .map(|k| serde_json::to_value(k.sign_job(job).unwrap()).unwrap())
        .collect();
    json!({"job": job, "signatures": sigs})
}

fn tcp_job(id: &str, node: &str, port: u16) -> Value {
    let now = now();
    json!({"v": 1, "id": id,
           "probe": {"cmd": "tcp", "args": {"host": "127.0.0.1", "port": port}},
           "select": {"node": node}, "not_before": now - 10, "expires": now + 600,
           "spread_secs": 0, "proposer": "alice"})
}

async fn results(op: &mut Poster, job: &str) -> Vec<Value> {
    let text = op.get(&format!("/v1/jobs/{job}/results")).await.unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_result(op: &mut Poster, job: &str, secs: u64) -> Value {
    let t = Instant::now();
    loop {
        if let Some(r) = results(op, job).await.into_iter().next() {
            return r;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "no result of {job} at the hub after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, libnginx-mod-nchan and redis-server: run with make test-nchan"]
async fn agent_and_hub_through_nginx_nchan_redis() {
    let (hub_bin, agent_bin) = binaries();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    hub_cli(
        &hub_bin,
        &data,
        &["init", "--network", "test", "--name", "127.0.0.1"],
    );
    let dd = DataDir::new(&data);

    // Approval policy: three approvers, two needed.
    let keys: Vec<ApproverKey> = (1..=3u8)
        .map(|i| ApproverKey::from_seed(&[i; 32]).unwrap())
        .collect();
    let policy_path = tmp.path().join("policy.json");
    let policy = json!({"policy": {"serial": 1, "network": "test", "threshold": 2,
        "approvers": keys.iter().enumerate().map(|(i, k)| json!({"name": format!("a{i}"), "key": k.public_key().to_base64()})).collect::<Vec<_>>(),
        "allowed_probes": ["dns", "http", "tls", "tcp", "ping", "traceroute"]},
        "signatures": []});
    std::fs::write(&policy_path, policy.to_string()).unwrap();

    // Redis, nginx + Nchan storing channels in it, the hub publishing to nginx.
    let redis_dir = tmp.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let redis = start_redis(&redis_dir).unwrap();
    let redis_url = format!("redis://{}", redis.addr);
    let nginx = Nginx::start(&dd, &tmp.path().join("nginx"), Some(&redis_url), 64).unwrap();
    // A second nginx sharing the Redis store: the hub publishes to the first only.
    let nginx2 = Nginx::start(&dd, &tmp.path().join("nginx2"), Some(&redis_url), 64).unwrap();
    let hub = start_hub(
        &hub_bin,
        &data,
        Some(&nginx.publish_url),
        &["--policy", policy_path.to_str().unwrap()],
    )
    .unwrap();
    let hub_url = format!("https://127.0.0.1:{}", hub.addr.port());

    // Two nodes enrolled at the hub; the agent runs as node A.
    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("b");
    let a = enrol_node(&hub_bin, &data, &hub_url, &a_dir);
    let b = enrol_node(&hub_bin, &data, &hub_url, &b_dir);
    let config = tmp.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {a_dir:?}\nca = {:?}\npolicy = {policy_path:?}\nheartbeat_secs = 5\n\
             [subscribe]\nurl = \"https://127.0.0.1:{}/sub/{{channels}}\"\n\
             keepalive_timeout_secs = 45\nmin_backoff_secs = 1\nmax_backoff_secs = 2\n\
             [owner]\nallow_special_addresses = true\n",
            dd.ca_cert(),
            nginx.run.addr.port()
        ),
    )
    .unwrap();
    let mut agent = Agent {
        child: None,
        log: tmp.path().join("agent.log"),
        config,
        bin: agent_bin,
    };
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
    let op_dir = tmp.path().join("op");
    hub_cli(
        &hub_bin,
        &data,
        &[
            "operator",
            "issue",
            "ops",
            "--out",
            op_dir.to_str().unwrap(),
        ],
    );
    let op_creds = Creds {
        name: "ops".into(),
        cert_pem: std::fs::read_to_string(op_dir.join("ops.crt")).unwrap(),
        key_pem: std::fs::read_to_string(op_dir.join("ops.key")).unwrap(),
    };
    let mut op = Poster::connect(client_tls(&dd.ca_cert(), &op_creds).unwrap(), hub.addr)
        .await
        .unwrap();
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    op.post(
        "/v1/jobs",
        signed(&keys, &tcp_job("j-nchan-1", &a, port)).to_string(),
    )
    .await
    .unwrap();
    let r = wait_result(&mut op, "j-nchan-1", 30).await;
    assert_eq!(r["node_id"], a.as_str(), "{r}");
    assert_eq!(r["status"], "ok", "{r}");

    // A job submitted while the agent is down is caught up from Nchan's buffer
    // (Last-Event-ID) when it comes back.
    agent.stop();
    op.post(
        "/v1/jobs",
        signed(&keys, &tcp_job("j-nchan-2", &a, port)).to_string(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(results(&mut op, "j-nchan-2").await.is_empty());
    agent.start();
    agent.wait_log("subscribed:", 2, 30);
    let r = wait_result(&mut op, "j-nchan-2", 30).await;
    assert_eq!(r["status"], "ok", "{r}");

    // nginx, not only the hub, checks who subscribes: B's certificate works on
    // B's channels, A's own channel is not B's to read, and no certificate no entry.
    let b_tls = client_tls(&dd.ca_cert(), &creds_of(&b_dir, &b)).unwrap();
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
    op.post(
        "/v1/jobs",
        signed(
            &keys,
            &json!({"v": 1, "id": "j-nchan-all",
                    "probe": {"cmd": "tcp", "args": {"host": "127.0.0.1", "port": port}},
                    "select": "everyone", "not_before": now() - 10, "expires": now() + 600,
                    "spread_secs": 0, "proposer": "alice"}),
        )
        .to_string(),
    )
    .await
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), s.next_event())
        .await
        .expect("B got the job for everyone")
        .unwrap()
        .unwrap();
    let env: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(env["channel"], "all", "{env}");
    assert_eq!(env["payload"]["job"]["id"], "j-nchan-all", "{env}");
    drop(s);

    // Revoke A at the hub; once nginx has the refreshed CRL it refuses A's
    // certificate, and B still gets in.
    let crl_before = op.get("/v1/crl?format=pem").await.unwrap();
    hub_cli(&hub_bin, &data, &["node", "revoke", &a]);
    let t = Instant::now();
    let crl = loop {
        let c = op.get("/v1/crl?format=pem").await.unwrap();
        if c != crl_before {
            break c;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the hub's CRL never changed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let a_tls = client_tls(&dd.ca_cert(), &creds_of(&a_dir, &a)).unwrap();
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
    let (hub_bin, agent_bin) = binaries();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    hub_cli(
        &hub_bin,
        &data,
        &["init", "--network", "test", "--name", "127.0.0.1"],
    );
    let dd = DataDir::new(&data);
    let keys: Vec<ApproverKey> = (1..=3u8)
        .map(|i| ApproverKey::from_seed(&[i; 32]).unwrap())
        .collect();
    let policy_path = tmp.path().join("policy.json");
    let policy = json!({"policy": {"serial": 1, "network": "test", "threshold": 2,
        "approvers": keys.iter().enumerate().map(|(i, k)| json!({"name": format!("a{i}"), "key": k.public_key().to_base64()})).collect::<Vec<_>>(),
        "allowed_probes": ["tcp"]},
        "signatures": []});
    std::fs::write(&policy_path, policy.to_string()).unwrap();
    let nginx = Nginx::start(&dd, &tmp.path().join("nginx"), None, 64).unwrap();
    let hub = start_hub(
        &hub_bin,
        &data,
        Some(&nginx.publish_url),
        &[
            "--policy",
            policy_path.to_str().unwrap(),
            "--retention-entries",
            "2",
        ],
    )
    .unwrap();
    let hub_url = format!("https://127.0.0.1:{}", hub.addr.port());
    let a_dir = tmp.path().join("a");
    let a = enrol_node(&hub_bin, &data, &hub_url, &a_dir);
    let config = tmp.path().join("agent.toml");
    let write_config = |sub_port: u16| {
        std::fs::write(
            &config,
            format!(
                "data_dir = {a_dir:?}\nca = {:?}\npolicy = {policy_path:?}\nheartbeat_secs = 5\n\
                 [subscribe]\nurl = \"https://127.0.0.1:{sub_port}/sub/{{channels}}\"\n\
                 min_backoff_secs = 1\nmax_backoff_secs = 2\n\
                 [owner]\nallow_special_addresses = true\n",
                dd.ca_cert(),
            ),
        )
        .unwrap()
    };
    write_config(nginx.run.addr.port());
    let mut agent = Agent {
        child: None,
        log: tmp.path().join("agent.log"),
        config: config.clone(),
        bin: agent_bin,
    };
    agent.start();
    agent.wait_log("subscribed:", 1, 30);

    let op_dir = tmp.path().join("op");
    hub_cli(
        &hub_bin,
        &data,
        &[
            "operator",
            "issue",
            "ops",
            "--out",
            op_dir.to_str().unwrap(),
        ],
    );
    let op_creds = Creds {
        name: "ops".into(),
        cert_pem: std::fs::read_to_string(op_dir.join("ops.crt")).unwrap(),
        key_pem: std::fs::read_to_string(op_dir.join("ops.key")).unwrap(),
    };
    let mut op = Poster::connect(client_tls(&dd.ca_cert(), &op_creds).unwrap(), hub.addr)
        .await
        .unwrap();
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    let submit = |id: &str| signed(&keys, &tcp_job(id, &a, port)).to_string();

    // Through Nchan as usual.
    op.post("/v1/jobs", submit("j-gap-1")).await.unwrap();
    assert_eq!(wait_result(&mut op, "j-gap-1", 30).await["status"], "ok");

    // Missed while down, and not in the Nchan the node comes back to: the hub has it.
    agent.stop();
    op.post("/v1/jobs", submit("j-gap-2")).await.unwrap();
    let nginx2 = Nginx::start(&dd, &tmp.path().join("nginx2"), None, 64).unwrap();
    write_config(nginx2.run.addr.port());
    agent.start();
    agent.wait_log("subscribed:", 2, 30);
    assert_eq!(wait_result(&mut op, "j-gap-2", 30).await["status"], "ok");
    agent.wait_log("caught up 1 message(s) from the hub", 1, 10);

    // Down for longer than the hub's retention: what the hub still holds runs,
    // the rest is reported as a gap, never silently skipped.
    agent.stop();
    for id in ["j-gap-3", "j-gap-4", "j-gap-5", "j-gap-6"] {
        op.post("/v1/jobs", submit(id)).await.unwrap();
    }
    agent.start();
    agent.wait_log("subscribed:", 3, 30);
    for id in ["j-gap-5", "j-gap-6"] {
        assert_eq!(wait_result(&mut op, id, 30).await["status"], "ok");
    }
    wait_for("the hub to log the node's gap report", 30, || {
        std::fs::read_to_string(&hub.log)
            .unwrap_or_default()
            .contains("node reports a gap")
    });
    assert!(results(&mut op, "j-gap-3").await.is_empty());
    drop((hub, nginx, nginx2));
}
