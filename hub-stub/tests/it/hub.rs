//! Integration tests: the real `vantage-hub` binary on loopback with real TLS.

use serde_json::json;
use std::time::Duration;
use vantage_testkit::{
    Client, Hub, Next, PolicySource, bin, envelope,
    node::{csr, enrol_body},
    read, wait_for,
};

#[test]
fn enrolment_with_token_replay_pending_and_renewal() {
    let hub = Hub::start(&[]);
    let anon = hub.anonymous();
    let token = hub.token(&["--country", "DE", "--continent", "EU", "--tag", "fiber"]);

    // Token attributes win over the declared ones.
    let key = rcgen::KeyPair::generate().unwrap();
    let (s, first) = anon.post("/v1/enrol", &enrol_body(&key, Some(&token), "FR"));
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["status"], "issued");
    let id = first["node_id"].as_str().unwrap();
    assert!(id.starts_with("n-") && id.len() == 12, "{id}");
    assert_eq!(first["attrs"]["country"], "DE");
    let channels: Vec<String> = serde_json::from_value(first["channels"].clone()).unwrap();
    assert_eq!(
        channels,
        ["all", &format!("node.{id}"), "cc.DE", "ct.EU", "tag.fiber"]
    );
    assert_eq!(first["chain"].as_str().unwrap(), hub.ca_pem());
    let ep = &first["endpoints"];
    assert_eq!(
        ep["subscribe"],
        format!("https://localhost:{}/v1/sub/{{channels}}", hub.port())
    );

    // Replay with the same key (the node lost the answer): the same certificate.
    let (s, again) = anon.post("/v1/enrol", &enrol_body(&key, Some(&token), "FR"));
    assert_eq!(s, 200);
    assert_eq!(again["certificate"], first["certificate"]);

    // The same token with another key is refused.
    let other = rcgen::KeyPair::generate().unwrap();
    let (s, e) = anon.post("/v1/enrol", &enrol_body(&other, Some(&token), "DE"));
    assert_eq!(s, 409);
    assert_eq!(e["code"], "token-used", "{e}");

    // Unknown and expired tokens, and a broken CSR.
    let (s, e) = anon.post("/v1/enrol", &enrol_body(&other, Some("vt1.nonsense"), "DE"));
    assert_eq!(s, 403);
    assert_eq!(e["code"], "token-unknown", "{e}");
    let short = hub.token(&["--country", "DE", "--expires", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    let (s, e) = anon.post("/v1/enrol", &enrol_body(&other, Some(&short), "DE"));
    assert_eq!(s, 403);
    assert_eq!(e["code"], "token-expired", "{e}");
    let (s, e) = anon.post("/v1/enrol", &json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "token": token}));
    assert_eq!(s, 400);
    assert_eq!(e["code"], "bad-csr", "{e}");

    // Pending mode: no token, an admin approves the fingerprint, the node polls.
    let pkey = rcgen::KeyPair::generate().unwrap();
    let mut body = enrol_body(&pkey, None, "BR");
    body["declared"]["continent"] = json!("SA");
    let (s, p) = anon.post("/v1/enrol", &body);
    assert_eq!(s, 202, "{p}");
    assert_eq!(p["status"], "pending");
    let fp = p["fingerprint"].as_str().unwrap();
    let (ok, out, _) = hub.cli(&["nodes", "pending", "--json"]);
    assert!(ok && out.contains(fp), "{out}");
    let (s, _) = anon.post("/v1/enrol", &body);
    assert_eq!(s, 202, "still pending before approval");
    let (_, out, _) = hub.cli(&["nodes", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["status"] == "pending" && n["key_fingerprint"] == fp),
        "{listed}"
    );
    let (ok, _, err) = hub.cli(&["nodes", "approve", &fp[..12]]);
    assert!(ok, "{err}");
    let (s, issued) = anon.post("/v1/enrol", &body);
    assert_eq!(s, 200, "{issued}");
    assert_eq!(issued["attrs"]["country"], "BR");
    assert_eq!(issued["attrs"]["continent"], "SA");
    let pnode = hub.client_for(&issued, &pkey);
    let (s, _) = pnode.post(
        "/v1/heartbeat",
        &json!({"version": "0.1.0", "uptime_secs": 5, "outbox_depth": 0}),
    );
    assert_eq!(s, 200);

    // Renewal over mTLS with a new key; the new certificate works.
    let node = hub.client_for(&first, &key);
    let newkey = rcgen::KeyPair::generate().unwrap();
    let (s, renewed) = node.post("/v1/renew", &json!({"csr": csr(&newkey)}));
    assert_eq!(s, 200, "{renewed}");
    assert_eq!(renewed["node_id"], id);
    assert_ne!(renewed["certificate"], first["certificate"]);
    let renewed_client = hub.client_for(&renewed, &newkey);
    let (s, v) = renewed_client.post(
        "/v1/heartbeat",
        &json!({"version": "0.1.1", "uptime_secs": 1, "outbox_depth": 0}),
    );
    assert_eq!(s, 200, "{v}");
    // Renewal without a certificate is refused.
    let (s, e) = anon.post("/v1/renew", &json!({"csr": csr(&newkey)}));
    assert_eq!(s, 401);
    assert_eq!(e["code"], "no-certificate", "{e}");

    // The registry shows both nodes.
    let (ok, out, _) = hub.cli(&["nodes", "list", "--json"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap();
    assert_eq!(me["agent_version"], "0.1.1");
    assert_eq!(me["status"], "online");
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[test]
fn channels_catch_up_and_access_rules() {
    let hub = Hub::start(&[]);
    let op = hub.operator("alice");
    let n = hub.node("DE");
    let (node, id) = (&n.client, n.id.clone());
    let path = format!("/v1/sub/all,node.{id},cc.DE");

    // One connection, several channels.
    let sub = node.sse(&path, None).unwrap();
    let (s, r) = op.post("/v1/jobs", &hub.job("j1", json!({"country": "DE"})));
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["channels"], json!(["cc.DE"]));
    assert_eq!(r["nodes"], json!([id]));
    let e = sub.event();
    let env = envelope(&e);
    assert_eq!(env["channel"], "cc.DE");
    assert_eq!(env["payload"]["job"]["id"], "j1");
    assert_eq!(e.id.as_deref(), Some(env["id"].to_string().as_str()));
    let (s, _) = op.post("/v1/jobs", &hub.job("j2", json!({"node": id})));
    assert_eq!(s, 201);
    let e2 = sub.event();
    assert_eq!(envelope(&e2)["channel"], format!("node.{id}"));
    let last = e2.id.clone().unwrap();

    // Stats while subscribed.
    let (s, stats) = op.get("/v1/stats");
    assert_eq!(s, 200);
    assert_eq!(stats["subscribed_nodes"], 1);
    let (_, chans) = op.get("/v1/channels");
    let de = chans
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "cc.DE")
        .unwrap();
    assert_eq!(de["subscribers"], 1);
    let (s, metrics) = op.get("/metrics");
    assert_eq!(s, 200);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("vantage_hub_jobs_accepted_total 2")
    );
    drop(sub);

    // Published while the node is away; delivered on reconnect with Last-Event-ID.
    let (s, _) = op.post("/v1/jobs", &hub.job("j3", json!("everyone")));
    assert_eq!(s, 201);
    let sub = node.sse(&path, Some(&last)).unwrap();
    let e3 = sub.event();
    assert_eq!(envelope(&e3)["payload"]["job"]["id"], "j3");
    assert_eq!(envelope(&e3)["channel"], "all");
    drop(sub);

    // Long-poll gives the same, as one complete body.
    let (s, body) = node.get(&format!("{path}?mode=poll&timeout=1&last_event_id={last}"));
    assert_eq!(s, 200);
    assert!(body.as_str().unwrap().contains("\"j3\""), "{body}");
    let e3id = e3.id.unwrap();
    let (s, body) = node.get(&format!("{path}?mode=poll&timeout=1&last_event_id={e3id}"));
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!(format!("id: {e3id}\n\n")),
        "nothing new: only the position, after the timeout"
    );

    // A channel not assigned to the node.
    let (s, e) = node.sse("/v1/sub/all,cc.FR", None).err().unwrap();
    assert_eq!(s, 403);
    assert_eq!(e["code"], "channel-not-assigned", "{e}");
    // Nodes cannot publish.
    let (s, e) = node.post("/v1/jobs", &hub.job("j4", json!("everyone")));
    assert_eq!(s, 403);
    assert_eq!(e["code"], "wrong-role", "{e}");
    // Operators cannot subscribe as nodes.
    let (s, e) = op.sse("/v1/sub/all", None).err().unwrap();
    assert_eq!(s, 403);
    assert_eq!(e["code"], "wrong-role", "{e}");

    // Jobs that do not verify are refused with the policy's reason.
    let mut forged = hub.job("j5", json!("everyone"));
    forged["job"]["probe"]["args"]["name"] = json!("evil.example");
    let (s, e) = op.post("/v1/jobs", &forged);
    assert_eq!(s, 422);
    assert_eq!(e["code"], "forged-signature", "{e}");
    let mut one = hub.job("j6", json!("everyone"));
    one["signatures"].as_array_mut().unwrap().truncate(1);
    let (s, e) = op.post("/v1/jobs", &one);
    assert_eq!(s, 422);
    assert_eq!(e["code"], "too-few-approvals", "{e}");
    let (s, e) = op.post("/v1/jobs", &hub.job("j1", json!("everyone")));
    assert_eq!(s, 409);
    assert_eq!(e["code"], "job-id-used", "{e}");

    // Audit of an accepted job.
    let (s, j) = op.get("/v1/jobs/j1");
    assert_eq!(s, 200);
    assert_eq!(j["job"]["submitter"], "alice");
    assert_eq!(j["job"]["proposer"], "alice");
    assert_eq!(j["job"]["signers"].as_array().unwrap().len(), 2);
    assert_eq!(j["audit"][0]["action"], "job.accept");
}

#[test]
fn catch_up_older_than_retention_yields_a_gap_event() {
    let hub = Hub::start(&["--retention-entries", "2"]);
    let op = hub.operator("alice");
    let node = hub.node("DE").client;
    let mut seqs = vec![];
    for i in 0..4 {
        let (s, r) = op.post("/v1/jobs", &hub.job(&format!("g{i}"), json!("everyone")));
        assert_eq!(s, 201);
        seqs.push(r["seq"].as_u64().unwrap());
    }
    let sub = node.sse("/v1/sub/all", Some(&seqs[0].to_string())).unwrap();
    let gap = sub.event();
    assert_eq!(gap.event.as_deref(), Some("gap"));
    let data: serde_json::Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(data["requested"], seqs[0].to_string());
    assert_eq!(data["oldest"], seqs[2]);
    assert_eq!(envelope(&sub.event())["payload"]["job"]["id"], "g2");
    assert_eq!(envelope(&sub.event())["payload"]["job"]["id"], "g3");
}

#[test]
fn revoked_foreign_and_anonymous_clients_are_refused() {
    let hub = Hub::start(&[]);
    let n = hub.node("DE");
    let (node, id) = (&n.client, n.id.clone());
    let sub = node.sse("/v1/sub/all", None).unwrap();

    // No certificate.
    let (s, e) = hub.anonymous().get("/v1/nodes");
    assert_eq!(s, 401);
    assert_eq!(e["code"], "no-certificate", "{e}");

    // A certificate from another CA fails the TLS handshake.
    let other = tempfile::tempdir().unwrap();
    let st = std::process::Command::new(bin("vantage-hub"))
        .args([
            "--data-dir",
            other.path().join("h").to_str().unwrap(),
            "init",
            "--name",
            "localhost",
        ])
        .output()
        .unwrap();
    assert!(st.status.success());
    let out = other.path().join("op");
    let st = std::process::Command::new(bin("vantage-hub"))
        .args([
            "--data-dir",
            other.path().join("h").to_str().unwrap(),
            "operator",
            "issue",
            "mallory",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(st.status.success());
    let foreign = Client::new(
        &hub.ca_pem(),
        Some((
            &read(out.join("mallory.crt")),
            &read(out.join("mallory.key")),
        )),
        &hub.url,
    );
    let err = foreign.try_get("/v1/nodes").unwrap_err().to_string();
    assert!(
        err.contains("UnknownCA") || err.contains("UnknownCa"),
        "{err}"
    );

    // Revocation: the open stream is cut, new connections fail the handshake,
    // and the CRL lists the certificate.
    let (ok, _, err) = hub.cli(&["nodes", "revoke", &id]);
    assert!(ok, "{err}");
    loop {
        match sub.next(Duration::from_secs(10)) {
            Next::Event(_) => continue,
            Next::Closed => break,
            Next::Timeout => panic!("the revoked node's stream stayed open"),
        }
    }
    let fresh = Client::new(&hub.ca_pem(), None, &hub.url);
    let mut refused = String::new();
    wait_for("revocation to reach TLS", 10, || {
        // A new client each time, so no pooled connection is reused.
        match hub.fresh(&n).try_get("/v1/sub/all") {
            Err(e) => {
                refused = e.to_string();
                true
            }
            Ok(_) => false,
        }
    });
    assert!(refused.contains("CertificateRevoked"), "{refused}");
    let (s, crl) = fresh.get("/v1/crl?format=pem");
    assert_eq!(s, 200);
    assert!(crl.as_str().unwrap().contains("BEGIN X509 CRL"));
    let (_, out, _) = hub.cli(&["nodes", "show", &id, "--json"]);
    assert!(out.contains("\"status\": \"revoked\""), "{out}");
}

#[test]
fn results_are_idempotent_and_operators_read_them() {
    let hub = Hub::start(&[]);
    let op = hub.operator("alice");
    let n = hub.node("DE");
    let (node, id) = (&n.client, n.id.clone());
    let other_id = hub.node("FR").id;
    // Repeated, so that run 1 is one the hub takes a result for.
    let (s, _) = op.post(
        "/v1/jobs",
        &hub.job_with("r1", json!("everyone"), |j| j["repeat_secs"] = json!(60)),
    );
    assert_eq!(s, 201);
    let follow = op.sse("/v1/jobs/r1/results?follow=1", None).unwrap();

    let result = |seq: u32| {
        json!({"job_id": "r1", "node_id": id, "probe": "dns", "started_ms": 1_764_013_201_234u64,
               "duration_ms": 12, "status": "ok", "data": {"answers": ["192.0.2.1"]}, "seq": seq})
    };
    let (s, r) = node.post("/v1/results", &result(0));
    assert_eq!((s, r), (200, json!({"stored": true})));
    let (s, r) = node.post("/v1/results", &result(0));
    assert_eq!((s, r), (200, json!({"stored": false, "duplicate": true})));
    let (s, r) = node.post("/v1/results", &result(1));
    assert_eq!((s, r), (200, json!({"stored": true})));

    // A result naming another node is refused.
    let mut forged = result(2);
    forged["node_id"] = json!(other_id);
    let (s, e) = node.post("/v1/results", &forged);
    assert_eq!(s, 403);
    assert_eq!(e["code"], "not-your-node", "{e}");
    // Garbage is refused with the parser's reason.
    let (s, e) = node.post("/v1/results", &json!({"job_id": "r1"}));
    assert_eq!(s, 400);
    assert_eq!(e["code"], "malformed", "{e}");

    let (s, all) = op.get("/v1/jobs/r1/results");
    assert_eq!(s, 200);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["data"]["answers"][0], "192.0.2.1");
    assert_eq!(all[1]["seq"], 1);
    // The follower saw both as they arrived, and nodes cannot read results.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&follow.event().data).unwrap()["seq"],
        0
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&follow.event().data).unwrap()["seq"],
        1
    );
    let (s, _) = node.get("/v1/jobs/r1/results");
    assert_eq!(s, 403);
    let (_, j) = op.get("/v1/jobs/r1");
    assert_eq!(j["results"], 2);
}

#[test]
fn job_acknowledged_before_kill_9_is_delivered_after_restart() {
    let mut hub = Hub::start(&[]);
    let op = hub.operator("alice");
    let n = hub.node("DE");
    let (node, id) = (&n.client, n.id.clone());
    let path = format!("/v1/sub/all,node.{id},cc.DE");
    let sub = node.sse(&path, None).unwrap();
    let (s, _) = op.post("/v1/jobs", &hub.job("k1", json!("everyone")));
    assert_eq!(s, 201);
    let last = sub.event().id.unwrap();
    drop(sub);
    let (s, r) = op.post("/v1/jobs", &hub.job("k2", json!({"country": "DE"})));
    assert_eq!(s, 201, "{r}");
    hub.kill();
    hub.spawn();
    let sub = hub.fresh(&n).sse(&path, Some(&last)).unwrap();
    let e = sub.event();
    assert_eq!(envelope(&e)["payload"]["job"]["id"], "k2");
    assert_eq!(e.id.unwrap(), r["seq"].to_string());
}

#[test]
fn limits_refuse_with_reasons() {
    let hub = Hub::start(&[
        "--rate",
        "0.2",
        "--burst",
        "3",
        "--max-conns-per-identity",
        "1",
        "--header-timeout",
        "1s",
    ]);
    // Request rate per identity.
    let op = hub.operator("rate");
    for _ in 0..3 {
        assert_eq!(op.get("/v1/stats").0, 200);
    }
    let (s, e) = op.get("/v1/stats");
    assert_eq!(s, 429);
    assert_eq!(e["code"], "rate-limited", "{e}");

    // Connections per identity: a second connection of the same operator while
    // the first holds a stream open.
    let out = hub.dir.path().join("conns");
    let (ok, _, err) = hub.cli(&["operator", "issue", "conns", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let creds = (read(out.join("conns.crt")), read(out.join("conns.key")));
    let first = Client::new(&hub.ca_pem(), Some((&creds.0, &creds.1)), &hub.url);
    let _held = first.sse("/v1/jobs/none/results?follow=1", None).unwrap();
    let second = Client::new(&hub.ca_pem(), Some((&creds.0, &creds.1)), &hub.url);
    let (s, e) = second.get("/v1/stats");
    assert_eq!(s, 429);
    assert_eq!(e["code"], "too-many-connections", "{e}");

    // Body size.
    let n = hub.node("DE");
    let big = json!({"job_id": "x", "node_id": n.id, "probe": "dns", "started_ms": 1, "duration_ms": 1,
                     "status": "ok", "data": "a".repeat(70 * 1024), "seq": 0});
    let (s, e) = n.client.post("/v1/results", &big);
    assert_eq!(s, 413);
    assert_eq!(e["code"], "body-too-large", "{e}");
    // A client that sends its whole (too large) body before reading gets the
    // answer too, on the same connection, instead of a reset mid-upload.
    // So does one refused before its body is read (here by the rate limit,
    // after the node's burst of 3).
    let huge = json!({"version": "v".repeat(2 << 20), "uptime_secs": 1, "outbox_depth": 0});
    for want in [
        (413, "body-too-large"),
        (413, "body-too-large"),
        (429, "rate-limited"),
    ] {
        let (s, e) = n.client.post("/v1/heartbeat", &huge);
        assert_eq!((s, e["code"].as_str()), (want.0, Some(want.1)), "{e}");
    }

    // A client that connects and sends nothing is dropped after the header timeout.
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", hub.port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let got = tcp.read(&mut buf);
    assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        t.elapsed()
    );
}

#[test]
fn per_target_hourly_limit_of_the_policy() {
    let limits = json!({"max_nodes": 10, "max_spread_secs": 60, "max_validity_secs": 86400,
                        "min_repeat_secs": 60, "max_jobs_per_target_per_hour": 2});
    let hub = Hub::builder()
        .policy(PolicySource::Test(Some(limits)))
        .start();
    let op = hub.operator("alice");
    hub.node("DE");
    for i in 0..2 {
        let (s, r) = op.post("/v1/jobs", &hub.job(&format!("t{i}"), json!("everyone")));
        assert_eq!(s, 201, "{r}");
    }
    let (s, e) = op.post("/v1/jobs", &hub.job("t2", json!("everyone")));
    assert_eq!(s, 422);
    assert_eq!(e["code"], "target-rate");
    assert!(e["error"].as_str().unwrap().contains("example.com"), "{e}");
    // A job with `limit` goes to at most that many online nodes, on their own channels.
    let b = hub.node("DE");
    let hb = json!({"version": "0.1.0", "uptime_secs": 1, "outbox_depth": 0});
    assert_eq!(b.client.post("/v1/heartbeat", &hb).0, 200);
    let job = hub.job_with("t3", json!({"country": "DE"}), |j| {
        j["probe"]["args"]["name"] = json!("example.net");
        j["limit"] = json!(1);
    });
    let (s, r) = op.post("/v1/jobs", &job);
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["nodes"], json!([b.id]), "only the online node");
    assert_eq!(r["channels"], json!([format!("node.{}", b.id)]));
    let over = hub.job_with("t4", json!("everyone"), |j| {
        j["probe"]["args"]["name"] = json!("example.org");
        j["limit"] = json!(50);
    });
    let (s, e) = op.post("/v1/jobs", &over);
    assert_eq!(s, 422);
    assert_eq!(e["code"], "over-limit", "over the policy's max_nodes: {e}");
}

#[test]
fn raw_publish_and_catch_up_across_batches_in_order() {
    let hub = Hub::start(&["--unsafe-raw-publish", "--rate", "1000", "--burst", "1000"]);
    let op = hub.operator("alice");
    let n = hub.node("DE");
    for i in 0..300 {
        let (s, r) = op.post("/v1/publish/all", &json!({"anything": i}));
        assert_eq!(s, 201, "{r}");
    }
    let (s, e) = n.client.post("/v1/publish/all", &json!({}));
    assert_eq!(s, 403, "nodes cannot publish raw either: {e}");
    let sub = n.client.sse("/v1/sub/all", Some("0")).unwrap();
    for i in 0..300u64 {
        let e = sub.event();
        assert_eq!(e.id, Some((i + 1).to_string()));
        let env = envelope(&e);
        assert_eq!(env["payload"]["anything"], i);
        assert_eq!(env["channel"], "all");
    }
    // Long-poll answers with one batch; the client continues from its last id.
    let (s, body) = n.client.get("/v1/sub/all?mode=poll&last_event_id=0");
    assert_eq!(s, 200);
    assert_eq!(body.as_str().unwrap().matches("\ndata: ").count(), 256);
}

#[test]
fn raw_publish_is_off_by_default() {
    let hub = Hub::start(&[]);
    let op = hub.operator("alice");
    let (s, e) = op.post("/v1/publish/all", &json!({}));
    assert_eq!(s, 404);
    assert_eq!(e["code"], "no-endpoint", "{e}");
}

#[test]
fn backup_is_a_working_data_directory() {
    let hub = Hub::start(&[]);
    let n = hub.node("DE");
    let out = hub.dir.path().join("backup");
    let (ok, _, err) = hub.cli(&["backup", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, _, err) = hub.cli(&["backup", "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("exists"), "{err}");
    let listed = std::process::Command::new(bin("vantage-hub"))
        .args([
            "--data-dir",
            out.to_str().unwrap(),
            "nodes",
            "show",
            &n.id,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v["cert_serial"].as_str().unwrap().len(), 32);
    assert_eq!(read(out.join("ca.key")), read(hub.data().join("ca.key")));
}

#[test]
fn concurrent_enrolments_with_one_token() {
    let hub = Hub::start(&[]);
    // The same key many times at once (retries racing): one node, one certificate.
    let token = hub.token(&["--country", "DE"]);
    let key = rcgen::KeyPair::generate().unwrap();
    let body = enrol_body(&key, Some(&token), "DE");
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| s.spawn(|| hub.anonymous().post("/v1/enrol", &body)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (s, v) in &answers {
        assert_eq!(*s, 200, "{v}");
        assert_eq!(v["certificate"], answers[0].1["certificate"]);
    }
    // Different keys at once: exactly one wins.
    let token = hub.token(&["--country", "DE"]);
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                let token = token.clone();
                let hub = &hub;
                s.spawn(move || {
                    let key = rcgen::KeyPair::generate().unwrap();
                    hub.anonymous()
                        .post("/v1/enrol", &enrol_body(&key, Some(&token), "DE"))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{answers:?}"
    );
    for (s, v) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*s, 409);
        assert_eq!(v["code"], "token-used", "{v}");
    }
}

#[test]
fn a_subscriber_that_stops_reading_is_cut_off() {
    let hub = Hub::start(&[
        "--unsafe-raw-publish",
        "--rate",
        "1000",
        "--burst",
        "1000",
        "--idle-timeout",
        "2s",
        "--keepalive",
        "60s",
    ]);
    let op = hub.operator("alice");
    let n = hub.node("DE");
    // Open the stream, then do not read: the reader thread is only started
    // after the hub had time to give up.
    let resp = n
        .client
        .agent
        .get(format!("{}/v1/sub/all", hub.url))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let blob = "x".repeat(60 * 1024);
    let total = 160;
    for i in 0..total {
        let (s, r) = op.post("/v1/publish/all", &json!({"i": i, "pad": blob}));
        assert_eq!(s, 201, "{r}");
    }
    std::thread::sleep(Duration::from_secs(4));
    // Far more than socket buffers hold was published; the hub closed the
    // stream instead of buffering it, so reading now ends, early.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut reader = resp.into_body().into_reader();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut all = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => all.extend_from_slice(&buf[..k]),
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&all).matches("\ndata: ").count());
    });
    let got = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("the stream stayed open: the hub kept the slow subscriber");
    assert!(
        got < total,
        "received all {got} events: the hub kept buffering"
    );
}

/// A node's event stream is written straight into its connection once the
/// request head is read (no hyper buffers held for days): close-delimited,
/// not chunked. Refusals on such a connection keep their codes.
#[test]
fn event_streams_are_close_delimited_and_refusals_keep_their_codes() {
    let hub = Hub::start(&[]);
    let op = hub.operator("alice");
    let n = hub.node("DE");
    let sub = n
        .client
        .sse(&format!("/v1/sub/all,node.{}", n.id), None)
        .unwrap();
    assert_eq!(sub.headers["connection"], "close", "{:?}", sub.headers);
    assert!(sub.headers.get("transfer-encoding").is_none());
    assert_eq!(sub.headers["content-type"], "text/event-stream");
    let (s, r) = op.post("/v1/jobs", &hub.job("j1", json!("everyone")));
    assert_eq!(s, 201, "{r}");
    assert_eq!(envelope(&sub.event())["payload"]["job"]["id"], "j1");
    let other = hub.node("FR");
    let (s, e) = other.client.sse("/v1/sub/all,cc.DE", None).err().unwrap();
    assert_eq!(s, 403);
    assert_eq!(e["code"], "channel-not-assigned", "{e}");
}
