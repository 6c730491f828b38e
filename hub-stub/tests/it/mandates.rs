//! Mandates at the real hub: jobs ordered under a mandate with one operator
//! signature, the mandate's hourly rates per operator and per target (kept
//! across a restart), revocations by one approver (verified, served to
//! nodes) and the refusal of jobs under a revoked mandate, all with codes.

use serde_json::{Value, json};
use vantage_proto::mandate::{RevocationList, SignedMandate};
use vantage_testkit::mandates::{mandate, order, revocation, sign_mandate};
use vantage_testkit::{Hub, jobs};

/// `POST /v1/jobs` of `body`: the status and the `Retry-After` header in seconds.
fn retry_after(op: &vantage_testkit::Client, body: &Value) -> (u16, Option<u64>) {
    let r = op
        .agent
        .post(format!("{}/v1/jobs", op.base))
        .header("content-type", "application/json")
        .send(body.to_string())
        .unwrap();
    let secs = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (r.status().as_u16(), secs)
}

/// A `dns` lookup of `name` ordered under `m`.
fn lookup(id: &str, name: &str, m: &SignedMandate) -> Value {
    let mut job = jobs::dns_job(id, json!("everyone"));
    job["probe"]["args"]["name"] = json!(name);
    job["expires"] = json!(job["not_before"].as_u64().unwrap() + 600);
    order(&job, m)
}

#[test]
fn mandate_rates_are_counted_per_operator_and_target_across_restarts() {
    let mut hub = Hub::start(&[]);
    let op = hub.operator("ops");
    let node = hub.node("DE");
    node.heartbeat();
    // Two jobs per operator, one per target, per hour.
    let value = mandate(
        "everyday",
        json!({"dns": {}}),
        json!("everyone"),
        [2, 1, 10],
    );
    let m = sign_mandate(&value, &[&hub.keys[0], &hub.keys[1]]);

    let accepted = op.submit(&lookup("q1", "a.example", &m));
    assert_eq!(accepted.nodes, std::slice::from_ref(&node.id));
    let (s, e) = op.post("/v1/jobs", &lookup("q2", "a.example", &m));
    assert_eq!(
        (s, e["code"].as_str()),
        (429, Some("mandate-rate-target")),
        "{e}"
    );
    op.submit(&lookup("q3", "b.example", &m));
    let (s, e) = op.post("/v1/jobs", &lookup("q4", "c.example", &m));
    assert_eq!(
        (s, e["code"].as_str()),
        (429, Some("mandate-rate-operator")),
        "{e}"
    );
    assert!(e["error"].as_str().unwrap().contains("everyday"), "{e}");
    // An hourly rate frees a slot when the oldest counted job leaves the
    // window, about an hour from now: Retry-After says so, not "1".
    for body in [
        lookup("q4b", "a.example", &m),
        lookup("q4c", "c.example", &m),
    ] {
        let (s, secs) = retry_after(&op, &body);
        assert_eq!(s, 429);
        let secs = secs.expect("a Retry-After header");
        assert!((3500..=3600).contains(&secs), "Retry-After {secs}");
    }

    hub.kill();
    hub.spawn();
    let (s, e) = op.post("/v1/jobs", &lookup("q5", "c.example", &m));
    assert_eq!(
        (s, e["code"].as_str()),
        (429, Some("mandate-rate-operator")),
        "{e}"
    );

    // Nodes outside the mandate's own selection are not picked.
    let fr = sign_mandate(
        &mandate(
            "fr-only",
            json!({"dns": {}}),
            json!({"country": "FR"}),
            [9, 9, 9],
        ),
        &[&hub.keys[0], &hub.keys[1]],
    );
    node.heartbeat();
    let (s, e) = op.post("/v1/jobs", &lookup("q6", "d.example", &fr));
    assert_eq!((s, e["code"].as_str()), (422, Some("no-nodes")), "{e}");
    // A mandate without a quorum: refused with the mandate's code.
    let one = sign_mandate(&value, &[&hub.keys[0]]);
    let (s, e) = op.post("/v1/jobs", &lookup("q7", "e.example", &one));
    assert_eq!(
        (s, e["code"].as_str()),
        (422, Some("mandate-too-few-approvals")),
        "{e}"
    );
}

#[test]
fn one_approver_revokes_and_the_hub_refuses_jobs_under_the_mandate() {
    let hub = Hub::start(&[]);
    let op = hub.operator("ops");
    let node = hub.node("DE");
    node.heartbeat();
    let m = sign_mandate(
        &mandate("everyday", json!({"dns": {}}), json!("everyone"), [9, 9, 9]),
        &[&hub.keys[0], &hub.keys[1]],
    );
    op.submit(&lookup("before", "a.example", &m));
    let path = "/v1/mandates/revocations";
    assert_eq!(node.client.get(path), (200, json!({"revocations": []})));
    assert_eq!(hub.anonymous().get(path).0, 401);

    let mut forged = revocation("everyday", &hub.keys[0]);
    forged["revocation"]["mandate"] = json!("other");
    for (body, status, code) in [
        (
            revocation("everyday", &hub.keys[3]),
            422,
            "mandate-unknown-approver",
        ),
        (forged, 422, "mandate-forged-signature"),
        (json!({"revocation": {}}), 400, "malformed"),
    ] {
        let (s, e) = op.post(path, &body);
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{e}");
    }
    let (s, e) = node
        .client
        .post(path, &revocation("everyday", &hub.keys[2]));
    assert_eq!((s, e["code"].as_str()), (403, Some("wrong-role")), "{e}");

    let signed = revocation("everyday", &hub.keys[2]);
    assert_eq!(
        op.post(path, &signed),
        (201, json!({"mandate": "everyday", "new": true}))
    );
    assert_eq!(
        op.post(path, &revocation("everyday", &hub.keys[0])),
        (200, json!({"mandate": "everyday", "new": false}))
    );
    let (s, list) = node.client.get(path);
    assert_eq!(s, 200);
    let list: RevocationList = serde_json::from_value(list).unwrap();
    assert_eq!(
        serde_json::to_value(&list.revocations).unwrap(),
        json!([signed])
    );

    let (s, e) = op.post("/v1/jobs", &lookup("after", "b.example", &m));
    assert_eq!(
        (s, e["code"].as_str()),
        (422, Some("mandate-revoked")),
        "{e}"
    );
}
