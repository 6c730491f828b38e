//! What this build is: its version (the `VANTAGE_VERSION` of the build, else
//! the crate's) and the target triple it was compiled for.

/// The agent's version as heartbeats report it and releases name it.
/// `VANTAGE_VERSION=0.2.0 make agent` builds another version from the same
/// source (a release's build, or the tests' second build).
pub const VERSION: &str = match option_env!("VANTAGE_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// The target triple (`aarch64-unknown-linux-musl`, ...), from `build.rs`.
pub const TARGET: &str = env!("VANTAGE_TARGET");
