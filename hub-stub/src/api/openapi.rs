//! The hub's OpenAPI 3.1 document, generated from the handlers' annotations
//! and the `vantage-proto` types, served at `GET /v1/openapi.json` and kept
//! in the repository as `docs/openapi.json` (a test fails when it is stale).

use super::{ApiResult, json};
use super::{admin, enrol, jobs, mandates, nodes, policy, releases, results, subscribe};
use http::StatusCode;
use utoipa::openapi::security::SecurityScheme;
use utoipa::{Modify, OpenApi};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vantage hub",
        description = "The hub of a vantage network: enrolment, the job log as event streams, signed jobs, results. Identity comes only from the client certificate (mutual TLS): node certificates for the node endpoints, operator certificates for the operator endpoints. Every refusal is an `ErrorBody` with a stable `code`.",
        license(name = "Apache-2.0"),
    ),
    paths(
        admin::ca, admin::crl, document,
        enrol::enrol, enrol::renew, enrol::update_attrs,
        subscribe::subscribe, nodes::heartbeat, nodes::gap, results::post,
        policy::get, policy::post, mandates::revocations, mandates::revoke,
        jobs::submit, jobs::list, jobs::status, results::of_job, jobs::raw_publish,
        nodes::list, nodes::one, admin::channels, admin::stats, admin::metrics,
        releases::submit, releases::list, releases::one, releases::upload, releases::download,
    ),
    modifiers(&MutualTls),
    tags(
        (name = "public", description = "Anyone, without a certificate"),
        (name = "enrolment", description = "Nodes getting and renewing their certificate"),
        (name = "nodes", description = "Node certificates only"),
        (name = "operators", description = "Operator certificates only"),
        (name = "policy", description = "The approval policy and mandate revocations"),
        (name = "releases", description = "Quorum-signed agent releases: operators submit them and upload their binaries, nodes fetch them"),
    ),
)]
pub struct ApiDoc;

struct MutualTls;

impl Modify for MutualTls {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "client_certificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "A node certificate (from enrolment) or an operator certificate (`vantage-hub operator issue`) signed by the network's CA".into(),
                ),
                deprecated: None,
                extensions: None,
            },
        );
    }
}

impl ApiDoc {
    /// The document as pretty JSON with a final newline, as committed.
    pub fn pretty() -> String {
        let mut s = Self::openapi()
            .to_pretty_json()
            .expect("the document serialises");
        s.push('\n');
        s
    }
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "public",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub(super) async fn document() -> ApiResult {
    let doc: serde_json::Value = serde_json::from_str(&ApiDoc::pretty()).expect("JSON");
    Ok(json(StatusCode::OK, &doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` is what the code generates; `make openapi` rewrites it.
    #[test]
    fn the_committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == ApiDoc::pretty(),
            "docs/openapi.json is stale: run `make openapi` and commit it"
        );
    }

    #[test]
    fn every_route_is_documented() {
        let doc = ApiDoc::openapi();
        for p in [
            "/v1/enrol",
            "/v1/renew",
            "/v1/attrs",
            "/v1/sub/{channels}",
            "/v1/heartbeat",
            "/v1/gap",
            "/v1/results",
            "/v1/policy",
            "/v1/mandates/revocations",
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/results",
            "/v1/nodes",
            "/v1/nodes/{id}",
            "/v1/channels",
            "/v1/stats",
            "/metrics",
            "/v1/ca",
            "/v1/crl",
            "/v1/openapi.json",
            "/v1/publish/{channel}",
            "/v1/releases",
            "/v1/releases/{version}",
            "/v1/releases/{version}/{target}/{binary}",
        ] {
            assert!(doc.paths.paths.contains_key(p), "{p} not documented");
        }
    }
}
