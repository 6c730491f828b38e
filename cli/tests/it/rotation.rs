//! `vantage policy submit` against the real hub: refused below the current
//! quorum with the hub's code, accepted with it, and then jobs need the new
//! approvers.

use crate::support::Net;

#[test]
fn policy_submit_rotates_the_hubs_approvers() {
    let net = Net::start();
    let desk = &net.desk;
    desk.vantage(&[
        "policy",
        "propose",
        "--from",
        "policy.json",
        "--remove-approver",
        "carol",
        "--add-approver",
        "mallory=mallory.pub",
        "--out",
        "next.json",
    ])
    .ok();
    desk.vantage(&["policy", "sign", "next.json", "--key", "alice.key", "--yes"])
        .ok();
    let r = net.op(&["policy", "submit", "next.json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("HTTP 422, too-few-approvals"),
        "{}",
        r.stderr
    );

    desk.vantage(&["policy", "sign", "next.json", "--key", "bob.key", "--yes"])
        .ok();
    let r = net.op(&["policy", "submit", "next.json", "--json"]).ok();
    assert_eq!(r.json(), serde_json::json!({"serial": 2}));
    let r = net.op(&["policy", "submit", "next.json"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not-newer"), "{}", r.stderr);

    // Carol is no longer an approver; mallory is.
    let old = desk.job("by-carol", &[], &["alice", "carol"]);
    let r = net.op(&["submit", &old]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unknown-approver"), "{}", r.stderr);
    let new = desk.job("by-mallory", &[], &["alice", "mallory"]);
    net.op(&["submit", &new]).ok();
}
