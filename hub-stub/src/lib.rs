//! The vantage hub: TLS pub/sub with client-certificate identity, enrolment CA, job log and results.
//!
//! - [`pki`]: the network CA, server/node/operator certificates, CSR checks, the CRL.
//! - [`db`]: SQLite (WAL, `synchronous=FULL`): tokens, nodes, pending enrolments,
//!   certificates, the job log, jobs with their audit trail, results.
//! - [`datadir`]: the data directory's files and `init`.
//! - [`tokens`]: one-time enrolment tokens.
//! - [`server`]: TLS with client-certificate verification, connection limits and
//!   timeouts, background tasks (revocation watch, retention, registry upkeep).
//! - [`api`]: the axum router, the caller's identity as extractors, handlers by
//!   resource, refusals with stable codes, the OpenAPI document.
//! - [`metrics`]: counters, gauges and latency histograms in one registry (`/metrics`).
//! - [`stream`]: subscriptions (SSE, long-poll) with catch-up and gap events; result streams.
//! - [`limits`]: per-identity connection slots and request rate.
//! - [`config`]: every setting once: flag, `VANTAGE_HUB_*` variable and `--config` file key.
//! - [`cli`]: the `vantage-hub` command line.
pub mod api;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod db;
pub mod governance;
pub mod limits;
pub mod metrics;
pub mod nchan;
pub mod pki;
pub mod server;
pub mod spread;
pub mod stream;
pub mod tokens;
