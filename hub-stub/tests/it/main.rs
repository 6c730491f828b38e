//! The hub's integration tests, one binary: the real `vantage-hub` on
//! loopback through the workspace's test kit (`vantage-testkit`).

mod config;
mod governance;
mod hostile;
mod hub;
mod ingest;
mod jobs_list;
mod mandates;
mod releases;
mod upgrade;
