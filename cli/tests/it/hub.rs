//! The operator's and approver's workflow against a real hub on loopback.

use crate::support::{Desk, Net, dns_data};
use std::io::Read as _;
use std::process::Stdio;
use vantage_proto::data::SecurityStatus;

#[test]
fn two_of_three_one_signature_refused_two_accepted() {
    let net = Net::start();
    let file = net
        .desk
        .job("quorum", &["--from", "country=DE"], &["alice"]);
    let r = net.op(&["submit", &file]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("too-few-approvals"), "{}", r.stderr);
    assert!(r.stderr.contains("1 of the 2"), "{}", r.stderr);

    net.desk
        .vantage(&["sign", &file, "--key", "bob.key", "--yes"])
        .ok();
    let r = net.op(&["submit", &file]).ok();
    assert!(r.stdout.contains("accepted: job quorum"), "{}", r.stdout);
    assert!(r.stdout.contains("cc.DE"), "{}", r.stdout);

    // The same id twice is refused.
    let r = net.op(&["submit", &file]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already used"), "{}", r.stderr);
}

#[test]
fn a_key_outside_the_policy_does_not_count() {
    let net = Net::start();
    let file = net.desk.job("outsider", &[], &["alice", "mallory"]);
    let r = net.op(&["submit", &file]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("unknown-approver"), "{}", r.stderr);
    // The local check says the same before anything is sent.
    let r = net
        .desk
        .vantage(&["check", &file, "--policy", "policy.json"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unknown-approver"), "{}", r.stderr);
    // And signing with --policy refuses a key that would not count.
    let r = net.desk.vantage(&[
        "sign",
        &file,
        "--key",
        "mallory.key",
        "--policy",
        "policy.json",
        "--yes",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not an approver"), "{}", r.stderr);
}

#[test]
fn selections_resolve_to_the_right_nodes() {
    let net = Net::start();
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("country=DE and tag=fiber", &[], &["de1"]),
        ("country=FR or continent=SA", &[], &["fr1", "br1"]),
        ("(country=DE or country=BR) and asn=28573", &[], &["br1"]),
        (
            "asn=3209 or (tag=fiber and continent=EU)",
            &[],
            &["de1", "de2", "fr1"],
        ),
        // Without a limit the job goes out on channels; offline nodes catch up later.
        ("tag=fiber", &[], &["de1", "fr1", "us1"]),
        // With a limit the hub picks among online nodes only.
        ("tag=fiber", &["--limit", "5"], &["de1", "fr1"]),
        ("node=NODE", &[], &["br1"]),
    ];
    for (i, (sel, extra, want)) in cases.iter().enumerate() {
        let sel = sel.replace("NODE", &net.id("br1"));
        let mut args = vec!["--from", sel.as_str()];
        args.extend_from_slice(extra);
        let file = net.desk.job(&format!("sel{i}"), &args, &["alice", "carol"]);
        assert_eq!(
            net.submit_nodes(&file),
            net.ids(want),
            "selection {sel:?} {extra:?}"
        );
    }
    // A limit below the number of matching online nodes picks that many of them.
    let file = net.desk.job(
        "limit2",
        &["--from", "continent=EU", "--limit", "2"],
        &["alice", "bob"],
    );
    let got = net.submit_nodes(&file);
    assert_eq!(got.len(), 2);
    let eu = net.ids(&["de1", "de2", "fr1"]);
    assert!(got.iter().all(|n| eu.contains(n)), "{got:?}");
    // No matching online node: refused with a reason.
    let file = net.desk.job(
        "nobody",
        &["--from", "country=US", "--limit", "1"],
        &["alice", "bob"],
    );
    let r = net.op(&["submit", &file]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no-nodes"), "{}", r.stderr);
}

#[test]
fn status_results_watch_and_nodes() {
    let net = Net::start();
    let file = net
        .desk
        .job("watched", &["--from", "country=DE"], &["bob", "carol"]);
    net.op(&["submit", &file]).ok();
    net.result(
        "de1",
        "watched",
        &dns_data("NOERROR", 2, Some(SecurityStatus::Secure)),
    );

    let watch = net
        .op_command(&["watch", "watched"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    net.result("de2", "watched", &dns_data("NXDOMAIN", 0, None));
    let (status, out, err) = finish(watch, 20, || {
        "watch did not end after every node answered".into()
    });
    assert!(status.success(), "{out}\n{err}");
    assert!(
        err.contains("0 of 2 nodes answered") || err.contains("1 of 2 nodes answered"),
        "{err}"
    );
    assert!(err.contains("done; 2 of 2 nodes answered"), "{err}");
    assert!(
        out.contains("rcode NOERROR, answers 2, dnssec secure (validated)"),
        "{out}"
    );
    assert!(out.contains("rcode NXDOMAIN, answers 0"), "{out}");

    let r = net.op(&["results", "watched"]).ok();
    assert!(r.stdout.contains("AS3320"), "{}", r.stdout);
    assert!(r.stdout.contains("2 of 2 nodes answered"), "{}", r.stdout);
    let v = net.op(&["results", "watched", "--json"]).ok().json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let v = net
        .op(&["results", "watched", "--format", "json"])
        .ok()
        .json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let v = net
        .op(&["results", "watched", "--format", "atlas"])
        .ok()
        .json();
    let atlas = v.as_array().unwrap();
    assert_eq!(atlas.len(), 2, "{v}");
    for a in atlas {
        assert_eq!(a["type"], "dns", "{a}");
        assert_eq!(a["msm_id"], vantage_proto::atlas::msm_id("watched"), "{a}");
        assert_eq!(a["vantage"]["job_id"], "watched", "{a}");
    }
    let r = net.op(&["results", "watched", "--format", "csv"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], vantage_cli::results::CSV_HEADER, "{}", r.stdout);
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(r.stdout.contains(",dns,ok,"), "{}", r.stdout);
    assert!(
        r.stdout.contains("NOERROR 2 answer(s) secure"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("NXDOMAIN 0 answer(s)"), "{}", r.stdout);
    let r = net.op(&["results", "watched", "--format", "xml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    let r = net.op(&["status", "watched"]).ok();
    assert!(r.stdout.contains("status: active"), "{}", r.stdout);
    assert!(r.stdout.contains("2 from 2 targeted"), "{}", r.stdout);

    let r = net.op(&["nodes", "--country", "de"]).ok();
    assert!(r.stdout.contains("2 node(s)"), "{}", r.stdout);
    let v = net
        .op(&["nodes", "--where", "asn=7922 or asn=28573", "--json"])
        .ok()
        .json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let v = net
        .op(&["nodes", "--status", "offline", "--json"])
        .ok()
        .json();
    assert_eq!(v[0]["id"], net.id("us1"));

    let r = net.op(&["status", "no-such-job"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no such job"), "{}", r.stderr);
}

#[test]
fn exit_codes_for_scripts() {
    let net = Net::start();
    let file = net.desk.job("codes", &[], &["alice", "bob"]);
    // No hub given: usage.
    assert_eq!(
        net.desk
            .vantage(&["submit", &file, "--creds", "creds"])
            .code,
        2
    );
    // Nothing listens there: unreachable.
    let r = net.desk.vantage(&[
        "submit",
        &file,
        "--creds",
        "creds",
        "--hub",
        "https://127.0.0.1:1",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    // A CA that did not sign the hub's certificate: TLS fails, unreachable.
    std::fs::create_dir(net.desk.path("other")).unwrap();
    std::fs::copy(
        net.desk.path("creds/ops.crt"),
        net.desk.path("other/ops.crt"),
    )
    .unwrap();
    std::fs::copy(
        net.desk.path("creds/ops.key"),
        net.desk.path("other/ops.key"),
    )
    .unwrap();
    let other = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(net.desk.path("other/ca.pem"), other.pem()).unwrap();
    let r = net
        .desk
        .vantage(&["submit", &file, "--creds", "other", "--hub", &net.url]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    // Missing files: local.
    assert_eq!(net.op(&["submit", "missing.job.json"]).code, 4);
    let r = net
        .desk
        .vantage(&["submit", &file, "--creds", "nowhere", "--hub", &net.url]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    // Bad flags: usage.
    assert_eq!(net.op(&["status"]).code, 2);
    assert_eq!(
        net.desk
            .vantage(&["propose", "dns", "x.example", "--type", "BOGUS"])
            .code,
        2
    );
    // And the good path.
    net.op(&["submit", &file]).ok();
}

#[test]
fn approver_workflow_files_and_prompts() {
    let desk = Desk::new();
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(desk.path("alice.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // keygen never overwrites a key.
    assert_eq!(desk.vantage(&["keygen", "--out", "alice"]).code, 4);

    let r = desk
        .vantage(&[
            "propose",
            "dns",
            "example.com",
            "--type",
            "AAAA",
            "--dnssec",
            "--from",
            "country=DE or continent=SA",
            "--limit",
            "20",
            "--expires",
            "1h",
            "--id",
            "issue9",
        ])
        .ok();
    assert!(
        r.stdout.contains("DNS query AAAA example.com"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("country=DE or continent=SA"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("at most 20 nodes"), "{}", r.stdout);
    let before = std::fs::read(desk.path("issue9.job.json")).unwrap();
    // Declining at the prompt changes nothing.
    let r = desk.vantage_input(&["sign", "issue9.job.json", "--key", "alice.key"], "n\n");
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("DNS query AAAA example.com"),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read(desk.path("issue9.job.json")).unwrap(), before);
    desk.vantage_input(&["sign", "issue9.job.json", "--key", "alice.key"], "y\n")
        .ok();
    let r = desk.vantage(&["check", "issue9.job.json", "--policy", "policy.json"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("too-few-approvals"), "{}", r.stderr);
    desk.vantage(&[
        "sign",
        "issue9.job.json",
        "--key",
        "carol.key",
        "--yes",
        "--policy",
        "policy.json",
    ])
    .ok();
    let r = desk
        .vantage(&["check", "issue9.job.json", "--policy", "policy.json"])
        .ok();
    assert!(
        r.stdout.contains("alice, carol (2 of 2 needed)"),
        "{}",
        r.stdout
    );
    // A key readable by others is refused.
    std::fs::set_permissions(desk.path("bob.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        desk.vantage(&["sign", "issue9.job.json", "--key", "bob.key", "--yes"])
            .code,
        4
    );
}

#[test]
fn policy_rotation_needs_a_quorum_of_the_current_approvers() {
    let desk = Desk::new();
    desk.vantage(&[
        "policy",
        "propose",
        "--from",
        "policy.json",
        "--remove-approver",
        "carol",
        "--add-approver",
        "mallory=mallory.pub",
        "--threshold",
        "2",
        "--out",
        "next.json",
    ])
    .ok();
    let check = || desk.vantage(&["policy", "check", "--current", "policy.json", "next.json"]);
    let r = check();
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("0 of the 2"), "{}", r.stderr);
    desk.vantage(&["policy", "sign", "next.json", "--key", "alice.key", "--yes"])
        .ok();
    // The incoming approver's signature does not count towards the current quorum.
    desk.vantage(&[
        "policy",
        "sign",
        "next.json",
        "--key",
        "mallory.key",
        "--yes",
    ])
    .ok();
    let r = check();
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("unknown approver"), "{}", r.stderr);
    let r = desk.vantage(&[
        "policy",
        "sign",
        "next.json",
        "--key",
        "carol.key",
        "--current",
        "policy.json",
        "--yes",
    ]);
    let r = r.ok();
    assert!(r.stdout.contains("- approver carol"), "{}", r.stdout);
    assert!(r.stdout.contains("+ approver mallory"), "{}", r.stdout);
    let r = check().ok();
    assert!(r.stdout.contains("serial 2 replaces 1"), "{}", r.stdout);
    // The new policy cannot replace itself, and a stale one cannot come back.
    assert_eq!(
        desk.vantage(&["policy", "check", "--current", "next.json", "next.json"])
            .code,
        1
    );
    assert_eq!(
        desk.vantage(&["policy", "check", "--current", "next.json", "policy.json"])
            .code,
        1
    );
}

#[test]
fn a_real_agent_answers_and_watch_shows_its_figures() {
    let net = Net::start();
    let agent = net.agent("NL");
    let sel = format!("node={}", agent.node_id);
    let file = "real.job.json";
    // A TCP connect to the hub itself: loopback only, allowed by this node's owner policy.
    net.desk
        .vantage(&[
            "propose",
            "tcp",
            "127.0.0.1",
            "--port",
            &net.port,
            "--from",
            &sel,
            "--id",
            "real",
        ])
        .ok();
    for k in ["alice.key", "bob.key"] {
        net.desk.vantage(&["sign", file, "--key", k, "--yes"]).ok();
    }
    net.op(&["submit", file]).ok();
    let watch = net
        .op_command(&["watch", "real"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, out, err) = finish(watch, 30, || {
        format!("no answer from the agent:\n{}", agent.log())
    });
    assert!(status.success(), "{out}\n{err}");
    assert!(err.contains("1 of 1 nodes answered"), "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&agent.node_id))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains(" ok "), "{row}");
    assert!(row.contains("connect ") && row.ends_with(" ms"), "{row}");
    let r = net.op(&["results", "real"]).ok();
    assert!(r.stdout.contains("NL"), "{}", r.stdout);
}

/// Waits up to `secs` for `child` to exit (failing with `why()` after that),
/// then returns its status and everything it wrote.
fn finish(
    mut child: std::process::Child,
    secs: u64,
    why: impl Fn() -> String,
) -> (std::process::ExitStatus, String, String) {
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed().as_secs() < secs, "{}", why());
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, out, err)
}
