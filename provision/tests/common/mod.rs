//! Test harness: the real `vantage-hub` on loopback, and a node made of
//! temporary directories standing in for the boot and data partitions.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The `vantage-hub` binary, built (once per test process) into the same
/// target directory as this test, so it is always current.
pub fn hub_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test exe>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
        let target_dir = profile_dir.parent().unwrap();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        // Without the variables cargo sets for a test process: build scripts
        // watch some, and the next ordinary build would rebuild everything.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k == "OUT_DIR"
                || k == "CARGO_TARGET_TMPDIR"
                || k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("CARGO_CRATE_")
                || k == "CARGO_PRIMARY_PACKAGE"
            {
                cmd.env_remove(k.as_ref());
            }
        }
        cmd.args(["build", "--quiet", "-p", "vantage-hub", "--manifest-path"])
            .arg(workspace.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().unwrap() == "release" {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p vantage-hub");
        assert!(status.success(), "cargo build -p vantage-hub failed");
        let bin = profile_dir.join("vantage-hub");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// A running hub with its own data directory.
pub struct Hub {
    pub dir: TempDir,
    pub url: String,
    child: Child,
}

impl Hub {
    pub fn start() -> Hub {
        Hub::start_with(&[])
    }

    /// A hub with extra `serve` options.
    pub fn start_with(serve_args: &[&str]) -> Hub {
        Hub::start_as("127.0.0.1", serve_args)
    }

    /// A hub whose server certificate names only `name` (it still listens,
    /// and [`Hub::url`] points, at 127.0.0.1).
    pub fn start_as(name: &str, serve_args: &[&str]) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("hub");
        let out = Command::new(hub_bin())
            .arg("--data-dir")
            .arg(&data)
            .args(["init", "--name", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "hub init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The hub tells nodes its URL from its listen port, so pick a real one.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr_file = dir.path().join("addr");
        let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
        let child = Command::new(hub_bin())
            .arg("--data-dir")
            .arg(&data)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--addr-file")
            .arg(&addr_file)
            .args(serve_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut hub = Hub {
            dir,
            url: String::new(),
            child,
        };
        let addr = wait_for(Duration::from_secs(30), || {
            std::fs::read_to_string(&addr_file)
                .ok()
                .filter(|a| !a.trim().is_empty())
        })
        .unwrap_or_else(|| panic!("hub did not start: {}", hub.log()));
        hub.url = format!("https://{}", addr.trim());
        hub
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("hub/ca.pem")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.log")).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        let out = Command::new(hub_bin())
            .arg("--data-dir")
            .arg(self.dir.path().join("hub"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vantage-hub {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_slice(&self.cli(args).stdout).unwrap()
    }

    pub fn token(&self, country: &str) -> String {
        let v = self.json(&["token", "create", "--country", country, "--json"]);
        v["token"].as_str().unwrap().to_owned()
    }

    /// Node id each token enrolled (`None` while unused), by token hash.
    pub fn tokens(&self) -> Vec<serde_json::Value> {
        self.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Enrolled nodes (the registry also lists pending enrolments, without an id).
    pub fn nodes(&self) -> Vec<serde_json::Value> {
        let all = self.json(&["nodes", "list", "--json"]);
        all.as_array()
            .unwrap()
            .iter()
            .filter(|n| !n["id"].is_null())
            .cloned()
            .collect()
    }

    /// Key fingerprints of enrolments waiting for approval.
    pub fn pending(&self) -> Vec<String> {
        let all = self.json(&["nodes", "list", "--json"]);
        all.as_array()
            .unwrap()
            .iter()
            .filter(|n| n["id"].is_null())
            .map(|n| n["key_fingerprint"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn approve(&self, fingerprint: &str) {
        self.cli(&["nodes", "approve", fingerprint]);
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node: boot and data "partitions" in a temporary directory.
pub struct Node {
    pub dir: TempDir,
    pub ca: PathBuf,
}

impl Node {
    /// A node pinning `ca` (copied, as the image would ship it).
    pub fn new(ca: &Path) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("boot")).unwrap();
        let pinned = dir.path().join("ca.pem");
        std::fs::copy(ca, &pinned).unwrap();
        Node { dir, ca: pinned }
    }

    pub fn boot(&self) -> PathBuf {
        self.dir.path().join("boot")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.boot().join("vantage.toml")
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn config(&self) -> String {
        std::fs::read_to_string(self.config_path()).unwrap()
    }

    pub fn status(&self) -> String {
        std::fs::read_to_string(self.boot().join("vantage-status.txt")).unwrap_or_default()
    }

    pub fn node_json(&self) -> Option<serde_json::Value> {
        std::fs::read(self.data().join("node.json"))
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vantage-provision"));
        cmd.arg("--boot-dir")
            .arg(self.boot())
            .arg("--data-dir")
            .arg(self.data())
            .arg("--ca")
            .arg(&self.ca)
            .arg("--wpa-conf")
            .arg(
                self.dir
                    .path()
                    .join("etc/wpa_supplicant/wpa_supplicant-wlan0.conf"),
            )
            .arg("--hostname-file")
            .arg(self.dir.path().join("etc/hostname"))
            .arg("--timesync-flag")
            .arg(self.dir.path().join("timesync-synchronized"))
            .args(["--retry-min", "1", "--retry-max", "2"])
            .env_remove(vantage_node::fault::ENV)
            .stdin(Stdio::null());
        cmd
    }

    /// One attempt (`--once`), waiting for it to end.
    pub fn run_once(&self) -> Output {
        self.command().arg("--once").output().unwrap()
    }
}

/// A process that is killed when the test ends, even by a failed assertion.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 50 ms until it returns `Some` or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A settings file for `hub`, with `token` if given.
pub fn settings(hub: &str, token: Option<&str>) -> String {
    let token = token
        .map(|t| format!("token = \"{t}\"\n"))
        .unwrap_or_default();
    format!(
        "# Settings of the node in the kitchen\n\
         hub = \"{hub}\"\n\
         {token}\
         country = \"DE\"   # Germany\n\
         continent = \"EU\"\n\
         city = \"Berlin\"\n\
         tags = [\"fiber\"]\n\
         hostname = \"pi-kitchen\"\n"
    )
}
