//! The test kit of the vantage workspace (a dev-dependency only).
//!
//! Every crate's integration tests drive the real binaries on loopback through
//! this one kit: [`bin`] finds (and if needed builds) any workspace binary,
//! [`Hub`] is the one way to run a hub, [`Client`] talks to it with the
//! `vantage_proto` types it returns, [`Node`] is an enrolled node, [`Agent`] a
//! running `vantage-agent`, [`approvers`] holds the approver keys and policies
//! unit tests share, [`mandates`] makes mandates and the jobs ordered under
//! them, [`releases`] makes signed agent releases of test binaries and the
//! heartbeats that report them, and [`wait_for`] is the one poll loop.
//!
//! Tests are allowed to panic: every helper unwraps and says what failed.
#![allow(clippy::missing_panics_doc)]

pub mod agent;
pub mod approvers;
mod bins;
pub mod client;
pub mod fixtures;
pub mod hub;
pub mod jobs;
pub mod mandates;
pub mod node;
pub mod releases;
pub mod sse_server;
mod wait;

pub use agent::Agent;
pub use bins::{agent_build, bin, repo_root};
pub use client::{Client, Next, Sse, envelope};
pub use hub::{Hub, HubBuilder, PolicySource};
pub use node::Node;
pub use wait::{Running, free_port, now, poll, read, wait_for, wait_until};
