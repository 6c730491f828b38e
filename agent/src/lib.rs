//! The vantage node agent: subscribes to the hub, verifies every order against
//! the network's approval policy and its owner's policy, runs probes, and
//! reports results through a durable outbox.

pub mod agent;
pub mod certs;
pub mod check;
pub mod cli;
pub mod config;
pub mod durable;
pub mod logging;
pub mod mandate_rate;
pub mod mandate_revocations;
pub mod outbox;
pub mod owner;
pub mod policy_update;
pub mod probe;
pub mod reconcile;
pub mod replay;
pub mod selftest;
pub mod subscribe;
pub mod tally;
pub mod verify;
