//! The reconnect storm's correctness check (no timing asserted): a few
//! nodes, reconnecting as the agent does, come back after the real hub is
//! restarted and after it is killed, and every one gets the job appended to
//! the log while the hub was down. `make bench-storm` is the timed run.

use std::time::Duration;
use vantage_bench::storm::{Opts, run, table};
use vantage_testkit::bin;

fn storm(hub_args: &[&str]) -> Vec<vantage_bench::storm::Row> {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts {
        nodes: 24,
        hub_bin: bin("vantage-hub"),
        dir: dir.path().to_path_buf(),
        concurrency: 8,
        min_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(4),
        timeout: Duration::from_secs(90),
        hub_args: hub_args.iter().map(|a| a.to_string()).collect(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run(&opts)).unwrap()
}

#[test]
fn every_node_comes_back_with_the_job_missed_while_the_hub_was_down() {
    let rows = storm(&[]);
    let text = table(&rows);
    assert_eq!(rows.len(), 2, "{text}");
    for r in &rows {
        assert_eq!((r.caught_up, r.resubscribed), (24, 24), "{text}");
    }
}
