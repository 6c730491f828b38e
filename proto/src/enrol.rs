//! Enrolment and renewal messages between a node and the hub.

use crate::channel::NodeAttrs;
use serde::{Deserialize, Serialize};

/// What a node says about itself when it enrols. The hub's token wins where both say something.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Declared {
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Continent code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    /// City, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Latitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Autonomous system number, if the volunteer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Host name the volunteer chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// `POST /v1/enrol` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// PKCS#10 certificate signing request, PEM.
    pub csr: String,
    /// One-time enrolment token; absent for pending-mode enrolment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The node's self-declared attributes.
    #[serde(default)]
    pub declared: Declared,
    /// Agent version, for the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
}

/// `POST /v1/renew` body (over mTLS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// CSR for the same or a new key, PEM.
    pub csr: String,
}

/// `POST /v1/attrs` body (over mTLS): what the node's settings file declares
/// now, sent when it differs from the attributes the node is enrolled with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttrsRequest {
    /// The declared attributes, as at enrolment.
    pub declared: Declared,
}

/// A change of country or continent the node asked for, waiting for the
/// hub administrator's approval (tags change at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttrsChange {
    /// The country asked for.
    pub country: String,
    /// The continent asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
}

/// Answer to `POST /v1/attrs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttrsResponse {
    /// The attributes in force after the request.
    pub attrs: NodeAttrs,
    /// The channels the node subscribes to with them.
    pub channels: Vec<String>,
    /// The change still waiting for approval, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<AttrsChange>,
}

/// Outcome of an enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EnrolStatus {
    /// A certificate was issued.
    Issued,
    /// Waiting for an administrator to approve the key's fingerprint.
    Pending,
}

/// Where a node reaches the hub after enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// Base URL of the hub, e.g. `https://hub.example:8443`.
    pub hub: String,
    /// Subscriber URL template; `{channels}` is replaced by the comma-joined channel list.
    pub subscribe: String,
    /// Where results are POSTed.
    pub results: String,
    /// Where heartbeats are POSTed.
    pub heartbeat: String,
    /// Where gaps are reported.
    pub gap: String,
    /// Where certificates are renewed.
    pub renew: String,
}

impl Endpoints {
    /// The standard endpoints of a hub at `base` (no trailing slash needed).
    pub fn for_hub(base: &str) -> Self {
        let b = base.trim_end_matches('/');
        Self {
            hub: b.to_string(),
            subscribe: format!("{b}/v1/sub/{{channels}}"),
            results: format!("{b}/v1/results"),
            heartbeat: format!("{b}/v1/heartbeat"),
            gap: format!("{b}/v1/gap"),
            renew: format!("{b}/v1/renew"),
        }
    }

    /// The subscriber URL for these channels.
    pub fn subscribe_url(template: &str, channels: &[String]) -> String {
        template.replace("{channels}", &channels.join(","))
    }
}

/// Answer to an enrolment or renewal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolResponse {
    /// Issued or pending.
    pub status: EnrolStatus,
    /// SHA-256 fingerprint of the CSR's public key (hex), what an admin approves.
    pub fingerprint: String,
    /// Assigned node id (issued only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The node certificate, PEM (issued only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The CA chain, PEM (issued only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The node's attributes as the hub recorded them (issued only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<NodeAttrs>,
    /// Channels the node subscribes to (issued only).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Hub endpoints (issued only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// Human-readable note (e.g. what the admin must do for a pending node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_template() {
        let e = Endpoints::for_hub("https://h:8443/");
        assert_eq!(e.results, "https://h:8443/v1/results");
        let url = Endpoints::subscribe_url(&e.subscribe, &["all".into(), "cc.DE".into()]);
        assert_eq!(url, "https://h:8443/v1/sub/all,cc.DE");
    }

    #[test]
    fn pending_response_round_trips() {
        let r = EnrolResponse {
            status: EnrolStatus::Pending,
            fingerprint: "ab".into(),
            node_id: None,
            certificate: None,
            chain: None,
            attrs: None,
            channels: vec![],
            endpoints: None,
            message: Some("ask the hub admin to run: vantage-hub approve ab".into()),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<EnrolResponse>(&text).unwrap(), r);
    }
}
