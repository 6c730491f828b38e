//! Provisioning's test pieces: the hub nodes reach by address, and a node
//! made of temporary directories standing in for the boot and data partitions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;
use vantage_testkit::{Hub, bin};

/// A hub whose certificate names only 127.0.0.1, the address in the nodes'
/// settings (its public URL, which nodes store, is then by address too).
pub fn hub() -> Hub {
    hub_with(&[])
}

/// [`hub`] with extra `serve` options.
pub fn hub_with(serve_args: &[&str]) -> Hub {
    Hub::builder()
        .names(&["127.0.0.1"])
        .serve_args(serve_args)
        .start()
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
        let mut cmd = Command::new(bin("vantage-provision"));
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
            // One delay in the duration form, one in the bare seconds of
            // earlier versions: both must keep working.
            .args(["--retry-min", "1s", "--retry-max", "2"])
            .env_remove(vantage_node::fault::ENV)
            .stdin(Stdio::null());
        cmd
    }

    /// One attempt (`--once`), waiting for it to end.
    pub fn run_once(&self) -> Output {
        self.command().arg("--once").output().unwrap()
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
