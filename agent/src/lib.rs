//! The vantage node agent: subscribes to the hub, verifies every order against
//! the network's approval policy and its owner's policy, runs probes, and
//! reports results through a durable outbox.
//!
//! The running agent is a few tasks, each owning its part of the state and
//! sharing only narrow handles (`Hub`, `Results`, `Approvals`, `Health`,
//! `Refusals`, `Revoked`); `agent` wires them. Modules are layered: each uses
//! only modules of earlier layers in this list (or, where named, earlier in
//! its own layer), so there are no import cycles.
//!
//! 1. Foundations, without agent state: `version`, `durable`, `logging`, `certs`,
//!    `config`, `owner`, `reach` (the node's capabilities), `probe`, `outbox`, `replay`, `mandate_rate`,
//!    `mandate_revocations`, `verify`,
//!    `tally`, `policy_update`, `subscribe`, `reconcile`, `switch` (the
//!    release switch state), `sealed` (programs run from sealed memory)
//!    (each may use those before it).
//! 2. Shared handles: `health` (connected, last error), `revoked` (marker
//!    and stop), `hub` (the HTTPS client; uses `revoked`), `results` (the
//!    outbox), `approvals` (the policy chain; uses `hub`), `releases`
//!    (reported, confirmed and offered releases).
//! 3. Components: `jobs` (schedule and run accepted jobs), `orders` (read
//!    and verify, then `jobs`), `gaps` (report lost messages).
//! 4. Tasks: `stream` (the subscription's events to `orders` and `gaps`,
//!    catch-up), `sender` (delivery), `heartbeat`, `renewal`, `systemd`,
//!    `updater` (installs an offered release).
//! 5. Commands: `selftest`, `args` (the command line; uses `selftest`'s
//!    arguments), `launcher` (starts the verified release, first in `run`),
//!    `agent` (wiring and shutdown of `run`), `check`, then `cli`.

pub mod agent;
pub mod approvals;
pub mod args;
pub mod certs;
pub mod check;
pub mod cli;
pub mod config;
pub mod durable;
pub mod gaps;
pub mod health;
pub mod heartbeat;
pub mod hub;
pub mod jobs;
pub mod launcher;
pub mod logging;
pub mod mandate_rate;
pub mod mandate_revocations;
pub mod orders;
pub mod outbox;
pub mod owner;
pub mod policy_update;
pub mod probe;
pub mod reach;
pub mod reconcile;
pub mod releases;
pub mod renewal;
pub mod replay;
pub mod results;
pub mod revoked;
pub mod sealed;
pub mod selftest;
pub mod sender;
pub mod stream;
pub mod subscribe;
pub mod switch;
pub mod systemd;
pub mod tally;
pub mod updater;
pub mod verify;
pub mod version;
