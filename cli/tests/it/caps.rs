//! Nodes that can do what is asked, on real agents through the real hub:
//! heartbeats carry which address families reach the hub and the owner's
//! policy digest; `cap=ipv6` picks only the node that reaches the hub over
//! IPv6; `--limit` skips a node whose owner refuses the probe kind, and
//! `vantage check` predicts it; `watch --stop-after` and `report
//! --aggregate-by` on the job's results.

use crate::support::{Net, Run};
use serde_json::Value;
use std::io::ErrorKind;
use std::net::{Ipv6Addr, TcpListener, TcpStream};
use vantage_testkit::{Agent, wait_for};

/// Forwards connections to `[::1]:port` to the hub at `127.0.0.1:port`, so
/// a node whose hub URL is `https://[::1]:port` reaches it over IPv6 only.
/// `None` where the machine has no IPv6 loopback.
fn ipv6_door(port: u16) -> Option<()> {
    let listener = match TcpListener::bind((Ipv6Addr::LOCALHOST, port)) {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => return None,
        Err(e) => panic!("[::1]:{port}: {e}"),
    };
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            for (mut from, mut to) in [
                (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                (outbound, inbound),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    Some(())
}

/// An agent in DE allowing loopback targets, with `extra` configuration,
/// whose hub URLs (in its `node.json`) are rewritten by `url` before it starts.
fn agent(net: &Net, extra: &str, url: impl Fn(&str) -> String) -> Agent {
    let owner = format!("[owner]\nallow_special_addresses = true\n{extra}");
    let mut a = Agent::enrolled(&net.hub, &["--country", "DE"], "DE", "", &owner);
    let path = a.data().join("node.json");
    let state = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, url(&state)).unwrap();
    a.start();
    a.wait_log("subscribed:", 1, 30);
    a
}

/// The registry entry of `id` once its heartbeat reported capabilities.
fn reported(net: &Net, id: &str) -> Value {
    let mut entry = Value::Null;
    wait_for("the node's capabilities at the hub", 30, || {
        let nodes = net.op(&["nodes", "--json"]).ok().json();
        entry = nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or_default();
        entry.get("caps").is_some()
    });
    entry
}

/// A ping of loopback signed by alice and bob, proposed with `flags`.
fn ping_job(net: &Net, id: &str, flags: &[&str]) -> String {
    let d = &net.desk;
    let mut args = vec!["propose", "ping", "127.0.0.1", "--id", id];
    args.extend_from_slice(flags);
    d.vantage(&args).ok();
    let file = format!("{id}.job.json");
    for k in ["alice.key", "bob.key"] {
        d.vantage(&["sign", &file, "--key", k, "--yes"]).ok();
    }
    file
}

fn lines(run: &Run) -> String {
    format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr)
}

#[test]
fn nodes_report_what_they_can_do_and_jobs_go_where_they_can_run() {
    let net = Net::bare(&[]);
    let port: u16 = net.port.parse().unwrap();
    // By address: where `localhost` resolves to ::1 too, these would reach
    // the IPv6 door below.
    let v4 = |s: &str| s.replace("https://localhost:", "https://127.0.0.1:");
    let pinger = agent(&net, "", v4);
    let dns_only = agent(&net, "[probes]\nallowed = [\"dns\"]\n", v4);

    // Heartbeats: IPv4 reaches the hub at 127.0.0.1, IPv6 does not; the owner's digest.
    let e = reported(&net, &dns_only.node_id);
    assert_eq!(e["caps"], serde_json::json!({"ipv4": true, "ipv6": false}));
    assert_eq!(e["owner"]["allowed"], serde_json::json!(["dns"]));
    assert_eq!(e["owner"]["allow_special_addresses"], true);
    reported(&net, &pinger.node_id);
    let table = net.op(&["nodes", "--where", "cap=ipv4"]).ok();
    assert!(table.stdout.contains("dns, 30/min"), "{}", lines(&table));
    assert!(table.stdout.contains("2 node(s)"), "{}", lines(&table));

    // The prediction, then the hub skips the node whose owner refuses pings.
    let file = ping_job(&net, "p1", &["--from", "country=DE", "--limit", "2"]);
    let check = net.op(&["check", &file, "--policy", "policy.json"]).ok();
    for words in [
        "would be accepted",
        "2 node(s) match the selection (2 online); 1 would refuse",
        &format!("kind-not-allowed: 1 ({})", dns_only.node_id),
        "with limit 2, the hub picks only online nodes whose owner admits the job",
    ] {
        assert!(check.stdout.contains(words), "{words}: {}", lines(&check));
    }
    assert_eq!(net.submit_nodes(&file), [pinger.node_id.as_str()]);

    // Watch stops after one result; the report sums it up from the hub and from files.
    let watch = net.op(&["watch", "p1", "--stop-after", "1", "--json"]).ok();
    assert!(
        watch.stderr.contains("stopped after 1 result(s)"),
        "{}",
        lines(&watch)
    );
    std::fs::write(net.desk.path("p1.jsonl"), &watch.stdout).unwrap();
    let nodes = net.op(&["nodes", "--json"]).ok();
    std::fs::write(net.desk.path("nodes.json"), &nodes.stdout).unwrap();
    let offline = ["--from-file", "p1.jsonl", "--nodes", "nodes.json"];
    for (args, row) in [
        (
            &["report", "p1", "--aggregate-by", "country"][..],
            "DE 1 1 0 0",
        ),
        (&["report", "p1", "--aggregate-by", "asn"][..], "? 1 1 0 0"),
    ] {
        let from_hub = net.op(args).ok();
        let mut a = args.to_vec();
        a.extend(offline);
        let from_file = net.desk.vantage(&a).ok();
        for run in [from_hub, from_file] {
            let flat: Vec<String> = run
                .stdout
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            assert!(flat[1].starts_with(row), "{row}: {}", lines(&run));
        }
    }

    // A node that reaches the hub only over IPv6: `cap=ipv6` picks it alone.
    if ipv6_door(port).is_none() {
        eprintln!("no IPv6 loopback here: cap=ipv6 checked without an IPv6 node");
        let file = ping_job(&net, "v6", &["--from", "cap=ipv6", "--limit", "3"]);
        let run = net.op(&["submit", &file]);
        assert!(run.stderr.contains("no-nodes"), "{}", lines(&run));
        return;
    }
    let v6 = agent(&net, "", |s| {
        s.replace("https://localhost:", "https://[::1]:")
    });
    assert_eq!(
        reported(&net, &v6.node_id)["caps"],
        serde_json::json!({"ipv4": false, "ipv6": true})
    );
    let file = ping_job(&net, "v6", &["--from", "cap=ipv6", "--limit", "3"]);
    assert_eq!(net.submit_nodes(&file), [v6.node_id.as_str()]);
    let file = ping_job(
        &net,
        "v4",
        &["--from", "country=DE and cap=ipv4", "--limit", "3"],
    );
    assert_eq!(net.submit_nodes(&file), [pinger.node_id.as_str()]);
    // Without a limit the nodes judge `cap=` themselves: only the IPv6 node answers.
    let file = ping_job(&net, "v6-all", &["--from", "cap=ipv6"]);
    assert_eq!(net.submit_nodes(&file), [v6.node_id.as_str()]);
    let watch = net.op(&["watch", "v6-all"]).ok();
    assert!(
        watch.stderr.contains("done; 1 of 1 nodes answered"),
        "{}",
        lines(&watch)
    );
    assert!(watch.stdout.contains(&v6.node_id), "{}", lines(&watch));
}
