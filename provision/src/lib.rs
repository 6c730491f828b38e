//! First-boot provisioning of a vantage node: read the volunteer's settings
//! from the boot partition, enrol with the hub, store the node's state (with
//! `vantage-node`, the library the agent shares), and tell the volunteer how
//! it went.
//!
//! - [`config`]: `vantage.toml` on the boot partition.
//! - [`run`]: what happens at every boot (reset, Wi-Fi, host name, enrolment).
//! - [`status`]: the status file the volunteer reads.
//! - [`clock`]: whether the clock can be right (no real-time clock on a Pi).
//! - [`wifi`]: the wpa_supplicant file.

pub mod clock;
pub mod config;
pub mod run;
pub mod status;
pub mod wifi;
