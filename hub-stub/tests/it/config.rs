//! The real `vantage-hub` binary reads its settings from the built-in
//! default, the `--config` file, `VANTAGE_HUB_*` variables and flags, each
//! winning over the one before.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn hub(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(vantage_testkit::bin("vantage-hub"));
    c.args(args).env("RUST_LOG", "warn").current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    // The test's own environment must not leak a setting in.
    for (k, _) in std::env::vars() {
        if k.starts_with("VANTAGE_HUB_") && !env.iter().any(|(e, _)| *e == k) {
            c.env_remove(k);
        }
    }
    c
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    hub(dir, args, env).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An initialised data directory and a config file naming it.
fn setup(extra: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init = run(
        dir.path(),
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "init",
            "--name",
            "localhost",
        ],
        &[],
    );
    assert!(init.status.success(), "{}", stderr(&init));
    let file = dir.path().join("hub.toml");
    std::fs::write(&file, format!("data_dir = {data:?}\n{extra}")).unwrap();
    let file = file.to_str().unwrap().to_string();
    (dir, file)
}

#[test]
fn file_then_environment_then_flag() {
    let (dir, file) = setup("");
    let d = dir.path();
    let data = d.join("data");
    let list = ["--config", &file, "token", "list"];
    let o = run(d, &list, &[]);
    assert!(o.status.success(), "the file's data_dir: {}", stderr(&o));
    let elsewhere = [("VANTAGE_HUB_DATA_DIR", "/nonexistent/hub")];
    let o = run(d, &list, &elsewhere);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/hub"),
        "the variable wins: {}",
        stderr(&o)
    );
    let flagged = [&list[..], &["--data-dir", data.to_str().unwrap()]].concat();
    let o = run(d, &flagged, &elsewhere);
    assert!(o.status.success(), "the flag wins: {}", stderr(&o));
}

#[test]
fn serve_takes_its_settings_from_the_file() {
    let (dir, file) =
        setup("listen = \"127.0.0.1:0\"\naddr_file = \"hub.addr\"\nkeepalive = \"2s\"\n");
    let mut child = hub(dir.path(), &["--config", &file, "serve"], &[])
        .spawn()
        .unwrap();
    let addr = dir.path().join("hub.addr");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !addr.exists() && Instant::now() < deadline {
        assert!(child.try_wait().unwrap().is_none(), "the hub exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let bound = std::fs::read_to_string(&addr).unwrap();
    assert!(bound.starts_with("127.0.0.1:"), "{bound}");
}

#[test]
fn bad_settings_stop_the_hub_with_a_clear_error() {
    for (extra, env, want) in [
        ("keepalive = 15\n", vec![], "hub.toml: keepalive: "),
        (
            "keepalive_secs = 15\n",
            vec![],
            "hub.toml: unknown key `keepalive_secs`",
        ),
        (
            "",
            vec![("VANTAGE_HUB_REVOCATION_POLL", "fast")],
            "\"fast\" is not a duration",
        ),
        (
            "max_connections = 4\nreserved_for_identified = 4\n",
            vec![],
            "reserved_for_identified (4) must be below max_connections (4)",
        ),
    ] {
        let (dir, file) = setup(extra);
        let o = run(dir.path(), &["--config", &file, "serve"], &env);
        assert_eq!(o.status.code(), Some(2), "{extra}{env:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
}

/// Seconds from now to the `not_after` of `operator issue --json`'s answer.
fn issued_for(o: &Output) -> i64 {
    assert!(o.status.success(), "{}", stderr(o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    v["not_after"].as_i64().unwrap() - now
}

#[test]
fn lifetimes_are_durations_and_the_old_day_counts_still_work() {
    let (dir, file) = setup("");
    let d = dir.path();
    let out = d.join("op");
    let out = out.to_str().unwrap();
    let issue = |name: &str, lifetime: &[&str]| {
        let args = [
            &[
                "--config", &file, "operator", "issue", name, "--out", out, "--json",
            ][..],
            lifetime,
        ]
        .concat();
        run(d, &args, &[])
    };
    let hours = issue("new", &["--lifetime", "12h"]);
    assert!((12 * 3600 - 60..=12 * 3600).contains(&issued_for(&hours)));
    assert!(!stderr(&hours).contains("deprecated"), "{}", stderr(&hours));
    let days = issue("old", &["--days", "2"]);
    assert!((2 * 86_400 - 60..=2 * 86_400).contains(&issued_for(&days)));
    assert!(
        stderr(&days).contains("--days is deprecated; write --lifetime 2d"),
        "{}",
        stderr(&days)
    );
    let server = run(
        d,
        &[
            "--config",
            &file,
            "server-cert",
            "--name",
            "localhost",
            "--days=10",
        ],
        &[],
    );
    assert!(server.status.success(), "{}", stderr(&server));
}
