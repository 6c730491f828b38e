//! The vantage hub: TLS pub/sub with client-certificate identity, enrolment CA, job log and results.
//!
//! - [`pki`]: the network CA, server/node/operator certificates, CSR checks, the CRL.
//! - [`db`]: SQLite (WAL, `synchronous=FULL`): tokens, nodes, pending enrolments,
//!   certificates, the job log, jobs with their audit trail, results, agent releases.
//! - [`ingest`]: results into the database with group commit (acknowledged once durable).
//! - [`datadir`]: the data directory's files and `init`.
//! - [`tokens`]: one-time enrolment tokens.
//! - [`hub`]: the shared state every handler and task reads (`Hub`), the
//!   caller's identity, node health, the published frames.
//! - [`api`]: the axum router, the caller's identity as extractors, handlers by
//!   resource, refusals with stable codes, the OpenAPI document, the streams
//!   (SSE, long-poll) with catch-up and gap events, result streams.
//! - [`server`]: TLS with client-certificate verification, connection limits and
//!   timeouts, background tasks (revocation watch, retention, registry upkeep).
//! - [`releases`]: agent releases: the accepted ones, where their binaries are
//!   kept, the offer to each node and the rollout in waves.
//! - [`metrics`]: counters, gauges and latency histograms in one registry (`/metrics`).
//! - [`sync`]: locking that survives a panicked holder.
//! - [`limits`]: per-identity connection slots and request rate.
//! - [`config`]: every setting once: flag, `VANTAGE_HUB_*` variable and `--config` file key.
//! - [`cli`]: the `vantage-hub` command line.
//!
//! Modules use each other without cycles (`make lint` checks it): `sync`,
//! `pki`, `db`, `ingest`, `datadir`, `limits`, `metrics`, `governance`, `releases` and `nchan` are
//! below `hub`, which is below `api`, which is below `server`, `config` and
//! `cli`.
pub mod api;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod db;
pub mod governance;
pub mod hub;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod nchan;
pub mod pki;
pub mod releases;
pub mod server;
pub mod spread;
pub mod sync;
pub mod tokens;
