//! Revocation at the hub: the agent says so once, leaves its marker for
//! `vantage-provision` (which tells the volunteer) and exits with its own
//! code instead of retrying for ever; a hub that is merely away is not
//! revocation.

use crate::support::hub;
use std::time::Duration;
use vantage_testkit::{Agent, wait_for};

use vantage_node::revocation::Marker;
use vantage_node::state::DataDir;

#[test]
fn a_revoked_node_stops_for_good_and_leaves_its_marker() {
    let hub = hub();
    let mut agent = Agent::new(&hub, "", "");
    agent.start();
    agent.subscribed(1);
    let (ok, _, err) = hub.cli(&["nodes", "revoke", &agent.node_id]);
    assert!(ok, "nodes revoke: {err}");

    let mut child = agent.child.take().unwrap();
    let mut exit = None;
    wait_for("the agent to exit", 30, || {
        exit = child.try_wait().unwrap();
        exit.is_some()
    });
    let log = agent.log();
    assert_eq!(
        exit.unwrap().code(),
        Some(i32::from(vantage_agent::agent::EXIT_REVOKED)),
        "{log}"
    );
    assert_eq!(log.matches("has been revoked").count(), 1, "{log}");
    let marker = Marker::read(&DataDir::new(agent.data())).expect("no revocation marker");
    assert_eq!(marker.node_id, agent.node_id);
    assert!(
        [
            "tls-alert-certificate-revoked",
            "http-403-certificate-revoked"
        ]
        .contains(&marker.evidence.as_str()),
        "{marker:?}"
    );
    // The hub's public URL, which the node stored at enrolment (the certificate's first name).
    let public = format!("https://localhost:{}", hub.port());
    assert!(marker.url.starts_with(&public), "{marker:?}");
}

#[test]
fn an_unreachable_hub_is_not_revocation() {
    let mut hub = hub();
    let mut agent = Agent::new(&hub, "", "");
    agent.start();
    agent.subscribed(1);
    hub.kill();
    // Reconnects (1-2 s apart) and a heartbeat (every 5 s) all fail.
    std::thread::sleep(Duration::from_secs(8));
    let child = agent.child.as_mut().unwrap();
    assert!(child.try_wait().unwrap().is_none(), "{}", agent.log());
    assert_eq!(Marker::read(&DataDir::new(agent.data())), None);
    assert!(!agent.log().contains("has been revoked"), "{}", agent.log());
}
