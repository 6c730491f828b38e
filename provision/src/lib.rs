//! First-boot provisioning of a vantage node, and the node state, HTTPS
//! client and CSR code the agent shares.
//!
//! - [`state`]: the data directory (`/var/lib/vantage`), `node.json`, crash-safe writes.
//! - [`client`]: HTTPS to the hub, trusting only the pinned network CA, optional mTLS.
//! - [`csr`]: the node's P-256 key and its certificate signing requests.
//! - [`enrol`]: `POST /v1/enrol` and `POST /v1/renew`.
//! - [`revocation`]: telling a revoked certificate from other failures; the marker the agent leaves.

pub mod cert;
pub mod client;
pub mod clock;
pub mod config;
pub mod csr;
pub mod enrol;
pub mod fault;
pub mod revocation;
pub mod run;
pub mod state;
pub mod status;
pub mod wifi;
