//! Provisioning's integration tests, one binary: the real `vantage-provision`
//! against a real `vantage-hub` on loopback, through the workspace's test kit
//! (`vantage-testkit`).

mod enrol;
mod support;
mod volunteer_mistakes;
