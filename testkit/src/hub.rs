//! The one way tests run a hub: the real `vantage-hub` binary, initialised in
//! a temporary directory and serving on a loopback port with a test policy.

use crate::approvers::{approver_keys, hub_policy, sign_job};
use crate::client::Client;
use crate::fixtures::copy_dir;
use crate::node::Node;
use crate::{bin, free_port, jobs, read, wait_for, wait_until};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use vantage_proto::api::JobAccepted;
use vantage_proto::sign::ApproverKey;

/// Which policy the hub serves with `--policy`.
pub enum PolicySource {
    /// [`hub_policy`] of the hub's keys 0..3, with these limits if given.
    Test(Option<Value>),
    /// A policy file the test made (e.g. with `vantage policy init`).
    File(PathBuf),
}

/// How to initialise and serve a hub; [`Hub::builder`].
pub struct HubBuilder {
    names: Vec<String>,
    policy: PolicySource,
    serve_args: Vec<String>,
}

impl HubBuilder {
    /// The names of the server certificate (default `localhost` and
    /// `127.0.0.1`; the first is the host of the hub's public URL).
    pub fn names(mut self, names: &[&str]) -> Self {
        self.names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The policy to serve (default: [`PolicySource::Test`] without limits).
    pub fn policy(mut self, policy: PolicySource) -> Self {
        self.policy = policy;
        self
    }

    /// Extra `serve` options.
    pub fn serve_args(mut self, args: &[&str]) -> Self {
        self.serve_args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Initialises the data directory and writes the policy, without serving
    /// (for tests that start something the hub needs first); then [`Hub::spawn`].
    pub fn init(self) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let keys = approver_keys(4);
        let policy = match self.policy {
            PolicySource::Test(limits) => {
                let path = dir.path().join("policy.json");
                std::fs::write(&path, hub_policy(&keys[..3], limits).to_string()).unwrap();
                path
            }
            PolicySource::File(path) => path,
        };
        let hub = Hub {
            dir,
            child: None,
            url: String::new(),
            port: free_port(),
            keys,
            policy,
            serve_args: self.serve_args,
        };
        let mut init = vec!["init", "--network", "test"];
        for n in &self.names {
            init.extend(["--name", n]);
        }
        hub.cli_ok(&init);
        hub
    }

    /// A stopped hub on a copy of another hub's files: `from/hub` (the data
    /// directory, flat) and `from/policy.json`; then [`Hub::spawn`].
    pub fn copy_of(self, from: &Path) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&from.join("hub"), &dir.path().join("hub"));
        let policy = dir.path().join("policy.json");
        std::fs::copy(from.join("policy.json"), &policy).unwrap();
        Hub {
            dir,
            child: None,
            url: String::new(),
            port: free_port(),
            keys: approver_keys(4),
            policy,
            serve_args: self.serve_args,
        }
    }

    /// Initialises the hub and starts serving.
    pub fn start(self) -> Hub {
        let mut hub = self.init();
        hub.spawn();
        hub
    }
}

/// A hub with its own data directory, serving on a fixed loopback port
/// (restarts keep it: nodes store the hub's URL).
pub struct Hub {
    /// Holds the data directory (`hub/`), the policy, the log and the address file.
    pub dir: tempfile::TempDir,
    /// The `serve` process while it runs.
    pub child: Option<Child>,
    /// `https://127.0.0.1:PORT` (the certificate names 127.0.0.1 too; by
    /// address it works on machines where `localhost` does not resolve).
    pub url: String,
    port: u16,
    /// Approver keys: 0..3 are in the test policy (two needed), 3 is unknown to it.
    pub keys: Vec<ApproverKey>,
    policy: PathBuf,
    /// Extra `serve` options, used by every (re)start.
    pub serve_args: Vec<String>,
}

impl Hub {
    /// How to start a hub other than with the defaults.
    pub fn builder() -> HubBuilder {
        HubBuilder {
            names: vec!["localhost".into(), "127.0.0.1".into()],
            policy: PolicySource::Test(None),
            serve_args: Vec::new(),
        }
    }

    /// A hub with the test policy and extra `serve` options.
    pub fn start(serve_args: &[&str]) -> Hub {
        Hub::builder().serve_args(serve_args).start()
    }

    /// Starts (or restarts) `serve` on the hub's port and waits until it listens.
    pub fn spawn(&mut self) {
        let addr_file = self.dir.path().join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut args: Vec<String> = vec!["serve".into(), "--listen".into()];
        args.push(format!("127.0.0.1:{}", self.port));
        // Quick keepalives and revocation checks, unless the test sets them.
        for (flag, value) in [("--keepalive", "1s"), ("--revocation-poll", "100ms")] {
            if !self.serve_args.iter().any(|a| a == flag) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(self.serve_args.iter().cloned());
        let log = crate::wait::append_to(&self.log_path());
        let child = Command::new(bin("vantage-hub"))
            .arg("--data-dir")
            .arg(self.data())
            .args(&args)
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--policy")
            .arg(&self.policy)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("the hub to listen", 30, || {
            std::fs::read_to_string(&addr_file).is_ok_and(|a| !a.trim().is_empty())
        });
        self.url = format!("https://127.0.0.1:{}", self.port);
    }

    /// Kills `serve` (SIGKILL: no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The port it serves on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("hub")
    }

    /// The CA certificate file.
    pub fn ca_path(&self) -> PathBuf {
        self.data().join("ca.pem")
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca_path()).unwrap()
    }

    /// The policy file it serves.
    pub fn policy_path(&self) -> &Path {
        &self.policy
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("hub.log")
    }

    /// What the hub logged so far (every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `vantage-hub --data-dir DATA ARGS`: (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(bin("vantage-hub"))
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

    /// Runs a CLI command that must succeed; its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.cli(args);
        assert!(ok, "vantage-hub {args:?}: {err}");
        out
    }

    /// Runs a CLI command with `--json` that must succeed; its output.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cli_ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("vantage-hub {args:?}: {e}: {out}"))
    }

    /// A new one-time enrolment token (`token create` with `args`).
    pub fn token(&self, args: &[&str]) -> String {
        let mut a = vec!["token", "create"];
        a.extend_from_slice(args);
        self.cli_json(&a)["token"].as_str().unwrap().to_string()
    }

    /// A client without a certificate.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.ca_pem(), None, &self.url)
    }

    /// Issues operator `name`'s certificate into `op/`; a client presenting it.
    pub fn operator(&self, name: &str) -> Client {
        let out = self.dir.path().join("op");
        self.issue_operator(name, &out);
        self.operator_from(&out, name)
    }

    /// A client presenting operator `name`'s credentials kept in `dir` (`NAME.crt`, `NAME.key`).
    pub fn operator_from(&self, dir: &Path, name: &str) -> Client {
        let cert = read(dir.join(format!("{name}.crt")));
        let key = read(dir.join(format!("{name}.key")));
        Client::new(&self.ca_pem(), Some((&cert, &key)), &self.url)
    }

    /// Issues operator `name`'s credentials (`NAME.crt`, `NAME.key`, `ca.pem`) into `out`.
    pub fn issue_operator(&self, name: &str, out: &Path) {
        self.cli_json(&["operator", "issue", name, "--out", out.to_str().unwrap()]);
    }

    /// Enrols a node of `country` with a fresh token.
    pub fn node(&self, country: &str) -> Node {
        self.node_with(&["--country", country], country)
    }

    /// Enrols a node with a token made with `token_args`, declaring `country`.
    pub fn node_with(&self, token_args: &[&str], country: &str) -> Node {
        let token = self.token(token_args);
        Node::enrol(self, Some(&token), country)
    }

    /// A new client (own connection pool) for a node's identity.
    pub fn fresh(&self, n: &Node) -> Client {
        Client::new(&self.ca_pem(), Some((&n.cert, &n.key)), &self.url)
    }

    /// A client for the identity an enrolment answer (JSON) issued to `key`.
    pub fn client_for(&self, enrol: &Value, key: &rcgen::KeyPair) -> Client {
        Client::new(
            &self.ca_pem(),
            Some((enrol["certificate"].as_str().unwrap(), &key.serialize_pem())),
            &self.url,
        )
    }

    /// A `dns` job to `select`, signed by approvers 0 and 1.
    pub fn job(&self, id: &str, select: Value) -> Value {
        self.job_with(id, select, |_| {})
    }

    /// A `dns` job changed by `f` before approvers 0 and 1 sign it.
    pub fn job_with(&self, id: &str, select: Value, f: impl FnOnce(&mut Value)) -> Value {
        let mut job = jobs::dns_job(id, select);
        f(&mut job);
        self.sign(&job, &[0, 1])
    }

    /// `job` signed by the approvers at `keys`.
    pub fn sign(&self, job: &Value, keys: &[usize]) -> Value {
        let by: Vec<&ApproverKey> = keys.iter().map(|&i| &self.keys[i]).collect();
        sign_job(job, &by)
    }

    /// Submits `job` signed by approvers 0 and 1 through `POST /v1/jobs`.
    pub fn submit(&self, op: &Client, job: &Value) -> JobAccepted {
        op.submit(&self.sign(job, &[0, 1]))
    }

    /// Publishes a payload unchecked on a channel (needs `--unsafe-raw-publish`).
    pub fn raw(&self, op: &Client, channel: &str, payload: &Value) {
        let (status, v) = op.post(&format!("/v1/publish/{channel}"), payload);
        assert_eq!(status, 201, "raw publish: {v}");
    }

    /// Waits up to `secs` for a result of `job` and returns the first.
    pub fn result(&self, op: &Client, job: &str, secs: u64) -> Value {
        wait_until(&format!("a result of {job}"), secs, || {
            op.results(job).into_iter().next()
        })
    }

    /// Enrolled nodes as `nodes list --json` shows them (pending ones have no id).
    pub fn nodes(&self) -> Vec<Value> {
        let all = self.cli_json(&["nodes", "list"]);
        all.as_array()
            .unwrap()
            .iter()
            .filter(|n| !n["id"].is_null())
            .cloned()
            .collect()
    }

    /// Key fingerprints of enrolments waiting for approval.
    pub fn pending(&self) -> Vec<String> {
        let all = self.cli_json(&["nodes", "list"]);
        all.as_array()
            .unwrap()
            .iter()
            .filter(|n| n["id"].is_null())
            .map(|n| n["key_fingerprint"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}
