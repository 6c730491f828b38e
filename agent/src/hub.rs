//! The node's HTTPS client to the hub: the pinned CA and the node's
//! certificate (reloaded after a renewal), short calls with a cached
//! connection pool, and the agent for each subscription attempt. An answer
//! that shows the node revoked is reported to [`Revoked`].

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use vantage_node::client::{self, ClientIdentity, PinnedCa, Timeouts};
use vantage_node::revocation;
use vantage_node::state::DataDir;

use crate::revoked::Revoked;

/// A handle on the hub client, shared by the agent's tasks.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

struct Inner {
    data: DataDir,
    ca: PinnedCa,
    identity: RwLock<ClientIdentity>,
    http: Mutex<Option<ureq::Agent>>,
    revoked: Revoked,
}

impl Hub {
    /// A client trusting `ca` with the node's identity from `data`.
    pub fn new(data: DataDir, ca: PinnedCa, identity: ClientIdentity, revoked: Revoked) -> Hub {
        Hub(Arc::new(Inner {
            data,
            ca,
            identity: RwLock::new(identity),
            http: Mutex::new(None),
            revoked,
        }))
    }

    /// An HTTPS agent with the node's certificate for short calls to the hub.
    pub fn http(&self) -> ureq::Agent {
        let mut cached = self.0.http.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .get_or_insert_with(|| {
                let id = self.0.identity.read().unwrap_or_else(|p| p.into_inner());
                client::agent(&self.0.ca, Some(&id), Timeouts::default())
            })
            .clone()
    }

    /// An HTTPS agent for one subscription attempt, with the current
    /// certificate (so a renewed one is picked up) and `read_timeout`.
    pub fn stream_agent(&self, read_timeout: Duration) -> ureq::Agent {
        let id = self
            .0
            .identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        ureq::Agent::config_builder()
            .tls_config(client::tls_config(&self.0.ca, Some(&id)))
            .https_only(true)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!("vantage-agent/{}", crate::version::VERSION))
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_per_read(Some(read_timeout))
            .build()
            .new_agent()
    }

    /// Takes the node's certificate from the data directory again (after a
    /// renewal or a new enrolment); new calls use it.
    pub fn reload_identity(&self) {
        if let Ok(id) = ClientIdentity::load(&self.0.data) {
            *self.0.identity.write().unwrap_or_else(|p| p.into_inner()) = id;
            *self.0.http.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// POSTs JSON to the hub on a blocking thread; returns the status and
    /// body. An answer that shows the node revoked stops the agent.
    pub async fn post(&self, url: String, body: Vec<u8>) -> Result<(u16, String), String> {
        let agent = self.http();
        let target = url.clone();
        let (result, evidence) = tokio::task::spawn_blocking(move || {
            let mut resp = match agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(&body[..])
            {
                Ok(r) => r,
                Err(e) => return (Err(format!("POST {url}: {e}")), revocation::from_error(&e)),
            };
            let status = resp.status().as_u16();
            let text = resp
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default();
            let evidence = revocation::from_answer(status, &text);
            (Ok((status, text)), evidence)
        })
        .await
        .map_err(|e| format!("POST thread: {e}"))?;
        if let Some(evidence) = evidence {
            let detail = match &result {
                Ok((status, text)) => format!("HTTP {status}: {}", crate::logging::one_line(text)),
                Err(e) => e.clone(),
            };
            self.0.revoked.report(evidence, &target, &detail);
        }
        result
    }
}
