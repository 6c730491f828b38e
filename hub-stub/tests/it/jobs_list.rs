//! `GET /v1/jobs`: the accepted jobs newest first, a page at a time, with
//! how many nodes answered; operators only; bad paging refused with codes.

use serde_json::json;
use vantage_proto::api::{JobList, JobPhase};
use vantage_testkit::{Client, Hub};

fn page(op: &Client, query: &str) -> JobList {
    let (s, v) = op.get(&format!("/v1/jobs{query}"));
    assert_eq!(s, 200, "{v}");
    serde_json::from_value(v).unwrap()
}

#[test]
fn jobs_are_listed_newest_first_in_pages() {
    let hub = Hub::start(&[]);
    let op = hub.operator("alice");
    let de = hub.node("DE");
    hub.node("FR");
    assert_eq!(
        page(&op, ""),
        JobList {
            jobs: vec![],
            next_before: None
        }
    );
    for id in ["a", "b", "c"] {
        let (s, r) = op.post("/v1/jobs", &hub.job(id, json!("everyone")));
        assert_eq!(s, 201, "{r}");
    }
    let result = json!({"job_id": "b", "node_id": de.id, "probe": "dns", "started_ms": 1_764_013_201_234u64,
        "duration_ms": 12, "status": "ok", "data": {"answers": []}, "seq": 0});
    assert_eq!(de.client.post("/v1/results", &result).0, 200);

    let first = page(&op, "?limit=2");
    let ids: Vec<&str> = first.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["c", "b"]);
    let b = &first.jobs[1];
    assert_eq!((b.selected, b.answered, b.results), (2, 1, 1));
    assert_eq!(
        (b.probe.as_str(), b.target.as_str()),
        ("dns", "example.com")
    );
    assert_eq!(
        (b.status, b.submitter.as_str()),
        (JobPhase::Active, "alice")
    );
    assert_eq!(b.signers.len(), 2);
    assert!(b.expires > b.not_before);
    let before = first.next_before.expect("an older page");
    assert_eq!(before, b.seq);
    let rest = page(&op, &format!("?limit=2&before={before}"));
    assert_eq!(rest.jobs.len(), 1);
    assert_eq!((rest.jobs[0].id.as_str(), rest.next_before), ("a", None));
    assert_eq!(page(&op, "").jobs.len(), 3);

    for (query, code) in [
        ("?limit=0", "bad-limit"),
        ("?limit=501", "bad-limit"),
        ("?limit=x", "bad-limit"),
        ("?before=-1", "bad-before"),
    ] {
        let (s, e) = op.get(&format!("/v1/jobs{query}"));
        assert_eq!((s, e["code"].as_str()), (400, Some(code)), "{query}: {e}");
    }
    let (s, e) = de.client.get("/v1/jobs");
    assert_eq!((s, e["code"].as_str()), (403, Some("wrong-role")));
    let (s, e) = hub.anonymous().get("/v1/jobs");
    assert_eq!((s, e["code"].as_str()), (401, Some("no-certificate")));
}
