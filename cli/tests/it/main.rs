//! The CLI's integration tests, one binary: the real `vantage` binary against
//! a real `vantage-hub` (and `vantage-agent`) on loopback, through the
//! workspace's test kit (`vantage-testkit`).

mod caps;
mod hub;
mod mandates;
mod releases;
mod rotation;
mod support;
