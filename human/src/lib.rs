//! Values as people write and read them, the same on every vantage command
//! line and in every configuration file:
//!
//! - [`Duration`]: `500ms`, `30s`, `5m`, `7d` (one parser, humantime's), in
//!   flags, environment variables and TOML files alike.
//! - [`utc`]: points in time as RFC 3339 in UTC (`2026-11-24T18:00:00Z`).
//! - [`table`] (feature `table`): aligned plain-text tables.
//! - [`legacy`]: old count flags (`--keepalive-secs 15`) rewritten to the
//!   duration flags that replaced them.
#![forbid(unsafe_code)]

mod duration;
pub mod legacy;
#[cfg(feature = "table")]
pub mod table;
mod time;

pub use duration::{Duration, DurationError};
pub use time::utc;
