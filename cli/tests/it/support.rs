//! The CLI's test network: an approver's desk (the real `vantage` binary in a
//! working directory with keys and a 2-of-3 policy) and a real hub serving
//! that policy, with enrolled nodes of several countries and ASNs.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use vantage_proto::data::{DnsData, DnsFlags, DnsRecord, DnssecVerdict, ProbeData, SecurityStatus};
use vantage_proto::probe::{DnsTransport, QType};
use vantage_testkit::{Agent, Hub, Node, PolicySource, bin};

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
        let mut c = Command::new(bin("vantage"));
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

/// A hub serving the desk's policy, with an operator's credentials in `creds/`.
pub struct Net {
    pub desk: Desk,
    pub hub: Hub,
    /// The hub's URL.
    pub url: String,
    /// The hub's port.
    pub port: String,
    pub nodes: BTreeMap<String, Node>,
}

impl Net {
    /// A hub started with `serve_args` and no node yet.
    pub fn bare(serve_args: &[&str]) -> Net {
        let desk = Desk::new();
        // `::1` too, for nodes that reach the hub over IPv6 (`caps`).
        let hub = Hub::builder()
            .names(&["localhost", "127.0.0.1", "::1"])
            .policy(PolicySource::File(desk.path("policy.json")))
            .serve_args(serve_args)
            .start();
        hub.issue_operator("ops", &desk.path("creds"));
        Net {
            desk,
            url: hub.url.clone(),
            port: hub.port().to_string(),
            hub,
            nodes: BTreeMap::new(),
        }
    }

    /// A hub with enrolled nodes of several countries and ASNs, all but one online.
    pub fn start() -> Net {
        let mut net = Net::bare(&[]);
        // name, country, continent, asn, tags, online
        for (name, cc, ct, asn, tags, online) in [
            ("de1", "DE", "EU", 3320, &["fiber"][..], true),
            ("de2", "DE", "EU", 3209, &[][..], true),
            ("fr1", "FR", "EU", 3215, &["fiber"][..], true),
            ("br1", "BR", "SA", 28573, &[][..], true),
            ("us1", "US", "NA", 7922, &["fiber"][..], false),
        ] {
            let asn_s = asn.to_string();
            let mut args = vec!["--country", cc, "--continent", ct, "--asn", &asn_s];
            for t in tags {
                args.extend(["--tag", t]);
            }
            let node = net.hub.node_with(&args, cc);
            if online {
                node.heartbeat();
            }
            net.nodes.insert(name.to_string(), node);
        }
        net
    }

    /// Enrols and starts a real agent in `country` (owner policy allowing
    /// loopback targets), and waits until it is subscribed.
    pub fn agent(&self, country: &str) -> Agent {
        let owner = "[owner]\nallow_special_addresses = true\n";
        let mut agent = Agent::enrolled(&self.hub, &["--country", country], country, "", owner);
        agent.start();
        agent.wait_log("subscribed:", 1, 30);
        agent
    }

    /// An ok `dns` result of job `job` from node `name`, with `data`.
    pub fn result(&self, name: &str, job: &str, data: &DnsData) {
        let node = &self.nodes[name];
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let r = serde_json::json!({"job_id": job, "node_id": node.id, "probe": "dns", "started_ms": now_ms,
                       "duration_ms": 12, "status": "ok", "data": ProbeData::Dns(data.clone()).to_value(), "seq": 0});
        let (status, v) = node.client.post("/v1/results", &r);
        assert_eq!(status, 200, "/v1/results: {v}");
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
