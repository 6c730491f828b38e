//! An unusable trust-anchor file is refused, with the reason, by
//! `check-config` and by the agent before it runs anything.

use std::process::Command;
use vantage_testkit::bin;

fn config(dir: &std::path::Path, anchors: &str) -> std::path::PathBuf {
    let ta = dir.join("anchors.key");
    std::fs::write(&ta, anchors).unwrap();
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "trust_anchor = {ta:?}\ndata_dir = {:?}\n[owner]\nallow_special_addresses = true\n",
            dir.join("data")
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn empty_and_malformed_anchor_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (anchors, why) in [
        ("", "no DNSKEY or DS record"),
        ("; a comment only\n", "no DNSKEY or DS record"),
        ("example. IN A 192.0.2.1\n", "line 1"),
    ] {
        let cfg = config(dir.path(), anchors);
        let out = Command::new(bin("vantage-agent"))
            .arg("--config")
            .arg(&cfg)
            .arg("check-config")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("trust anchor file"))
            .unwrap_or_else(|| panic!("no trust anchor line for {anchors:?}:\n{text}"));
        assert!(line.starts_with("FAIL") && line.contains(why), "{line}");
        assert!(!out.status.success());

        let out = Command::new(bin("vantage-agent"))
            .arg("--config")
            .arg(&cfg)
            .arg("probe")
            .arg(r#"{"cmd":"dns","args":{"name":"example.","resolver":"127.0.0.1:9","dnssec":true}}"#)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("trust anchor file") && err.contains(why),
            "{err}"
        );
    }
}

#[test]
fn a_zone_ksk_alone_is_a_usable_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "example. 3600 IN DNSKEY 257 3 13 58pxGmFUHuya6kyQ0QlhqoUNe5Z8ZnRMsKHhEXHJADoO5TRLTugFOmT1fHwf1rje/Nb72wc5VomD2WnPvC2XVQ==\n",
    );
    let out = Command::new(bin("vantage-agent"))
        .arg("--config")
        .arg(&cfg)
        .arg("check-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("trust anchors") && l.contains("example.")),
        "{text}"
    );
}
