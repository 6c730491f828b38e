//! Benchmark (run by hand: `make bench-agent`): the agent's static binary size
//! for both Pi targets, and its idle footprint — resident memory and wake-ups
//! per second — next to a curl process holding the same event-stream
//! subscription (same node certificate, same URL, same hub), measured in one run.
//!
//! Wake-ups are counted as context switches (voluntary + involuntary, summed
//! over every thread) during the idle window: a sleeping process that is
//! woken is switched in once per wake-up.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vantage_testkit::{Agent, Hub, bin};

const IDLE_SECS: u64 = 60;
const TARGETS: [(&str, &str, &str); 2] = [
    (
        "aarch64-unknown-linux-musl",
        "aarch64-linux-gnu-gcc",
        "aarch64-linux-gnu-ar",
    ),
    (
        "arm-unknown-linux-musleabihf",
        "arm-linux-gnueabihf-gcc",
        "arm-linux-gnueabihf-ar",
    ),
];

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for l in status.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

/// Builds (if needed) the static release binary for a Pi target; returns its path.
fn static_binary(root: &Path, (triple, cc, ar): (&str, &str, &str)) -> Option<PathBuf> {
    let path = root.join(format!("target/{triple}/release/vantage-agent"));
    if !path.exists() {
        let env = triple.replace('-', "_");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "-p",
                "vantage-agent",
                "--target",
                triple,
            ])
            .env(format!("CARGO_TARGET_{}_LINKER", env.to_uppercase()), cc)
            .env(format!("CC_{env}"), cc)
            .env(format!("AR_{env}"), ar)
            .env(
                format!("CFLAGS_{env}"),
                if triple.starts_with("arm-") {
                    "-march=armv6kz -mfpu=vfp -mfloat-abi=hard -marm"
                } else {
                    ""
                },
            )
            .current_dir(root)
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
    }
    Some(path)
}

fn main() {
    // `cargo bench` passes --bench; anything else is ignored.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    println!("# vantage-agent benchmark\n");
    idle_against_curl();
    binary_sizes(&root);
}

/// One process's figures over the idle window.
struct Idle {
    rss_kib: u64,
    wakeups: f64,
    threads: usize,
}

/// The agent and curl holding the same subscription, idle: memory, wake-ups
/// and threads side by side.
fn idle_against_curl() {
    let hub = Hub::start(&["--keepalive", "15s"]);
    let mut agent = Agent::new(
        &hub,
        "heartbeat_secs = 300",
        "keepalive_timeout_secs = 45\n",
    );
    agent.start();
    agent.subscribed(1);
    let mut curl = curl_subscription(&hub, &agent);
    // Let both settle (TLS handshakes, first heartbeat, blocking threads retired).
    std::thread::sleep(Duration::from_secs(15));
    let [a, c] = measure_idle([agent.child.as_ref().unwrap().id(), curl.id()]);
    assert!(
        curl.try_wait().unwrap().is_none(),
        "curl's subscription ended early"
    );
    let _ = curl.kill();
    let _ = curl.wait();
    print_idle(&a, &c);
}

/// curl subscribed to the agent's channels with the agent's certificate.
fn curl_subscription(hub: &Hub, agent: &Agent) -> std::process::Child {
    let node: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(agent.data().join("node.json")).unwrap())
            .unwrap();
    let channels: Vec<&str> = node["channels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    let url = format!("{}/v1/sub/{}", hub.url, channels.join(","));
    Command::new("curl")
        .args([
            "-sSN",
            "--http1.1",
            "-H",
            "Accept: text/event-stream",
            "--cacert",
        ])
        .arg(hub.ca_path())
        .arg("--cert")
        .arg(agent.data().join("cert.pem"))
        .arg("--key")
        .arg(agent.data().join("key.pem"))
        .arg(&url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl is needed for the comparison")
}

/// Each process's figures over `IDLE_SECS`.
fn measure_idle(pids: [u32; 2]) -> [Idle; 2] {
    let (before, t0) = (pids.map(switches), Instant::now());
    std::thread::sleep(Duration::from_secs(IDLE_SECS));
    let secs = t0.elapsed().as_secs_f64();
    std::array::from_fn(|i| Idle {
        wakeups: (switches(pids[i]) - before[i]) as f64 / secs,
        rss_kib: rss_kib(pids[i]),
        threads: threads(pids[i]),
    })
}

fn print_idle(a: &Idle, c: &Idle) {
    let (arss, crss) = (a.rss_kib, c.rss_kib);
    let (aw, cw) = (a.wakeups, c.wakeups);
    println!(
        "\n## idle, one event-stream subscription, hub keep-alive every 15 s, {IDLE_SECS} s window\n"
    );
    println!("| metric | vantage-agent | curl | agent / curl |\n|---|---|---|---|");
    println!(
        "| resident memory (KiB) | {arss} | {crss} | {:.2} |",
        arss as f64 / crss as f64
    );
    println!(
        "| wake-ups per second | {aw:.2} | {cw:.2} | {:.2} |",
        if cw > 0.0 { aw / cw } else { f64::NAN }
    );
    println!("| threads | {} | {} | |", a.threads, c.threads);
    println!(
        "\nhost build measured: {} ({} bytes); curl: {}",
        bin("vantage-agent").display(),
        std::fs::metadata(bin("vantage-agent")).unwrap().len(),
        String::from_utf8_lossy(
            &Command::new("curl")
                .arg("--version")
                .output()
                .unwrap()
                .stdout
        )
        .lines()
        .next()
        .unwrap_or("")
    );
    println!(
        "RSS target: agent <= 1.5 x curl: {}",
        if (arss as f64) <= 1.5 * crss as f64 {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// The static Pi binaries' sizes against their budget.
fn binary_sizes(root: &Path) {
    println!(
        "\n## static binary size\n\n| target | bytes | MiB | budget 6 MiB |\n|---|---|---|---|"
    );
    for t in TARGETS {
        match static_binary(root, t) {
            Some(p) => {
                let size = std::fs::metadata(&p).unwrap().len();
                let mib = size as f64 / (1024.0 * 1024.0);
                println!(
                    "| {} | {size} | {mib:.2} | {} |",
                    t.0,
                    if mib <= 6.0 { "ok" } else { "OVER" }
                );
            }
            None => println!(
                "| {} | build failed (bash scripts/deps.sh cross) | | |",
                t.0
            ),
        }
    }
}
