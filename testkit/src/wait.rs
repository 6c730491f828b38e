//! Polling, clocks, ports and child processes.

use std::net::TcpListener;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A free loopback port (bound, then released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 100 ms until it is true; fails the test after `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    wait_until(what, secs, || f().then_some(()));
}

/// Polls `f` every 100 ms until it returns `Some`; fails the test after `secs` seconds.
pub fn wait_until<T>(what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> T {
    poll(secs, f).unwrap_or_else(|| panic!("timed out after {secs} s waiting for {what}"))
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `secs` seconds.
pub fn poll<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= Duration::from_secs(secs) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (and reaped) when the test ends, even by a failed assertion.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `path` opened for appending (a child's log across restarts).
pub(crate) fn append_to(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// A text file's contents (tests compare files whole).
pub fn read(path: impl AsRef<std::path::Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
