//! The vantage wire protocol.
//!
//! Everything that crosses the network between the hub, the nodes and the
//! operators is defined here, without any I/O: the envelope a node receives,
//! signed jobs and their exact signed byte form, the probe catalog with typed
//! and validated arguments, typed probe data, target selection and channel names, results, the
//! approval policy, enrolment messages and the event-stream framing.
//! `ARCHITECTURE.md` at the repository root states the same in prose.
#![forbid(unsafe_code)]

pub mod api;
pub mod atlas;
pub mod canonical;
pub mod channel;
pub mod cidr;
pub mod country;
pub mod data;
pub mod enrol;
pub mod envelope;
pub mod error;
pub mod identity;
pub mod job;
pub mod mandate;
pub mod node;
pub mod owner;
pub mod policy;
pub mod probe;
pub mod release;
pub mod result;
pub mod select;
pub mod sign;
pub mod sse;
#[cfg(test)]
mod testing;

pub use error::ProtoError;
