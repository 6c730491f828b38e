//! The node's library, shared by `vantage-agent`, `vantage-provision`, the
//! operator CLI and (for its atomic writes and policy chain) the hub.
//!
//! - [`state`]: the data directory (`/var/lib/vantage`), `node.json`, its format.
//! - [`durable`]: the crash-safe write (and removal) every state file goes through.
//! - [`client`]: HTTPS to the hub, trusting only the pinned network CA, optional mTLS.
//! - [`csr`]: the node's P-256 key and its certificate signing requests.
//! - [`cert`]: the few facts of a certificate a node acts on.
//! - [`enrol`]: `POST /v1/enrol`, `/v1/renew` (with the check that the new
//!   certificate is for the node's own key) and `/v1/attrs`.
//! - [`revocation`]: telling a revoked certificate from other failures; the marker the agent leaves.
//! - [`policy_chain`]: the shipped approval policy and its stored chain of successors.
//! - [`backoff`]: the one jittered exponential retry delay.
//! - [`fault`]: crash injection for the power-loss tests.

pub mod backoff;
pub mod cert;
pub mod client;
pub mod csr;
pub mod durable;
pub mod enrol;
pub mod fault;
pub mod policy_chain;
pub mod revocation;
pub mod state;
pub mod time;
