//! Enrolled nodes: a key, a certificate from the hub, a client with that identity.

use crate::client::Client;
use crate::hub::Hub;
use serde_json::{Value, json};
use std::path::Path;
use vantage_proto::enrol::{Declared, EnrolRequest, EnrolResponse};
// The node's on-disk state is the node library's to write (one place to
// change if that library moves).
use vantage_node::state::{DataDir, NodeState};

/// A node the hub enrolled.
pub struct Node {
    /// Its id.
    pub id: String,
    /// Its certificate, PEM.
    pub cert: String,
    /// Its private key, PKCS#8 PEM.
    pub key: String,
    /// A client presenting its certificate.
    pub client: Client,
    /// The hub's answer to the enrolment.
    pub response: EnrolResponse,
}

impl Node {
    /// Enrols a new key at `hub` (with `token`, declaring `country`); the hub must issue at once.
    pub fn enrol(hub: &Hub, token: Option<&str>, country: &str) -> Node {
        let key = rcgen::KeyPair::generate().unwrap();
        let req = EnrolRequest {
            csr: csr(&key),
            token: token.map(str::to_string),
            declared: Declared {
                country: country.into(),
                ..Declared::default()
            },
            agent_version: None,
        };
        let response = hub.anonymous().enrol(&req);
        let cert = response
            .certificate
            .clone()
            .unwrap_or_else(|| panic!("not issued: {response:?}"));
        let key = key.serialize_pem();
        Node {
            id: response.node_id.clone().unwrap(),
            client: Client::new(&hub.ca_pem(), Some((&cert, &key)), &hub.url),
            cert,
            key,
            response,
        }
    }

    /// Writes the node's key and identity into a node data directory, as
    /// provisioning leaves it for the agent.
    pub fn install(&self, data_dir: &Path) {
        let data = DataDir::new(data_dir);
        data.write_key(&self.key).unwrap();
        let state = NodeState::from_response(&self.response).unwrap();
        let chain = self.response.chain.as_deref().unwrap_or_default();
        data.store_issued(&state, &self.cert, chain).unwrap();
    }

    /// Reports a heartbeat, which the hub must accept.
    pub fn heartbeat(&self) {
        let (status, v) = self.client.post(
            "/v1/heartbeat",
            &json!({"version": "test", "uptime_secs": 1, "outbox_depth": 0}),
        );
        assert_eq!(status, 200, "heartbeat: {v}");
    }

    /// Sends a heartbeat (see `crate::releases::heartbeat`), which the hub
    /// must accept, and returns the release it offers.
    pub fn heartbeat_offer(&self, body: &Value) -> Option<String> {
        let a: vantage_proto::api::HeartbeatAnswer =
            self.client.post_as("/v1/heartbeat", body, 200);
        assert!(a.ok);
        a.release
    }
}

/// A certificate signing request for `key`, PEM.
pub fn csr(key: &rcgen::KeyPair) -> String {
    rcgen::CertificateParams::default()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

/// The JSON body of an enrolment of `key` (with `token` if given).
pub fn enrol_body(key: &rcgen::KeyPair, token: Option<&str>, country: &str) -> Value {
    let mut v = json!({"csr": csr(key), "declared": {"country": country}});
    if let Some(t) = token {
        v["token"] = json!(t);
    }
    v
}
