//! A real `vantage-agent`: a node enrolled at a [`Hub`], its configuration,
//! the process, its log.

use crate::hub::Hub;
use crate::{bin, poll};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A node directory with an agent configuration, and the agent while it runs.
pub struct Agent {
    /// Holds `data/`, `agent.toml` and `agent.log`.
    pub dir: tempfile::TempDir,
    /// The process while it runs.
    pub child: Option<Child>,
    /// The node's id.
    pub node_id: String,
}

impl Agent {
    /// Enrols a node (country DE, continent EU) and writes its configuration:
    /// `top` are extra top-level settings, `extra` is appended TOML (sections
    /// `[owner]`, `[probes]` ... as the test needs). The hub's CA and policy
    /// are the node's.
    pub fn new(hub: &Hub, top: &str, extra: &str) -> Agent {
        Agent::enrolled(
            hub,
            &["--country", "DE", "--continent", "EU"],
            "DE",
            top,
            extra,
        )
    }

    /// Like [`Agent::new`], with a token made with `token_args`, declaring `country`.
    pub fn enrolled(
        hub: &Hub,
        token_args: &[&str],
        country: &str,
        top: &str,
        extra: &str,
    ) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let node = hub.node_with(token_args, country);
        node.install(&data);
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
        let agent = Agent {
            dir,
            child: None,
            node_id: node.id,
        };
        agent.write_config(&format!(
            "data_dir = {data:?}\nca = {:?}\npolicy = {:?}\n{heartbeat}\n{top}\n[subscribe]\n{subscribe}\n{extra}\n",
            hub.ca_path(),
            hub.policy_path(),
        ));
        agent
    }

    /// The node's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    /// Replaces the configuration (read at the next start).
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).unwrap();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// Starts the agent (its log is appended to across restarts).
    pub fn start(&mut self) {
        let log = crate::wait::append_to(&self.log_path());
        let child = Command::new(bin("vantage-agent"))
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

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the log holds `needle` `n` times.
    pub fn wait_log(&self, needle: &str, n: usize, secs: u64) {
        let seen = poll(secs, || {
            (self.log().matches(needle).count() >= n).then_some(())
        });
        assert!(
            seen.is_some(),
            "timed out after {secs} s waiting for agent log line {needle:?} x{n}; the log:\n{}",
            self.log()
        );
    }

    /// Waits for the `n`th subscription.
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

    /// Results waiting in the outbox.
    pub fn outbox_depth(&self) -> usize {
        std::fs::read_dir(self.data().join("outbox"))
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
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
