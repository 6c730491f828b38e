//! The agent's integration tests, one binary: the real `vantage-agent` and
//! `vantage-hub` on loopback (and the loopback fixtures of `ci/fixtures/`)
//! through the workspace's test kit (`vantage-testkit`).

mod anchors;
mod atlas;
mod delivery;
mod dns_network;
mod dnssec_differential;
mod hostile;
mod mandates;
mod policy;
mod probes;
mod refusals;
mod releases;
mod revocation;
mod subscription;
mod support;
mod upgrade;
