//! Checks of vantage's source tree that clippy does not make, run by
//! `make lint` (docs/development.md):
//!
//! - [`long_fns`]: no function longer than 80 lines outside tests, so each one
//!   can be read at once.
//! - [`imports`]: no import cycle between the top-level modules of a crate (the
//!   hub, the agent), so their layers stay layers.
//!
//! Both parse the code with syn rather than matching text, so braces in strings
//! (`"{\\rtf"`), comments and raw strings cannot mislead them.
#![forbid(unsafe_code)]

pub mod cli;
pub mod imports;
pub mod long_fns;
pub mod sources;

pub use sources::Error;
