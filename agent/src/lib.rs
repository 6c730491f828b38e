//! The vantage node agent: subscribes to the hub, verifies orders, runs probes, reports results.

pub mod config;
pub mod durable;
pub mod outbox;
pub mod owner;
pub mod replay;
