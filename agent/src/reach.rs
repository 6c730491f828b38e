//! What the node can do from where it is: whether IPv4 and IPv6 work from
//! it, measured by a TCP connection to the hub over each family (the hub
//! host's addresses of that family, on its URL's port, a few seconds each).
//! The heartbeat measures again before each report; `orders` reads the
//! latest for jobs that select by `cap=`.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vantage_proto::node::Capabilities;

/// Longest wait for one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Addresses tried per family (a host with many stops early on success).
const TRIES_PER_FAMILY: usize = 2;

/// The latest measured capabilities, shared by the heartbeat (which
/// measures) and `orders` (which reads); `None` until the first measurement.
#[derive(Debug, Default, Clone)]
pub struct Caps(Arc<Mutex<Option<Capabilities>>>);

impl Caps {
    /// The latest measurement.
    pub fn get(&self) -> Option<Capabilities> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Measures again (on a blocking thread) and keeps the answer.
    pub async fn refresh(&self, hub_url: &str) -> Capabilities {
        let url = hub_url.to_string();
        let caps = tokio::task::spawn_blocking(move || measure(&url))
            .await
            .unwrap_or_default();
        let before = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(caps);
        if before != Some(caps) {
            tracing::info!(
                "reaching the hub over: {}",
                match caps.names().join(", ") {
                    n if n.is_empty() => "no address family".to_string(),
                    n => n,
                }
            );
        }
        caps
    }
}

/// Which families reach the host of `hub_url` (an unreadable URL reaches none).
pub fn measure(hub_url: &str) -> Capabilities {
    let addrs: Vec<SocketAddr> = url::Url::parse(hub_url)
        .ok()
        .and_then(|u| u.socket_addrs(|| None).ok())
        .unwrap_or_default();
    let reaches = |v4: bool| {
        addrs
            .iter()
            .filter(|a| a.is_ipv4() == v4)
            .take(TRIES_PER_FAMILY)
            .any(|a| TcpStream::connect_timeout(a, CONNECT_TIMEOUT).is_ok())
    };
    Capabilities {
        ipv4: reaches(true),
        ipv6: reaches(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn each_family_is_measured_on_its_own() {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let caps = measure(&format!("https://127.0.0.1:{port}/v1/heartbeat"));
        assert_eq!(
            caps,
            Capabilities {
                ipv4: true,
                ipv6: false
            }
        );
        drop(v4);
        // Nothing listens there any more: refused, not reached.
        assert!(!measure(&format!("https://127.0.0.1:{port}")).ipv4);
        assert_eq!(measure("not a url"), Capabilities::default());
        // IPv6 loopback where the machine has it.
        if let Ok(v6) = TcpListener::bind("[::1]:0") {
            let port = v6.local_addr().unwrap().port();
            let caps = measure(&format!("https://[::1]:{port}"));
            assert!(caps.ipv6 && !caps.ipv4, "{caps:?}");
        }
    }
}
