//! Server processes under test: started as children on loopback, stopped on drop,
//! and measured from `/proc` (CPU time, resident memory, peak resident memory).

use anyhow::{Context, Result, bail};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when dropped.
pub struct Server {
    /// What it is, for messages.
    pub name: String,
    child: Child,
}

impl Server {
    /// Starts `cmd` with output to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = std::fs::File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({cmd:?}); is it installed? run `bash scripts/deps.sh scale` as root"))?;
        Ok(Self {
            name: name.to_string(),
            child,
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_running(&mut self, log: &Path) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("{} exited ({st}); its log:\n{text}", self.name);
        }
        Ok(())
    }

    /// Sends a signal (e.g. SIGHUP for nginx to reload).
    pub fn signal(&self, sig: i32) -> Result<()> {
        if !kill(self.pid(), sig) {
            bail!("cannot send signal {sig} to {}", self.name);
        }
        Ok(())
    }
}

/// std has no kill(pid, sig) for arbitrary signals; `kill(1)` does it without unsafe code.
fn kill(pid: u32, sig: i32) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for Server {
    fn drop(&mut self) {
        kill(self.pid(), 15);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_listening(server: &mut Server, addr: SocketAddr, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        server.check_running(log)?;
        if Instant::now() > deadline {
            bail!("{} does not listen on {addr} after 20 s", server.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free loopback port (bound, then released; the server binds it right after).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Resource use of a process and its descendants (nginx: master and workers).
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU time, seconds.
    pub cpu_secs: f64,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
    /// Peak resident memory, KiB (sum of each process's VmHWM).
    pub hwm_kib: u64,
}

/// Reads the usage of `pid` and all its descendants.
pub fn usage(pid: u32) -> Result<Usage> {
    let tick = clock_ticks();
    let mut u = Usage::default();
    for p in tree(pid)? {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
        u.cpu_secs += ticks as f64 / tick;
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        u.rss_kib += status_kib(&status, "VmRSS:");
        u.hwm_kib += status_kib(&status, "VmHWM:");
    }
    Ok(u)
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) via getconf keeps this crate free of unsafe code.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `pid` and its descendants.
fn tree(pid: u32) -> Result<Vec<u32>> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc")? {
        let Ok(p) = e?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
            if let Some(pp) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent.push((p, pp));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        out.extend(parent.iter().filter(|(_, pp)| *pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    Ok(out)
}
