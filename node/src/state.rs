//! The node's data directory: its key, certificates and `node.json`, each
//! written with [`crate::durable::atomic_write`].
//!
//! Layout (fixed, shared with the agent and the image):
//! `key.pem` (0600), `cert.pem`, `chain.pem`, `node.json`, and `format`, the
//! layout's version ([`FORMAT`]), which [`DataDir::upgrade`] brings every
//! older layout to and which a newer release's directory is refused by.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use vantage_proto::channel::NodeAttrs;

use crate::durable::{atomic_write, sync_dir};
use crate::enrol::{Endpoints, EnrolResponse};

/// Where the data partition is mounted on a node.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/vantage";

/// The format of the data directory this release writes: the layout of the
/// files in it, provisioning's and the agent's (outbox, replay set, policy
/// chain, stream position), recorded in its `format` file.
pub const FORMAT: u32 = UPGRADES.len() as u32;

/// A step that upgrades a data directory by one format.
type Upgrade = fn(&DataDir) -> Result<(), StateError>;

/// Ordered upgrade steps: entry `i` takes a directory from format `i` to
/// `i + 1`. Append only: nodes in the field have run every released step.
/// A step must be idempotent, since a crash before `format` is written makes
/// it run again.
const UPGRADES: &[Upgrade] = &[adopt_unversioned];

/// Format 1 is the layout of every release before formats, whose directories
/// have no `format` file (format 0): nothing moves, the directory only gets
/// its `format` file.
fn adopt_unversioned(_: &DataDir) -> Result<(), StateError> {
    Ok(())
}

/// Errors reading or writing the node's state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// `node.json` exists but is not what this program writes.
    #[error(
        "{path} is damaged ({source}); delete it (or use the vantage-reset file) to enrol again"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The data directory was written by a newer release; its files may mean
    /// what this one does not know, so it is left untouched.
    #[error(
        "the node's data directory is in format {found} ({path}), newer than this release of \
         vantage knows (up to {FORMAT}): a newer release wrote it. Install that release (or a \
         later one) again, or put an empty file named vantage-reset on the boot partition to \
         wipe the node's state and enrol it again"
    )]
    NewerFormat {
        /// The `format` file.
        path: PathBuf,
        /// The format it holds.
        found: u32,
    },
    /// The `format` file holds no format number.
    #[error(
        "{path} is damaged: it should hold the data directory's format number (this release \
         writes {FORMAT}) but holds {text:?}; write the number back, or put an empty file named \
         vantage-reset on the boot partition to wipe the node's state and enrol it again"
    )]
    BadFormat {
        /// The `format` file.
        path: PathBuf,
        /// What it holds (at most 64 bytes, lossily decoded).
        text: String,
    },
}

impl StateError {
    fn io(path: &Path, source: io::Error) -> Self {
        StateError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The node's data directory and the paths of the files in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data directory rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The node's private key (PKCS#8 PEM, mode 0600).
    pub fn key_path(&self) -> PathBuf {
        self.root.join("key.pem")
    }

    /// The node's certificate (PEM).
    pub fn cert_path(&self) -> PathBuf {
        self.root.join("cert.pem")
    }

    /// The chain from the node's certificate up to the network CA (PEM).
    pub fn chain_path(&self) -> PathBuf {
        self.root.join("chain.pem")
    }

    /// The node's identity, attributes, channels and hub endpoints (JSON).
    pub fn node_path(&self) -> PathBuf {
        self.root.join("node.json")
    }

    /// The directory's format number ([`FORMAT`]).
    pub fn format_path(&self) -> PathBuf {
        self.root.join("format")
    }

    /// The directory's format: 0 without a `format` file (a directory of a
    /// release before formats, or a new one). A newer format than
    /// [`FORMAT`] is an error.
    pub fn format(&self) -> Result<u32, StateError> {
        let path = self.format_path();
        let Some(text) = read_optional(&path)? else {
            return Ok(0);
        };
        let found: u32 = text.trim().parse().map_err(|_| StateError::BadFormat {
            text: text.chars().take(64).collect(),
            path: path.clone(),
        })?;
        if found > FORMAT {
            return Err(StateError::NewerFormat { path, found });
        }
        Ok(found)
    }

    /// Brings the directory to [`FORMAT`] (creating it if needed): runs the
    /// upgrade steps from the format found, in order, then records the new
    /// format. Refuses a newer format before anything changes. Returns the
    /// format found; opening an up-to-date directory writes nothing.
    pub fn upgrade(&self) -> Result<u32, StateError> {
        let found = self.format()?;
        if found == FORMAT {
            return Ok(found);
        }
        self.ensure()?;
        for step in &UPGRADES[found as usize..] {
            step(self)?;
        }
        let path = self.format_path();
        atomic_write(&path, format!("{FORMAT}\n").as_bytes(), 0o644)
            .map_err(|e| StateError::io(&path, e))?;
        Ok(found)
    }

    /// Creates the directory if it does not exist yet.
    pub fn ensure(&self) -> Result<(), StateError> {
        fs::create_dir_all(&self.root).map_err(|e| StateError::io(&self.root, e))
    }

    /// Reads the private key, `None` if there is none yet.
    pub fn read_key(&self) -> Result<Option<String>, StateError> {
        read_optional(&self.key_path())
    }

    /// Stores the private key with mode 0600.
    pub fn write_key(&self, pem: &str) -> Result<(), StateError> {
        self.ensure()?;
        let path = self.key_path();
        atomic_write(&path, pem.as_bytes(), 0o600).map_err(|e| StateError::io(&path, e))
    }

    /// Reads `node.json`, `None` if the node has not enrolled yet.
    pub fn read_node(&self) -> Result<Option<NodeState>, StateError> {
        let path = self.node_path();
        let Some(text) = read_optional(&path)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path, source })
    }

    /// Stores an issued identity: certificate and chain first, `node.json`
    /// last, so that a present `node.json` means the enrolment is complete.
    pub fn store_issued(
        &self,
        node: &NodeState,
        cert_pem: &str,
        chain_pem: &str,
    ) -> Result<(), StateError> {
        self.ensure()?;
        for (path, bytes) in [
            (self.cert_path(), cert_pem.as_bytes()),
            (self.chain_path(), chain_pem.as_bytes()),
        ] {
            atomic_write(&path, bytes, 0o644).map_err(|e| StateError::io(&path, e))?;
        }
        self.write_node(node)
    }

    /// Replaces `node.json` alone (new attributes and channels from the hub).
    pub fn write_node(&self, node: &NodeState) -> Result<(), StateError> {
        let path = self.node_path();
        let mut json = serde_json::to_vec_pretty(node).expect("NodeState serialises");
        json.push(b'\n');
        atomic_write(&path, &json, 0o644).map_err(|e| StateError::io(&path, e))
    }

    /// Reads the certificate, `None` if there is none.
    pub fn read_cert(&self) -> Result<Option<String>, StateError> {
        read_optional(&self.cert_path())
    }

    /// Reads the chain, `None` if there is none.
    pub fn read_chain(&self) -> Result<Option<String>, StateError> {
        read_optional(&self.chain_path())
    }

    /// Deletes the node's identity (key, certificate, chain, `node.json`),
    /// leaving everything else in the directory alone. `node.json` goes
    /// first so that an interrupted wipe never looks like an enrolled node.
    pub fn wipe_identity(&self) -> Result<(), StateError> {
        for path in [
            self.node_path(),
            self.cert_path(),
            self.chain_path(),
            self.key_path(),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StateError::io(&path, e)),
            }
        }
        sync_dir(&self.root).map_err(|e| StateError::io(&self.root, e))
    }
}

/// What the node knows about itself after enrolment (`node.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeState {
    /// The id the hub assigned (`n-` and 10 hex digits).
    pub node_id: String,
    /// The attributes the hub recorded for this node.
    pub attrs: NodeAttrs,
    /// The channels the node subscribes to.
    pub channels: Vec<String>,
    /// Where the node talks to the hub.
    pub endpoints: Endpoints,
}

impl NodeState {
    /// The state to store from an `issued` enrolment response, `None` for
    /// any other kind of response.
    pub fn from_response(resp: &EnrolResponse) -> Option<NodeState> {
        Some(NodeState {
            node_id: resp.node_id.clone()?,
            attrs: resp.attrs.clone()?,
            channels: resp.channels.clone(),
            endpoints: resp.endpoints.clone()?,
        })
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, StateError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_node() -> NodeState {
        NodeState {
            node_id: "n-0123456789".into(),
            attrs: NodeAttrs {
                node_id: "n-0123456789".into(),
                country: "DE".into(),
                continent: Some("EU".into()),
                asn: Some(3320),
                tags: vec!["fiber".into()],
            },
            channels: vec!["all".into(), "node.n-0123456789".into(), "cc.DE".into()],
            endpoints: Endpoints::for_hub("https://127.0.0.1:8443"),
        }
    }

    #[test]
    fn node_state_round_trips_and_wipe_removes_identity_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        assert_eq!(data.read_node().unwrap(), None);
        data.write_key("KEY").unwrap();
        data.store_issued(&sample_node(), "CERT", "CHAIN").unwrap();
        assert_eq!(data.read_node().unwrap(), Some(sample_node()));
        assert_eq!(data.read_cert().unwrap().as_deref(), Some("CERT"));
        assert_eq!(data.read_chain().unwrap().as_deref(), Some("CHAIN"));
        fs::write(data.root().join("last-event-id"), "7").unwrap();
        data.wipe_identity().unwrap();
        assert_eq!(data.read_key().unwrap(), None);
        assert_eq!(data.read_node().unwrap(), None);
        assert!(data.root().join("last-event-id").exists());
    }

    #[test]
    fn a_new_directory_gets_the_current_format_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        assert_eq!(data.upgrade().unwrap(), 0);
        assert_eq!(
            fs::read_to_string(data.format_path()).unwrap(),
            format!("{FORMAT}\n")
        );
        let written = fs::metadata(data.format_path())
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(data.upgrade().unwrap(), FORMAT);
        assert_eq!(data.format().unwrap(), FORMAT);
        let again = fs::metadata(data.format_path())
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(written, again, "an up-to-date directory is not written");
    }

    #[test]
    fn a_directory_from_before_formats_is_upgraded_and_keeps_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        data.write_key("KEY").unwrap();
        data.store_issued(&sample_node(), "CERT", "CHAIN").unwrap();
        assert_eq!(data.upgrade().unwrap(), 0);
        assert_eq!(data.format().unwrap(), FORMAT);
        assert_eq!(data.read_node().unwrap(), Some(sample_node()));
        assert_eq!(data.read_key().unwrap().as_deref(), Some("KEY"));
    }

    #[test]
    fn a_newer_or_damaged_format_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let newer = format!("{}\n", FORMAT + 1);
        fs::write(data.format_path(), &newer).unwrap();
        let msg = data.upgrade().unwrap_err().to_string();
        assert!(
            msg.contains(&format!("format {}", FORMAT + 1))
                && msg.contains(&format!("up to {FORMAT}"))
                && msg.contains("vantage-reset"),
            "{msg}"
        );
        assert_eq!(fs::read_to_string(data.format_path()).unwrap(), newer);
        fs::write(data.format_path(), "one").unwrap();
        let msg = data.upgrade().unwrap_err().to_string();
        assert!(msg.contains("damaged") && msg.contains("\"one\""), "{msg}");
    }

    #[test]
    fn damaged_node_json_is_reported_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        fs::write(data.node_path(), "{not json").unwrap();
        let msg = data.read_node().unwrap_err().to_string();
        assert!(
            msg.contains("damaged") && msg.contains("vantage-reset"),
            "{msg}"
        );
    }
}
