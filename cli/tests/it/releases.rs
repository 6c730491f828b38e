//! Agent releases from the approver's desk: `vantage release propose` from
//! the binaries of a build, `sign`, `check` (also against the approver's own
//! build), `submit` with the binaries to the real hub (refused under quorum,
//! with its code), `status` of the rollout as simulated nodes report, and
//! `vantage nodes` showing versions and failed releases.

use crate::support::Net;
use vantage_testkit::releases::{TARGET, binaries, heartbeat};

/// Writes a build of `version` under `dir` as `make agent` lays it out.
fn build(net: &Net, dir: &str, version: &str) {
    for ((target, name), bytes) in binaries(version, &[TARGET]) {
        let d = net.desk.path(dir).join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    }
}

#[test]
fn a_release_is_proposed_signed_checked_submitted_and_followed() {
    let net = Net::bare(&[]);
    let d = &net.desk;
    let (early, late) = (net.hub.node("DE"), net.hub.node("FR"));
    for n in [&early, &late] {
        assert_eq!(n.heartbeat_offer(&heartbeat("0.1.0", None)), None);
    }
    build(&net, "out/bin", "0.2.0");
    let propose = d
        .vantage(&[
            "release",
            "propose",
            "--bins",
            "out/bin",
            "--version",
            "0.2.0",
            "--waves",
            "100",
            "--max-rollback",
            "50",
            "--confirm",
            "5m",
            "--valid",
            "1d",
            "--notes",
            "fixes the outbox",
        ])
        .ok();
    let agent = &binaries("0.2.0", &[TARGET])[&(TARGET.to_string(), "vantage-agent".to_string())];
    let sha = vantage_proto::release::sha256_hex(agent);
    for words in [
        "release 0.2.0 proposed by tester",
        &format!(
            "{TARGET} vantage-agent: {} bytes, sha256 {sha}",
            agent.len()
        ),
        "in waves 100%; stops if more than 50%",
        "within 300 s",
        "notes: fixes the outbox",
        "wrote release-0.2.0.json",
    ] {
        assert!(
            propose.stdout.contains(words),
            "{words}: {}",
            propose.stdout
        );
    }
    let file = "release-0.2.0.json";
    let show = d.vantage(&["release", "show", file]).ok();
    assert!(show.stdout.contains("signatures: 0"), "{}", show.stdout);
    let sign = |key: &str| {
        d.vantage(&[
            "release",
            "sign",
            file,
            "--key",
            key,
            "--policy",
            "policy.json",
            "--yes",
        ])
        .ok()
    };
    sign("alice.key");
    let check = d.vantage(&["release", "check", file, "--policy", "policy.json"]);
    assert_eq!(check.code, 1);
    assert!(
        check.stderr.contains("too-few-approvals"),
        "{}",
        check.stderr
    );
    let refused = net.op(&["release", "submit", file, "--bins", "out/bin"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("too-few-approvals"),
        "{}",
        refused.stderr
    );

    sign("bob.key");
    let check = d
        .vantage(&[
            "release",
            "check",
            file,
            "--policy",
            "policy.json",
            "--bins",
            "out/bin",
        ])
        .ok();
    for words in [
        "out/bin holds exactly the binaries",
        "approved by alice, bob (2 of 2 needed",
    ] {
        assert!(check.stdout.contains(words), "{words}: {}", check.stdout);
    }
    // An approver whose own build differs is told which file and why.
    build(&net, "mine", "0.2.1");
    let differs = d.vantage(&[
        "release",
        "check",
        file,
        "--policy",
        "policy.json",
        "--bins",
        "mine",
    ]);
    assert_eq!(differs.code, 1);
    assert!(
        differs
            .stderr
            .contains("vantage-agent is not what the release names (release-"),
        "{}",
        differs.stderr
    );
    let differs = net.op(&["release", "submit", file, "--bins", "mine"]);
    assert_eq!(differs.code, 1, "nothing is sent when the binaries differ");

    let submit = net
        .op(&["release", "submit", file, "--bins", "out/bin"])
        .ok();
    for words in [
        "release 0.2.0 accepted by the hub (signed by alice, bob)",
        "[1/2] uploaded",
        "[2/2] uploaded",
    ] {
        assert!(submit.stdout.contains(words), "{words}: {}", submit.stdout);
    }
    let status = net.op(&["release", "status"]).ok();
    assert!(
        status.stdout.contains("release 0.2.0: rolling-out"),
        "{}",
        status.stdout
    );

    assert_eq!(
        early.heartbeat_offer(&heartbeat("0.1.0", None)).as_deref(),
        Some("0.2.0")
    );
    early.heartbeat_offer(&heartbeat("0.2.0", None));
    late.heartbeat_offer(&heartbeat("0.1.0", Some("0.2.0")));
    let status = net
        .op(&["release", "status", "0.2.0", "--json"])
        .ok()
        .json();
    let wave = &status[0]["waves"][0];
    assert_eq!(
        (
            wave["nodes"].as_u64(),
            wave["updated"].as_u64(),
            wave["failed"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{status}"
    );
    assert_eq!(
        status[0]["state"], "complete",
        "1 of 2 failed is not more than 50 %"
    );
    let text = net.op(&["release", "status", "0.2.0"]).ok().stdout;
    for words in [
        "release 0.2.0: complete",
        "release.accept by ops: signed by alice, bob",
        &format!("release.binary by ops: {TARGET}/vantage-agent"),
        "updated",
    ] {
        assert!(text.contains(words), "{words}: {text}");
    }
    let missing = net.op(&["release", "status", "9.9.9"]);
    assert_eq!(missing.code, 1);

    let nodes = net.op(&["nodes"]).ok().stdout;
    let row = |id: &str| nodes.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(row(&early.id).contains("0.2.0"), "{nodes}");
    assert!(
        row(&late.id).contains("0.2.0 (release-rolled-back)"),
        "{nodes}"
    );
}
