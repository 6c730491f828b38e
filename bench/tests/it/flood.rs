//! The flood suite's correctness check (no timing asserted): under every
//! attack of `vantage-bench hostile`, small and short, against the real hub
//! binary with its default limits, every operator request succeeds and the
//! attack really opened connections; once with the default limits and once
//! with `--max-connections` below the attack's size, where only the capacity
//! reserved for certificates keeps the operator in. `make bench-hostile` is
//! the timed run.

use std::time::Duration;
use vantage_bench::hostile::{Attack, Opts, run, table};
use vantage_testkit::bin;

/// Runs every attack against a hub started with `hub_args`; asserts that
/// each attack ran and every operator request succeeded.
fn every_flood(hub_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts {
        hub_bin: bin("vantage-hub"),
        dir: dir.path().to_path_buf(),
        secs: 1,
        addresses: 6,
        per_address: 6,
        operator_every: Duration::from_millis(100),
        warmup: Duration::from_millis(700),
        hub_args: hub_args.iter().map(|a| a.to_string()).collect(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(run(&opts)).unwrap();
    let text = table(&rows, &opts);
    assert_eq!(rows.len(), Attack::ALL.len(), "{text}");
    for r in &rows {
        assert_eq!(r.failed, 0, "{text}");
        assert!(r.ok > 0, "{text}");
        if r.attack != Attack::None {
            assert!(r.attack_conns > 0, "the attack did not run: {text}");
        }
    }
}

#[test]
fn operator_requests_succeed_under_every_flood() {
    every_flood(&[]);
}

/// 36 silent or slowloris connections against 30 slots: before the oldest
/// handshake gave way and slots were reserved for certificates, they locked
/// the operator out.
#[test]
fn operator_requests_succeed_when_floods_exceed_max_connections() {
    every_flood(&["--max-connections=30"]);
}
