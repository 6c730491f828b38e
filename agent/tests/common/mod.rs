//! Test harness: the real `vantage-hub` and `vantage-agent` binaries on
//! loopback, enrolment through the provision library, the loopback fixtures
//! of `ci/fixtures/` (nsd with signed zones, nginx), signed jobs.
#![allow(dead_code, missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
use vantage_node::client::{PinnedCa, Timeouts};
use vantage_node::enrol::{EnrolOutcome, enrol};
use vantage_node::state::DataDir;
use vantage_proto::enrol::{Declared, EnrolRequest};
use vantage_proto::sign::ApproverKey;

pub mod hostile;

pub const AGENT: &str = env!("CARGO_BIN_EXE_vantage-agent");

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// The hub binary, next to the agent's (built on first use if missing, in
/// the same profile).
pub fn hub_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let dir = Path::new(AGENT).parent().unwrap();
    let path = dir.join("vantage-hub");
    BUILD.call_once(|| {
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut args = vec!["build", "-p", "vantage-hub"];
            if dir.ends_with("release") {
                args.push("--release");
            }
            let ok = Command::new(cargo)
                .args(&args)
                .current_dir(repo_root())
                .status()
                .unwrap()
                .success();
            assert!(ok, "building vantage-hub failed");
        }
    });
    assert!(
        path.exists(),
        "{} missing: run cargo build -p vantage-hub",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn approver_keys() -> Vec<ApproverKey> {
    (1..=4u8)
        .map(|i| ApproverKey::from_seed(&[i; 32]).unwrap())
        .collect()
}

pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- hub --------------------------------------------------------------

pub struct Hub {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub url: String,
    pub port: u16,
    /// Approvers 0..3 are in the policy (threshold 2); key 3 is unknown to it.
    pub keys: Vec<ApproverKey>,
    pub serve_args: Vec<String>,
}

impl Hub {
    /// What the hub logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.log")).unwrap_or_default()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("hub")
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.json")
    }

    pub fn ca_path(&self) -> PathBuf {
        self.data().join("ca.pem")
    }

    pub fn start() -> Hub {
        Hub::start_with(&["--keepalive", "1s"])
    }

    /// Starts a hub with extra `serve` arguments.
    pub fn start_with(serve_args: &[&str]) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let keys = approver_keys();
        let policy = json!({"policy": {"serial": 1, "network": "test", "threshold": 2,
            "approvers": keys[..3].iter().enumerate().map(|(i, k)| json!({"name": format!("a{i}"), "key": k.public_key().to_base64()})).collect::<Vec<_>>(),
            "allowed_probes": ["dns", "http", "tls", "tcp", "ping", "traceroute"]},
            "signatures": []});
        std::fs::write(dir.path().join("policy.json"), policy.to_string()).unwrap();
        let mut hub = Hub {
            dir,
            child: None,
            url: String::new(),
            port: 0,
            keys,
            serve_args: serve_args.iter().map(|s| s.to_string()).collect(),
        };
        let out = hub.cli(&[
            "init",
            "--network",
            "test",
            "--name",
            "localhost",
            "--name",
            "127.0.0.1",
        ]);
        assert!(out.0, "hub init failed: {}", out.2);
        hub.spawn(free_port());
        hub
    }

    /// Starts (or restarts) `serve` on `port`.
    pub fn spawn(&mut self, port: u16) {
        let addr_file = self.dir.path().join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("hub.log"))
            .unwrap();
        let child = Command::new(hub_bin())
            .arg("--data-dir")
            .arg(self.data())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--policy")
            .arg(self.policy_path())
            .args(["--unsafe-raw-publish", "--public-url"])
            .arg(format!("https://localhost:{port}"))
            .args(&self.serve_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("the hub to listen", 20, || addr_file.exists());
        self.port = port;
        self.url = format!("https://localhost:{port}");
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(hub_bin())
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    pub fn operator(&self) -> Client {
        let out = self.dir.path().join("op");
        let (ok, _, err) = self.cli(&[
            "operator",
            "issue",
            "ops",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(ok, "operator issue: {err}");
        let cert = std::fs::read_to_string(out.join("ops.crt")).unwrap();
        let key = std::fs::read_to_string(out.join("ops.key")).unwrap();
        Client::new(
            &std::fs::read_to_string(self.ca_path()).unwrap(),
            (&cert, &key),
            &self.url,
        )
    }

    /// Enrols a node (country DE) into `data_dir` with the provision library.
    pub fn enrol(&self, data_dir: &Path) -> String {
        let (ok, out, err) = self.cli(&[
            "token",
            "create",
            "--json",
            "--country",
            "DE",
            "--continent",
            "EU",
        ]);
        assert!(ok, "token create: {err}");
        let token = serde_json::from_str::<Value>(&out).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        let data = DataDir::new(data_dir);
        let key = vantage_node::csr::NodeKey::generate().unwrap();
        data.write_key(&key.to_pem()).unwrap();
        let ca = PinnedCa::load(&self.ca_path()).unwrap();
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
        match enrol(&agent, &self.url, &req).unwrap() {
            EnrolOutcome::Issued(i) => {
                data.store_issued(&i.node, &i.cert_pem, &i.chain_pem)
                    .unwrap();
                i.node.node_id
            }
            other => panic!("enrolment not issued: {other:?}"),
        }
    }

    /// A job value (not signed).
    pub fn job(&self, id: &str, node: &str, probe: Value) -> Value {
        let now = now();
        json!({"v": 1, "id": id, "probe": probe, "select": {"node": node},
               "not_before": now - 10, "expires": now + 600, "spread_secs": 0, "proposer": "alice"})
    }

    pub fn sign(&self, job: &Value, keys: &[usize]) -> Value {
        let sigs: Vec<Value> = keys
            .iter()
            .map(|&i| serde_json::to_value(self.keys[i].sign_job(job).unwrap()).unwrap())
            .collect();
        json!({"job": job, "signatures": sigs})
    }

    /// Submits a job signed by approvers 0 and 1 through `POST /v1/jobs`.
    pub fn submit(&self, op: &Client, job: &Value) {
        let (status, v) = op.post("/v1/jobs", &self.sign(job, &[0, 1]));
        assert_eq!(status, 201, "submit: {v}");
    }

    /// Publishes a payload unchecked (`--unsafe-raw-publish`) on a channel.
    pub fn raw(&self, op: &Client, channel: &str, payload: &Value) {
        let (status, v) = op.post(&format!("/v1/publish/{channel}"), payload);
        assert_eq!(status, 201, "raw publish: {v}");
    }

    pub fn results(&self, op: &Client, job: &str) -> Vec<Value> {
        let (status, v) = op.get(&format!("/v1/jobs/{job}/results"));
        assert_eq!(status, 200, "{v}");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Waits for at least one result of `job` and returns the first.
    pub fn result(&self, op: &Client, job: &str, secs: u64) -> Value {
        let mut got = Vec::new();
        wait_for(&format!("a result of {job}"), secs, || {
            got = self.results(op, job);
            !got.is_empty()
        });
        got.remove(0)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    pub fn new(ca_pem: &str, (cert, key): (&str, &str), base: &str) -> Client {
        let ca = Certificate::from_pem(ca_pem.as_bytes()).unwrap().to_owned();
        let cert = Certificate::from_pem(cert.as_bytes()).unwrap().to_owned();
        let key = PrivateKey::from_pem(key.as_bytes()).unwrap().to_owned();
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
            .client_cert(Some(ClientCert::new_with_certs(&[cert], key)))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Client {
            agent,
            base: base.to_string(),
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body.to_string())
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

// ---- agent ------------------------------------------------------------

pub struct Agent {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub node_id: String,
}

impl Agent {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// Enrols a node and writes its configuration; `extra` is appended TOML
    /// (sections `[owner]`, `[probes]` ... as the test needs).
    pub fn new(hub: &Hub, top: &str, extra: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let node_id = hub.enrol(&data);
        // Quick heartbeats and reconnects for tests, unless the caller sets them.
        let heartbeat = if top.contains("heartbeat_secs") {
            ""
        } else {
            "heartbeat_secs = 5"
        };
        let subscribe = if extra.contains("keepalive_timeout_secs") {
            ""
        } else {
            "keepalive_timeout_secs = 5\nmin_backoff_secs = 1\nmax_backoff_secs = 2"
        };
        let cfg = format!(
            "data_dir = {data:?}\nca = {:?}\npolicy = {:?}\n{heartbeat}\n{top}\n[subscribe]\n{subscribe}\n{extra}\n",
            hub.ca_path(),
            hub.policy_path(),
        );
        std::fs::write(dir.path().join("agent.toml"), cfg).unwrap();
        Agent {
            dir,
            child: None,
            node_id,
        }
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(AGENT)
            .arg("--config")
            .arg(self.config_path())
            .env("VANTAGE_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the log holds `needle` `n` times.
    pub fn wait_log(&self, needle: &str, n: usize, secs: u64) {
        wait_for(&format!("agent log line {needle:?} x{n}"), secs, || {
            self.log().matches(needle).count() >= n
        });
    }

    pub fn subscribed(&self, n: usize) {
        self.wait_log("subscribed:", n, 20);
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn outbox_depth(&self) -> usize {
        std::fs::read_dir(self.data().join("outbox"))
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .map(|e| e.file_name().to_string_lossy().ends_with(".json"))
                        .unwrap_or(false)
                })
                .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---- fixtures ----------------------------------------------------------

pub struct Fixtures {
    pub dir: tempfile::TempDir,
    pub dns: String,
    pub http: String,
    pub https: String,
    pub trust_anchor: PathBuf,
}

impl Fixtures {
    pub fn start() -> Fixtures {
        let dir = tempfile::tempdir().unwrap();
        let (dns, http, https) = (free_port(), free_port(), free_port());
        let out = Command::new("bash")
            .arg(repo_root().join("ci/fixtures/start.sh"))
            .arg(dir.path())
            .env("DNS_PORT", dns.to_string())
            .env("HTTP_PORT", http.to_string())
            .env("HTTPS_PORT", https.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ci/fixtures/start.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Fixtures {
            trust_anchor: dir.path().join("trust-anchors.key"),
            dns: format!("127.0.0.1:{dns}"),
            http: format!("http://127.0.0.1:{http}/"),
            https: format!("https://localhost:{https}/"),
            dir,
        }
    }
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("ci/fixtures/stop.sh"))
            .arg(self.dir.path())
            .status();
    }
}
