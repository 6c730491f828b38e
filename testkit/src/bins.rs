//! Finding the workspace's binaries: next to the test executable, in the same
//! target directory and profile, built once per test process so they are
//! never stale (a no-op when cargo finds them current).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The workspace root (the directory of the top-level `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ is inside the workspace")
        .to_path_buf()
}

/// The package each binary belongs to.
fn package_of(bin: &str) -> &'static str {
    match bin {
        "vantage" => "vantage-cli",
        "vantage-hub" => "vantage-hub",
        "vantage-agent" => "vantage-agent",
        "vantage-provision" => "vantage-provision",
        "vantage-bench" => "vantage-bench",
        other => panic!("no workspace binary {other}"),
    }
}

/// The workspace binary `name` (`vantage-hub`, `vantage`, ...), built with
/// `cargo build -p PACKAGE --bin NAME` into this test's target directory the
/// first time a test of this process asks for it. One lock for the whole
/// process: tests running in parallel wait for one build instead of racing.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    // target/<profile>/deps/<test executable>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let status = build_command(name, &profile_dir, profile_dir.parent().unwrap())
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for {name}: {e}"));
    assert!(status.success(), "cargo build of {name} failed");
    let path = profile_dir.join(name);
    assert!(path.exists(), "{} missing after the build", path.display());
    built.insert(name.to_string(), path.clone());
    path
}

/// `vantage-agent` built to report `version` (`VANTAGE_VERSION`) with the
/// cargo `features`, for the release tests: built into its own target
/// directory `<target>/release-test/` (the ordinary binaries stay as they
/// are, and its dependencies are built once there), then stripped into
/// `<target>/release-test/vantage-agent-<version>`. Once per test process
/// and version.
pub fn agent_build(version: &str, features: &[&str]) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(version) {
        return p.clone();
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target = profile_dir.parent().unwrap().join("release-test");
    let mut cmd = build_command("vantage-agent", &profile_dir, &target);
    cmd.env("VANTAGE_VERSION", version);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for vantage-agent {version}: {e}"));
    assert!(
        status.success(),
        "cargo build of vantage-agent {version} failed"
    );
    let profile = profile_dir.file_name().unwrap();
    let copy = target.join(format!("vantage-agent-{version}"));
    // Stripped: a debug build's symbols are more than a release may carry.
    let status = Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(target.join(profile).join("vantage-agent"))
        .status()
        .unwrap_or_else(|e| panic!("run strip: {e}"));
    assert!(status.success(), "strip of vantage-agent {version} failed");
    built.insert(version.to_string(), copy.clone());
    copy
}

fn build_command(name: &str, profile_dir: &Path, target_dir: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Without the variables cargo sets for a test process: build scripts
    // watch some, and the next ordinary build would rebuild everything.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k == "OUT_DIR"
            || k == "CARGO_TARGET_TMPDIR"
            || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || k.starts_with("CARGO_MANIFEST_")
            || k.starts_with("CARGO_CRATE_")
            || k == "CARGO_PRIMARY_PACKAGE"
        {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd.args([
        "build",
        "--quiet",
        "--locked",
        "-p",
        package_of(name),
        "--bin",
        name,
    ])
    .arg("--manifest-path")
    .arg(repo_root().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    cmd
}
