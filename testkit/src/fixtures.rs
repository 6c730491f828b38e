//! Fixtures: the loopback servers of `ci/fixtures/` (nsd with signed zones,
//! nginx over HTTP and HTTPS) started on free ports for one test, and the
//! files of a network made by an earlier release (`tests/fixtures/unversioned`
//! of the hub and the agent; how they were made is in the README there).

use crate::{free_port, read, repo_root};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The hub side of the earlier release's network: `hub/`, `policy.json`,
/// `operator/` and `fixture.json` (the facts tests check).
pub fn unversioned_hub() -> PathBuf {
    repo_root().join("hub-stub/tests/fixtures/unversioned")
}

/// The data directory of the node of the earlier release's network.
pub fn unversioned_node() -> PathBuf {
    repo_root().join("agent/tests/fixtures/unversioned/node")
}

/// The facts of the earlier release's network (`fixture.json`).
pub fn unversioned_facts() -> Value {
    serde_json::from_str(&read(unversioned_hub().join("fixture.json"))).unwrap()
}

/// Copies the state in `from` (recursively) into a new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        // Temporary files of interrupted writes are not state.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// Running fixtures; stopped on drop.
pub struct Fixtures {
    /// Their working directory.
    pub dir: tempfile::TempDir,
    /// The DNS server, `127.0.0.1:PORT`.
    pub dns: String,
    /// The HTTP server's URL.
    pub http: String,
    /// The HTTPS server's URL.
    pub https: String,
    /// The DNSSEC trust anchor of the signed zones.
    pub trust_anchor: PathBuf,
}

impl Fixtures {
    /// Runs `ci/fixtures/start.sh`.
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
