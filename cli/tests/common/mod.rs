//! A real `vantage-hub` on loopback with nodes of several countries and ASNs,
//! driven through the real `vantage` binary.
#![allow(dead_code, missing_docs)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use vantage_node::client::{self, ClientIdentity, PinnedCa, Timeouts};
use vantage_node::csr::NodeKey;
use vantage_node::enrol::{self, Declared, EnrolOutcome, EnrolRequest};
use vantage_proto::data::{DnsData, DnsFlags, DnsRecord, DnssecVerdict, ProbeData, SecurityStatus};
use vantage_proto::probe::{DnsTransport, QType};

pub const VANTAGE: &str = env!("CARGO_BIN_EXE_vantage");

/// `vantage-hub` is built by `cargo test --workspace` (and `make test-cli`) next to `vantage`.
pub fn hub_bin() -> PathBuf {
    let p = Path::new(VANTAGE).with_file_name("vantage-hub");
    assert!(
        p.exists(),
        "{} is missing; run cargo build -p vantage-hub first (make test-cli does)",
        p.display()
    );
    p
}

/// The outcome of one `vantage` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }

    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// A working directory for approvers and operators, with a 2-of-3 policy.
pub struct Desk {
    pub dir: tempfile::TempDir,
}

impl Desk {
    pub fn new() -> Desk {
        let desk = Desk {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in ["alice", "bob", "carol", "mallory"] {
            desk.vantage(&["keygen", "--out", name]).ok();
        }
        desk.vantage(&[
            "policy",
            "init",
            "--network",
            "test",
            "--approver",
            "alice=alice.pub",
            "--approver",
            "bob=bob.pub",
            "--approver",
            "carol=carol.pub",
            "--threshold",
            "2",
            "--out",
            "policy.json",
        ])
        .ok();
        desk
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `vantage` in the desk directory with no hub settings from the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(VANTAGE);
        c.args(args)
            .current_dir(self.dir.path())
            .env("USER", "tester")
            .env_remove("VANTAGE_HUB")
            .env_remove("VANTAGE_CREDS")
            .env_remove("VANTAGE_CERT")
            .env_remove("VANTAGE_KEY")
            .env_remove("VANTAGE_CA")
            .env_remove("VANTAGE_POLICY")
            .env_remove("VANTAGE_APPROVER_KEY");
        c
    }

    pub fn vantage(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).stdin(Stdio::null()).output().unwrap())
    }

    /// Runs `vantage` with `input` on stdin.
    pub fn vantage_input(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    /// Proposes a dns job with `id` and extra flags, signed by `signers`.
    pub fn job(&self, id: &str, extra: &[&str], signers: &[&str]) -> String {
        let file = format!("{id}.job.json");
        let mut args = vec!["propose", "dns", "example.com", "--id", id];
        args.extend_from_slice(extra);
        self.vantage(&args).ok();
        for s in signers {
            let key = format!("{s}.key");
            self.vantage(&["sign", &file, "--key", &key, "--yes"]).ok();
        }
        file
    }
}

/// Runs `vantage-hub --data-dir DIR ARGS`, which must succeed; its stdout.
pub fn hub_cli(dir: &Path, args: &[&str]) -> String {
    let o = Command::new(hub_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "vantage-hub {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A real `vantage-agent` (built next to `vantage`) enrolled with the hub.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub id: String,
    pub child: Child,
}

impl Agent {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Node {
    pub id: String,
    pub agent: ureq::Agent,
}

/// A hub serving the desk's policy, with an operator's credentials in `creds/`.
pub struct Net {
    pub port: String,
    pub desk: Desk,
    pub data: tempfile::TempDir,
    pub child: Child,
    pub url: String,
    pub nodes: BTreeMap<String, Node>,
}

impl Net {
    pub fn start() -> Net {
        let desk = Desk::new();
        let data = tempfile::tempdir().unwrap();
        let hub_dir = data.path().join("hub");
        let hub = |args: &[&str]| hub_cli(&hub_dir, args);
        hub(&[
            "init",
            "--network",
            "test",
            "--name",
            "localhost",
            "--name",
            "127.0.0.1",
        ]);
        let creds = desk.path("creds");
        hub(&["operator", "issue", "ops", "--out", creds.to_str().unwrap()]);
        let addr = data.path().join("addr");
        let policy = desk.path("policy.json");
        let child = Command::new(hub_bin())
            .arg("--data-dir")
            .arg(&hub_dir)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--keepalive",
                "1s",
                "--addr-file",
            ])
            .arg(&addr)
            .arg("--policy")
            .arg(&policy)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let port = loop {
            if let Ok(a) = std::fs::read_to_string(&addr) {
                break a.trim().rsplit(':').next().unwrap().to_string();
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the hub did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut net = Net {
            desk,
            data,
            child,
            url: format!("https://localhost:{port}"),
            port,
            nodes: BTreeMap::new(),
        };
        // name, country, continent, asn, tags, online
        for (name, cc, ct, asn, tags, online) in [
            ("de1", "DE", "EU", 3320, &["fiber"][..], true),
            ("de2", "DE", "EU", 3209, &[][..], true),
            ("fr1", "FR", "EU", 3215, &["fiber"][..], true),
            ("br1", "BR", "SA", 28573, &[][..], true),
            ("us1", "US", "NA", 7922, &["fiber"][..], false),
        ] {
            let asn_s = asn.to_string();
            let mut args = vec![
                "token",
                "create",
                "--json",
                "--country",
                cc,
                "--continent",
                ct,
                "--asn",
                &asn_s,
            ];
            for t in tags {
                args.extend(["--tag", t]);
            }
            let token: Value = serde_json::from_str(&hub(&args)).unwrap();
            let node = net.enrol(token["token"].as_str().unwrap(), cc);
            if online {
                net.heartbeat(&node);
            }
            net.nodes.insert(name.to_string(), node);
        }
        net
    }

    /// Enrols and starts a real agent in `country` (owner policy allowing
    /// loopback targets), and waits until it is subscribed.
    pub fn agent(&self, country: &str) -> Agent {
        let bin = Path::new(VANTAGE).with_file_name("vantage-agent");
        assert!(
            bin.exists(),
            "{} is missing; run cargo build -p vantage-agent first (make test-cli does)",
            bin.display()
        );
        let token: Value = serde_json::from_str(&hub_cli(
            &self.data.path().join("hub"),
            &["token", "create", "--json", "--country", country],
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = vantage_node::state::DataDir::new(dir.path().join("data"));
        data.ensure().unwrap();
        let key = NodeKey::generate().unwrap();
        data.write_key(&key.to_pem()).unwrap();
        let ca = PinnedCa::load(&self.desk.path("creds/ca.pem")).unwrap();
        let anon = client::agent(&ca, None, Timeouts::default());
        let req = EnrolRequest {
            csr: key.csr_pem(None).unwrap(),
            token: token["token"].as_str().map(str::to_string),
            declared: Declared {
                country: country.to_string(),
                ..Default::default()
            },
            agent_version: None,
        };
        let EnrolOutcome::Issued(i) = enrol::enrol(&anon, &self.url, &req).unwrap() else {
            panic!("enrolment with a token must issue at once");
        };
        data.store_issued(&i.node, &i.cert_pem, &i.chain_pem)
            .unwrap();
        let cfg = format!(
            "data_dir = {:?}\nca = {:?}\npolicy = {:?}\nheartbeat_secs = 5\n[subscribe]\nkeepalive_timeout_secs = 5\nmin_backoff_secs = 1\nmax_backoff_secs = 2\n[owner]\nallow_special_addresses = true\n",
            data.root(),
            self.desk.path("creds/ca.pem"),
            self.desk.path("policy.json"),
        );
        std::fs::write(dir.path().join("agent.toml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(dir.path().join("agent.toml"))
            .env("VANTAGE_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let agent = Agent {
            dir,
            id: i.node.node_id.clone(),
            child,
        };
        let t = Instant::now();
        while !agent.log().contains("subscribed:") {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the agent did not subscribe:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    fn enrol(&self, token: &str, country: &str) -> Node {
        let ca = PinnedCa::load(&self.desk.path("creds/ca.pem")).unwrap();
        let anon = client::agent(&ca, None, Timeouts::default());
        let key = NodeKey::generate().unwrap();
        let req = EnrolRequest {
            csr: key.csr_pem(None).unwrap(),
            token: Some(token.to_string()),
            declared: Declared {
                country: country.to_string(),
                ..Default::default()
            },
            agent_version: None,
        };
        let EnrolOutcome::Issued(issued) = enrol::enrol(&anon, &self.url, &req).unwrap() else {
            panic!("enrolment with a token must issue at once");
        };
        let id =
            ClientIdentity::from_pem(issued.cert_pem.as_bytes(), key.to_pem().as_bytes()).unwrap();
        Node {
            id: issued.node.node_id.clone(),
            agent: client::agent(&ca, Some(&id), Timeouts::default()),
        }
    }

    fn post(&self, node: &Node, path: &str, body: &Value) -> Value {
        let mut r = node
            .agent
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .send(body.to_string())
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub fn heartbeat(&self, node: &Node) {
        self.post(
            node,
            "/v1/heartbeat",
            &json!({"version": "test", "uptime_secs": 1, "outbox_depth": 0}),
        );
    }

    /// Node `name` reports a result for `job`.
    /// An ok `dns` result of job `job` from node `name`, with `data`.
    pub fn result(&self, name: &str, job: &str, data: &DnsData) {
        let node = &self.nodes[name];
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let r = json!({"job_id": job, "node_id": node.id, "probe": "dns", "started_ms": now_ms,
                       "duration_ms": 12, "status": "ok", "data": ProbeData::Dns(data.clone()).to_value(), "seq": 0});
        self.post(node, "/v1/results", &r);
    }

    pub fn id(&self, name: &str) -> String {
        self.nodes[name].id.clone()
    }

    /// The ids of the named nodes, sorted.
    pub fn ids(&self, names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|n| self.id(n)).collect();
        v.sort();
        v
    }

    /// `vantage ARGS --hub URL --creds creds`.
    pub fn op(&self, args: &[&str]) -> Run {
        let mut a = args.to_vec();
        a.extend(["--hub", &self.url, "--creds", "creds"]);
        self.desk.vantage(&a)
    }

    pub fn op_command(&self, args: &[&str]) -> Command {
        let mut a = args.to_vec();
        a.extend(["--hub", &self.url, "--creds", "creds"]);
        self.desk.command(&a)
    }

    /// Submits `file` and returns the sorted node ids the hub resolved.
    pub fn submit_nodes(&self, file: &str) -> Vec<String> {
        let v = self.op(&["submit", file, "--json"]).ok().json();
        let mut nodes: Vec<String> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        nodes.sort();
        nodes
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dns` data as an agent reports it: `rcode`, `answers` A records, and a
/// DNSSEC verdict with `status` if given.
pub fn dns_data(rcode: &str, answers: usize, status: Option<SecurityStatus>) -> DnsData {
    DnsData {
        server: "127.0.0.1:53".into(),
        transport: DnsTransport::Udp,
        qname: "example.com".into(),
        qtype: QType::A,
        rcode: rcode.into(),
        flags: DnsFlags {
            aa: false,
            tc: false,
            rd: true,
            ra: true,
            ad: false,
            cd: false,
        },
        answers: (0..answers)
            .map(|i| DnsRecord {
                name: "example.com.".into(),
                rtype: "A".into(),
                ttl: 60,
                data: format!("192.0.2.{i}"),
            })
            .collect(),
        authority: Vec::new(),
        query_ms: 1.5,
        abuf: None,
        nsid: None,
        ede: Vec::new(),
        dnssec: status.map(|verdict| DnssecVerdict {
            verdict,
            reason: "validated".into(),
            detail: String::new(),
        }),
        validation_ms: status.map(|_| 2.0),
    }
}
