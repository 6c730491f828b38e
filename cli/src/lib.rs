//! vantage, the operator and approver command line.
//!
//! Approvers create keys, sign job files and successor policies; operators
//! propose jobs, submit them to the hub with their client certificate, and
//! follow results. Every check that decides whether a job runs is the
//! protocol crate's, so what `vantage check` says is what hub and nodes do.

pub mod approve;
pub mod cli;
pub mod console;
pub mod error;
pub mod files;
pub mod hub;
pub mod locations;
pub mod mandate;
pub mod nodes;
pub mod policy;
pub mod predict;
pub mod propose;
pub mod quick;
pub mod release;
pub mod report;
pub mod results;
pub mod timespec;
pub mod watch;
