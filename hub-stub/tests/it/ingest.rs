//! Results under load: the hub acknowledges a result only once it is stored,
//! so a kill of the hub loses none it acknowledged (group commit, ingest.rs).

use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use vantage_testkit::{Hub, Node, wait_for};

fn result(job: &str, node: &str, seq: u32) -> Value {
    json!({"job_id": job, "node_id": node, "probe": "dns", "started_ms": 1_764_013_201_234u64,
           "duration_ms": 12, "status": "ok", "data": "x", "seq": seq})
}

/// Jobs repeated every minute (the network's shortest interval).
const JOBS: usize = 10;
/// The runs of such a job the hub takes now: up to ten minutes ahead.
const RUNS: u32 = 11;

type Acked = Mutex<Vec<(String, u32)>>;

/// Posts the runs of every job until the hub stops answering; records each
/// result the hub acknowledged as stored, and whether a post failed.
fn post_until_refused(n: &Node, acked: &Acked, cut: &AtomicBool) {
    for job in 0..JOBS {
        for seq in 0..RUNS {
            let job = format!("storm-{job}");
            match n.client.try_post("/v1/results", &result(&job, &n.id, seq)) {
                Ok((200, v)) if v["stored"] == json!(true) => {
                    acked.lock().unwrap().push((format!("{job}/{}", n.id), seq));
                }
                Ok((status, v)) => panic!("{job} run {seq} of {}: {status} {v}", n.id),
                Err(_) => {
                    cut.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

#[test]
fn no_acknowledged_result_is_lost_when_the_hub_is_killed() {
    let mut hub = Hub::start(&["--rate", "100000", "--burst", "100000"]);
    let op = hub.operator("alice");
    let nodes: Vec<Node> = (0..8).map(|_| hub.node("DE")).collect();
    for i in 0..JOBS {
        let job = hub.job_with(&format!("storm-{i}"), json!({"country": "DE"}), |j| {
            j["repeat_secs"] = json!(60)
        });
        let (s, r) = op.post("/v1/jobs", &job);
        assert_eq!(s, 201, "{r}");
    }
    let (acked, cut) = (Mutex::new(Vec::new()), AtomicBool::new(false));
    std::thread::scope(|s| {
        for n in &nodes {
            s.spawn(|| post_until_refused(n, &acked, &cut));
        }
        wait_for("results to flow", 60, || acked.lock().unwrap().len() >= 300);
        hub.kill();
    });
    assert!(cut.load(Ordering::SeqCst), "the kill came after every post");
    hub.spawn();
    let stored: std::collections::HashSet<(String, u32)> = (0..JOBS)
        .flat_map(|i| op.results(&format!("storm-{i}")))
        .map(|r| {
            let key = format!(
                "{}/{}",
                r["job_id"].as_str().unwrap(),
                r["node_id"].as_str().unwrap()
            );
            (key, r["seq"].as_u64().unwrap() as u32)
        })
        .collect();
    let acked = acked.into_inner().unwrap();
    let lost: Vec<_> = acked.iter().filter(|a| !stored.contains(a)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged results lost: {lost:?}",
        lost.len(),
        acked.len()
    );
}
