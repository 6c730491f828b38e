//! `vantage-provision` against the real hub on loopback.

use crate::support::{Node, hub, hub_with, settings, stderr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
use vantage_testkit::{Hub, Running, bin, wait_until};

use std::process::Stdio;

use vantage_node::cert::CertInfo;
use vantage_node::fault;

#[test]
fn enrols_with_token_scrubs_it_and_then_does_nothing() {
    let mut hub = hub();
    let token = hub.token(&["--country", "DE"]);
    let node = Node::new(&hub.ca_path());
    let config = settings(&hub.url, Some(&token));
    node.write_config(&config);

    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let status = node.status();
    let n = node.node_json().expect("node.json written");
    let id = n["node_id"].as_str().unwrap().to_owned();
    assert!(status.starts_with("vantage node: ENROLLED"), "{status}");
    assert!(status.contains(&format!("enrolled as {id}")), "{status}");
    assert_eq!(n["endpoints"]["hub"].as_str().unwrap(), hub.url);
    assert_eq!(n["attrs"]["country"], "DE");
    assert!(
        n["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "tag.fiber")
    );
    assert!(
        n["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "ct.EU"),
        "{n}"
    );

    // The token line is gone, every other line (comments included) kept.
    let scrubbed = node.config();
    assert!(!scrubbed.contains(&token), "{scrubbed}");
    let expected: String = config
        .lines()
        .filter(|l| !l.starts_with("token"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(scrubbed, expected);

    let data = node.data();
    let mode = std::fs::metadata(data.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let cert =
        CertInfo::from_pem(&std::fs::read_to_string(data.join("cert.pem")).unwrap()).unwrap();
    assert_eq!(cert.node_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        std::fs::read_to_string(node.dir.path().join("etc/hostname")).unwrap(),
        "pi-kitchen\n"
    );

    // Second boot: nothing changes, and the hub is not even needed.
    let files = [
        "data/key.pem",
        "data/cert.pem",
        "data/chain.pem",
        "data/node.json",
        "boot/vantage.toml",
        "boot/vantage-status.txt",
    ];
    let snapshot = |n: &Node| {
        files
            .iter()
            .map(|f| {
                let p = n.dir.path().join(f);
                (
                    std::fs::read(&p).unwrap(),
                    std::fs::metadata(&p).unwrap().modified().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = snapshot(&node);
    hub.kill();
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("already enrolled as {id}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&node), before);
}

#[test]
fn pending_mode_waits_for_approval_then_enrols() {
    let hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, None));

    // As on a node: no --once, the process keeps polling until approved.
    let mut child = Running(node.command().stderr(Stdio::null()).spawn().unwrap());
    let fingerprint = wait_until("a pending status", 60, || {
        let s = node.status();
        s.contains("WAITING FOR APPROVAL")
            .then(|| {
                s.lines()
                    .find(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(str::to_owned)
            })
            .flatten()
    });
    assert!(
        node.status().contains("no token in vantage.toml"),
        "{}",
        node.status()
    );
    assert!(hub.nodes().is_empty());
    assert_eq!(hub.pending(), std::slice::from_ref(&fingerprint));
    assert!(child.0.try_wait().unwrap().is_none(), "still polling");

    // The volunteer sends the fingerprint from the status file to the admin.
    hub.cli_ok(&["nodes", "approve", &fingerprint]);
    let exit = wait_until("the enrolment after approval", 60, || {
        child.0.try_wait().unwrap()
    });
    assert_eq!(exit.code(), Some(0));
    let n = node.node_json().unwrap();
    let nodes = hub.nodes();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["id"], n["node_id"]);
    assert_eq!(nodes[0]["key_fingerprint"], fingerprint.as_str());
    assert!(
        node.status().starts_with("vantage node: ENROLLED"),
        "{}",
        node.status()
    );
}

#[test]
fn refused_token_falls_back_to_approval() {
    let hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, Some("vt1.not-a-real-token")));
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let s = node.status();
    assert!(s.contains("WAITING FOR APPROVAL"), "{s}");
    assert!(s.contains("did not accept the token"), "{s}");
    assert!(node.node_json().is_none());
}

#[test]
fn invalid_settings_are_explained_in_the_status_file() {
    let hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config("hub = \"hub.example.net\"\ncontry = \"DE\"\n[wifi]\nssid = \"home\"\npassphrase = \"short\"\n");
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let s = node.status();
    assert!(s.starts_with("vantage node: PROBLEM"), "{s}");
    for needle in [
        "hub must start with https://",
        "Unknown setting contry: did you mean country?",
        "The setting country is missing",
        "wifi.country is missing",
        "wifi.passphrase must be the network's password, 8 to 63 characters",
        "What to do:",
        "vantage.toml.example",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in:\n{s}");
    }
    assert!(
        !node.data().join("key.pem").exists(),
        "nothing generated for a bad file"
    );

    // No file at all.
    std::fs::remove_file(node.config_path()).unwrap();
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        node.status().contains("There is no vantage.toml"),
        "{}",
        node.status()
    );
}

#[test]
fn wifi_settings_are_written_for_wpa_supplicant() {
    let hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config(&format!(
        "{}[wifi]\ncountry = \"DE\"\nssid = \"Home\"\npassphrase = \"correct horse\"\n",
        settings(&hub.url, Some(&hub.token(&["--country", "DE"])))
    ));
    // `early` runs before the network and writes only the system settings.
    let out = node.command().arg("early").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let wpa = node
        .dir
        .path()
        .join("etc/wpa_supplicant/wpa_supplicant-wlan0.conf");
    let text = std::fs::read_to_string(&wpa).unwrap();
    assert!(
        text.contains("country=DE") && text.contains("ssid=486f6d65"),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&wpa).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(node.node_json().is_none(), "early does not enrol");
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn unreachable_hub_and_foreign_ca_are_reported_and_retried() {
    let mut hub = hub();
    // A node of another network: its pinned CA did not sign this hub.
    let other = crate::support::hub();
    let foreign = Node::new(&other.ca_path());
    foreign.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    let out = foreign.run_once();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let s = foreign.status();
    assert!(
        s.contains("WORKING ON IT") && s.contains("is not your network's hub"),
        "{s}"
    );

    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    hub.kill();
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let s = node.status();
    assert!(s.contains("could not connect"), "{s}");
    assert!(s.contains("check that the node is connected"), "{s}");
    assert!(
        node.data().join("key.pem").exists(),
        "key kept for the next attempt"
    );
}

#[test]
fn a_hub_name_missing_from_its_certificate_is_named_as_such() {
    // The right network (same CA), but the hub's certificate is only for
    // hub.example.net while the volunteer wrote its IP address.
    let hub = Hub::builder().names(&["hub.example.net"]).start();
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, None));
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let s = node.status();
    assert!(
        s.contains("from your network's authority, but not for the name 127.0.0.1"),
        "{s}"
    );
    assert!(s.contains("hub.example.net"), "{s}");
    assert!(!s.contains("not your network's hub"), "{s}");
}

#[test]
fn a_changed_file_updates_tags_and_asks_the_admin_for_a_new_country() {
    let mut hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    assert_eq!(node.run_once().status.code(), Some(0));
    assert!(!node.status().contains("disagree"), "{}", node.status());
    let id = node.node_json().unwrap()["node_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The volunteer corrects the file (say UK to GB) and restarts the node.
    node.write_config(
        &settings(&hub.url, None)
            .replace("country = \"DE\"", "country = \"FR\"")
            .replace("[\"fiber\"]", "[\"fiber\", \"home\"]"),
    );
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = node.status().replace("\r\n", "\n");
    assert!(s.starts_with("vantage node: ENROLLED"), "{s}");
    for phrase in [
        "vantage.toml and this node's enrolment disagree",
        "In force: country DE, continent EU, tags [\"fiber\", \"home\"]",
        "Not applied (yet) from vantage.toml: country = \"FR\".",
        "approve country = \"FR\", continent = \"EU\"",
        &format!("vantage-hub nodes approve {id}"),
    ] {
        assert!(s.contains(phrase), "missing {phrase:?} in:\n{s}");
    }
    // Tags are taken at once, and the node's channels with them.
    let n = node.node_json().unwrap();
    assert_eq!(n["attrs"]["country"], "DE");
    assert!(
        n["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "tag.home"),
        "{n}"
    );
    let pending = hub.cli_ok(&["nodes", "pending"]);
    assert!(
        pending
            .lines()
            .any(|l| l.starts_with(&*id) && l.contains(" FR ") && l.contains("pending")),
        "{pending}"
    );

    // The admin approves; the next start makes the change.
    hub.cli_ok(&["nodes", "approve", &id]);
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!node.status().contains("disagree"), "{}", node.status());
    let n = node.node_json().unwrap();
    assert_eq!(n["attrs"]["country"], "FR");
    assert!(
        n["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "cc.FR"),
        "{n}"
    );
    let listed = hub.nodes();
    assert_eq!(listed[0]["country"], "FR");

    // Back to DE with the hub down: nothing changes, and the status says why.
    hub.kill();
    node.write_config(&settings(&hub.url, None));
    assert_eq!(node.run_once().status.code(), Some(0));
    let s = node.status().replace("\r\n", "\n");
    assert!(
        s.contains("Not applied (yet) from vantage.toml: country = \"DE\"; tags = [\"fiber\"]"),
        "{s}"
    );
    assert!(s.contains("could not ask the hub"), "{s}");
    assert_eq!(node.node_json().unwrap()["attrs"]["country"], "FR");
}

#[test]
fn a_good_token_after_a_refused_one_leaves_nothing_pending() {
    let hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, Some("vt1.not-a-real-token")));
    assert_eq!(node.run_once().status.code(), Some(75));
    let pending = hub.pending();
    assert_eq!(
        pending.len(),
        1,
        "the refused token made it wait for approval"
    );

    node.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(hub.pending().is_empty(), "{:?}", hub.pending());
    assert_eq!(hub.nodes().len(), 1);
    let listed = hub.cli_ok(&["nodes", "pending", "--json"]);
    assert_eq!(listed.trim(), "[]");
    // Approving the old fingerprint is refused instead of making a dead row.
    let out = std::process::Command::new(bin("vantage-hub"))
        .arg("--data-dir")
        .arg(hub.data())
        .args(["nodes", "approve", &pending[0]])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
}

#[test]
fn wrong_clock_is_named_as_the_problem() {
    // A CA whose validity starts next year: to this node the clock is wrong.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2030, 1, 1);
    params.not_after = rcgen::date_time_ymd(2040, 1, 1);
    let ca = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();

    let node = Node::new(&ca_path);
    node.write_config(&settings("https://127.0.0.1:9", None));
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let s = node.status();
    assert!(s.contains("The node's clock says"), "{s}");
    assert!(s.contains("which cannot be right"), "{s}");
    assert!(s.contains("NTP"), "{s}");
}

#[test]
fn reset_marker_gives_a_new_identity() {
    let hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    assert_eq!(node.run_once().status.code(), Some(0));
    let first = node.node_json().unwrap()["node_id"].clone();
    let first_key = std::fs::read(node.data().join("key.pem")).unwrap();
    std::fs::create_dir_all(node.data().join("outbox")).unwrap();
    std::fs::write(node.data().join("last-event-id"), "42").unwrap();

    std::fs::write(node.boot().join("vantage-reset"), "").unwrap();
    node.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    // Power lost right after the wipe: the next boot enrols the new identity.
    let out = node
        .command()
        .arg("--once")
        .env(fault::ENV, "reset")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(6), "{}", stderr(&out));
    assert!(node.node_json().is_none());
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let second = node.node_json().unwrap()["node_id"].clone();
    assert_ne!(first, second);
    assert_ne!(
        std::fs::read(node.data().join("key.pem")).unwrap(),
        first_key
    );
    assert!(!node.boot().join("vantage-reset").exists());
    assert!(!node.data().join("last-event-id").exists());
    assert!(!node.data().join("outbox").exists());
    assert_eq!(hub.nodes().len(), 2);
}

/// Every step that writes something, as named for crash injection: the
/// temporary file written but not yet renamed (`X.tmp`), the file in
/// place (`X`), and the hub's answer received but nothing stored (`issued`).
const CRASH_POINTS: &[&str] = &[
    "format.tmp",
    "format",
    "key.pem.tmp",
    "key.pem",
    "issued",
    "cert.pem.tmp",
    "cert.pem",
    "chain.pem.tmp",
    "chain.pem",
    "node.json.tmp",
    "node.json",
    "vantage.toml.tmp",
    "vantage.toml",
    "vantage-status.txt.tmp",
    "vantage-status.txt",
];

#[test]
fn power_loss_at_every_step_converges_to_one_identity() {
    let hub = hub();
    for point in CRASH_POINTS {
        let token = hub.token(&["--country", "DE"]);
        let node = Node::new(&hub.ca_path());
        node.write_config(&settings(&hub.url, Some(&token)));
        let nodes_before = hub.nodes().len();

        let out = node
            .command()
            .arg("--once")
            .env(fault::ENV, point)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{point}: expected SIGABRT, got {:?}: {}",
            out.status,
            stderr(&out)
        );

        // The next boot finishes the job; the one after changes nothing.
        let out = node.run_once();
        assert_eq!(out.status.code(), Some(0), "{point}: {}", stderr(&out));
        let id = node.node_json().unwrap()["node_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = node.run_once();
        assert!(
            stderr(&out).contains(&format!("already enrolled as {id}")),
            "{point}: {}",
            stderr(&out)
        );

        let nodes = hub.nodes();
        assert_eq!(
            nodes.len(),
            nodes_before + 1,
            "{point}: exactly one new node"
        );
        assert!(nodes.iter().any(|n| n["id"] == id.as_str()), "{point}");
        let cert =
            CertInfo::from_pem(&std::fs::read_to_string(node.data().join("cert.pem")).unwrap())
                .unwrap();
        assert_eq!(cert.node_id.as_deref(), Some(id.as_str()), "{point}");
        assert!(!node.config().contains(&token), "{point}: token scrubbed");
        assert!(
            node.status().contains(&format!("enrolled as {id}")),
            "{point}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(node.data())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{point}: {leftovers:?}");
    }
    // One certificate per token: every token names exactly one node, all distinct.
    let tokens = hub.cli_json(&["token", "list"]);
    let tokens = tokens.as_array().unwrap();
    let mut ids: Vec<_> = tokens
        .iter()
        .map(|t| t["node_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), tokens.len());
    assert_eq!(hub.nodes().len(), tokens.len());
}

#[test]
fn renewal_over_mtls_replaces_the_certificate_for_the_same_node() {
    use vantage_node::client::{PinnedCa, Timeouts};
    use vantage_node::enrol::renew_stored;
    use vantage_node::state::DataDir;

    let hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    assert_eq!(node.run_once().status.code(), Some(0));
    let data = DataDir::new(node.data());
    let old_cert = std::fs::read_to_string(data.cert_path()).unwrap();
    let id = data.read_node().unwrap().unwrap().node_id;

    let ca = PinnedCa::load(&node.ca).unwrap();
    let issued = renew_stored(&data, &ca, Timeouts::default()).unwrap();
    assert_eq!(issued.node.node_id, id);
    let new_cert = std::fs::read_to_string(data.cert_path()).unwrap();
    assert_ne!(new_cert, old_cert);
    assert_eq!(new_cert, issued.cert_pem);
    assert_eq!(
        CertInfo::from_pem(&new_cert).unwrap().node_id.as_deref(),
        Some(id.as_str())
    );

    // Without a node identity there is nothing to renew.
    let empty = DataDir::new(node.dir.path().join("empty"));
    let err = renew_stored(&empty, &ca, Timeouts::default()).unwrap_err();
    assert!(err.to_string().contains("node.json is missing"), "{err}");
}

#[test]
fn damaged_key_is_replaced_before_enrolling() {
    let hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    std::fs::create_dir_all(node.data()).unwrap();
    std::fs::write(node.data().join("key.pem"), "").unwrap();
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("making a new key"),
        "{}",
        stderr(&out)
    );
    assert!(node.node_json().is_some());
}

#[test]
fn expired_certificate_makes_the_node_ask_again() {
    // Certificates that expire the moment they are issued.
    let hub = hub_with(&["--node-cert-lifetime", "0s"]);
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    assert_eq!(node.run_once().status.code(), Some(0));
    std::thread::sleep(Duration::from_millis(1100));

    let out = node.run_once();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let s = node.status();
    assert!(s.contains("WAITING FOR APPROVAL"), "{s}");
    assert!(
        s.contains("identity can no longer be used (the certificate expired on"),
        "{s}"
    );
    assert_eq!(hub.pending().len(), 1);
}

#[test]
fn the_hub_refuses_a_country_that_is_not_iso_3166() {
    use vantage_node::client::{self, PinnedCa, Timeouts};
    use vantage_node::csr::NodeKey;
    use vantage_node::enrol::{self, Declared, EnrolRequest};

    // What a node with an older image declares: provisioning refuses "UK"
    // now, the hub must too, or the node would sit on cc.UK forever.
    let hub = hub();
    let ca = PinnedCa::load(&hub.ca_path()).unwrap();
    let key = NodeKey::generate().unwrap();
    let req = EnrolRequest {
        csr: key.csr_pem(None).unwrap(),
        token: None,
        declared: Declared {
            country: "UK".into(),
            ..Declared::default()
        },
        agent_version: None,
    };
    let agent = client::agent(&ca, None, Timeouts::default());
    let err = enrol::enrol(&agent, &hub.url, &req).unwrap_err();
    let (status, message) = err.permanent_refusal().expect("refused, not failed");
    assert_eq!(status, 400);
    assert!(message.contains("\"GB\""), "{message}");
    assert!(hub.pending().is_empty());

    // Nor does the admin's token make a node UK.
    let out = std::process::Command::new(bin("vantage-hub"))
        .arg("--data-dir")
        .arg(hub.data())
        .args(["token", "create", "--country", "UK"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("\"GB\""), "{}", stderr(&out));
}

/// Revocation as the agent meets it: the hub refuses the node's certificate
/// (by its database at once, by its CRL in the TLS handshake within a
/// second), the agent leaves its marker, and from then on the status file
/// says REVOKED, with what to do, until a reset and a new token enrol the
/// node again.
#[test]
fn a_revoked_node_says_so_until_it_is_reset() {
    use vantage_node::client::{self, ClientIdentity, PinnedCa, Timeouts};
    use vantage_node::revocation::{self, Evidence, Marker};
    use vantage_node::state::DataDir;

    let hub = hub();
    let node = Node::new(&hub.ca_path());
    node.write_config(&settings(&hub.url, Some(&hub.token(&["--country", "DE"]))));
    assert_eq!(node.run_once().status.code(), Some(0));
    let data = DataDir::new(node.data());
    let state = data.read_node().unwrap().unwrap();
    let ca = PinnedCa::load(&node.ca).unwrap();
    let identity = ClientIdentity::load(&data).unwrap();
    let heartbeat = serde_json::to_vec(&vantage_proto::node::Heartbeat {
        version: "test".into(),
        ..Default::default()
    })
    .unwrap();
    // What the agent's requests to the hub come to: the evidence of
    // revocation, if any, and the error or answer for the log.
    let ask = |agent: &ureq::Agent| -> (Option<Evidence>, String) {
        match agent
            .post(&state.endpoints.heartbeat)
            .header("content-type", "application/json")
            .send(&heartbeat[..])
        {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let body = resp.body_mut().read_to_string().unwrap_or_default();
                (
                    revocation::from_answer(status, &body),
                    format!("HTTP {status}: {body}"),
                )
            }
            Err(e) => (revocation::from_error(&e), e.to_string()),
        }
    };
    // A connection opened before the revocation and kept alive.
    let kept = client::agent(&ca, Some(&identity), Timeouts::default());
    let (evidence, answer) = ask(&kept);
    assert_eq!(evidence, None, "{answer}");
    assert!(answer.starts_with("HTTP 200"), "{answer}");

    hub.cli_ok(&["nodes", "revoke", &state.node_id]);
    // On the open connection the hub's database refuses the certificate.
    let (evidence, answer) = ask(&kept);
    assert_eq!(evidence, Some(Evidence::HubAnswer), "{answer}");
    // New connections are refused in the handshake once the CRL is reloaded.
    let (evidence, answer) = wait_until(
        "the hub to refuse the revoked certificate in the TLS handshake",
        10,
        || {
            let fresh = client::agent(&ca, Some(&identity), Timeouts::default());
            Some(ask(&fresh)).filter(|(e, _)| *e == Some(Evidence::TlsAlert))
        },
    );
    Marker::new(
        &state.node_id,
        evidence.unwrap(),
        &state.endpoints.heartbeat,
        &answer,
    )
    .write(&data)
    .unwrap();

    // The agent's unit runs this when the agent stops.
    let out = node.command().arg("refresh-status").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = node.status().replace("\r\n", "\n");
    assert!(status.starts_with("vantage node: REVOKED\n"), "{status}");
    for phrase in [
        state.node_id.as_str(),
        hub.url.as_str(),
        "revoked its certificate",
        "TLS alert certificate_revoked",
        "ask the operator of your network",
        "vantage-reset",
    ] {
        assert!(
            status.contains(phrase),
            "status lacks {phrase:?}:\n{status}"
        );
    }

    // Every boot after that: still REVOKED, not ENROLLED, and the agent is
    // not started (exit 2: the volunteer must act).
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        node.status().starts_with("vantage node: REVOKED"),
        "{}",
        node.status()
    );

    // A new token alone is kept for the reset, and the status says what is missing.
    let token = hub.token(&["--country", "DE"]);
    node.write_config(&settings(&hub.url, Some(&token)));
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(node.config().contains(&token), "the new token was scrubbed");
    assert!(
        node.status().contains("no file named vantage-reset"),
        "{}",
        node.status()
    );

    // With the reset file too: a new node, and the marker is gone.
    std::fs::write(node.boot().join("vantage-reset.txt"), "").unwrap();
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        node.status().starts_with("vantage node: ENROLLED"),
        "{}",
        node.status()
    );
    assert_eq!(Marker::read(&data), None);
    assert_ne!(data.read_node().unwrap().unwrap().node_id, state.node_id);
    // And the agent's unit, stopping the next time, leaves it ENROLLED.
    let out = node.command().arg("refresh-status").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        node.status().starts_with("vantage node: ENROLLED"),
        "{}",
        node.status()
    );
}
