//! Test helpers: a real `vantage-hub` on loopback, TLS clients with and
//! without client certificates, enrolment, signed jobs and SSE reading.
#![allow(dead_code, missing_docs)]

use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
use vantage_proto::sign::ApproverKey;
use vantage_proto::sse::{Decoder, Event, Frame};

pub const BIN: &str = env!("CARGO_BIN_EXE_vantage-hub");

pub struct Hub {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub url: String,
    pub serve_args: Vec<String>,
    pub keys: Vec<ApproverKey>,
}

pub fn approver_keys() -> Vec<ApproverKey> {
    (1..=3u8)
        .map(|i| ApproverKey::from_seed(&[i; 32]).unwrap())
        .collect()
}

impl Hub {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("hub")
    }

    /// Initialises a data directory and starts the hub with extra serve args.
    pub fn start(extra: &[&str]) -> Hub {
        Self::start_with_limits(extra, None)
    }

    /// Like [`Hub::start`], with the policy's `limits` object given.
    pub fn start_with_limits(extra: &[&str], limits: Option<Value>) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let keys = approver_keys();
        let mut policy = json!({"policy": {"serial": 1, "network": "test", "threshold": 2,
            "approvers": keys.iter().enumerate().map(|(i, k)| json!({"name": format!("a{i}"), "key": k.public_key().to_base64()})).collect::<Vec<_>>(),
            "allowed_probes": ["dns", "http", "tls", "tcp", "ping", "traceroute"]},
            "signatures": []});
        if let Some(l) = limits {
            policy["policy"]["limits"] = l;
        }
        std::fs::write(dir.path().join("policy.json"), policy.to_string()).unwrap();
        let mut hub = Hub {
            dir,
            child: None,
            url: String::new(),
            serve_args: extra.iter().map(|s| s.to_string()).collect(),
            keys,
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
        assert!(out.0, "init failed: {}", out.2);
        hub.spawn(None);
        hub
    }

    /// Starts (or restarts) the serve process, on `port` if given.
    pub fn spawn(&mut self, port: Option<u16>) {
        let addr_file = self.dir.path().join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let listen = format!("127.0.0.1:{}", port.unwrap_or(0));
        let policy = self.dir.path().join("policy.json");
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            self.data().to_string_lossy().into(),
            "serve".into(),
            "--listen".into(),
            listen,
            "--addr-file".into(),
            addr_file.to_string_lossy().into(),
            "--policy".into(),
            policy.to_string_lossy().into(),
        ];
        // Test defaults, unless the test sets them itself.
        for (flag, value) in [("--keepalive", "1s"), ("--revocation-poll", "100ms")] {
            if !self.serve_args.iter().any(|a| a == flag) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(self.serve_args.iter().cloned());
        let child = Command::new(BIN)
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                let port = a.trim().rsplit(':').next().unwrap().to_string();
                // The certificate names 127.0.0.1 too; connecting by address
                // works on machines without /etc/hosts, where "localhost" does not resolve.
                self.url = format!("https://127.0.0.1:{port}");
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "hub did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Runs a CLI command on the data directory: (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN)
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

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data().join("ca.pem")).unwrap()
    }

    pub fn token(&self, args: &[&str]) -> String {
        let mut a = vec!["token", "create", "--json"];
        a.extend_from_slice(args);
        let (ok, out, err) = self.cli(&a);
        assert!(ok, "token create: {err}");
        serde_json::from_str::<Value>(&out).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn anonymous(&self) -> Client {
        Client::new(&self.ca_pem(), None, &self.url)
    }

    pub fn operator(&self, name: &str) -> Client {
        let out = self.dir.path().join("op");
        let (ok, _, err) = self.cli(&[
            "operator",
            "issue",
            name,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(ok, "operator issue: {err}");
        let cert = std::fs::read_to_string(out.join(format!("{name}.crt"))).unwrap();
        let key = std::fs::read_to_string(out.join(format!("{name}.key"))).unwrap();
        Client::new(&self.ca_pem(), Some((&cert, &key)), &self.url)
    }

    /// Enrols a node with a fresh token for `country`.
    pub fn node(&self, country: &str) -> Node {
        let token = self.token(&["--country", country]);
        let key = rcgen::KeyPair::generate().unwrap();
        let (status, v) = self
            .anonymous()
            .post("/v1/enrol", &enrol_body(&key, Some(&token), country));
        assert_eq!(status, 200, "{v}");
        Node {
            id: v["node_id"].as_str().unwrap().to_string(),
            cert: v["certificate"].as_str().unwrap().to_string(),
            key: key.serialize_pem(),
            client: self.client_for(&v, &key),
        }
    }

    /// A new client (own connection pool) for a node's identity.
    pub fn fresh(&self, n: &Node) -> Client {
        Client::new(&self.ca_pem(), Some((&n.cert, &n.key)), &self.url)
    }

    pub fn client_for(&self, enrol: &Value, key: &rcgen::KeyPair) -> Client {
        Client::new(
            &self.ca_pem(),
            Some((enrol["certificate"].as_str().unwrap(), &key.serialize_pem())),
            &self.url,
        )
    }

    /// A job signed by two approvers.
    pub fn job(&self, id: &str, select: Value) -> Value {
        self.job_with(id, select, |_| {})
    }

    /// A job changed by `f` before two approvers sign it.
    pub fn job_with(&self, id: &str, select: Value, f: impl FnOnce(&mut Value)) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let job = json!({"v": 1, "id": id, "probe": {"cmd": "dns", "args": {"name": "example.com"}},
            "select": select, "not_before": now - 10, "expires": now + 3600, "proposer": "alice"});
        let mut job = job;
        f(&mut job);
        let sigs: Vec<Value> = self.keys[..2]
            .iter()
            .map(|k| serde_json::to_value(k.sign_job(&job).unwrap()).unwrap())
            .collect();
        json!({"job": job, "signatures": sigs})
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn csr(key: &rcgen::KeyPair) -> String {
    rcgen::CertificateParams::default()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

pub fn enrol_body(key: &rcgen::KeyPair, token: Option<&str>, country: &str) -> Value {
    let mut v = json!({"csr": csr(key), "declared": {"country": country}});
    if let Some(t) = token {
        v["token"] = json!(t);
    }
    v
}

pub struct Node {
    pub id: String,
    pub cert: String,
    pub key: String,
    pub client: Client,
}

pub struct Client {
    pub agent: ureq::Agent,
    pub base: String,
}

impl Client {
    pub fn new(ca_pem: &str, identity: Option<(&str, &str)>, base: &str) -> Client {
        let ca = Certificate::from_pem(ca_pem.as_bytes()).unwrap().to_owned();
        let mut tls = TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(vec![ca])));
        if let Some((cert, key)) = identity {
            let cert = Certificate::from_pem(cert.as_bytes()).unwrap().to_owned();
            let key = PrivateKey::from_pem(key.as_bytes()).unwrap().to_owned();
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&[cert], key)));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
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
        self.try_post(path, body).unwrap()
    }

    pub fn try_post(&self, path: &str, body: &Value) -> Result<(u16, Value), ureq::Error> {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body.to_string())?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.try_get(path).unwrap()
    }

    pub fn try_get(&self, path: &str) -> Result<(u16, Value), ureq::Error> {
        let mut r = self.agent.get(format!("{}{path}", self.base)).call()?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Opens an event stream; events arrive on the returned reader.
    pub fn sse(&self, path: &str, last_id: Option<&str>) -> Result<Sse, (u16, Value)> {
        let mut req = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("accept", "text/event-stream");
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let r = req.call().unwrap();
        let status = r.status().as_u16();
        if status != 200 {
            let text = r.into_body().read_to_string().unwrap();
            return Err((
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ));
        }
        let (tx, rx) = mpsc::channel();
        let mut reader = r.into_body().into_reader();
        std::thread::spawn(move || {
            let mut dec = Decoder::new(64 * 1024, 1024 * 1024);
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(n) => {
                        for f in dec.feed(&buf[..n]) {
                            if let Ok(Frame::Event(e)) = f
                                && tx.send(Some(e)).is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Ok(Sse { rx })
    }
}

pub struct Sse {
    rx: mpsc::Receiver<Option<Event>>,
}

#[derive(Debug)]
pub enum Next {
    Event(Event),
    Closed,
    Timeout,
}

impl Sse {
    pub fn next(&self, timeout: Duration) -> Next {
        match self.rx.recv_timeout(timeout) {
            Ok(Some(e)) => Next::Event(e),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => Next::Closed,
            Err(mpsc::RecvTimeoutError::Timeout) => Next::Timeout,
        }
    }

    pub fn event(&self) -> Event {
        match self.next(Duration::from_secs(10)) {
            Next::Event(e) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

pub fn envelope(e: &Event) -> Value {
    serde_json::from_str(&e.data).unwrap()
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}
