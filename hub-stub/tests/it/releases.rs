//! Agent releases at the real hub: submission under the quorum (and its
//! refusals with codes), binaries checked against the release on upload and
//! served to nodes, the offer in the heartbeat answer, and the rollout in
//! waves with its automatic stop.

use std::collections::BTreeMap;
use vantage_proto::api::{BinaryStored, ReleaseAccepted, ReleaseList, ReleaseState, ReleaseStatus};
use vantage_proto::release::{Release, SignedRelease};
use vantage_testkit::releases::{TARGET, binaries, heartbeat, release, sign};
use vantage_testkit::{Client, Hub, Node};

type Bins = BTreeMap<(String, String), Vec<u8>>;

fn upload_all(op: &Client, version: &str, bins: &Bins) {
    for ((t, b), bytes) in bins {
        let (s, v) = op.put_bytes(&format!("/v1/releases/{version}/{t}/{b}"), bytes);
        assert_eq!(s, 201, "{v}");
        let stored: BinaryStored = serde_json::from_value(v).unwrap();
        assert_eq!(stored.size, bytes.len() as u64);
    }
}

fn status(op: &Client, version: &str) -> ReleaseStatus {
    let list: ReleaseList = op.get_as("/v1/releases");
    list.releases
        .into_iter()
        .find(|r| r.version == version)
        .unwrap_or_else(|| panic!("no release {version}"))
}

#[test]
fn a_release_is_taken_under_quorum_and_its_binaries_only_as_signed() {
    let hub = Hub::start(&[]);
    let op = hub.operator("ops");
    let bins = binaries("0.2.0", &[TARGET]);
    let r = release("0.2.0", &bins, &[100], 20);
    let k = &hub.keys;

    for (by, code) in [
        (vec![&k[0]], "too-few-approvals"),
        (vec![&k[0], &k[3]], "unknown-approver"),
    ] {
        let (s, e) = op.post(
            "/v1/releases",
            &serde_json::to_value(sign(&r, &by)).unwrap(),
        );
        assert_eq!((s, e["code"].as_str()), (422, Some(code)), "{e}");
    }
    let mut forged = sign(&r, &[&k[0], &k[1]]);
    forged.release["notes"] = "changed after signing".into();
    let (s, e) = op.post("/v1/releases", &serde_json::to_value(&forged).unwrap());
    assert_eq!(
        (s, e["code"].as_str()),
        (422, Some("forged-signature")),
        "{e}"
    );
    let (s, e) = op.post("/v1/releases", &serde_json::json!({"release": {"v": 1}}));
    assert_eq!(
        (s, e["code"].as_str()),
        (400, Some("release-invalid")),
        "{e}"
    );

    let signed = sign(&r, &[&k[0], &k[1]]);
    let a: ReleaseAccepted = op.post_as("/v1/releases", &signed, 201);
    assert_eq!(
        (a.version.as_str(), a.new, a.signers.len()),
        ("0.2.0", true, 2)
    );
    // The same release with one more signature replaces the signatures...
    let more = sign(&r, &[&k[0], &k[1], &k[2]]);
    let a: ReleaseAccepted = op.post_as("/v1/releases", &more, 200);
    assert_eq!((a.new, a.signers.len()), (false, 3));
    // ...but another release under the same version is refused.
    let other = sign(&release("0.2.0", &bins, &[50, 100], 20), &[&k[0], &k[1]]);
    let (s, e) = op.post("/v1/releases", &serde_json::to_value(&other).unwrap());
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("release-exists")),
        "{e}"
    );

    let node = hub.node("DE");
    let got: SignedRelease = node.client.get_as("/v1/releases/0.2.0");
    assert_eq!(got, more);
    let path = format!("/v1/releases/0.2.0/{TARGET}/vantage-agent");
    let (s, _) = node.client.get_bytes(&path);
    assert_eq!(s, 404, "not uploaded yet");
    assert_eq!(status(&op, "0.2.0").state, ReleaseState::WaitingBinaries);
    // Not offered while a binary is missing.
    assert_eq!(node.heartbeat_offer(&heartbeat("0.1.0", None)), None);

    let agent = &bins[&(TARGET.to_string(), "vantage-agent".to_string())];
    let mut tampered = agent.clone();
    tampered[0] ^= 1;
    for (bytes, code) in [
        (tampered, "release-hash-mismatch"),
        (agent[1..].to_vec(), "release-size-mismatch"),
    ] {
        let (s, e) = op.put_bytes(&path, &bytes);
        assert_eq!((s, e["code"].as_str()), (422, Some(code)), "{e}");
    }
    let (s, e) = op.put_bytes(
        "/v1/releases/0.2.0/riscv64gc-unknown-linux-musl/vantage-agent",
        agent,
    );
    assert_eq!(
        (s, e["code"].as_str()),
        (404, Some("release-no-target")),
        "{e}"
    );
    let (s, e) = node.client.put_bytes(&path, agent);
    assert_eq!((s, e["code"].as_str()), (403, Some("wrong-role")), "{e}");
    upload_all(&op, "0.2.0", &bins);
    assert_eq!(node.client.get_bytes(&path), (200, agent.clone()));
    assert_eq!(status(&op, "0.2.0").state, ReleaseState::RollingOut);

    // Offered to a node of its target that runs an older version, until it
    // runs it or reports it failed; never to another target.
    assert_eq!(
        node.heartbeat_offer(&heartbeat("0.1.0", None)).as_deref(),
        Some("0.2.0")
    );
    assert_eq!(
        node.heartbeat_offer(&heartbeat("0.1.0", Some("0.2.0"))),
        None
    );
    assert_eq!(node.heartbeat_offer(&heartbeat("0.2.0", None)), None);
    let mut other_target = heartbeat("0.1.0", None);
    other_target["target"] = "riscv64gc-unknown-linux-musl".into();
    assert_eq!(node.heartbeat_offer(&other_target), None);
    // A backup holds the binaries (the release itself is in the database).
    let backup = hub.dir.path().join("backup");
    let (ok, _, err) = hub.cli(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(ok, "{err}");
    let copy = backup.join(format!("releases/0.2.0/{TARGET}/vantage-agent"));
    assert_eq!(&std::fs::read(copy).unwrap(), agent);
    // An agent from before releases (no target) is offered nothing and still parses the answer.
    node.heartbeat();
    let entry = hub
        .nodes()
        .into_iter()
        .find(|n| n["id"] == node.id.as_str())
        .unwrap();
    assert_eq!(entry["agent_version"], "test");
}

/// `n` nodes reporting 0.1.0 for [`TARGET`], and a first-wave percentage
/// that puts at least `first_wave` of them (by bucket of `version`), but
/// not all, in the first wave.
fn fleet(hub: &Hub, n: usize, first_wave: usize, version: &str) -> (Vec<Node>, u8) {
    let nodes: Vec<Node> = (0..n).map(|_| hub.node("DE")).collect();
    for node in &nodes {
        assert_eq!(node.heartbeat_offer(&heartbeat("0.1.0", None)), None);
    }
    let mut buckets: Vec<u32> = nodes
        .iter()
        .map(|n| vantage_proto::release::wave_bucket(version, &n.id))
        .collect();
    buckets.sort_unstable();
    let first = u8::try_from(buckets[first_wave - 1] / 100 + 1).unwrap();
    assert!(
        buckets[n - 1] >= u32::from(first) * 100,
        "every node fell in the first wave: {buckets:?}"
    );
    (nodes, first)
}

/// The nodes in wave 0 and the rest, as the release places them.
fn split<'a>(signed: &SignedRelease, nodes: &'a [Node]) -> (Vec<&'a Node>, Vec<&'a Node>) {
    let r = Release::from_value(&signed.release).unwrap();
    nodes.iter().partition(|n| r.wave_of(&n.id) == Some(0))
}

#[test]
fn waves_open_as_nodes_report_the_version() {
    let hub = Hub::start(&[]);
    let op = hub.operator("ops");
    let (nodes, first) = fleet(&hub, 5, 1, "0.2.0");
    let bins = binaries("0.2.0", &[TARGET]);
    let signed = sign(
        &release("0.2.0", &bins, &[first, 100], 50),
        &[&hub.keys[0], &hub.keys[1]],
    );
    let _: ReleaseAccepted = op.post_as("/v1/releases", &signed, 201);
    upload_all(&op, "0.2.0", &bins);
    let (early, late) = split(&signed, &nodes);
    assert!(!early.is_empty() && !late.is_empty());

    for n in &late {
        assert_eq!(
            n.heartbeat_offer(&heartbeat("0.1.0", None)),
            None,
            "wave 2 is closed"
        );
    }
    for n in &early {
        assert_eq!(
            n.heartbeat_offer(&heartbeat("0.1.0", None)).as_deref(),
            Some("0.2.0")
        );
    }
    let s = status(&op, "0.2.0");
    assert_eq!((s.state, s.wave), (ReleaseState::RollingOut, 0));
    assert_eq!(s.waves[0].nodes, early.len() as u64);
    assert_eq!(s.waves[1].pending, late.len() as u64);
    assert!(s.waves[0].open && !s.waves[1].open);

    // The first wave updates: the second opens.
    let (last, rest) = early.split_last().unwrap();
    for n in rest {
        n.heartbeat_offer(&heartbeat("0.2.0", None));
    }
    assert_eq!(
        status(&op, "0.2.0").wave,
        0,
        "one node of wave 1 is still pending"
    );
    last.heartbeat_offer(&heartbeat("0.2.0", None));
    let s = status(&op, "0.2.0");
    assert_eq!((s.wave, s.waves[0].updated), (1, early.len() as u64));
    for n in &late {
        assert_eq!(
            n.heartbeat_offer(&heartbeat("0.1.0", None)).as_deref(),
            Some("0.2.0")
        );
        n.heartbeat_offer(&heartbeat("0.2.0", None));
    }
    let s = status(&op, "0.2.0");
    assert_eq!(s.state, ReleaseState::Complete);
    let actions: Vec<&str> = s.audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "release.accept",
            "release.binary",
            "release.binary",
            "release.advance"
        ],
        "{:?}",
        s.audit
    );
    assert_eq!(
        (s.audit[0].actor.as_str(), s.audit[3].actor.as_str()),
        ("ops", "hub")
    );
    let metrics = op.get("/metrics").1;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(&format!(
            "vantage_hub_release_nodes{{version=\"0.2.0\",state=\"updated\"}} {}",
            nodes.len()
        )),
        "{text}"
    );
}

#[test]
fn too_many_rollbacks_in_a_wave_stop_the_rollout() {
    let mut hub = Hub::start(&[]);
    let op = hub.operator("ops");
    let (nodes, first) = fleet(&hub, 4, 1, "0.3.0");
    let bins = binaries("0.3.0", &[TARGET]);
    let signed = sign(
        &release("0.3.0", &bins, &[first, 100], 20),
        &[&hub.keys[0], &hub.keys[1]],
    );
    let _: ReleaseAccepted = op.post_as("/v1/releases", &signed, 201);
    upload_all(&op, "0.3.0", &bins);
    let (early, late) = split(&signed, &nodes);

    // The first node of wave 1 to try rolls back: 1 of 1 is more than 20 %.
    assert_eq!(
        early[0]
            .heartbeat_offer(&heartbeat("0.1.0", None))
            .as_deref(),
        Some("0.3.0")
    );
    assert_eq!(
        early[0].heartbeat_offer(&heartbeat("0.1.0", Some("0.3.0"))),
        None
    );
    let s = status(&op, "0.3.0");
    assert_eq!(s.state, ReleaseState::Stopped);
    let why = s.stopped.unwrap().reason;
    assert!(
        why.contains("wave 1") && why.contains("1 of the 1 nodes"),
        "{why}"
    );
    assert_eq!((s.waves[0].failed, s.waves[0].open), (1, false));
    let stop = s.audit.last().unwrap();
    assert_eq!(
        (stop.action.as_str(), stop.detail["reason"].as_str()),
        ("release.stop", Some(why.as_str()))
    );
    // Nobody is offered it any more, whatever wave, also after a restart.
    hub.kill();
    hub.spawn();
    assert_eq!(status(&op, "0.3.0").state, ReleaseState::Stopped);
    for n in early.iter().skip(1).chain(&late) {
        assert_eq!(n.heartbeat_offer(&heartbeat("0.1.0", None)), None);
    }
    let entry = hub
        .nodes()
        .into_iter()
        .find(|n| n["id"] == early[0].id.as_str())
        .unwrap();
    assert_eq!(
        entry["failed_release"]["code"], "release-rolled-back",
        "{entry}"
    );
}

#[test]
fn a_node_not_heard_from_does_not_hold_a_wave_back() {
    let hub = Hub::start(&["--release-window", "3s"]);
    let op = hub.operator("ops");
    let (nodes, first) = fleet(&hub, 4, 2, "0.4.0");
    let bins = binaries("0.4.0", &[TARGET]);
    let signed = sign(
        &release("0.4.0", &bins, &[first, 100], 20),
        &[&hub.keys[0], &hub.keys[1]],
    );
    let _: ReleaseAccepted = op.post_as("/v1/releases", &signed, 201);
    upload_all(&op, "0.4.0", &bins);
    let (early, _) = split(&signed, &nodes);
    let (active, away) = (early[0], &early[1..]);
    active.heartbeat_offer(&heartbeat("0.4.0", None));
    assert_eq!(
        status(&op, "0.4.0").wave,
        0,
        "{} node(s) of wave 1 pending",
        away.len()
    );
    // The others stay silent past the window; the active nodes keep beating.
    std::thread::sleep(std::time::Duration::from_secs(4));
    active.heartbeat_offer(&heartbeat("0.4.0", None));
    let s = status(&op, "0.4.0");
    assert_eq!((s.wave, s.waves[0].nodes), (1, 1), "{s:?}");
}
