//! Exports the target triple the agent is compiled for (`VANTAGE_TARGET`), so
//! heartbeats name it and the updater picks the release's binary for it; and
//! rebuilds when `VANTAGE_VERSION` (a release's version string) changes.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=VANTAGE_TARGET={target}");
    println!("cargo:rerun-if-env-changed=VANTAGE_VERSION");
    println!("cargo:rerun-if-changed=build.rs");
}
