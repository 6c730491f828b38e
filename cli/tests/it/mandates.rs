//! Mandates from the operator's desk: approvers propose, sign and check a
//! mandate with the real `vantage`; an operator then measures in one line
//! (`vantage ping 127.0.0.1 from DE --limit 2`) on real agents through the
//! real hub; keys the mandate does not name, approvers rotated out and a
//! revocation stop it, each with its code, at the hub and on the node.

use crate::support::{Net, Run};
use serde_json::json;
use vantage_cli::files::load_approver_key;
use vantage_proto::job::{Job, SignedJob};
use vantage_proto::mandate::SignedMandate;
use vantage_testkit::{Agent, jobs::node_job};

/// Makes the operator key `olga` and a ping/tcp mandate `everyday` for DE
/// nodes, signed by alice and bob, checked against the desk's policy.
fn everyday(net: &Net) {
    let d = &net.desk;
    d.vantage(&["keygen", "--out", "olga"]).ok();
    let port = format!("tcp:ports={}", net.port);
    d.vantage(&[
        "mandate",
        "propose",
        "--id",
        "everyday",
        "--operator",
        "olga=olga.pub",
        "--probe",
        "ping:max_count=5",
        "--probe",
        &port,
        "--select",
        "country=DE",
        "--max-nodes",
        "5",
        "--valid-for",
        "1h",
    ])
    .ok();
    let file = "mandate-everyday.json";
    for k in ["alice.key", "bob.key"] {
        d.vantage(&[
            "mandate",
            "sign",
            file,
            "--key",
            k,
            "--policy",
            "policy.json",
            "--yes",
        ])
        .ok();
    }
    let check = d
        .vantage(&["mandate", "check", file, "--policy", "policy.json"])
        .ok();
    for words in [
        "approved by alice, bob (2 of 2 needed",
        "at most 5 echo requests",
        "those where country=DE, at most 5 per job",
    ] {
        assert!(check.stdout.contains(words), "{words}: {}", check.stdout);
    }
}

/// `vantage KIND ARGS` as operator olga under the mandate.
fn measure(net: &Net, args: &[&str], key: &str) -> Run {
    let mut a = args.to_vec();
    a.extend(["--operator-key", key, "--mandate", "mandate-everyday.json"]);
    a.extend(["--expires", "1m"]);
    net.op(&a)
}

/// The job id from `job ID on N node(s)`.
fn job_id(run: &Run) -> String {
    let line = run.stderr.lines().find(|l| l.starts_with("job ")).unwrap();
    line.split_whitespace().nth(1).unwrap().to_string()
}

/// A ping of loopback on `node`, ordered under the desk's mandate as olga
/// but signed with `key` (a file of the desk).
fn ordered(net: &Net, id: &str, node: &str, key: &str) -> serde_json::Value {
    let file = net.desk.path("mandate-everyday.json");
    let signed: SignedMandate =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let probe = json!({"cmd": "ping", "args": {"host": "127.0.0.1"}});
    let mut job = node_job(id, node, probe);
    job["mandate"] = json!("everyday");
    job["proposer"] = json!("olga");
    job["limit"] = json!(1);
    let key = load_approver_key(&net.desk.path(key)).unwrap();
    let job = Job::from_value(&job).unwrap();
    serde_json::to_value(SignedJob::sign_under_mandate(&job, signed, &key).unwrap()).unwrap()
}

fn refused(run: &Run, code: &str) {
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(code), "{code}: {}", run.stderr);
}

#[test]
fn one_line_measurements_run_under_a_mandate_until_revoked() {
    let net = Net::bare(&[]);
    let agents: Vec<Agent> = (0..2).map(|_| net.agent("DE")).collect();
    everyday(&net);

    let run = measure(
        &net,
        &["ping", "127.0.0.1", "from", "DE", "--limit", "2", "-v"],
        "olga.key",
    )
    .ok();
    assert!(
        run.stderr.contains("selection: country=DE"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("done; 2 of 2 nodes answered"),
        "{}",
        run.stderr
    );
    for a in &agents {
        let row = run.stdout.lines().find(|l| l.starts_with(&a.node_id));
        assert!(
            row.is_some_and(|r| r.contains("DE")),
            "{}: {}",
            a.node_id,
            run.stdout
        );
    }
    // The same nodes again, a TCP connect to the hub, only the times.
    let port = net.port.clone();
    let again = measure(
        &net,
        &[
            "tcp",
            "127.0.0.1",
            "--port",
            &port,
            "--reuse",
            &job_id(&run),
            "--latency",
        ],
        "olga.key",
    )
    .ok();
    assert!(again.stdout.starts_with("node "), "{}", again.stdout);
    let rows: Vec<&str> = again.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", again.stdout);
    assert!(
        rows.iter()
            .all(|r| r.split_whitespace().last().unwrap().parse::<f64>().is_ok()),
        "{rows:?}"
    );

    // Outside the mandate's bounds: refused before anything is sent.
    refused(
        &measure(&net, &["ping", "127.0.0.1", "--count", "9"], "olga.key"),
        "mandate-args",
    );
    refused(
        &measure(&net, &["ping", "127.0.0.1", "--limit", "6"], "olga.key"),
        "mandate-nodes",
    );
    // A key the mandate does not name: refused here, and by the hub.
    refused(
        &measure(&net, &["ping", "127.0.0.1"], "mallory.key"),
        "unknown-operator",
    );
    let job = ordered(&net, "stranger", &agents[0].node_id, "mallory.key");
    let (s, e) = net.hub.operator("ops2").post("/v1/jobs", &job);
    assert_eq!(
        (s, e["code"].as_str()),
        (422, Some("unknown-operator")),
        "{e}"
    );

    // One approver revokes it: the next one-line measurement is refused.
    let r = net
        .op(&[
            "mandate",
            "revoke",
            "mandate-everyday.json",
            "--approver-key",
            "carol.key",
            "--reason",
            "test",
            "--yes",
        ])
        .ok();
    assert!(r.stdout.contains("revoked"), "{}", r.stdout);
    refused(
        &measure(&net, &["ping", "127.0.0.1", "from", "DE"], "olga.key"),
        "mandate-revoked",
    );
}

#[test]
fn a_mandate_signed_by_approvers_rotated_out_is_refused_by_hub_and_node() {
    let net = Net::bare(&["--unsafe-raw-publish"]);
    let agent = net.agent("DE");
    everyday(&net);
    let d = &net.desk;
    // alice and bob hand over to carol and mallory.
    d.vantage(&[
        "policy",
        "propose",
        "--from",
        "policy.json",
        "--remove-approver",
        "alice",
        "--remove-approver",
        "bob",
        "--add-approver",
        "mallory=mallory.pub",
        "--out",
        "policy-2.json",
    ])
    .ok();
    for k in ["alice.key", "bob.key"] {
        d.vantage(&["policy", "sign", "policy-2.json", "--key", k, "--yes"])
            .ok();
    }
    net.op(&["policy", "submit", "policy-2.json"]).ok();

    let check = d.vantage(&[
        "mandate",
        "check",
        "mandate-everyday.json",
        "--policy",
        "policy-2.json",
    ]);
    refused(&check, "mandate-unknown-approver");
    let at_hub = measure(&net, &["ping", "127.0.0.1", "from", "DE"], "olga.key");
    refused(&at_hub, "(HTTP 422, mandate-unknown-approver)");

    // Past the hub (raw publish), the node refuses it too once it holds serial 2.
    agent.wait_log("approval policy rotated to serial 2", 1, 30);
    let job = ordered(&net, "raw", &agent.node_id, "olga.key");
    let op = net.hub.operator("ops2");
    net.hub.raw(&op, &format!("node.{}", agent.node_id), &job);
    agent.wait_log("refused job raw:", 1, 20);
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("refused job raw:"))
        .unwrap();
    assert!(line.contains("(mandate-unknown-approver)"), "{line}");
}
